"""Search instead of a grid: per-layer-group pruning ratios x precision x runtime, explored
by Optuna (NSGA-II or TPE) with cheap-first screening (``search: {strategy: optuna}``).

Modules: ``space`` (channel groups, pruning by group), ``screen`` (the cheap stages), ``rows``
(a trial's record), ``samplers`` (the registry), ``frontier`` (dominance, hypervolume),
``state`` (its inputs, outcome and loop state), ``trials`` (one trial: ask, prune, fine-tune,
screen, build, tell), ``engine`` (the loop: generations, timing the survivors). Trials are
timed by the grid's own session (``measure.session``). Optuna is imported only when a search
runs.
"""

from edge_opt.search.frontier import dominates, hypervolume_2d, non_dominated

__all__ = ["dominates", "hypervolume_2d", "non_dominated"]
