"""Recovery after pruning: distillation, pruning in steps, per-level budgets, early stopping."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from edge_opt.compress.distillation import Distillation, distillation_loss
from edge_opt.compress.pruning import StepPruner, structured_channel_prune
from edge_opt.compress.recovery import Recovery, RecoveryLog
from edge_opt.compress.training import mean_loss, train_model
from edge_opt.compress.variants import (
    VariantSettings,
    fine_tune_seed,
    level_loader,
    prune_structure,
    recover_variant,
    variant_key,
)
from edge_opt.data.splits import batch_loader
from edge_opt.errors import PruningError
from edge_opt.models.zoo import SmallCNN, TinyMobileNet, TinyResNet

SHAPE = (1, 28, 28)


def _settings(epochs=1, **recovery) -> VariantSettings:
    return VariantSettings(
        epochs, 2e-3, 7, SHAPE, train_threads=1, recovery=Recovery(0, **recovery)
    )


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_distillation_loss_is_cross_entropy_at_weight_zero_and_kl_vanishes_on_equal_logits():
    torch.manual_seed(0)
    student, teacher = torch.randn(8, 10), torch.randn(8, 10)
    targets = torch.randint(0, 10, (8,))
    ce = F.cross_entropy(student, targets)
    assert torch.equal(distillation_loss(student, teacher, targets, 4.0, 0.0), ce)
    # Teacher == student: the KL term is 0, only (1 - w) x CE is left.
    same = distillation_loss(student, student.clone(), targets, 4.0, 0.7)
    assert same.item() == pytest.approx(0.3 * ce.item(), rel=1e-6)
    # The soft term is T^2 x KL(teacher || student) with both softened by T.
    t = 2.0
    kl = F.kl_div(F.log_softmax(student / t, 1), F.softmax(teacher / t, 1), reduction="batchmean")
    both = distillation_loss(student, teacher, targets, t, 1.0)
    assert both.item() == pytest.approx(t * t * kl.item(), rel=1e-5)


def test_distillation_teacher_is_a_frozen_copy(trained_cnn):
    before = {k: v.clone() for k, v in trained_cnn.state_dict().items()}
    objective = Distillation.of(trained_cnn, 4.0, 0.5)
    assert objective.teacher is not trained_cnn
    assert not objective.teacher.training
    assert not any(p.requires_grad for p in objective.teacher.parameters())
    x = torch.randn(4, *SHAPE)
    loss = objective(SmallCNN()(x), torch.zeros(4, dtype=torch.long), x)
    assert math.isfinite(loss.item())
    assert all(torch.equal(before[k], v) for k, v in trained_cnn.state_dict().items())


def test_plain_one_shot_recovery_is_the_previous_fine_tuning_exactly(trained_cnn, loaders):
    settings = _settings(epochs=1, distillation=False)
    recovered, log = recover_variant(trained_cnn, 0.5, loaders.train, loaders.val, settings)
    before = train_model(
        prune_structure(trained_cnn, 0.5, SHAPE),
        level_loader(loaders.train, 7, 0.5),
        1,
        2e-3,
        seed=fine_tune_seed(7, 0.5),
        threads=1,
    )
    assert _same_weights(recovered, before)
    assert [p.epoch for p in log.curve] == [0, 1]
    assert log.teacher is None
    assert log.epochs_run == 1
    assert not log.stopped_early
    # The curve's last validation loss is the returned model's.
    assert log.curve[-1].val_loss == pytest.approx(mean_loss(recovered, loaders.val), rel=1e-6)


def test_distilled_recovery_differs_from_plain_and_names_its_teacher(trained_cnn, loaders):
    plain, _ = recover_variant(trained_cnn, 0.5, loaders.train, None, _settings(distillation=False))
    distilled, log = recover_variant(
        trained_cnn, 0.5, loaders.train, None, _settings(distillation=True)
    )
    assert not _same_weights(plain, distilled)
    assert log.teacher == "baseline"
    assert "distilled from the baseline (T=2, weight 0.5)" in log.describe()


@pytest.mark.parametrize("model_class", [SmallCNN, TinyResNet, TinyMobileNet])
@pytest.mark.parametrize("steps", [2, 3])
def test_pruning_in_steps_ends_on_the_one_shot_widths(model_class, steps):
    torch.manual_seed(0)
    model = model_class()
    one_shot = structured_channel_prune(model, 0.7)
    stepper = StepPruner.of(model, 0.7, steps, SHAPE)
    widths = []
    for _ in range(steps):
        with torch.no_grad():  # stands for fine-tuning between the steps: new weights
            for p in stepper.model.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        stepper.step()
        widths.append(next(m for m in stepper.model.modules() if hasattr(m, "out_channels")))
    shapes = {k: v.shape for k, v in stepper.model.state_dict().items()}
    assert shapes == {k: v.shape for k, v in one_shot.state_dict().items()}
    stepper.step()  # past the last step: nothing more is removed
    assert {k: v.shape for k, v in stepper.model.state_dict().items()} == shapes


def test_steps_need_the_uniform_scope_and_exact_widths():
    with pytest.raises(PruningError, match="steps: 2"):
        StepPruner.of(SmallCNN(), 0.5, 2, SHAPE, scope="global")
    with pytest.raises(PruningError, match="steps: 2"):
        StepPruner.of(SmallCNN(), 0.5, 2, SHAPE, channel_multiple=8)


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_steps_train_as_many_batches_as_one_shot(trained_cnn, loaders, steps):
    """The level's budget is split between the steps: k steps, the same batches in all."""
    seen = []

    class Counting:
        def start(self, task, total, unit):
            seen.append(total)

        def advance(self, n, text=""):
            seen.append(n)

        def finish(self):
            pass

    settings = _settings(epochs=2, distillation=False, steps=steps)
    model, log = recover_variant(
        trained_cnn, 0.5, loaders.train, loaders.val, settings, progress=Counting()
    )
    total, advances = seen[0], seen[1:]
    assert total == 2 * len(loaders.train) == sum(advances)
    assert log.curve[-1].steps_done == steps
    assert model.conv1.out_channels == structured_channel_prune(trained_cnn, 0.5).conv1.out_channels


