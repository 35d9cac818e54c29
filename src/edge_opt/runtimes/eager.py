"""``eager``: the precision-converted PyTorch module as is (int8: FX static PTQ)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from edge_opt.compress.quantization import ConvertedModel
from edge_opt.runtimes.base import BuildRequest, RuntimeModel, copied_eager
from edge_opt.runtimes.evaluation import EvaluationTwin


def eager_model(converted: ConvertedModel) -> RuntimeModel:
    """Wrap a converted module; its twin is a deep copy of the module."""
    model = converted.model.eval()
    # Float models evaluate through a twin that pools channels-last: the same predictions,
    # bit for bit, checked on the first batch (edge_opt/exact_eval.py); a quantized model
    # has no such view and evaluates as is.
    evaluate = EvaluationTwin(model)

    def predict(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return evaluate(converted.prepare_input(x)).float()

    def timed_call(x: torch.Tensor) -> Callable[[], object]:
        example = converted.prepare_input(x)
        return lambda: model(example)

    from edge_opt.runtimes.base import serialized_size_bytes

    return RuntimeModel(
        "eager",
        converted.precision,
        predict,
        timed_call,
        serialized_size_bytes(model),
        converted,
        reload=lambda _threads: eager_model(copied_eager(converted)),
        concurrent_predict=True,  # an eval-mode module keeps no state between calls
    )


def build_eager(request: BuildRequest) -> RuntimeModel:
    return eager_model(request.converted)
