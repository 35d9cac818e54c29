from __future__ import annotations

import torch

from edge_opt.compress.quantization import quantize_static_int8
from edge_opt.measure.memory import measure_peak_rss_delta_mb, peak_activation_bytes
from edge_opt.models.zoo import SmallCNN

# SmallCNN, batch 1, fp32: input 1x28x28 (3,136 B); conv1 out 16x28x28 (50,176 B); relu1 out
# 50,176 B. Peak while relu1 runs: conv1 out (its input) + relu1 out = 100,352 B (the input
# died after conv1). Everything later is smaller.
FP32_PEAK_B1 = 100_352


def test_liveness_peak_matches_hand_computation() -> None:
    peak = peak_activation_bytes(SmallCNN(), torch.zeros(1, 1, 28, 28))
    assert peak.peak_bytes == FP32_PEAK_B1
    assert peak.at_node == "relu1"
    assert peak.method == "fx liveness"


def test_liveness_scales_with_batch_and_dtype() -> None:
    model = SmallCNN()
    assert peak_activation_bytes(model, torch.zeros(4, 1, 28, 28)).peak_bytes == 4 * FP32_PEAK_B1
    half = peak_activation_bytes(SmallCNN().half(), torch.zeros(1, 1, 28, 28).half())
    assert half.peak_bytes == FP32_PEAK_B1 // 2


def test_int8_liveness_counts_one_byte_activations(calibration) -> None:
    quantized = quantize_static_int8(SmallCNN(), calibration)
    # quint8: fused conv1+relu out 16x28x28 = 12,544 B live with pool1 out 16x14x14 = 3,136 B.
    assert peak_activation_bytes(quantized, torch.zeros(1, 1, 28, 28)).peak_bytes == 15_680


def test_views_count_once() -> None:
    class Viewer(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.view(-1).view(1, -1) + 1

    peak = peak_activation_bytes(Viewer(), torch.zeros(1, 100))
    assert peak.peak_bytes == 800  # input (400 B, shared by both views) + the sum (400 B)


def test_untraceable_models_fall_back_to_hooks() -> None:
    class Branchy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(10, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x) if x.sum() > 0 else self.lin(-x)

    peak = peak_activation_bytes(Branchy(), torch.ones(1, 10))
    assert peak.method == "hooks (approximate)"
    assert peak.peak_bytes == 80


def test_rss_probe_in_a_fresh_process(calibration) -> None:
    probe = measure_peak_rss_delta_mb(SmallCNN().eval(), torch.zeros(1, 1, 28, 28))
    assert probe.note == "measured (ts, forked child)"
    assert probe.cold_mb is not None
    assert probe.cold_mb > 0
    assert probe.warm_mb is not None
    assert 0 <= probe.warm_mb < probe.cold_mb
    quantized = quantize_static_int8(SmallCNN(), calibration)
    assert measure_peak_rss_delta_mb(quantized, torch.zeros(1, 1, 28, 28)).cold_mb is not None


def test_one_probe_server_serves_every_candidate_each_in_a_fresh_child() -> None:
    from edge_opt.measure.memory import RssProber

    with RssProber() as prober:
        first = prober.probe(SmallCNN().eval(), torch.zeros(1, 1, 28, 28))
        second = prober.probe(SmallCNN(16, 32).eval(), torch.zeros(32, 1, 28, 28))
        server = prober._server.process if prober._server is not None else None
    assert first.cold_mb is not None
    assert second.cold_mb is not None
    assert second.cold_mb > first.cold_mb  # batch 32 needs more activation memory than batch 1
    assert server is not None
    assert server.poll() is not None  # the server ended with the prober


def test_probes_in_two_lanes_keep_each_candidates_own_figures(tmp_path) -> None:
    from edge_opt.measure.memory import probe_many

    jobs = [
        (SmallCNN().eval(), torch.zeros(1, 1, 28, 28), None),
        (SmallCNN(16, 32).eval(), torch.zeros(32, 1, 28, 28), None),
        (SmallCNN().eval(), torch.zeros(1, 1, 28, 28), tmp_path / "missing.onnx"),
    ]
    seen: list[int] = []
    probes = probe_many(jobs, lanes=2, on_done=seen.append)
    assert sorted(seen) == [0, 1, 2]
    assert probes[0].cold_mb is not None
    assert probes[1].cold_mb is not None
    assert probes[1].cold_mb > probes[0].cold_mb  # results stay with their jobs
    assert probes[2].cold_mb is None  # a failed probe is a note on its own row, not a crash
    assert probes[2].note.startswith("probe failed")
    assert probe_many([]) == []


def test_lanes_share_one_probe_server_and_each_gets_its_own_answer() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from edge_opt.measure.memory import RssProber

    shapes = [(1, SmallCNN()), (32, SmallCNN(16, 32)), (1, SmallCNN()), (32, SmallCNN(16, 32))]
    with RssProber() as prober, ThreadPoolExecutor(2) as pool:
        futures = [
            pool.submit(prober.probe, model.eval(), torch.zeros(batch, 1, 28, 28))
            for batch, model in shapes
        ]
        probes = [f.result() for f in futures]
        servers = {prober._server.process.pid} if prober._server is not None else set()
    assert len(servers) == 1
    assert all(p.cold_mb is not None for p in probes)
    assert probes[1].cold_mb > probes[0].cold_mb  # the answers stay with their requests
    assert probes[3].cold_mb > probes[2].cold_mb
