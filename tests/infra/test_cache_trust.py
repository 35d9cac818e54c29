"""The cache is content-addressed for real: an entry proves it is what its key says (stored key
inputs, a seal keyed by a per-user secret, every file's sha256) or it is rebuilt, never used."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import multiprocessing
import os
import pickle
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from edge_opt.compress.variants import VariantSettings, variant_key
from edge_opt.config.schema import ExperimentConfig
from edge_opt.infra.cache import (
    FORMAT,
    META,
    ArtifactCache,
    WeightsError,
    content_key,
    load_state_dict_bytes,
    seal,
    secret_path,
    state_dict_bytes,
)
from edge_opt.infra.secret import SECRET_BYTES, load_secret
from edge_opt.orchestrate.baseline import load_inputs, train_baseline
from edge_opt.orchestrate.executors.local import LocalExecutor
from edge_opt.orchestrate.prepare import prepare_variants

WEIGHTS = "weights.pt"
EDGE_OPT = Path(sys.executable).parent / "edge-opt"
TINY = """\
seed: 3
dataset: synthetic
train_subset: 512
val_subset: 128
test_subset: 128
batch_size: 64
epochs: 1
fine_tune_epochs: 0
pruning_levels: [0.0, 0.5]
precisions: [fp32]
runtimes: [eager]
benchmark_warmup: 5
benchmark_repeats: 20
benchmark_trials: 1
benchmark_max_rounds: 2
throughput_repeats: 2
measure_peak_rss: false
"""


class _MakesAFolder:
    """A pickle that would create ``path`` when unpickled by a plain ``pickle.load``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return os.mkdir, (str(self.path),)


@pytest.fixture
def cache(tmp_path: Path) -> ArtifactCache:
    return ArtifactCache(tmp_path / "cache", secret_file=tmp_path / "secret" / "cache-secret")


@pytest.fixture
def weights() -> bytes:
    torch.manual_seed(0)
    return state_dict_bytes(torch.nn.Linear(4, 2))


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def _folder(cache: ArtifactCache, kind: str, key: str) -> Path:
    assert cache.root is not None
    return cache.root / kind / key


def _edit_meta(folder: Path, **changes: object) -> None:
    meta = json.loads((folder / META).read_text())
    meta.update(changes)
    (folder / META).write_text(json.dumps(meta))


def test_an_entry_put_is_read_back_with_its_inputs_and_seal(cache, weights) -> None:
    key = content_key("baseline", {"seed": 3})
    cache.put("baseline", key, {"accuracy": 0.5}, {WEIGHTS: weights})
    entry = cache.get("baseline", key, state_dicts=(WEIGHTS,))
    assert entry is not None
    assert (cache.hits, cache.misses) == (1, 0)
    assert entry.meta["accuracy"] == 0.5
    assert entry.meta["inputs"]["payload"] == {"seed": 3}
    assert entry.meta["inputs"]["format"] == FORMAT
    assert (entry.meta["kind"], entry.meta["key"]) == ("baseline", key)
    assert len(entry.meta["seal"]) == 64
    expected = load_state_dict_bytes(weights)["weight"]
    assert torch.equal(entry.state_dicts[WEIGHTS]["weight"], expected)


def test_a_transplanted_entry_is_a_miss_with_one_warning_then_rebuilt(
    cache, weights, caplog
) -> None:
    mine, theirs = content_key("baseline", {"seed": 3}), content_key("baseline", {"seed": 4})
    cache.put("baseline", theirs, {"accuracy": 0.9}, {WEIGHTS: weights})
    shutil.copytree(_folder(cache, "baseline", theirs), _folder(cache, "baseline", mine))
    with caplog.at_level(logging.WARNING):
        assert cache.get("baseline", mine) is None
    assert _warnings(caplog) == [
        f"cache entry baseline/{mine[:12]} not used: it was stored as "
        f"baseline/{theirs[:12]}; rebuilding it"
    ]
    assert cache.misses == 1
    cache.put("baseline", mine, {"accuracy": 0.5}, {WEIGHTS: weights})  # the rebuild replaces it
    entry = cache.get("baseline", mine)
    assert entry is not None
    assert entry.meta["accuracy"] == 0.5


def test_an_entry_moved_to_another_kind_is_a_miss(cache, weights, caplog) -> None:
    key = content_key("variant", {"level": 0.5})
    cache.put("variant", key, {"level": 0.5}, {WEIGHTS: weights})
    shutil.copytree(_folder(cache, "variant", key), _folder(cache, "baseline", key))
    with caplog.at_level(logging.WARNING):
        assert cache.get("baseline", key) is None
    assert f"it was stored as variant/{key[:12]}" in _warnings(caplog)[0]


