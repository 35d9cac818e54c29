"""Knowledge distillation: a pruned student fine-tuned against the trained baseline's logits.

The loss of a batch (Hinton, Vinyals and Dean 2015) is

    weight * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - weight) * CE(student, y)

The T^2 factor keeps the soft term's gradients on the scale of the hard term's whatever the
temperature. The teacher runs in eval mode without gradients, on the batch the student sees.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def distillation_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    targets: torch.Tensor,
    temperature: float,
    weight: float,
) -> torch.Tensor:
    """The batch's distillation loss (a scalar): logits (N, classes), targets (N,)."""
    hard = F.cross_entropy(student, targets)
    if weight == 0.0:
        return hard
    soft = F.kl_div(
        F.log_softmax(student / temperature, dim=1),
        F.log_softmax(teacher / temperature, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    return weight * temperature * temperature * soft + (1.0 - weight) * hard


@dataclass
class Distillation:
    """An objective for ``train_model``: distillation from ``teacher`` (a private eval-mode copy,
    so the caller's model is untouched and its batch-norm statistics never move)."""

    teacher: nn.Module
    temperature: float
    weight: float

    @classmethod
    def of(cls, teacher: nn.Module, temperature: float, weight: float) -> Distillation:
        frozen = copy.deepcopy(teacher).eval()
        for parameter in frozen.parameters():
            parameter.requires_grad_(False)
        if any(p.dim() == 4 for p in frozen.parameters()):
            # The student's batches arrive channels-last (the trainer's layout): match them.
            frozen = frozen.to(memory_format=torch.channels_last)
        return cls(frozen, temperature, weight)

    def __call__(
        self, outputs: torch.Tensor, targets: torch.Tensor, inputs: torch.Tensor
    ) -> torch.Tensor:
        with torch.no_grad():
            soft_targets = self.teacher(inputs)
        return distillation_loss(outputs, soft_targets, targets, self.temperature, self.weight)
