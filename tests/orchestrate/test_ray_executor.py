"""The Ray executor on a real cluster: three nodes on 127.0.0.1 (a head, a worker, and a node
labelled as the target device), Ray's token authentication on.

Checks that the distributed run gives the local executor's candidates and accuracies, that
measure tasks ran on the device node (its node id in the rows), that a worker killed while it
prepares is retried and the run completes, and that a device node that never appears fails
with a clear message after a bounded wait.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

# Ray's environment (token authentication, loopback addresses kept) is set in conftest.py,
# before any test module imports Ray.
assert os.environ.get("RAY_AUTH_MODE") == "token"

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from edge_opt.config.loading import build_config  # noqa: E402
from edge_opt.errors import DeviceLostError, ExecutorError  # noqa: E402
from edge_opt.orchestrate.experiment import run  # noqa: E402

pytestmark = pytest.mark.slow

DEVICE = "edge-device"
SETTINGS = {
    "seed": 5,
    "dataset": "mnist",
    "train_subset": 1200,
    "val_subset": 400,
    "test_subset": 400,
    "epochs": 1,
    "fine_tune_epochs": 1,
    "batch_size": 64,
    "pruning_levels": [0.0, 0.5],
    "precisions": ["fp32", "int8"],
    "runtimes": ["eager", "onnxruntime"],
    "calibration_batches": 2,
    "benchmark_warmup": 5,
    "benchmark_repeats": 20,
    "benchmark_trials": 2,
    "benchmark_max_rounds": 2,
    "benchmark_instances": 2,
    "throughput_repeats": 3,
    "measure_peak_rss": False,
    "memory_budgets_mb": [1.0],
    "active_memory_budget_mb": 1.0,
}
SAME = ["candidate_id", "status", "accuracy", "test_accuracy", "model_size_bytes"]


@pytest.fixture(scope="module")
def cluster():
    """Head (1 CPU) + worker (1 CPU) + device (0 CPUs, the device resource), loopback only."""
    common = {"node_ip_address": "127.0.0.1", "include_dashboard": False}
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, **common})
    worker = c.add_node(num_cpus=1, **common)
    device = c.add_node(num_cpus=0, resources={DEVICE: 1}, **common)
    ray.init(address=c.address, logging_level="WARNING", log_to_driver=False)
    try:
        yield {"cluster": c, "worker": worker, "device": device, "address": c.address}
    finally:
        ray.shutdown()
        c.shutdown()


def _cfg(out: Path, **extra):
    return build_config({**SETTINGS, "output_dir": str(out), **extra})


@pytest.fixture(scope="module")
def local_rows(tmp_path_factory) -> pd.DataFrame:
    """The local executor's rows. They must equal a Ray run's bit for bit: training and
    fine-tuning run on `train_threads` torch threads wherever they run (the driver, or a task
    that Ray gave one CPU), so the weights are the same; conversion runs on one thread and
    evaluation runs each batch on one thread, so the predictions are the same. The test's own
    process runs on a different thread count than a task, on purpose."""
    out = tmp_path_factory.mktemp("local") / "run"
    run(_cfg(out))
    rows = pd.read_csv(out / "sweep_results.csv")
    rows.attrs["run_dir"] = out
    return rows


def _weights(run_dir: Path) -> dict[str, bytes]:
    models = run_dir / "models"
    files = [models / "baseline_fp32.pt", *sorted((models / "variants").glob("*.pt"))]
    return {f.name: f.read_bytes() for f in files}


def _ray_executor(address: str, **extra) -> dict:
    return {"kind": "ray", "address": address, "device_wait_s": 20, **extra}


def test_ray_run_matches_local_and_measures_on_the_device(cluster, local_rows, tmp_path):
    out = tmp_path / "ray"
    run(_cfg(out, executor=_ray_executor(cluster["address"], device_resource=DEVICE)))
    rows = pd.read_csv(out / "sweep_results.csv")
    # The same weights (baseline trained here, levels fine-tuned in tasks) ...
    assert _weights(out) == _weights(local_rows.attrs["run_dir"])
    # ... so the same candidates, accuracies (validation and test) and sizes as in-process.
    pd.testing.assert_frame_equal(
        rows[SAME].sort_values("candidate_id").reset_index(drop=True),
        local_rows[SAME].sort_values("candidate_id").reset_index(drop=True),
    )
    # Every ONNX Runtime candidate was timed on the device node (its own id in the row) ...
    device_id = cluster["device"].node_id[:12]
    ort = rows[rows["runtime"] == "onnxruntime"]
    assert len(ort) == 4
    assert ort["device_latency_p50_ms"].gt(0).all()
    assert all(f"[{device_id}]" in str(v) for v in ort["device_measured_on"])
    # ... and the eager ones, which need torch, were not.
    assert rows.loc[rows["runtime"] == "eager", "device_latency_p50_ms"].isna().all()
    assert rows["measured_on"].notna().all()
    samples = json.loads((out / "device_latency_samples.json").read_text())
    assert set(samples) == set(ort["candidate_id"])
    assert all(len(v) >= 20 for v in samples.values())
    summary = json.loads((out / "run_result.json").read_text())
    assert summary["recommendation"]["cost_column"] == "device_latency_p50_ms"
    assert "measured on the target device" in summary["recommendation"]["reason"]
    assert summary["projection"]["cross_device"]["available"] is True


def _kill_a_prepare_worker(stop: threading.Event, killed: list[int]) -> None:
    """SIGKILL the first Ray worker process seen running a prepare task."""
    while not stop.is_set() and not killed:
        found = subprocess.run(
            ["pgrep", "-f", "ray::_pinned"], capture_output=True, text=True, check=False
        ).stdout.split()
        if found:
            pid = int(found[0])
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.05)


def test_a_worker_killed_mid_task_is_retried_and_the_run_completes(cluster, local_rows, tmp_path):
    out = tmp_path / "killed"
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_a_prepare_worker, args=(stop, killed))
    killer.start()
    try:
        run(_cfg(out, executor=_ray_executor(cluster["address"], max_retries=2)))
    finally:
        stop.set()
        killer.join()
    assert killed, "no prepare task was seen running"
    rows = pd.read_csv(out / "sweep_results.csv")
    assert (rows["status"] == "ok").all()
    pd.testing.assert_frame_equal(
        rows[SAME].sort_values("candidate_id").reset_index(drop=True),
        local_rows[SAME].sort_values("candidate_id").reset_index(drop=True),
    )


def test_a_device_that_never_appears_fails_after_the_bounded_wait(cluster, tmp_path):
    cfg = _cfg(
        tmp_path / "nodevice",
        executor=_ray_executor(cluster["address"], device_resource="jetson", device_wait_s=2),
    )
    start = time.monotonic()
    with pytest.raises(ExecutorError, match=r"no node of the Ray cluster carries 'jetson'"):
        run(cfg)
    assert time.monotonic() - start < 30


def test_a_device_that_leaves_mid_run_leaves_its_candidates_pending_for_resume(cluster, tmp_path):
    """Runs last: it removes the device node, then starts a new one for the resume."""
    c, out = cluster["cluster"], tmp_path / "lost"
    executor = _ray_executor(cluster["address"], device_resource=DEVICE, device_wait_s=3)
    cfg = _cfg(out, executor=executor)
    stop, seen = threading.Event(), []

    def remove_device_once_it_measures() -> None:
        status = out / "run_status.json"
        while not stop.is_set():
            try:
                stage = json.loads(status.read_text()).get("stage")
            except (OSError, ValueError):
                stage = None
            if stage == "device":
                seen.append(stage)
                time.sleep(1.0)  # let the first measure task start
                c.remove_node(cluster["device"], allow_graceful=False)
                return
            time.sleep(0.05)

    remover = threading.Thread(target=remove_device_once_it_measures)
    remover.start()
    try:
        with pytest.raises(DeviceLostError, match="--resume"):
            run(cfg)
    finally:
        stop.set()
        remover.join()
    assert seen, "no measure task was seen running on the device"
    status = json.loads((out / "run_status.json").read_text())
    assert status["status"] == "failed"
    assert "--resume" in status["resume_command"]
    # The device comes back (a new node with the same resource): --resume finishes the run.
    cluster["device"] = c.add_node(
        num_cpus=0, resources={DEVICE: 1}, node_ip_address="127.0.0.1", include_dashboard=False
    )
    run(cfg, resume=True)
    rows = pd.read_csv(out / "sweep_results.csv")
    ort = rows[rows["runtime"] == "onnxruntime"]
    assert ort["device_latency_p50_ms"].gt(0).all()
