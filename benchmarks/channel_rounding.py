"""Latency vs MACs with and without rounding kept channels (`channel_multiple`), zoo models.

For SmallCNN, TinyResNet and TinyMobileNet (1x28x28, random weights: timing does not depend on
them), prunes at 0.3 / 0.5 / 0.7 with channel_multiple 1 and 8, and times every variant fp32
eager at batch 1, 1 thread, all of one model side by side in interleaved rounds. Prints MACs and
p50 per variant and both as ratios to the unpruned model measured in the same rounds.

    .venv/bin/python benchmarks/channel_rounding.py
"""

from __future__ import annotations

import torch

from edge_opt.compress.pruning import structured_channel_prune
from edge_opt.measure.harness import HarnessSettings, measure_interleaved
from edge_opt.models.layers import estimate_layerwise_stats
from edge_opt.models.zoo import create_model

LEVELS = (0.3, 0.5, 0.7)
MULTIPLES = (1, 8)
SETTINGS = HarnessSettings(
    threads=1, warmup_min=20, calls_per_round=100, min_rounds=5, max_rounds=12, precision=0.02
)


def main() -> None:
    torch.manual_seed(0)
    example = torch.zeros(1, 1, 28, 28)
    print("model          level  multiple      MACs  MACs_ratio  p50_ms  p50_ratio  [95% CI]")
    for name in ("SmallCNN", "TinyResNet", "TinyMobileNet"):
        base = create_model(name).eval()
        variants = {"unpruned": base}
        for level in LEVELS:
            for multiple in MULTIPLES:
                pruned = structured_channel_prune(base, level, channel_multiple=multiple).eval()
                variants[f"{level}/{multiple}"] = pruned
        calls = {k: (lambda m=m: m(example)) for k, m in variants.items()}
        stats = measure_interleaved(calls, SETTINGS, anchor="unpruned")
        macs = {k: int(estimate_layerwise_stats(m, 1)["macs"].sum()) for k, m in variants.items()}
        for key, s in stats.items():
            level, multiple = key.split("/") if "/" in key else ("0.0", "-")
            print(
                f"{name:<14} {level:>5}  {multiple:>8}  {macs[key]:>8}  "
                f"{macs[key] / macs['unpruned']:>10.3f}  {s.p50_ms:>6.4f}  "
                f"{s.p50_ms / stats['unpruned'].p50_ms:>9.3f}  "
                f"[{s.p50_ci95_low_ms:.4f}, {s.p50_ci95_high_ms:.4f}]"
            )


if __name__ == "__main__":
    main()
