"""Every built-in model, at both input shapes: pruning, MAC accounting, int8."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from edge_opt.compress.pruning import structured_channel_prune
from edge_opt.compress.quantization import is_int8_quantized, quantize_static_int8
from edge_opt.compress.training import train_model
from edge_opt.data.formats.idx import make_synthetic
from edge_opt.data.splits import make_loaders, split_dataset
from edge_opt.models.layers import estimate_layerwise_stats
from edge_opt.models.zoo import SmallCNN, TinyMobileNet, TinyResNet, build_model

MODELS = {
    ("SmallCNN", (1, 28, 28)): lambda: SmallCNN(),
    ("SmallCNN", (3, 32, 32)): lambda: SmallCNN(in_channels=3, input_size=32),
    ("TinyResNet", (1, 28, 28)): lambda: TinyResNet(),
    ("TinyResNet", (3, 32, 32)): lambda: TinyResNet(in_channels=3),
    ("TinyMobileNet", (1, 28, 28)): lambda: TinyMobileNet(),
    ("TinyMobileNet", (3, 32, 32)): lambda: TinyMobileNet(in_channels=3),
}
CASES = list(MODELS)


def conv_linear_flops(model: torch.nn.Module, x: torch.Tensor) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        model.eval()(x)
    return counter.get_total_flops()


@pytest.mark.parametrize(("name", "shape"), CASES)
def test_macs_equal_flop_counter_over_two(name: str, shape: tuple[int, int, int]) -> None:
    model = MODELS[(name, shape)]()
    df = estimate_layerwise_stats(model, 2, shape)
    assert int(df["macs"].sum()) * 2 == conv_linear_flops(model, torch.zeros(2, *shape))


@pytest.mark.parametrize(("name", "shape"), CASES)
def test_pruning_levels_run_and_cut_macs(name: str, shape: tuple[int, int, int]) -> None:
    model = MODELS[(name, shape)]()
    example = torch.zeros(1, *shape)
    macs = [int(estimate_layerwise_stats(model, 1, shape)["macs"].sum())]
    for level in (0.3, 0.5, 0.7):
        pruned = structured_channel_prune(model, level, example)
        assert pruned(torch.zeros(2, *shape)).shape == (2, 10)  # classifier outputs kept
        macs.append(int(estimate_layerwise_stats(pruned, 1, shape)["macs"].sum()))
    assert macs == sorted(macs, reverse=True)
    assert macs[-1] < 0.25 * macs[0]  # 70% of channels gone: well under a quarter of the work


def test_residual_and_depthwise_structure_survives_pruning() -> None:
    resnet = structured_channel_prune(TinyResNet(), 0.5)
    block = resnet.block2
    assert block.conv2.out_channels == block.shortcut[0].out_channels  # the add stays aligned
    assert block.bn2.num_features == block.conv2.out_channels
    mobilenet = structured_channel_prune(TinyMobileNet(), 0.5)
    for separable in mobilenet.blocks:
        assert separable.dw.groups == separable.dw.in_channels == separable.dw.out_channels


def test_global_scope_differs_from_uniform() -> None:
    torch.manual_seed(0)
    model = TinyResNet()
    with torch.no_grad():  # make one layer clearly less important than the others
        model.block1.conv1.weight.mul_(0.01)
        model.block1.bn1.weight.mul_(0.01)
    uniform = structured_channel_prune(model, 0.5, scope="uniform")
    global_ = structured_channel_prune(model, 0.5, scope="global")
    widths_u = [m.out_channels for m in uniform.modules() if isinstance(m, torch.nn.Conv2d)]
    widths_g = [m.out_channels for m in global_.modules() if isinstance(m, torch.nn.Conv2d)]
    assert widths_u != widths_g
    assert global_.block1.conv1.out_channels < uniform.block1.conv1.out_channels


@pytest.mark.slow
@pytest.mark.parametrize(("name", "shape"), CASES)
def test_int8_converts_and_agrees_with_fp32(name: str, shape: tuple[int, int, int]) -> None:
    raw = make_synthetic(n_train=640, n_test=128, shape=shape, seed=1)
    splits = split_dataset(raw, None, 128, None, seed=1)
    loaders = make_loaders(splits, 64, seed=1, num_workers=0)
    torch.manual_seed(0)
    trained = train_model(MODELS[(name, shape)](), loaders.train, 2, 3e-3, seed=0)
    calibration = [splits.train.tensors[0][i : i + 64] for i in range(0, 256, 64)]
    quantized = quantize_static_int8(trained, calibration)
    assert is_int8_quantized(quantized)
    x = splits.test.tensors[0][:128]
    with torch.inference_mode():
        agree = (quantized(x).argmax(1) == trained(x).argmax(1)).float().mean().item()
    assert agree >= 0.95


def test_build_model_infers_shapes_and_runs() -> None:
    built = build_model("TinyResNet", kwargs={"in_channels": 3}, input_shape=(3, 32, 32))
    assert built.input_shape == (3, 32, 32)
    assert build_model("SmallCNN").input_shape == (1, 28, 28)
    assert build_model("TinyMobileNet", kwargs={"in_channels": 3}).input_shape == (3, 28, 28)


@pytest.mark.parametrize("name", ["SmallCNN", "TinyResNet"])  # TinyMobileNet: ReLU6
def test_training_with_relus_in_place_gives_the_same_weights(name: str, monkeypatch) -> None:
    import edge_opt.compress.training as training
    from edge_opt.data.splits import batch_loader

    shape = (1, 28, 28)
    model = MODELS[(name, shape)]()
    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(
        torch.randn(256, *shape, generator=g), torch.randint(0, 10, (256,), generator=g)
    )

    def trained() -> torch.nn.Module:
        loader = batch_loader(data, 64, shuffle=True, generator=torch.Generator().manual_seed(1))
        return train_model(model, loader, epochs=1, learning_rate=1e-3, seed=2)

    in_place = trained()
    assert training.inplace_safe_relus(model)  # the zoo's ReLUs qualify
    monkeypatch.setattr(training, "inplace_safe_relus", lambda _model: [])
    as_is = trained()
    for key, value in as_is.state_dict().items():
        assert torch.equal(in_place.state_dict()[key], value), key
    assert not any(m.inplace for m in in_place.modules() if isinstance(m, torch.nn.ReLU))


def test_a_relu_whose_input_is_read_again_stays_out_of_place() -> None:
    from edge_opt.compress.training import inplace_safe_relus

    class Reuse(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 2, 3)
            self.relu = torch.nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return self.relu(y) + y  # in place would change y before the sum

    class OnInput(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.relu = torch.nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.relu(x)  # in place would overwrite the caller's batch

    assert inplace_safe_relus(Reuse()) == []
    assert inplace_safe_relus(OnInput()) == []
