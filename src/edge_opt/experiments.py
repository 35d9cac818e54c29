"""The seed's experiment API (a facade): training, the sweep, Pareto frontiers and the
recommendation; the code lives in ``edge_opt.compress``, ``edge_opt.orchestrate`` and
``edge_opt.decide``."""

from __future__ import annotations

from edge_opt.candidates.plan import (
    budget_column,
    candidate_id,
)
from edge_opt.candidates.preparation import (
    frame_rows,
    prune_variants,
)
from edge_opt.compress.training import (
    EpochStats,
    train_model,
)
from edge_opt.decide.frontier import (
    pareto_frontier,
)
from edge_opt.decide.recommend import (
    Recommendation,
    recommend_candidate,
)
from edge_opt.orchestrate.sweep import (
    CandidateResult,
    run_sweep,
)

__all__ = [
    "CandidateResult",
    "EpochStats",
    "Recommendation",
    "budget_column",
    "candidate_id",
    "frame_rows",
    "pareto_frontier",
    "prune_variants",
    "recommend_candidate",
    "run_sweep",
    "train_model",
]
