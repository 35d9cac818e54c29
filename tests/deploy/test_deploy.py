"""A run on an RGB image folder, end to end through the real CLI: sidecars next to the
deployables, per-class accuracy, `edge-opt predict` (ONNX without torch) and `export`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

CLASSES = ("blue", "green", "red")
COLOURS = {"red": (210, 40, 40), "green": (40, 210, 40), "blue": (40, 40, 210)}


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "edge_opt.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def write_rgb_tree(root: Path, per_class: dict[str, int]) -> None:
    rng = np.random.default_rng(0)
    for split, count in per_class.items():
        for name, colour in COLOURS.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                noise = rng.integers(-60, 60, size=(36, 36, 3))
                pixels = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
                Image.fromarray(pixels, "RGB").save(folder / f"{i:03d}.png")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("deploy")
    write_rgb_tree(base / "images", {"train": 24, "test": 8})
    config = {
        "dataset": {"format": "imagefolder", "path": str(base / "images")},
        "model": {
            "name": "SmallCNN",
            "kwargs": {"in_channels": 3, "input_size": 32},
            "num_classes": 3,
        },
        "val_subset": 12,
        "batch_size": 16,
        "epochs": 2,
        "learning_rate": 0.005,
        "pruning_levels": [0.0],
        "precisions": ["fp32"],
        "runtimes": ["eager", "onnxruntime"],
        "benchmark_repeats": 10,
        "benchmark_trials": 1,
        "benchmark_max_rounds": 1,
        "benchmark_instances": 1,
        "benchmark_time_cap_s": 1.0,
        "throughput_repeats": 2,
        "measure_peak_rss": False,
        "profile_repeats": 2,
        "memory_budgets_mb": [1.0],
        "active_memory_budget_mb": 1.0,
        "output_dir": str(base / "run"),
    }
    (base / "rgb.yaml").write_text(yaml.safe_dump(config))
    done = cli("run", str(base / "rgb.yaml"), cwd=base)
    assert done.returncode == 0, done.stderr[-3000:]
    return base / "run"


def test_run_writes_sidecars_and_per_class_accuracy(run_dir: Path) -> None:
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["dataset"]["class_names"] == list(CLASSES)  # sorted folder names
    assert summary["dataset"]["input_shape"] == [3, 32, 32]
    onnx = next(m for m in summary["exported_models"] if m["format"] == "onnx")
    sidecar = json.loads((run_dir / onnx["sidecar"]).read_text())
    assert sidecar["model_file"] == Path(onnx["path"]).name
    assert sidecar["model_sha256"] == onnx["sha256"]
    assert sidecar["input"]["shape"] == ["N", 3, 32, 32]
    assert (sidecar["input"]["layout"], sidecar["input"]["dtype"]) == ("NCHW", "float32")
    assert sidecar["preprocessing"]["color_mode"] == "RGB"
    data = json.loads((run_dir / "run_result.json").read_text())["data"]
    assert sidecar["preprocessing"]["mean"] == data["normalisation"]["mean"]
    assert sidecar["class_names"] == list(CLASSES)
    assert sidecar["runtime"]["name"] == "onnxruntime"
    per_class = pd.read_csv(run_dir / "per_class_accuracy.csv")
    assert per_class["class_name"].tolist() == list(CLASSES)
    assert per_class["images"].sum() == 12  # the validation split
    sweep = pd.read_csv(run_dir / "sweep_results.csv").set_index("candidate_id")
    rec = summary["recommended"]
    correct = (per_class["candidate_accuracy"] * per_class["images"]).sum()
    assert correct / per_class["images"].sum() == pytest.approx(sweep.loc[rec, "accuracy"])
    assert "## Per-class accuracy (validation split)" in (run_dir / "report.md").read_text()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert onnx["sidecar"] in manifest["files"]


def test_predict_matches_the_run_and_needs_no_torch(run_dir: Path) -> None:
    summary = json.loads((run_dir / "summary.json").read_text())
    onnx = next(m for m in summary["exported_models"] if m["format"] == "onnx")
    model = run_dir / onnx["path"]
    images = sorted((run_dir.parent / "images" / "test").rglob("*.png"))
    code = (
        "import sys, json; from edge_opt.deploy.predict import predict_images; "
        f"p = predict_images({str(model)!r}, {[str(i) for i in images]!r}); "
        "print(json.dumps([x.class_name for x in p])); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    names, torch_loaded = out.stdout.strip().splitlines()
    assert torch_loaded == "False"
    predicted = json.loads(names)
    truth = [p.parent.name for p in images]
    accuracy = np.mean([a == b for a, b in zip(predicted, truth, strict=True)])
    sweep = pd.read_csv(run_dir / "sweep_results.csv").set_index("candidate_id")
    # The whole test/ tree is the test split: predict's preprocessing is the run's.
    assert accuracy == pytest.approx(sweep.loc[onnx["candidate_id"], "test_accuracy"])
    shown = cli("predict", str(model), str(images[0]), cwd=run_dir)
    assert shown.returncode == 0
    assert shown.stdout.split("\t")[1] == predicted[0]


def test_predict_errors_are_one_line(run_dir: Path, tmp_path: Path) -> None:
    summary = json.loads((run_dir / "summary.json").read_text())
    onnx = run_dir / next(m for m in summary["exported_models"] if m["format"] == "onnx")["path"]
    image = next((run_dir.parent / "images" / "test").rglob("*.png"))
    broken = tmp_path / "broken.png"
    broken.write_bytes(image.read_bytes()[:40])
    lonely = tmp_path / "lonely.onnx"
    lonely.write_bytes(onnx.read_bytes())
    other = tmp_path / "other.json"
    other.write_text(
        json.dumps({**json.loads(onnx.with_suffix(".json").read_text()), "model_sha256": "0" * 64})
    )
    good = json.loads(onnx.with_suffix(".json").read_text())

    def edited(name: str, **changes: object) -> str:
        path = tmp_path / f"{name}.json"
        pre = {**good["preprocessing"], **changes.pop("preprocessing", {})}  # type: ignore[dict-item]
        path.write_text(json.dumps({**good, **changes, "preprocessing": pre}))
        return str(path)

    for args, message in (
        ((str(onnx.with_suffix(".json")), str(image)), "this is a model's sidecar, not a model"),
        (
            (str(onnx), str(image), "--sidecar", edited("std0", preprocessing={"std": 0})),
            "preprocessing.std [0.0] must be > 0",
        ),
        (
            (str(onnx), str(image), "--sidecar", edited("two", class_names=["a", "b"])),
            "lists 2 class names but",
        ),
        (
            (str(onnx), str(image), "--sidecar", edited("m", preprocessing={"mean": [0.1, 0.2]})),
            "preprocessing.mean has 2 values for 3 channel(s)",
        ),
        ((str(onnx), str(broken)), "broken.png: not a readable image"),
        ((str(lonely), str(image)), "lonely.onnx: no sidecar lonely.json"),
        ((str(onnx), str(image), "--sidecar", str(other)), "differs from other.json's"),
        ((str(tmp_path / "none.onnx"), str(image)), "none.onnx: no such model file"),
    ):
        done = cli("predict", *args, cwd=tmp_path)
        assert done.returncode == 1
        assert message in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def test_export_in_another_format_gets_its_own_sidecar(run_dir: Path) -> None:
    summary = json.loads((run_dir / "summary.json").read_text())
    onnx = next(m for m in summary["exported_models"] if m["format"] == "onnx")
    done = cli(
        "export", str(run_dir), "-c", onnx["candidate_id"], "-f", "torchscript", cwd=run_dir.parent
    )
    assert done.returncode == 0, done.stderr
    pt = run_dir / "models" / f"{onnx['candidate_id']}.pt"
    sidecar = json.loads((run_dir / "models" / f"{pt.name}.json").read_text())
    assert sidecar["model_file"] == pt.name
    assert sidecar["format"] == "torchscript"
    assert sidecar["measured_as"] == "onnxruntime"
    # The run's own sidecar still describes the ONNX file.
    assert json.loads((run_dir / onnx["sidecar"]).read_text())["model_file"].endswith(".onnx")
    image = next((run_dir.parent / "images" / "test" / "red").glob("*.png"))
    both = [cli("predict", str(m), str(image), cwd=run_dir) for m in (pt, run_dir / onnx["path"])]
    assert [d.stdout.split("\t")[1] for d in both] == ["red", "red"]


def test_docs_snippet_prints_what_predict_prints(run_dir: Path, tmp_path: Path) -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "deploying.md").read_text()
    start = page.index("import json, sys\nimport numpy as np, onnxruntime as ort")
    snippet = page[start : page.index("```", start)]
    (tmp_path / "run.py").write_text(snippet)
    summary = json.loads((run_dir / "summary.json").read_text())
    model = run_dir / next(m for m in summary["exported_models"] if m["format"] == "onnx")["path"]
    images = [str(p) for p in sorted((run_dir.parent / "images" / "test").rglob("*.png"))[:4]]
    mine = subprocess.run(
        [sys.executable, str(tmp_path / "run.py"), str(model), *images],
        capture_output=True,
        text=True,
        check=True,
    )
    theirs = cli("predict", str(model), *images, cwd=tmp_path)
    expected = [
        f"{f} {name} {round(float(prob), 4)}"
        for f, name, prob, _ in (line.split("\t") for line in theirs.stdout.splitlines())
    ]
    assert mine.stdout.splitlines() == expected


def test_forged_names_cannot_add_lines_to_predicts_output(run_dir: Path, tmp_path: Path) -> None:
    summary = json.loads((run_dir / "summary.json").read_text())
    onnx = run_dir / next(m for m in summary["exported_models"] if m["format"] == "onnx")["path"]
    image = next((run_dir.parent / "images" / "test").rglob("*.png"))
    forged_image = tmp_path / "a\tred\t0.9999\t2\nforged.png"  # a real file name
    forged_image.write_bytes(image.read_bytes())
    done = cli("predict", str(onnx), str(image), str(forged_image), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2  # one per image: the name's tab and newline are escaped
    assert lines[1].startswith(f"{tmp_path}/a\\tred\\t0.9999\\t2\\nforged.png\t")
    assert all(len(line.split("\t")) == 4 for line in lines)
    sidecar = json.loads(onnx.with_suffix(".json").read_text())
    sidecar["class_names"][0] = "blue\tforged 0.99\nred"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(sidecar))
    refused = cli("predict", str(onnx), str(image), "--sidecar", str(bad), cwd=tmp_path)
    assert refused.returncode == 1
    assert "class_names.0 ('blue\\tforged 0.99\\nred'): holds the control character" in (
        refused.stderr
    )


def test_a_renamed_model_finds_its_renamed_sidecar_and_scale_is_a_number(
    run_dir: Path, tmp_path: Path
) -> None:
    summary = json.loads((run_dir / "summary.json").read_text())
    onnx = run_dir / next(m for m in summary["exported_models"] if m["format"] == "onnx")["path"]
    image = next((run_dir.parent / "images" / "test").rglob("*.png"))
    (tmp_path / "mine.onnx").write_bytes(onnx.read_bytes())
    (tmp_path / "mine.json").write_bytes(onnx.with_suffix(".json").read_bytes())
    done = cli("predict", str(tmp_path / "mine.onnx"), str(image), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    scale = json.loads((tmp_path / "mine.json").read_text())["preprocessing"]["scale"]
    assert isinstance(scale, float)
    assert scale == 1 / 255


def test_a_class_folder_with_a_newline_is_refused(tmp_path: Path) -> None:
    write_rgb_tree(tmp_path / "images", {"train": 2, "test": 1})
    for split in ("train", "test"):
        (tmp_path / "images" / split / "red").rename(tmp_path / "images" / split / "red\nfake")
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "dataset": {"format": "imagefolder", "path": str(tmp_path / "images")},
                "model": {"name": "SmallCNN", "kwargs": {"in_channels": 3, "input_size": 32}},
            }
        )
    )
    done = cli("validate", str(config), cwd=tmp_path)
    assert done.returncode == 1
    assert "class name 2 ('red\\nfake'): holds the control character '\\n'" in done.stderr
