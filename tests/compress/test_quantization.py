from __future__ import annotations

import platform

import pytest
import torch

from edge_opt.compress.precisions import ENGINES
from edge_opt.compress.quantization import (
    convert_precision,
    is_int8_quantized,
    quantize_static_int8,
    quantized_module_names,
)
from edge_opt.config.types import this_cpu_engine
from edge_opt.errors import QuantizationError
from edge_opt.models.zoo import SmallCNN
from edge_opt.runtimes.base import serialized_size_bytes

# This CPU's int8 engine (x86 on x86-64, qnnpack on Arm), and every engine it can run.
ENGINE = this_cpu_engine()
RUNNABLE = [e for e in ENGINES.names() if platform.machine() in ENGINES.get(e).machines]


def test_int8_is_really_quantized_and_about_4x_smaller(trained_cnn, calibration) -> None:
    converted = convert_precision(trained_cnn, "int8", calibration, ENGINE)
    assert converted.precision == "int8"
    assert converted.quantized_engine == ENGINE
    assert set(quantized_module_names(converted.model)) == {"conv1", "conv2", "classifier"}
    ratio = serialized_size_bytes(converted.model) / serialized_size_bytes(trained_cnn)
    # Packed int8 weights plus per-channel scales: ~1/3 for SmallCNN (28 KB vs 85 KB).
    assert 0.2 < ratio < 0.4


def test_int8_agrees_with_fp32_top1(trained_cnn, calibration, synthetic_splits) -> None:
    quantized = quantize_static_int8(trained_cnn, calibration, ENGINE)
    x = synthetic_splits.val.tensors[0][:200]
    with torch.inference_mode():
        agree = (quantized(x).argmax(1) == trained_cnn(x).argmax(1)).float().mean()
    assert agree >= 0.95


def test_int8_does_not_touch_the_float_model(trained_cnn, calibration) -> None:
    before = {k: v.clone() for k, v in trained_cnn.state_dict().items()}
    quantize_static_int8(trained_cnn, calibration, ENGINE)
    assert not is_int8_quantized(trained_cnn)
    for key, value in trained_cnn.state_dict().items():
        assert torch.equal(value, before[key])


@pytest.mark.parametrize("backend", RUNNABLE)
def test_other_engines_convert(trained_cnn, calibration, backend: str) -> None:
    assert is_int8_quantized(quantize_static_int8(trained_cnn, calibration, backend))


@pytest.mark.parametrize(
    ("precision", "dtype"),
    [("fp32", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16)],
)
def test_float_precisions(precision: str, dtype: torch.dtype) -> None:
    converted = convert_precision(SmallCNN(), precision)
    assert converted.model.conv1.weight.dtype == dtype
    assert converted.input_dtype == dtype
    out = converted.model(converted.prepare_input(torch.zeros(1, 1, 28, 28)))
    assert out.shape == (1, 10)


def test_deterministic_mode_is_refused_with_the_reason(calibration) -> None:
    torch.use_deterministic_algorithms(True)
    try:
        with pytest.raises(QuantizationError, match="no deterministic implementation"):
            quantize_static_int8(SmallCNN(), calibration)
    finally:
        torch.use_deterministic_algorithms(False)


def test_unknown_backend_and_precision_are_errors(calibration) -> None:
    with pytest.raises(QuantizationError, match="quantization_backend: 'tpu' is unknown"):
        quantize_static_int8(SmallCNN(), calibration, "tpu")
    with pytest.raises(QuantizationError, match="precision: .int4. is not a registered precision"):
        convert_precision(SmallCNN(), "int4")
    with pytest.raises(QuantizationError, match="at least one input batch"):
        quantize_static_int8(SmallCNN(), [], ENGINE)


def test_untraceable_model_fails_with_its_reason(calibration) -> None:
    class DataDependent(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 2, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 0:  # control flow on data: FX cannot trace it
                return self.conv(x)
            return self.conv(-x)

    with pytest.raises(QuantizationError, match=f"int8 \\({ENGINE}\\) conversion failed"):
        quantize_static_int8(DataDependent(), calibration)


def test_registries_refuse_duplicates() -> None:
    from edge_opt.compress.precisions import PRECISIONS, PrecisionSpec
    from edge_opt.errors import ModelError
    from edge_opt.models.zoo import register_model

    with pytest.raises(QuantizationError, match="precision 'int8' is already registered"):
        PRECISIONS.add(PrecisionSpec("int8", 1, "float32", "to_int8", "a second int8"))
    with pytest.raises(ModelError, match="model 'SmallCNN' is already registered"):
        register_model("SmallCNN")(SmallCNN)
