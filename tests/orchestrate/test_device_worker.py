"""What a device node runs needs no torch: ``edge_opt.orchestrate.executors.device`` times an
ONNX file with the edge-opt harness in a process where importing torch fails."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from edge_opt.models.zoo import SmallCNN
from edge_opt.runtimes.onnxruntime import export_onnx

NO_TORCH = """
import json, sys
import numpy as np

class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is not installed on this device")

sys.meta_path.insert(0, NoTorch())
from edge_opt.orchestrate.executors.device import MeasurePayload, measure_onnx
from edge_opt.measure.harness import HarnessSettings

settings = HarnessSettings(
    threads=1, warmup_min=3, warmup_max_blocks=2, calls_per_round=10, min_rounds=2,
    max_rounds=2, noisy_max_retries=0,
)
model = open(sys.argv[1], "rb").read()
sample = np.zeros((1, 1, 28, 28), dtype=np.float32)
result = measure_onnx(MeasurePayload("p00-fp32-onnxruntime", model, sample, settings, 2))
print(json.dumps({"torch_loaded": "torch" in sys.modules, **result}))
"""


def test_an_onnx_candidate_is_measured_where_torch_is_not_installed(tmp_path: Path) -> None:
    path = export_onnx(SmallCNN().eval(), torch.zeros(1, 1, 28, 28), tmp_path / "m.onnx")
    proc = subprocess.run(
        [sys.executable, "-c", NO_TORCH, str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["torch_loaded"] is False
    stats = result["stats"]
    assert stats["instances"] == 2
    assert stats["rounds"] == 2
    # Every kept call is returned: 2 rounds x 2 instances x 10 calls.
    assert len(result["samples_ms"]) == 40
    assert min(result["samples_ms"]) > 0
    assert stats["min_ms"] <= stats["p50_ms"] <= stats["max_ms"]
    assert result["node"]["machine"]
    assert result["node"]["cpu_model"]