def test_an_edited_meta_value_is_a_miss(cache, weights, caplog) -> None:
    key = content_key("candidate", {"precision": "int8"})
    cache.put("candidate", key, {"accuracy": 0.5}, {WEIGHTS: weights})
    _edit_meta(_folder(cache, "candidate", key), accuracy=1.0)
    with caplog.at_level(logging.WARNING):
        assert cache.get("candidate", key) is None
    assert _warnings(caplog) == [
        f"cache entry candidate/{key[:12]} not used: its seal does not match (meta or a file "
        "edited, or another secret); rebuilding it"
    ]


def test_a_flipped_weight_byte_with_its_sha256_updated_breaks_the_seal(
    cache, weights, caplog
) -> None:
    key = content_key("variant", {"level": 0.25})
    cache.put("variant", key, {"level": 0.25}, {WEIGHTS: weights})
    folder = _folder(cache, "variant", key)
    data = bytearray((folder / WEIGHTS).read_bytes())
    data[-40] ^= 0xFF
    (folder / WEIGHTS).write_bytes(bytes(data))
    _edit_meta(folder, files={WEIGHTS: hashlib.sha256(bytes(data)).hexdigest()})
    with caplog.at_level(logging.WARNING):
        assert cache.get("variant", key, state_dicts=(WEIGHTS,)) is None
    assert "its seal does not match" in _warnings(caplog)[0]


def test_a_flipped_weight_byte_alone_fails_its_sha256(cache, weights, caplog) -> None:
    key = content_key("variant", {"level": 0.25})
    cache.put("variant", key, {"level": 0.25}, {WEIGHTS: weights})
    folder = _folder(cache, "variant", key)
    data = bytearray((folder / WEIGHTS).read_bytes())
    data[-40] ^= 0xFF
    (folder / WEIGHTS).write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        assert cache.get("variant", key) is None
    assert f"{folder / WEIGHTS} fails its sha256" in _warnings(caplog)[0]


def test_resealed_inputs_that_do_not_hash_to_the_key_are_a_miss(
    cache, weights, caplog, tmp_path
) -> None:
    """Even with the secret, an entry whose stored inputs are not its key's is refused."""
    key = content_key("baseline", {"seed": 3})
    cache.put("baseline", key, {}, {WEIGHTS: weights})
    folder = _folder(cache, "baseline", key)
    meta = json.loads((folder / META).read_text())
    meta["inputs"]["payload"] = {"seed": 4}
    meta["seal"] = seal(meta, (tmp_path / "secret" / "cache-secret").read_bytes())
    (folder / META).write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING):
        assert cache.get("baseline", key) is None
    assert "its stored key inputs do not hash to its key" in _warnings(caplog)[0]


def test_a_missing_meta_is_a_miss(cache, weights, caplog) -> None:
    key = content_key("baseline", {"seed": 3})
    cache.put("baseline", key, {}, {WEIGHTS: weights})
    (_folder(cache, "baseline", key) / META).unlink()
    with caplog.at_level(logging.WARNING):
        assert cache.get("baseline", key) is None
    assert f"{META} is missing or unreadable (FileNotFoundError)" in _warnings(caplog)[0]


def test_an_unsealed_entry_of_the_old_format_is_a_miss(cache, weights, caplog) -> None:
    key = content_key("baseline", {"seed": 3})
    folder = _folder(cache, "baseline", key)
    folder.mkdir(parents=True)
    (folder / WEIGHTS).write_bytes(weights)
    digest = hashlib.sha256(weights).hexdigest()
    meta = {"files": {WEIGHTS: digest}, "key": key, "kind": "baseline"}
    (folder / META).write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING):
        assert cache.get("baseline", key) is None
    assert f"entry format 1, not {FORMAT}" in _warnings(caplog)[0]


def test_a_malicious_pickle_is_a_miss_naming_the_file_and_never_runs(
    cache, caplog, tmp_path
) -> None:
    planted = tmp_path / "pwned"
    key = content_key("variant", {"level": 0.5})
    evil = pickle.dumps(_MakesAFolder(planted), protocol=2)  # what torch.save writes
    cache.put("variant", key, {"level": 0.5}, {WEIGHTS: evil})
    with caplog.at_level(logging.WARNING):
        assert cache.get("variant", key, state_dicts=(WEIGHTS,)) is None
    (message,) = _warnings(caplog)
    path = _folder(cache, "variant", key) / WEIGHTS
    assert message.startswith(
        f"cache entry variant/{key[:12]} not used: {path}: not a state dict readable with "
        "weights_only=True (UnpicklingError: "
    )
    assert "GLOBAL posix.mkdir" in message  # torch's reason, in one line
    assert message.endswith("; rebuilding it")
    assert not planted.exists()
    buffer = io.BytesIO()
    torch.save([torch.zeros(2)], buffer)
    with pytest.raises(WeightsError, match=r"^/some/weights\.pt: holds a list, not a state dict"):
        load_state_dict_bytes(buffer.getvalue(), "/some/weights.pt")


