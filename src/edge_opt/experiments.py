"""Training, the pruning x precision sweep, Pareto frontiers and the recommendation.

The sweep is the only place that loops over candidates. A candidate is identified by
(pruning level, precision, runtime) and keeps its id (``p25-int8-eager``) in every file.
A candidate that fails is a row with ``status=failed`` and its error; the sweep goes on.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from edge_opt.artifacts import atomic_write_csv
from edge_opt.errors import EdgeOptError, MeasurementError
from edge_opt.hardware import estimate_layerwise_stats
from edge_opt.metrics import CandidateMetrics, collect_metrics, evaluate_accuracy
from edge_opt.model import count_parameters
from edge_opt.pruning import structured_channel_prune
from edge_opt.quantization import convert_precision

log = logging.getLogger(__name__)

DEFAULT_RUNTIME = "eager"


# ----------------------------------------------------------------------------------- training
@dataclass(frozen=True)
class EpochStats:
    epoch: int
    epochs: int
    loss: float
    train_accuracy: float
    seconds: float


def train_model(
    model: nn.Module,
    train_loader: DataLoader,
    epochs: int,
    learning_rate: float,
    device: str | torch.device = "cpu",
    *,
    seed: int | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> nn.Module:
    """Train a copy of ``model`` with Adam and cross-entropy; the caller's model is untouched.

    One optimizer serves all epochs. Progress is logged per epoch (logger ``edge_opt``) and
    passed to ``on_epoch``.

    Args:
        model: the model to start from.
        train_loader: training batches (seed its shuffle for a reproducible run).
        epochs: passes over the loader; 0 returns an untrained copy.
        learning_rate: Adam learning rate.
        device: torch device (cpu).
        seed: if given, seeds torch before training (dropout, init of lazy layers).
        on_epoch: called with ``EpochStats`` after each epoch.

    Returns:
        The trained copy, in eval mode.

    Example:
        >>> trained = train_model(SmallCNN(), loader, epochs=1, learning_rate=1e-3)
    """
    if epochs < 0:
        raise ValueError(f"epochs: {epochs} must be >= 0")
    if seed is not None:
        torch.manual_seed(seed)
    trained = copy.deepcopy(model).to(device)
    optimizer = torch.optim.Adam(trained.parameters(), lr=learning_rate)
    criterion = nn.CrossEntropyLoss()
    for epoch in range(1, epochs + 1):
        trained.train()
        start, loss_sum, correct, seen = time.perf_counter(), 0.0, 0, 0
        for inputs, targets in train_loader:
            inputs, targets = inputs.to(device), targets.to(device)
            optimizer.zero_grad(set_to_none=True)
            outputs = trained(inputs)
            loss = criterion(outputs, targets)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * targets.numel()
            correct += int((outputs.argmax(1) == targets).sum())
            seen += targets.numel()
        stats = EpochStats(
            epoch,
            epochs,
            loss_sum / max(seen, 1),
            correct / max(seen, 1),
            time.perf_counter() - start,
        )
        log.info(
            "epoch %d/%d: loss %.4f, train accuracy %.4f (%.1f s)",
            epoch,
            epochs,
            stats.loss,
            stats.train_accuracy,
            stats.seconds,
        )
        if on_epoch is not None:
            on_epoch(stats)
    return trained.eval()


# ------------------------------------------------------------------------------ candidate ids
def candidate_id(pruning_level: float, precision: str, runtime: str = DEFAULT_RUNTIME) -> str:
    """Stable, filesystem-safe id: ``p25-int8-eager`` for 25% pruning, int8, eager."""
    return f"p{round(pruning_level * 100):02d}-{precision}-{runtime}"


def budget_column(budget_mb: float) -> str:
    return f"violates_{budget_mb:g}mb"


@dataclass(frozen=True)
class CandidateResult:
    """One row of the sweep: identity, outcome, measurements and budget verdicts."""

    candidate_id: str
    pruning_level: float
    precision: str
    runtime: str
    status: str  # "ok" or "failed"
    error: str | None
    parameter_count: int | None
    macs_per_sample: int | None
    fine_tune_epochs: int
    metrics: CandidateMetrics | None
    test_accuracy: float | None
    accepted: bool
    active_budget_mb: float
    budget_violations: Mapping[float, bool | None] = field(default_factory=dict)
    measure_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "candidate_id": self.candidate_id,
            "pruning_level": self.pruning_level,
            "precision": self.precision,
            "runtime": self.runtime,
            "status": self.status,
            "error": self.error,
            "accepted": self.accepted,
            "active_budget_mb": self.active_budget_mb,
            "parameter_count": self.parameter_count,
            "macs_per_sample": self.macs_per_sample,
            "fine_tune_epochs": self.fine_tune_epochs,
        }
        metrics = self.metrics.to_dict() if self.metrics else {}
        metrics.pop("precision", None)
        row.update(metrics)
        row["test_accuracy"] = self.test_accuracy
        for budget, violated in self.budget_violations.items():
            row[budget_column(budget)] = violated
        row["measure_seconds"] = self.measure_seconds
        return row


# ------------------------------------------------------------------------------------- sweep
def prune_variants(
    base_model: nn.Module,
    pruning_levels: Sequence[float],
    train_loader: DataLoader | None = None,
    fine_tune_epochs: int = 0,
    learning_rate: float = 1e-3,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> dict[float, nn.Module]:
    """One pruned (and optionally fine-tuned) float model per level; level 0 is never tuned."""
    variants: dict[float, nn.Module] = {}
    for index, level in enumerate(pruning_levels):
        pruned = structured_channel_prune(base_model, level)
        if level > 0 and fine_tune_epochs > 0:
            if train_loader is None:
                raise ValueError("fine_tune_epochs > 0 needs a train_loader")
            log.info("fine-tuning pruning level %.2f for %d epoch(s)", level, fine_tune_epochs)
            pruned = train_model(
                pruned,
                train_loader,
                fine_tune_epochs,
                learning_rate,
                device,
                seed=seed + 1000 + index,
            )
        variants[level] = pruned.eval()
    return variants


def _first_batches(source: DataLoader | Iterable[torch.Tensor], count: int) -> list[torch.Tensor]:
    batches: list[torch.Tensor] = []
    for item in source:
        batches.append(item[0] if isinstance(item, list | tuple) else item)
        if len(batches) >= count:
            break
    return batches


def run_sweep(
    base_model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    calibration_loader: DataLoader | Iterable[torch.Tensor],
    device: str | torch.device,
    pruning_levels: Sequence[float],
    precisions: Sequence[str],
    power_watts: float,
    calibration_batches: int,
    memory_budgets_mb: Sequence[float],
    active_memory_budget_mb: float,
    latency_multiplier: float = 1.0,
    benchmark_repeats: int = 100,
    benchmark_trials: int = 3,
    benchmark_warmup: int = 10,
    fine_tune_epochs: int = 0,
    learning_rate: float = 1e-3,
    quantization_backend: str = "x86",
    output_dir: str | Path | None = None,
    *,
    test_loader: DataLoader | None = None,
    latency_batch_size: int = 1,
    throughput_repeats: int = 10,
    threads: int = 1,
    seed: int = 0,
    input_shape: tuple[int, int, int] = (1, 28, 28),
    pruned_models: Mapping[float, nn.Module] | None = None,
    on_result: Callable[[CandidateResult, int, int], None] | None = None,
) -> pd.DataFrame:
    """Measure every pruning level x precision and decide acceptance against the budgets.

    Candidates are selected on ``val_loader``; ``test_loader`` (if given) only adds the
    ``test_accuracy`` column. With ``output_dir``, ``sweep_results.csv`` there is rewritten
    atomically after every candidate, so a crash loses at most the candidate in progress.

    Args:
        base_model: the trained fp32 baseline (not modified).
        pruned_models: pre-built float model per level (skips pruning/fine-tuning here).
        on_result: called with (result, index, total) after each candidate.
        Other arguments: as the config keys of the same names.

    Returns:
        One row per candidate (see README for the columns); failed candidates included.
    """
    if active_memory_budget_mb not in memory_budgets_mb:
        raise ValueError(
            f"active_memory_budget_mb: {active_memory_budget_mb} is not in memory_budgets_mb "
            f"{list(memory_budgets_mb)}"
        )
    calibration = _first_batches(calibration_loader, calibration_batches)
    if pruned_models is None:
        pruned_models = prune_variants(
            base_model, pruning_levels, train_loader, fine_tune_epochs, learning_rate, device, seed
        )
    reference = evaluate_accuracy(copy.deepcopy(base_model).float().eval(), val_loader).predictions
    total = len(pruning_levels) * len(precisions)
    rows: list[dict[str, Any]] = []
    index = 0
    for level in pruning_levels:
        float_model = pruned_models[level]
        layers = estimate_layerwise_stats(float_model, 1, input_shape)
        for precision in precisions:
            index += 1
            result = _measure_candidate(
                float_model,
                level,
                precision,
                layers=layers,
                val_loader=val_loader,
                test_loader=test_loader,
                calibration=calibration,
                device=device,
                power_watts=power_watts,
                latency_multiplier=latency_multiplier,
                benchmark_repeats=benchmark_repeats,
                benchmark_trials=benchmark_trials,
                benchmark_warmup=benchmark_warmup,
                latency_batch_size=latency_batch_size,
                throughput_repeats=throughput_repeats,
                threads=threads,
                quantization_backend=quantization_backend,
                reference=reference,
                memory_budgets_mb=memory_budgets_mb,
                active_budget_mb=active_memory_budget_mb,
                fine_tune_epochs=fine_tune_epochs if level > 0 else 0,
            )
            rows.append(result.to_dict())
            if output_dir is not None:
                atomic_write_csv(Path(output_dir) / "sweep_results.csv", _frame(rows))
            if on_result is not None:
                on_result(result, index, total)
    return _frame(rows)


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    # Union of columns in first-seen order: failed rows lack the metric columns.
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    return pd.DataFrame(rows, columns=list(columns))


def _measure_candidate(
    float_model: nn.Module,
    level: float,
    precision: str,
    *,
    layers: pd.DataFrame,
    val_loader: DataLoader,
    test_loader: DataLoader | None,
    calibration: list[torch.Tensor],
    device: str | torch.device,
    power_watts: float,
    latency_multiplier: float,
    benchmark_repeats: int,
    benchmark_trials: int,
    benchmark_warmup: int,
    latency_batch_size: int,
    throughput_repeats: int,
    threads: int,
    quantization_backend: str,
    reference: torch.Tensor,
    memory_budgets_mb: Sequence[float],
    active_budget_mb: float,
    fine_tune_epochs: int,
) -> CandidateResult:
    cid = candidate_id(level, precision)
    start = time.perf_counter()
    common = {
        "candidate_id": cid,
        "pruning_level": level,
        "precision": precision,
        "runtime": DEFAULT_RUNTIME,
        "parameter_count": count_parameters(float_model),
        "macs_per_sample": int(layers["macs"].sum()),
        "fine_tune_epochs": fine_tune_epochs,
        "active_budget_mb": active_budget_mb,
    }
    try:
        converted = convert_precision(float_model, precision, calibration, quantization_backend)
        metrics = collect_metrics(
            converted.model,
            val_loader,
            device,
            power_watts,
            precision,
            latency_multiplier,
            benchmark_repeats,
            benchmark_warmup=benchmark_warmup,
            benchmark_trials=benchmark_trials,
            latency_batch_size=latency_batch_size,
            throughput_repeats=throughput_repeats,
            threads=threads,
            reference_predictions=reference,
        )
        test_accuracy = None
        if test_loader is not None:
            test_accuracy = evaluate_accuracy(
                converted.model, test_loader, converted.input_dtype
            ).accuracy
    except (EdgeOptError, RuntimeError, MeasurementError) as exc:
        log.warning("%s failed: %s", cid, exc)
        return CandidateResult(
            **common,
            status="failed",
            error=f"{type(exc).__name__}: {exc}",
            metrics=None,
            test_accuracy=None,
            accepted=False,
            budget_violations=dict.fromkeys(memory_budgets_mb),
            measure_seconds=time.perf_counter() - start,
        )
    violations = {b: metrics.memory_mb > b for b in memory_budgets_mb}
    return CandidateResult(
        **common,
        status="ok",
        error=None,
        metrics=metrics,
        test_accuracy=test_accuracy,
        accepted=not violations[active_budget_mb],
        budget_violations=violations,
        measure_seconds=time.perf_counter() - start,
    )


# ------------------------------------------------------------------------------------ Pareto
def pareto_frontier(df: pd.DataFrame, x_col: str, use_ci: bool = False) -> pd.DataFrame:
    """Accuracy-vs-cost frontier over accepted candidates.

    Sorted by cost ascending then accuracy descending, a row is kept when its accuracy beats
    every cheaper row's. With ``use_ci``, accuracy is the 95% lower bound
    (``accuracy_ci95_low``), so a point must beat cheaper ones beyond sampling noise.

    Args:
        df: sweep rows with ``accepted``, ``accuracy`` and ``x_col``.
        x_col: cost column, e.g. ``latency_p50_ms`` or ``energy_proxy_j``.
        use_ci: rank by ``accuracy_ci95_low`` instead of ``accuracy``.

    Returns:
        The frontier rows (same columns as ``df``); empty when nothing is accepted.
    """
    acc_col = "accuracy_ci95_low" if use_ci else "accuracy"
    for col in ("accepted", x_col, acc_col):
        if col not in df.columns and not df.empty:
            raise KeyError(f"pareto_frontier: column {col!r} is missing from the sweep table")
    if df.empty:
        return df.copy()
    mask = df["accepted"].astype(bool)
    if "status" in df.columns:
        mask &= df["status"] == "ok"
    ranked = df[mask].sort_values([x_col, acc_col], ascending=[True, False], kind="stable")
    keep, best = [], -math.inf
    for idx, acc in ranked[acc_col].items():
        if acc > best:
            keep.append(idx)
            best = acc
    return ranked.loc[keep].reset_index(drop=True)


@dataclass(frozen=True)
class Recommendation:
    candidate_id: str | None
    reason: str
    baseline_accuracy: float
    max_accuracy_drop: float
    cost_column: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def recommend_candidate(
    df: pd.DataFrame,
    baseline_accuracy: float,
    max_accuracy_drop: float,
    cost_col: str = "latency_p50_ms",
) -> Recommendation:
    """Among accepted candidates within ``max_accuracy_drop`` of the baseline's validation
    accuracy, the one with the lowest ``cost_col``; or none, with the reason."""

    def rec(cid: str | None, reason: str) -> Recommendation:
        return Recommendation(cid, reason, baseline_accuracy, max_accuracy_drop, cost_col)

    ok = df[df["status"] == "ok"] if "status" in df.columns else df
    accepted = ok[ok["accepted"].astype(bool)] if not ok.empty else ok
    if accepted.empty:
        budget = df["active_budget_mb"].iloc[0] if not df.empty else float("nan")
        return rec(
            None,
            f"no candidate was accepted: none of the {len(ok)} measured candidates "
            f"fits the active memory budget of {budget:g} MB",
        )
    floor = baseline_accuracy - max_accuracy_drop
    eligible = accepted[accepted["accuracy"] >= floor - 1e-12]
    if eligible.empty:
        best = accepted.sort_values("accuracy", ascending=False).iloc[0]
        return rec(
            None,
            f"{len(accepted)} candidate(s) fit the budget, but none is within "
            f"{max_accuracy_drop:g} of the baseline's validation accuracy "
            f"{baseline_accuracy:.4f}; the most accurate accepted one is "
            f"{best['candidate_id']} at {best['accuracy']:.4f}",
        )
    best = eligible.sort_values([cost_col, "accuracy"], ascending=[True, False]).iloc[0]
    return rec(
        str(best["candidate_id"]),
        f"lowest {cost_col} ({best[cost_col]:.4g}) among {len(eligible)} accepted candidate(s) "
        f"within {max_accuracy_drop:g} of the baseline's validation accuracy "
        f"({baseline_accuracy:.4f}); its accuracy is {best['accuracy']:.4f} and its size "
        f"{best['memory_mb']:.4f} MB",
    )