def test_early_stopping_keeps_the_epoch_with_the_lowest_validation_loss(
    trained_cnn, loaders, synthetic_splits
):
    # Validation labels shifted by one class: the better the model fits the training labels,
    # the higher this validation loss, so it rises from the second epoch on.
    images, labels = synthetic_splits.val.tensors
    shifted = batch_loader(TensorDataset(images, (labels + 1) % 10), 50)
    settings = VariantSettings(
        6, 2e-3, 7, SHAPE, train_threads=1, recovery=Recovery(0, False, early_stop_patience=1)
    )
    model, log = recover_variant(trained_cnn, 0.5, loaders.train, shifted, settings)
    assert log.stopped_early
    assert log.epochs_run < 6
    trained = [p for p in log.curve if p.epoch > 0]
    best = min(trained, key=lambda p: p.val_loss)
    assert log.best_epoch == best.epoch < log.epochs_run
    assert mean_loss(model, shifted) == pytest.approx(best.val_loss, rel=1e-6)
    assert "stopped early (kept epoch" in log.describe()


def test_per_level_epochs_and_level_zero_is_one_shot():
    settings = VariantSettings({0.0: 1, 0.5: 3}, 1e-3, 7, SHAPE, recovery=Recovery(0, steps=2))
    assert (settings.epochs_at(0.5), settings.epochs_at(0.0)) == (3, 1)
    assert (settings.recovery_at(0.0).steps, settings.recovery_at(0.5).steps) == (1, 2)
    assert settings.trains


def test_variant_key_covers_every_recovery_setting():
    base = VariantSettings(1, 1e-3, 7, SHAPE, recovery=Recovery(0))
    keys = {variant_key("sha", 0.5, base, "data")}
    for recovery in (
        Recovery(0, distillation=True),
        Recovery(0, distillation=True, temperature=3.0),
        Recovery(0, distillation=True, distill_weight=0.3),
        Recovery(0, steps=2),
        Recovery(0, early_stop_patience=2),
    ):
        keys.add(
            variant_key("sha", 0.5, VariantSettings(1, 1e-3, 7, SHAPE, recovery=recovery), "data")
        )
    keys.add(variant_key("sha", 0.5, VariantSettings({0.5: 2}, 1e-3, 7, SHAPE), "data"))
    assert len(keys) == 7


def test_recovery_log_round_trips_and_rejects_a_malformed_record(trained_cnn, loaders):
    _, log = recover_variant(
        trained_cnn, 0.5, loaders.train, loaders.val, _settings(distillation=True, steps=2)
    )
    assert RecoveryLog.from_dict(log.to_dict()) == log
    broken = log.to_dict()
    del broken["curve"]
    with pytest.raises(KeyError):
        RecoveryLog.from_dict(broken)
