"""The plan of a sweep: which candidates exist, and every setting that decides their rows.

A candidate is (pruning level, precision, runtime) with a stable id (``p25-int8-eager``). The
plan is a typed, frozen value: ``run_sweep`` (edge-opt v1's signature) and the pipeline both build
one; its ``candidate_key`` names a prepared candidate in the content-keyed cache.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field

from edge_opt.candidates.ids import candidate_id as make_id
from edge_opt.config.types import this_cpu_engine
from edge_opt.infra.cache import content_key, package_versions
from edge_opt.measure.harness import HarnessSettings
from edge_opt.runtimes.registry import RUNTIMES

DEFAULT_RUNTIME = "eager"
# What ``memory_budget_metric`` may say: the serialized model, or model + peak activations.
BUDGET_METRIC_NAMES = ("model", "runtime")


def candidate_id(pruning_level: float, precision: str, runtime: str = DEFAULT_RUNTIME) -> str:
    """Stable, filesystem-safe id: ``p25-int8-eager`` for 25% pruning, int8, eager."""
    return make_id(pruning_level, precision, runtime)


# The reference every candidate is compared with: unpruned, fp32, eager (the same total
# training as every candidate); the anchor of the paired speedups.
REFERENCE_ID = candidate_id(0.0, "fp32", DEFAULT_RUNTIME)


@dataclass(frozen=True)
class SweepPlan:
    """Everything that decides which candidates exist and how each is prepared and judged.

    The candidates are ``pruning_levels x precisions x runtimes``; ``run_sweep`` (edge-opt v1's
    signature) and the pipeline both build one and hand it to ``execute_sweep``.
    """

    pruning_levels: tuple[float, ...]
    precisions: tuple[str, ...]
    harness: HarnessSettings
    runtimes: tuple[str, ...] = (DEFAULT_RUNTIME,)
    power_watts: float = 5.0
    calibration_batches: int = 8
    memory_budgets_mb: tuple[float, ...] = ()
    active_memory_budget_mb: float = float("inf")
    memory_budget_metric: str = "model"
    latency_multiplier: float = 1.0
    fine_tune_epochs: int | Mapping[float, int] = 0  # one for every level, or {level: epochs}
    quantization_backend: str = field(default_factory=this_cpu_engine)
    latency_batch_size: int = 1
    throughput_repeats: int = 10
    measure_rss: bool = True
    data_fingerprint: str = ""  # names the val/test/calibration data in cache keys
    instances: int = 1  # independently built instances of each candidate timed side by side
    latency_budget_ms: float | None = None  # on the p95; only a faster candidate within it
    # may stop a slower one's timing (Dominance)

    def __post_init__(self) -> None:
        if self.memory_budget_metric not in BUDGET_METRIC_NAMES:
            raise ValueError(
                f"memory_budget_metric: {self.memory_budget_metric!r} is not model or runtime"
            )

    def epochs_at(self, level: float) -> int:
        """The fine-tuning epochs of ``level`` (a search trial's: the one number)."""
        epochs = self.fine_tune_epochs
        return int(epochs) if isinstance(epochs, int) else int(epochs.get(level, 0))

    def candidates(self) -> list[tuple[float, str, str]]:
        return list(itertools.product(self.pruning_levels, self.precisions, self.runtimes))

    def candidate_key(self, variant_sha256: str, precision: str, runtime: str) -> str:
        return content_key(
            "candidate",
            {
                "variant_sha256": variant_sha256,
                "precision": precision,
                "runtime": runtime,
                "backend": self.quantization_backend,
                "calibration_batches": self.calibration_batches,
                "data": self.data_fingerprint,
                "threads": self.harness.threads,
                "latency_batch_size": self.latency_batch_size,
                # The runtime's own libraries (its registry entry names them).
                "runtime_versions": package_versions(RUNTIMES.get(runtime).packages),
            },
        )
