"""Optuna samplers the search can use, behind a registry (``search.sampler``).

Infeasible trials (over the memory or latency budget) carry constraint values > 0
(``Trial.set_constraint``), so both samplers rank them below feasible ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edge_opt.errors import EdgeOptError
from edge_opt.infra.registry import Registry

SAMPLERS: Registry[Callable[[int, int], Any]] = Registry("sampler", EdgeOptError)


@SAMPLERS.register("nsga2")
def nsga2(seed: int, population: int) -> Any:
    import optuna

    return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)


@SAMPLERS.register("tpe")
def tpe(seed: int, population: int) -> Any:
    import optuna

    # A generation is asked before it is told: the constant liar keeps its trials apart.
    return optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=population, constant_liar=True, multivariate=True
    )


def build_sampler(name: str, seed: int, population: int) -> Any:
    """The registered sampler ``name``, seeded."""
    return SAMPLERS.get(name)(seed, population)
