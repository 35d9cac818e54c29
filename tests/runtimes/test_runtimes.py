"""Runtimes as a sweep axis: ONNX export round trip, ONNX Runtime int8, compiled, skips."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from edge_opt.errors import RuntimeBuildError
from edge_opt.infra.environment import sha256_file
from edge_opt.runtimes.build import build_runtime
from edge_opt.runtimes.registry import unsupported_reason

REPO = Path(__file__).resolve().parents[2]
EDGE_OPT = Path(sys.executable).parent / "edge-opt"


def top1_agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.argmax(1) == b.argmax(1)).float().mean())


def test_onnx_round_trip_agrees_with_eager_fp32(trained_cnn, synthetic_splits, tmp_path) -> None:
    x = synthetic_splits.val.tensors[0][:200]
    built = build_runtime("onnxruntime", trained_cnn, "fp32", [], x[:1], workdir=tmp_path)
    assert built.artifact is not None
    assert built.artifact.suffix == ".onnx"
    assert built.size_bytes == os.path.getsize(built.artifact)
    with torch.inference_mode():
        reference = trained_cnn(x)
    outputs = built.predict(x)  # dynamic batch: 200 rows from a model exported at batch 1
    assert outputs.shape == (200, 10)
    assert top1_agreement(outputs, reference) >= 0.99
    assert float((outputs - reference).abs().max()) < 1e-3
    built.release_buffers()  # the session goes; the next call loads the file again
    assert torch.equal(built.predict(x), outputs)
    call = built.timed_call(x[:1])
    built.release_buffers()  # a bound timed call keeps its own session
    call()


def test_onnxruntime_int8_is_quantized_and_agrees(
    trained_cnn, synthetic_splits, calibration, tmp_path
) -> None:
    import onnx

    x = synthetic_splits.val.tensors[0][:200]
    built = build_runtime("onnxruntime", trained_cnn, "int8", calibration, x[:1], workdir=tmp_path)
    graph = onnx.load(str(built.artifact)).graph
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in graph.node}
    fp32 = build_runtime("onnxruntime", trained_cnn, "fp32", [], x[:1], workdir=tmp_path / "f")
    assert built.size_bytes < 0.4 * fp32.size_bytes
    with torch.inference_mode():
        assert top1_agreement(built.predict(x), trained_cnn(x)) >= 0.95


def test_unsupported_combinations_say_why() -> None:
    assert unsupported_reason("onnxruntime", "fp16") == (
        "ONNX Runtime's CPU execution provider has few fp16 kernels"
    )
    assert unsupported_reason("eager", "fp16") is None
    assert unsupported_reason("tflite", "fp32").startswith("runtime: 'tflite' is not a registered")
    with pytest.raises(RuntimeBuildError, match="no bf16 kernels"):
        build_runtime("onnxruntime", torch.nn.Linear(2, 2), "bf16", [], torch.zeros(1, 2))


@pytest.mark.slow
def test_compiled_runtime_matches_eager(trained_cnn, synthetic_splits) -> None:
    x = synthetic_splits.val.tensors[0][:64]
    built = build_runtime("compiled", trained_cnn, "fp32", [], x[:1])
    with torch.inference_mode():
        reference = trained_cnn(x)
    assert top1_agreement(built.predict(x), reference) == 1.0


@pytest.fixture(scope="module")
def runtime_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runtimes")
    proc = subprocess.run(
        [
            str(EDGE_OPT),
            "run",
            "configs/quick.yaml",
            "-o",
            str(out),
            "--set",
            "epochs=1",
            "--set",
            "fine_tune_epochs=0",
            "--set",
            "pruning_levels=[0.5]",
            "--set",
            "precisions=[fp32, fp16, int8]",
            "--set",
            "runtimes=[eager, onnxruntime]",
            "--set",
            "benchmark_repeats=20",
            "--set",
            "benchmark_max_rounds=3",
            "--set",
            "measure_peak_rss=false",
            "--set",
            "memory_budgets_mb=[1.0]",
            "--set",
            "active_memory_budget_mb=1.0",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.slow
def test_sweep_has_a_runtime_axis_and_skipped_rows(runtime_run: Path) -> None:
    sweep = pd.read_csv(runtime_run / "sweep_results.csv").set_index("candidate_id")
    assert set(sweep["runtime"]) == {"eager", "onnxruntime"}
    skipped = sweep.loc["p50-fp16-onnxruntime"]
    assert skipped["status"] == "skipped"
    assert skipped["error"] == "ONNX Runtime's CPU execution provider has few fp16 kernels"
    ort = sweep.loc["p50-fp32-onnxruntime"]
    assert ort["status"] == "ok"
    assert ort["ref_top1_agreement"] >= 0.99  # vs fp32 eager of the same pruning level
    assert ort["ref_max_abs_error"] < 1e-3
    assert sweep.loc["p50-int8-onnxruntime", "status"] == "ok"


@pytest.mark.slow
def test_exported_files_match_the_manifest(runtime_run: Path) -> None:
    manifest = json.loads((runtime_run / "manifest.json").read_text())
    exported = manifest["exported_models"]
    summary = json.loads((runtime_run / "summary.json").read_text())
    front = set(summary["pareto_frontier_latency"]) | set(summary["pareto_frontier_energy"])
    expected = front | ({summary["recommended"]} if summary["recommended"] else set())
    assert {m["candidate_id"] for m in exported} == expected
    assert exported  # everything is accepted under a 1 MB budget: the frontiers are not empty
    for model in exported:
        path = runtime_run / model["path"]
        assert path.suffix == (".onnx" if model["candidate_id"].endswith("onnxruntime") else ".pt")
        assert sha256_file(path) == model["sha256"]


@pytest.mark.slow
def test_export_command_rebuilds_a_candidate(runtime_run: Path) -> None:
    manifest = json.loads((runtime_run / "manifest.json").read_text())
    onnx = [m for m in manifest["exported_models"] if m["format"] == "onnx"]
    assert onnx  # ONNX Runtime fp32 is the fastest candidate: it is on the latency frontier
    exported = onnx[0]
    target = runtime_run / "again.onnx"
    proc = subprocess.run(
        [
            str(EDGE_OPT),
            "export",
            str(runtime_run),
            "--candidate",
            exported["candidate_id"],
            "--output",
            str(target),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert sha256_file(target) in proc.stdout.replace("\n", "")
    assert sha256_file(target) == exported["sha256"]  # the same bytes again
    bad = subprocess.run(
        [str(EDGE_OPT), "export", str(runtime_run), "--candidate", "nope"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 1
    assert "candidate 'nope' is not in this run" in bad.stderr


@pytest.mark.slow
def test_compiled_int8_goes_through_pt2e_and_agrees(
    trained_cnn, synthetic_splits, calibration
) -> None:
    x = synthetic_splits.val.tensors[0][:64]
    built = build_runtime("compiled", trained_cnn, "int8", calibration, x[:1])
    assert built.runtime == "compiled"
    # PT2E keeps fp32 weights beside the int8 ones: larger than the eager int8 state dict.
    assert (
        built.size_bytes
        > build_runtime("eager", trained_cnn, "int8", calibration, x[:1]).size_bytes
    )
    with torch.inference_mode():
        reference = trained_cnn(x)
    assert top1_agreement(built.predict(x), reference) >= 0.95


@pytest.mark.parametrize(
    ("runtime", "precision"),
    [("eager", "fp32"), ("eager", "int8"), ("eager", "bf16"), ("onnxruntime", "int8")],
)
def test_parallel_evaluation_gives_the_same_predictions_bit_for_bit(
    runtime, precision, trained_cnn, synthetic_splits, calibration, tmp_path
) -> None:
    # Preparation evaluates batches side by side on every CPU, each batch on one torch thread:
    # the predictions must be exactly those of one worker at the caller's thread count (a Ray
    # task with one CPU, --resume).
    from concurrent.futures import ThreadPoolExecutor

    from torch.utils.data import DataLoader, TensorDataset

    from edge_opt.measure.metrics import evaluate_predict
    from edge_opt.measure.process import torch_threads

    x, y = synthetic_splits.val.tensors
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    with torch_threads(1):
        built = build_runtime(runtime, trained_cnn, precision, calibration, x[:1], workdir=tmp_path)
        assert built.concurrent_predict
        with torch_threads(2):  # one worker at the caller's 2 threads; 3 workers at 1 each
            one = evaluate_predict(built.predict, loader, workers=1)
            two = evaluate_predict(built.predict, loader, workers=3)
        batches = [b for b, _ in loader]
        alone = [built.predict(b) for b in batches]
        with ThreadPoolExecutor(3) as pool:
            together = list(pool.map(built.predict, batches))
    assert torch.equal(one.predictions, two.predictions)
    assert (one.correct, one.total) == (two.correct, two.total)
    assert one.total == len(y)
    assert all(torch.equal(a, b) for a, b in zip(alone, together, strict=True))  # logits too


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_eager_evaluation_through_the_pooling_view_is_bit_identical(
    precision, trained_cnn, synthetic_splits
) -> None:
    # Evaluation pools channels-last (3-5x faster on CPU); the logits must be the model's own.
    from edge_opt.compress.quantization import convert_precision
    from edge_opt.runtimes.eager import eager_model
    from edge_opt.runtimes.evaluation import ChannelsLastMaxPool, pooling_view

    converted = convert_precision(trained_cnn, precision)
    view = pooling_view(converted.model)
    assert view is not None
    assert any(isinstance(m, ChannelsLastMaxPool) for m in view.modules())
    assert all(  # parameters shared, not copied
        a is b for a, b in zip(view.parameters(), converted.model.parameters(), strict=True)
    )
    x = synthetic_splits.val.tensors[0]
    built = eager_model(converted)
    with torch.inference_mode():
        expected = converted.model(converted.prepare_input(x)).float()
        assert torch.equal(built.predict(x), expected)  # the first batch checks the view
        alone = converted.model(converted.prepare_input(x[:7])).float()
        assert torch.equal(built.predict(x[:7]), alone)  # later batches use the view
    assert not any(isinstance(m, ChannelsLastMaxPool) for m in converted.model.modules())


def test_an_evaluation_view_that_differs_is_dropped_for_the_model_itself() -> None:
    from torch import nn

    from edge_opt.runtimes.evaluation import EvaluationTwin

    model = nn.Sequential(nn.MaxPool2d(2)).eval()
    twin = EvaluationTwin(model)
    twin._view = nn.Sequential(nn.MaxPool2d(2), nn.Identity(), nn.Hardtanh(0.0, 0.1))
    x = torch.rand(2, 3, 4, 4)
    assert torch.equal(twin(x), model(x))
    assert twin._view is None  # evaluated through the model itself from then on
    assert torch.equal(twin(x), model(x))
    assert EvaluationTwin(nn.Linear(2, 2))._view is None  # nothing to pool: the model itself


def test_the_exporters_registry_is_built_once_and_the_files_stay_byte_identical(
    trained_cnn, tmp_path, monkeypatch
) -> None:
    import contextlib

    from torch.onnx._internal.exporter import _registration

    import edge_opt.runtimes.onnxruntime as ort_runtime

    original = _registration.ONNXRegistry.__dict__["from_torchlib"]
    x = torch.zeros(1, 1, 28, 28)
    first = ort_runtime.export_onnx(trained_cnn, x, tmp_path / "a.onnx").read_bytes()
    second = ort_runtime.export_onnx(trained_cnn, x, tmp_path / "b.onnx").read_bytes()
    assert ort_runtime._REGISTRIES  # built once, kept for the process
    assert _registration.ONNXRegistry.__dict__["from_torchlib"] is original  # restored
    with ort_runtime._torchlib_registry_once():
        one = _registration.ONNXRegistry.from_torchlib()
        other = _registration.ONNXRegistry.from_torchlib()
    assert one.functions is not other.functions  # an export's registrations stay its own
    assert one.functions == other.functions
    monkeypatch.setattr(ort_runtime, "_torchlib_registry_once", contextlib.nullcontext)
    plain = ort_runtime.export_onnx(trained_cnn, x, tmp_path / "c.onnx").read_bytes()
    assert first == second == plain


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16", "int8"])
def test_a_three_channel_model_exports_in_every_precision(precision, tmp_path) -> None:
    """An RGB model's eager candidates trace at its own input shape: int8 FX conversion
    drops the model's ``input_shape``, and tracing int8 at the 1x28x28 fallback failed in
    oneDNN ("could not create a primitive descriptor")."""
    from edge_opt.models.zoo import SmallCNN

    torch.manual_seed(0)
    model = SmallCNN(in_channels=3, input_size=32).eval()
    batches = [torch.rand(16, 3, 32, 32) for _ in range(2)]
    built = build_runtime("eager", model, precision, batches, torch.zeros(1, 3, 32, 32))
    assert built.input_shape == (3, 32, 32)
    path = built.save(tmp_path / f"rgb-{precision}.pt")
    traced = torch.jit.load(str(path))
    x = torch.rand(4, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(
            traced(built.eager.prepare_input(x)), built.eager.model(built.eager.prepare_input(x))
        )


def test_a_deployable_that_cannot_be_written_is_a_warning() -> None:
    from edge_opt.orchestrate.describe import deployable_warnings

    exported = [
        {"candidate_id": "p00-fp32-eager", "path": "models/p00-fp32-eager.pt"},
        {"candidate_id": "p25-int8-eager", "path": None, "error": "disk full"},
    ]
    assert deployable_warnings(exported) == [
        "the deployable file of p25-int8-eager could not be written: disk full"
    ]
