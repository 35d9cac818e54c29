"""The executorch runtime: a .pte lowered to XNNPACK, fp32 and int8, timed like ONNX Runtime."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

import edge_opt.runtimes.executorch as et
from edge_opt.candidates.plan import SweepPlan
from edge_opt.errors import RuntimeBuildError
from edge_opt.infra.cache import ArtifactCache
from edge_opt.measure.harness import HarnessSettings
from edge_opt.orchestrate.executors.local import LocalExecutor
from edge_opt.orchestrate.prepare import CandidateInputs, prepare_candidates
from edge_opt.orchestrate.sweep import run_sweep
from edge_opt.runtimes.build import artifact_name, build_runtime
from edge_opt.runtimes.registry import RUNTIMES, RuntimeSpec, unsupported_reason


def top1_agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.argmax(1) == b.argmax(1)).float().mean())


@pytest.fixture(scope="module")
def batches(synthetic_splits) -> list[torch.Tensor]:
    images = synthetic_splits.train.tensors[0]
    return [images[i : i + 50] for i in range(0, 200, 50)]


@pytest.fixture(scope="module")
def fp32_pte(trained_cnn, synthetic_splits, tmp_path_factory):
    x = synthetic_splits.val.tensors[0]
    folder = tmp_path_factory.mktemp("pte32")
    # A static batch of 3: 200 rows run as 67 calls, the last one padded.
    return build_runtime("executorch", trained_cnn, "fp32", [], x[:3], workdir=folder)


def test_fp32_program_matches_eager_and_its_size_is_the_file(
    fp32_pte, trained_cnn, synthetic_splits
) -> None:
    x = synthetic_splits.val.tensors[0][:200]
    assert fp32_pte.artifact is not None
    assert fp32_pte.artifact.suffix == ".pte"
    assert fp32_pte.size_bytes == os.path.getsize(fp32_pte.artifact)
    assert fp32_pte.deployable_format == "pte"
    with torch.inference_mode():
        reference = trained_cnn(x)
    outputs = fp32_pte.predict(x)
    assert outputs.shape == (200, 10)
    assert top1_agreement(outputs, reference) >= 0.99
    assert float((outputs - reference).abs().max()) < 1e-4


def test_the_sidecar_gives_the_programs_static_batch(fp32_pte, tmp_path) -> None:
    from edge_opt.deploy.deployables import describe_deployable

    assert fp32_pte.static_batch == 3
    path = fp32_pte.save(tmp_path / "p00-fp32-executorch.pte")
    data = {"input_shape": [1, 28, 28], "num_classes": 10}
    sidecar = describe_deployable(path, "p00-fp32-executorch", "pte", fp32_pte, data)
    batch = json.loads(sidecar.read_text())["input"]["batch"]
    assert batch.startswith("static: 3 (feed exactly 3 rows")


def test_the_thread_pool_has_the_harness_thread_count(fp32_pte) -> None:
    import executorch.extension.pybindings.portable_lib as lib

    assert lib._threadpool_get_thread_count() == 1  # built with threads=1
    assert et.set_threadpool_threads(1) == 1


def test_fresh_instance_is_an_independent_program(fp32_pte, synthetic_splits) -> None:
    x = synthetic_splits.val.tensors[0][:7]
    twin = fp32_pte.fresh_instance(1)
    assert twin is not None
    assert twin is not fp32_pte
    assert twin.artifact == fp32_pte.artifact
    assert twin.predict is not fp32_pte.predict
    torch.testing.assert_close(twin.predict(x), fp32_pte.predict(x), rtol=0, atol=0)
    one_call = twin.timed_call(x[:3])  # the program's batch: one execute
    assert one_call()[0].shape == (3, 10)
    assert len(twin.timed_call(x)()) == 3  # 7 rows: three calls of batch 3


def test_int8_program_is_quantized_and_delegated_to_xnnpack(
    trained_cnn, synthetic_splits, batches, fp32_pte, tmp_path
) -> None:
    x = synthetic_splits.val.tensors[0][:200]
    lowered = et.lower_to_executorch(trained_cnn, "int8", batches, x[:1])
    delegated = lowered.delegated_ops
    assert delegated["aten_convolution_default"] == 2  # both convs run in XNNPACK ...
    assert delegated["aten_linear_default"] == 1
    assert delegated["quantized_decomposed_dequantize_per_channel_default"] == 3  # ... as qs8
    assert delegated["quantized_decomposed_quantize_per_tensor_default"] >= 1
    assert not any("aten" in op for op in lowered.non_delegated_ops)  # nothing left outside
    path = tmp_path / "int8.pte"
    path.write_bytes(lowered.buffer)
    built = et.pte_model(path, 1, fp32_pte.eager)
    assert built.size_bytes == os.path.getsize(path)
    assert built.size_bytes < 0.4 * fp32_pte.size_bytes  # int8 weights, one program format
    with torch.inference_mode():
        assert top1_agreement(built.predict(x), trained_cnn(x)) >= 0.95


def test_unsupported_precisions_and_duplicate_names_are_refused() -> None:
    assert {"eager", "onnxruntime", "compiled", "executorch"} <= set(RUNTIMES.names())
    assert artifact_name("executorch") == "model.pte"
    assert artifact_name("eager") is None
    assert unsupported_reason("executorch", "fp16") == (
        "edge-opt lowers only fp32 and int8 (PT2E) to ExecuTorch's XNNPACK delegate; "
        "fp16 is not built"
    )
    assert unsupported_reason("executorch", "int8") is None
    with pytest.raises(RuntimeBuildError, match="runtime 'executorch' is already registered"):
        RUNTIMES.add(RuntimeSpec("executorch", "edge_opt.runtimes.executorch:build_executorch"))


def test_a_sweep_with_executorch_has_ok_rows(trained_cnn, loaders, batches, tmp_path) -> None:
    df = run_sweep(
        trained_cnn,
        loaders.val,
        batches,
        "cpu",
        [0.5],
        ["fp32", "bf16"],
        5.0,
        2,
        [1.0],
        1.0,
        benchmark_repeats=5,
        benchmark_trials=1,
        benchmark_warmup=1,
        throughput_repeats=2,
        measure_rss=False,
        runtimes=["eager", "executorch"],
        workdir=tmp_path / "work",
    ).set_index("candidate_id")
    assert df.loc["p50-bf16-executorch", "status"] == "skipped"
    assert df.loc["p50-bf16-executorch", "error"].endswith("bf16 is not built")
    for cid in ("p50-fp32-eager", "p50-fp32-executorch"):
        assert df.loc[cid, "status"] == "ok"
        assert df.loc[cid, "latency_p50_ms"] > 0
    assert df.loc["p50-fp32-executorch", "ref_top1_agreement"] >= 0.99
    assert df.loc["p50-fp32-executorch", "ref_max_abs_error"] < 1e-4
    assert df.loc["p50-fp32-executorch", "model_size_bytes"] == os.path.getsize(
        tmp_path / "work" / "p50-fp32-executorch" / "model_fp32.pte"
    )


def test_the_cache_reuses_the_pte_on_resume(
    trained_cnn, loaders, batches, synthetic_splits, tmp_path, monkeypatch
) -> None:
    plan = SweepPlan(
        pruning_levels=(0.0,),
        precisions=("int8",),
        harness=HarnessSettings.from_counts(1, 1, 5, 1, 0),
        runtimes=("executorch",),
    )
    x = synthetic_splits.val.tensors[0]
    cache = ArtifactCache(tmp_path / "cache")

    def prepare(workdir: Path):
        inputs = CandidateInputs(loaders.val, None, batches, x[:1], x[:20], (1, 28, 28), workdir)
        variants = {0.0: trained_cnn}
        return prepare_candidates(plan, variants, inputs, LocalExecutor(), cache)[0]

    first = prepare(tmp_path / "run1")
    assert first.error is None
    assert not first.from_cache
    assert first.built is not None
    assert first.built.artifact is not None

    def no_lowering(*_args, **_kwargs):
        raise AssertionError("lowered again instead of loading the cached .pte")

    monkeypatch.setattr(et, "lower_to_executorch", no_lowering)
    second = prepare(tmp_path / "run2")
    assert second.error is None
    assert second.from_cache
    assert second.built is not None
    assert second.built.artifact is not None
    assert second.built.artifact.name == "model.pte"
    assert second.built.artifact.is_relative_to(tmp_path / "cache")
    assert second.built.artifact.read_bytes() == first.built.artifact.read_bytes()
    assert second.accuracy is not None
    assert first.accuracy is not None
    assert second.accuracy.correct == first.accuracy.correct
