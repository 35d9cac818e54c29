"""A candidate's numbers must not depend on the process, the executor or the thread count.

What must be identical, and why:
- Training with ``threads`` fixed gives the same weights whatever the calling process's own
  thread count (a Ray task gets one CPU, the driver all of them): the gradient sums are split
  per thread, so only the training's thread count may decide how they round.
- An int8 model converted on one thread and evaluated batch by batch on one thread gives the
  same logits in a fresh process as in this one: the calibration data, its order, the engine
  and the kernels (this machine's) are the same, and nothing else feeds the conversion.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from edge_opt.compress.quantization import convert_precision
from edge_opt.compress.training import train_model
from edge_opt.measure.process import torch_threads
from edge_opt.models.zoo import SmallCNN


def _loader() -> DataLoader:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(512, 1, 28, 28, generator=gen)
    y = torch.randint(0, 10, (512,), generator=gen)
    return DataLoader(TensorDataset(x, y), batch_size=64)


def _model() -> SmallCNN:
    torch.manual_seed(1)  # the same initial weights every time
    return SmallCNN()


def _trained(ambient_threads: int, threads: int = 2) -> dict[str, torch.Tensor]:
    with torch_threads(ambient_threads):
        model = train_model(_model(), _loader(), 1, 1e-3, seed=0, threads=threads)
    return model.state_dict()


def test_training_weights_do_not_depend_on_the_callers_thread_count():
    one, two = _trained(1), _trained(2)
    assert one.keys() == two.keys()
    for name in one:
        assert torch.equal(one[name], two[name]), name


def test_training_weights_are_the_same_run_after_run():
    first, second = _trained(2, threads=1), _trained(2, threads=1)
    assert all(torch.equal(first[name], second[name]) for name in first)


def test_training_restores_the_callers_thread_count():
    with torch_threads(1):
        train_model(SmallCNN(), _loader(), 1, 1e-3, seed=0, threads=2)
        assert torch.get_num_threads() == 1


_CHILD = textwrap.dedent(
    """
    import sys, warnings
    import torch
    warnings.simplefilter("ignore")
    from edge_opt.measure.harness import torch_threads
    from edge_opt.models.zoo import SmallCNN
    from edge_opt.compress.quantization import convert_precision
    torch.set_num_threads(int(sys.argv[2]))
    state, calibration, inputs = torch.load(sys.argv[1], weights_only=True)
    model = SmallCNN()
    model.load_state_dict(state)
    with torch_threads(1):
        converted = convert_precision(model.eval(), "int8", calibration, "{engine}")
    with torch_threads(1), torch.inference_mode():
        logits = torch.cat([converted.model(b) for b in inputs.split(32)])
    torch.save(logits, sys.argv[3])
    """
)


@pytest.mark.parametrize("child_threads", [1, 2])
def test_int8_logits_are_the_same_in_a_fresh_process(tmp_path, child_threads):
    engine = "x86" if "x86" in torch.backends.quantized.supported_engines else "qnnpack"
    model = train_model(_model(), _loader(), 1, 1e-3, seed=0, threads=2)
    gen = torch.Generator().manual_seed(11)
    calibration = [torch.randn(64, 1, 28, 28, generator=gen) for _ in range(2)]
    inputs = torch.randn(128, 1, 28, 28, generator=gen)
    torch.save((model.state_dict(), calibration, inputs), tmp_path / "in.pt")
    with torch_threads(1):
        converted = convert_precision(model, "int8", calibration, engine)
    with torch_threads(1), torch.inference_mode():
        here = torch.cat([converted.model(b) for b in inputs.split(32)])
    script = tmp_path / "child.py"
    script.write_text(_CHILD.replace("{engine}", engine))
    subprocess.run(
        [
            sys.executable,
            str(script),
            str(tmp_path / "in.pt"),
            str(child_threads),
            str(tmp_path / "out.pt"),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    there = torch.load(tmp_path / "out.pt", weights_only=True)
    assert torch.equal(here, there)