def test_the_secret_is_made_once_private_and_reused(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EDGE_OPT_SECRET_DIR", str(tmp_path / "secrets"))
    path = tmp_path / "secrets" / "cache-secret"
    assert secret_path() == path
    first = ArtifactCache(tmp_path / "cache")
    key = content_key("baseline", {"seed": 3})
    first.put("baseline", key, {})
    made = path.read_bytes()
    info = path.stat()
    assert (len(made), stat.S_IMODE(info.st_mode)) == (SECRET_BYTES, 0o600)
    again = ArtifactCache(tmp_path / "cache")
    assert path.read_bytes() == made
    assert again.get("baseline", key) is not None
    assert [p.name for p in path.parent.iterdir()] == ["cache-secret"]  # no temporary left


def test_the_secret_lives_in_the_user_config_folder_by_default(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("EDGE_OPT_SECRET_DIR")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert secret_path() == tmp_path / "xdg" / "edge-opt" / "cache-secret"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert secret_path() == tmp_path / "home" / ".config" / "edge-opt" / "cache-secret"


def _race(path: Path, barrier, results) -> None:
    barrier.wait()
    results.put(load_secret(path).hex())


def test_processes_racing_to_make_the_secret_end_with_one(tmp_path) -> None:
    path = tmp_path / "secret" / "cache-secret"
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(4), context.Queue()
    workers = [context.Process(target=_race, args=(path, barrier, results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    seen = {results.get(timeout=60) for _ in workers}
    for worker in workers:
        worker.join(timeout=60)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    assert seen == {path.read_bytes().hex()}
    assert [p.name for p in path.parent.iterdir()] == ["cache-secret"]


def test_caches_with_different_secrets_refuse_each_others_entries(
    tmp_path, weights, caplog
) -> None:
    ours = ArtifactCache(tmp_path / "cache", secret_file=tmp_path / "a" / "cache-secret")
    theirs = ArtifactCache(tmp_path / "cache", secret_file=tmp_path / "b" / "cache-secret")
    key = content_key("baseline", {"seed": 3})
    theirs.put("baseline", key, {"accuracy": 1.0}, {WEIGHTS: weights})
    with caplog.at_level(logging.WARNING):
        assert ours.get("baseline", key) is None
    assert "its seal does not match" in _warnings(caplog)[0]
    assert theirs.get("baseline", key) is not None


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.write_bytes(b"short"), "5 bytes, not 32"),
        (lambda p: p.mkdir(), "not a regular file"),
        (lambda p: (p.write_bytes(bytes(32)), p.chmod(0o644)), "mode 644, others may read it"),
    ],
    ids=["short", "folder", "readable"],
)
def test_an_untrustworthy_secret_turns_the_cache_off(tmp_path, caplog, make, reason) -> None:
    path = tmp_path / "secret" / "cache-secret"
    path.parent.mkdir()
    make(path)
    with caplog.at_level(logging.WARNING):
        cache = ArtifactCache(tmp_path / "cache", secret_file=path)
    assert not cache.enabled
    (message,) = _warnings(caplog)
    assert message.startswith(f"cache off: cache secret {path}: {reason}")
    assert cache.get("baseline", content_key("baseline", {})) is None


def test_put_needs_a_key_made_for_its_kind(cache) -> None:
    with pytest.raises(TypeError, match=r"key: 'abc' is not a key of 'baseline'; make it with"):
        cache.put("baseline", "abc", {})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="is not a key of 'variant'"):
        cache.put("variant", content_key("baseline", {}), {})
    with pytest.raises(ValueError, match=r"files: \['../x'\] are not plain file names"):
        cache.put("baseline", content_key("baseline", {}), {}, {"../x": b""})


def test_a_key_survives_a_copy_and_a_pickle() -> None:
    key = content_key("baseline", {"seed": 3, "shape": (1, 28, 28)})
    for clone in (copy.deepcopy(key), pickle.loads(pickle.dumps(key))):
        assert clone == key
        assert clone.inputs == key.inputs
    assert key.inputs["payload"]["shape"] == [1, 28, 28]


# ------------------------------------------------------------------ through the pipeline
def test_a_transplanted_pruned_variant_is_rebuilt_by_the_sweep(
    trained_cnn, loaders, cache, caplog
) -> None:
    """Level 0.5's entry copied into level 0.25's key: the next run prunes 0.25 again."""
    settings = VariantSettings(0, 1e-3, 0, (1, 28, 28))
    levels = (0.25, 0.5)
    first = prepare_variants(trained_cnn, levels, None, settings, LocalExecutor(), cache)
    base_sha = hashlib.sha256(state_dict_bytes(trained_cnn)).hexdigest()
    keys = {lv: variant_key(base_sha, lv, settings, "") for lv in levels}
    shutil.rmtree(_folder(cache, "variant", keys[0.25]))
    shutil.copytree(_folder(cache, "variant", keys[0.5]), _folder(cache, "variant", keys[0.25]))
    with caplog.at_level(logging.WARNING):
        again = prepare_variants(trained_cnn, levels, None, settings, LocalExecutor(), cache)
    assert _warnings(caplog) == [
        f"cache entry variant/{keys[0.25][:12]} not used: it was stored as "
        f"variant/{keys[0.5][:12]}; rebuilding it"
    ]
    assert state_dict_bytes(again[0.25]) == state_dict_bytes(first[0.25])
    assert cache.get("variant", keys[0.25]) is not None  # the rebuild replaced the entry


def test_a_transplanted_baseline_is_trained_again(tmp_path, cache, caplog) -> None:
    """Another seed's trained baseline copied into this one's key: trained again, the same
    weights as before, not the other seed's."""
    common = {"dataset": "synthetic", "train_subset": 256, "val_subset": 64, "test_subset": 64}
    ours = ExperimentConfig(**common, seed=3, epochs=1, output_dir=str(tmp_path / "a"))
    theirs = ExperimentConfig(**common, seed=4, epochs=1, output_dir=str(tmp_path / "b"))
    trained = train_baseline(ours, load_inputs(ours, True), cache)  # as a run does it
    train_baseline(theirs, load_inputs(theirs, True), cache)
    assert cache.root is not None
    ours_folder, theirs_folder = sorted(
        (cache.root / "baseline").iterdir(),
        key=lambda f: json.loads((f / META).read_text())["inputs"]["payload"]["seed"],
    )
    shutil.rmtree(ours_folder)
    shutil.copytree(theirs_folder, ours_folder)
    with caplog.at_level(logging.WARNING):
        again = train_baseline(ours, load_inputs(ours, True), cache)
    assert any(
        m.startswith(f"cache entry baseline/{ours_folder.name[:12]} not used")
        for m in _warnings(caplog)
    )
    assert state_dict_bytes(again.model) == state_dict_bytes(trained.model)
    assert again.val_accuracy == trained.val_accuracy


def _baseline_entry(out: Path) -> Path | None:
    entries = list((out / ".edge-opt" / "cache" / "baseline").glob("*/meta.json"))
    return entries[0].parent if entries else None


def _killed_after_training(args: list[str], out: Path) -> Path:
    """A run SIGKILLed once its baseline is cached (what ``--resume`` then continues)."""
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while (entry := _baseline_entry(out)) is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no baseline was cached: {proc.communicate()[1][-2000:]}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    return entry


@pytest.mark.slow
def test_resume_rebuilds_another_runs_baseline_planted_in_its_cache(tmp_path) -> None:
    """The issue's case: run X's cached baseline copied into run Y's key; Y --resume trains
    its own again (a warning in its log), and publishes its own weights, not X's."""
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    theirs, ours = tmp_path / "x", tmp_path / "y"
    done = subprocess.run([str(EDGE_OPT), "run", str(config), "-o", str(theirs)], timeout=600)
    assert done.returncode == 0
    run = [str(EDGE_OPT), "run", str(config), "-o", str(ours), "--set", "seed=4"]
    entry = _killed_after_training(run, ours)
    own = json.loads((entry / META).read_text())["files"][WEIGHTS]
    planted = _baseline_entry(theirs)
    assert planted is not None
    shutil.rmtree(entry)
    shutil.copytree(planted, entry)
    resumed = subprocess.run([*run, "--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    log = (ours / "run.log").read_text()
    assert (
        f"cache entry baseline/{entry.name[:12]} not used: it was stored as "
        f"baseline/{planted.name[:12]}; rebuilding it"
    ) in log
    published = json.loads((ours / "manifest.json").read_text())["files"]
    stolen = json.loads((planted / META).read_text())["files"][WEIGHTS]
    assert published["models/baseline_fp32.pt"] == own != stolen
