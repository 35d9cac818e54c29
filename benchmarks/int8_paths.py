"""Which int8 path for the eager runtime: FX graph mode vs PT2E (torchao, x86 inductor quantizer).

For each built-in model (random weights: speed does not depend on them) and batch 1 / 32,
times fp32, FX int8, PT2E int8 run eagerly and PT2E int8 under torch.compile, side by side in
interleaved rounds, and prints p50s and ratios to fp32 measured in the same run, plus the
PT2E prepare+compile time. Needs torchao.

    .venv/bin/python benchmarks/int8_paths.py
"""

from __future__ import annotations

import copy
import time
import warnings

import torch

from edge_opt.compress.quantization import quantize_static_int8
from edge_opt.measure.harness import HarnessSettings, measure_interleaved
from edge_opt.models.zoo import SmallCNN, TinyMobileNet, TinyResNet

warnings.filterwarnings("ignore")
SETTINGS = HarnessSettings(warmup_min=10, calls_per_round=50, min_rounds=5, max_rounds=5)


def pt2e_int8(model: torch.nn.Module, calibration: list[torch.Tensor]) -> torch.nn.Module:
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = xiq.X86InductorQuantizer()
    quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
    exported = torch.export.export(copy.deepcopy(model).eval(), (calibration[0],)).module()
    prepared = prepare_pt2e(exported, quantizer)
    for batch in calibration:
        prepared(batch)
    return convert_pt2e(prepared)


def main() -> None:
    torch.manual_seed(0)
    for cls in (SmallCNN, TinyResNet, TinyMobileNet):
        model = cls().eval()
        calibration = [torch.randn(32, 1, 28, 28) for _ in range(4)]
        fx = quantize_static_int8(model, calibration)
        for batch in (1, 32):
            start = time.perf_counter()
            pt2e = pt2e_int8(model, [c[:batch] for c in calibration])  # static shapes
            x = torch.randn(batch, 1, 28, 28)
            with torch.no_grad():
                compiled = torch.compile(pt2e)
                compiled(x)
            compile_s = time.perf_counter() - start
            calls = {
                "fp32": lambda m=model, x=x: m(x),
                "fx_int8": lambda m=fx, x=x: m(x),
                "pt2e_int8_eager": lambda m=pt2e, x=x: m(x),
                "pt2e_int8_compiled": lambda m=compiled, x=x: m(x),
            }
            stats = measure_interleaved(calls, SETTINGS)
            base = stats["fp32"].p50_ms
            cells = ", ".join(
                f"{k} {v.p50_ms:.3f} ms ({base / v.p50_ms:.2f}x)" for k, v in stats.items()
            )
            print(f"{cls.__name__} batch {batch}: {cells}; PT2E prepare+compile {compile_s:.1f} s")
    print("ratios are fp32 p50 / path p50 in the same interleaved run (> 1 = faster than fp32)")


if __name__ == "__main__":
    main()
