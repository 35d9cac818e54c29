"""A distributed run on one machine: a real Ray cluster of three nodes on 127.0.0.1 (a head, a
worker, and a node that carries the resource `edge-device`, standing in for a Raspberry Pi),
token authentication on. Runs a config with `executor: {kind: ray, device_resource:
edge-device}` and prints each candidate's accuracy, this host's p50, the device node's p50 and
which machine measured what.

    .venv/bin/python examples/ray_cluster_demo.py [--config configs/quick.yaml] [-o DIR]

On real hardware, start the nodes with `ray start` instead (docs/devices.md: Distributed runs and
device nodes); everything else is the same.
"""

from __future__ import annotations

import argparse
import os
import secrets
import tempfile
from pathlib import Path

# Read by Ray when it is imported: authentication on, loopback addresses kept as given.
os.environ["RAY_AUTH_MODE"] = "token"
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

import pandas as pd  # noqa: E402
import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from edge_opt.config.loading import load_config
from edge_opt.orchestrate.experiment import run  # noqa: E402

DEVICE = "edge-device"
COLUMNS = [
    "candidate_id",
    "accuracy",
    "latency_p50_ms",
    "device_latency_p50_ms",
    "measured_on",
    "device_measured_on",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/quick.yaml")
    parser.add_argument("-o", "--output", default=None)
    args = parser.parse_args()
    out = Path(args.output or tempfile.mkdtemp(prefix="edge-opt-ray-demo-")) / "run"
    if out.exists():
        raise SystemExit(f"error: {out} exists; choose another -o DIR (a run is never replaced)")
    common = {"node_ip_address": "127.0.0.1", "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, **common})
    cluster.add_node(num_cpus=1, **common)
    device = cluster.add_node(num_cpus=0, resources={DEVICE: 1}, **common)
    ray.init(address=cluster.address, logging_level="WARNING", log_to_driver=False)
    try:
        print(f"cluster: {len(ray.nodes())} nodes; device node {device.node_id[:12]}")
        executor = {"kind": "ray", "address": cluster.address, "device_resource": DEVICE}
        overrides = {
            "executor": executor,
            "output_dir": str(out),
            "runtimes": ["eager", "onnxruntime"],  # the device measures ONNX Runtime ones
        }
        cfg = load_config(args.config, overrides)
        result = run(cfg)
        rows = pd.DataFrame(result.sweep)
        shown = rows[[c for c in COLUMNS if c in rows.columns]]
        with pd.option_context("display.width", 250, "display.max_colwidth", 70):
            print(shown.to_string(index=False))
        print(f"recommended: {result.recommendation['candidate_id']}")
        print(f"  {result.recommendation['reason']}")
        print(f"run directory: {out}")
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main()
