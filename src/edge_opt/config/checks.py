"""Checks across keys of the whole config, each returning the problems it finds (one line each,
naming the key, the value and the fix); ``ExperimentConfig`` reports them together."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from edge_opt.config.sections import RecoveryConfig


def colliding_levels(levels: Iterable[float]) -> list[str]:
    """Two levels that round to one candidate id (``p50``: 0.5 and 0.504) would share rows,
    a variant file and an export name."""
    named: dict[int, float] = {}
    for i, level in enumerate(levels):
        percent = round(float(level) * 100)
        if percent in named and named[percent] != level:
            return [
                f"pruning_levels.{i}: {level!r} and {named[percent]!r} both round to "
                f"p{percent:02d} (ids use whole percents); keep one, or make them differ by "
                "at least 0.01"
            ]
        named[percent] = level
    return []


def duplicates(field: str, values: Iterable[object]) -> list[str]:
    seen: set[object] = set()
    dupes = [v for v in values if v in seen or seen.add(v)]  # type: ignore[func-returns-value]
    if dupes:
        return [f"{field}: {dupes[0]!r} is listed twice; list each value once"]
    return []


def epoch_budget_problems(
    epochs: int | Mapping[float, int], levels: Iterable[float], strategy: str
) -> list[str]:
    """A per-level ``fine_tune_epochs`` must name exactly the grid's levels."""
    if isinstance(epochs, int):
        return []
    if strategy != "grid":
        return [
            "fine_tune_epochs: a per-level mapping needs `search.strategy: grid` (search trials "
            "have per-group ratios, not levels); give one number"
        ]
    wanted = list(levels)
    unknown = [level for level in epochs if level not in wanted]
    if unknown:
        return [
            f"fine_tune_epochs: {unknown[0]!r} is not one of pruning_levels {wanted}; key the "
            "mapping by those levels"
        ]
    missing = [level for level in wanted if level not in epochs]
    if missing:
        return [
            f"fine_tune_epochs: no entry for pruning level {missing[0]!r}; give every level of "
            f"pruning_levels {wanted} its epochs (e.g. {{{missing[0]!r}: 1}}), or one number"
        ]
    return []


def recovery_problems(
    recovery: RecoveryConfig,
    scope: str,
    strategy: str,
    epochs: int | Mapping[float, int],
    channel_multiple: int = 1,
) -> list[str]:
    """Recovery settings that the rest of the config makes impossible or pointless."""
    problems = []
    if recovery.steps > 1 and channel_multiple != 1:
        problems.append(
            f"recovery.steps: {recovery.steps} needs `channel_multiple: 1` (widths rounded at "
            "every step can end on other channel counts than one-shot pruning); set steps: 1 "
            "or channel_multiple: 1"
        )
    if recovery.steps > 1 and scope != "uniform":
        problems.append(
            f"recovery.steps: {recovery.steps} needs `pruning_scope: uniform` (a global "
            "threshold applied in steps can end on other channel counts than one-shot); set "
            "steps: 1 or pruning_scope: uniform"
        )
    if recovery.steps > 1 and strategy != "grid":
        problems.append(
            f"recovery.steps: {recovery.steps} needs `search.strategy: grid` (trials are "
            "pruned in one step); set steps: 1"
        )
    if recovery.early_stop_patience is not None and strategy != "grid":
        problems.append(
            "recovery.early_stop_patience: needs `search.strategy: grid` (trials fine-tune for "
            "fine_tune_epochs); remove it"
        )
    most = epochs if isinstance(epochs, int) else max(epochs.values(), default=0)
    if most == 0 and (recovery.steps > 1 or recovery.early_stop_patience is not None):
        key = "steps" if recovery.steps > 1 else "early_stop_patience"
        problems.append(
            f"recovery.{key}: does nothing with fine_tune_epochs 0 (nothing is fine-tuned); "
            "give fine_tune_epochs or remove it"
        )
    return problems
