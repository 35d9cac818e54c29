from __future__ import annotations

import pytest
import torch

from edge_opt.compress.pruning import (
    kept_channel_count,
    reference_l1_prune,
    structured_channel_prune,
)
from edge_opt.errors import PruningError
from edge_opt.models.zoo import SmallCNN


@pytest.mark.parametrize(
    ("level", "c1", "c2"),
    [(0.0, 16, 32), (0.25, 12, 24), (0.3, 11, 22), (0.5, 8, 16), (0.7, 4, 9)],
)
def test_pruned_shapes_and_forward(level: float, c1: int, c2: int) -> None:
    pruned = structured_channel_prune(SmallCNN(), level)
    assert (pruned.conv1.out_channels, pruned.conv2.in_channels) == (c1, c1)
    assert pruned.conv2.out_channels == c2
    assert pruned.classifier.in_features == c2 * 49
    assert pruned(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_caller_model_is_not_mutated() -> None:
    model = SmallCNN()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pruned = structured_channel_prune(model, 0.5)
    assert pruned is not model
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])
    assert model.conv1.out_channels == 16


def test_keeps_the_largest_l1_filters_and_rewires_consumers() -> None:
    torch.manual_seed(0)
    model = SmallCNN()
    pruned = structured_channel_prune(model, 0.5)
    # Reference: plain per-filter L1, top-k, original order.
    keep1 = torch.sort(model.conv1.weight.abs().sum((1, 2, 3)).topk(8).indices).values
    keep2 = torch.sort(model.conv2.weight.abs().sum((1, 2, 3)).topk(16).indices).values
    assert torch.equal(pruned.conv1.weight, model.conv1.weight[keep1])
    assert torch.equal(pruned.conv2.weight, model.conv2.weight[keep2][:, keep1])
    features = (keep2[:, None] * 49 + torch.arange(49)).reshape(-1)
    assert torch.equal(pruned.classifier.weight, model.classifier.weight[:, features])


def test_pruning_only_removed_channels_changes_nothing_else() -> None:
    # Zero out 8 conv1 filters: pruning them away must leave the outputs unchanged.
    torch.manual_seed(1)
    model = SmallCNN().eval()
    with torch.no_grad():
        model.conv1.weight[8:] = 0
        model.conv1.bias[8:] = -1.0  # ReLU(-1) = 0: these channels carry nothing
        model.conv2.weight.mul_(1 + torch.arange(32).float()[:, None, None, None])  # distinct L1
    pruned = structured_channel_prune(model, 0.5).eval()
    assert pruned.conv1.out_channels == 8
    x = torch.randn(4, 1, 28, 28)
    # conv2 also loses half its filters, so compare with a model whose conv2 filters are zeroed.
    keep2 = torch.sort(model.conv2.weight.abs().sum((1, 2, 3)).topk(16).indices).values
    reference = SmallCNN().eval()
    reference.load_state_dict(model.state_dict())
    with torch.no_grad():
        mask = torch.ones(32, dtype=torch.bool)
        mask[keep2] = False
        reference.conv2.weight[mask] = 0
        reference.conv2.bias[mask] = -1.0
    with torch.no_grad():
        assert torch.allclose(pruned(x), reference(x), atol=1e-5)


@pytest.mark.parametrize("level", [-0.1, 1.0, 1.5])
def test_invalid_level_is_an_error(level: float) -> None:
    with pytest.raises(PruningError, match=r"pruning_level: .* is outside \[0, 1\)"):
        structured_channel_prune(SmallCNN(), level)


def test_reference_supports_only_smallcnn() -> None:
    with pytest.raises(PruningError, match="supports SmallCNN, got Sequential"):
        reference_l1_prune(torch.nn.Sequential(torch.nn.Linear(2, 2)), 0.5)


@pytest.mark.parametrize("level", [0.25, 0.3, 0.5, 0.7])
def test_library_matches_the_hand_written_oracle_exactly(level: float) -> None:
    torch.manual_seed(3)
    model = SmallCNN()
    library, oracle = structured_channel_prune(model, level), reference_l1_prune(model, level)
    assert library.state_dict().keys() == oracle.state_dict().keys()
    for key, value in library.state_dict().items():
        assert torch.equal(value, oracle.state_dict()[key]), key


def test_kept_channel_count_matches_torch_pruning_rounding() -> None:
    assert [kept_channel_count(32, r) for r in (0.25, 0.3, 0.5, 0.7, 0.99)] == [24, 22, 16, 9, 1]


@pytest.mark.parametrize(
    ("level", "multiple", "kept"),
    [(0.3, 1, (11, 22)), (0.3, 4, (8, 20)), (0.3, 8, (8, 16)), (0.7, 8, (16, 8))],
)
def test_channel_multiple_rounds_kept_channels_down(
    level: float, multiple: int, kept: tuple[int, int]
) -> None:
    # 30% of 16 and 32 channels: 11 and 22 kept exactly; rounded down to multiples of 4 and 8.
    # At 70%, conv1 would keep 4 -> 0 of 8: torch-pruning then leaves that layer unpruned.
    pruned = structured_channel_prune(SmallCNN(), level, channel_multiple=multiple)
    assert (pruned.conv1.out_channels, pruned.conv2.out_channels) == kept
    assert pruned.classifier.in_features == kept[1] * 7 * 7


def test_channel_multiple_outside_the_allowed_set_is_refused() -> None:
    with pytest.raises(PruningError, match="channel_multiple: 3 is not one of 1, 4, 8, 16"):
        structured_channel_prune(SmallCNN(), 0.3, channel_multiple=3)
