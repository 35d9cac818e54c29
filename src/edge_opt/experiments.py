"""edge-opt v1's experiment API (a facade): training, the sweep, Pareto frontiers and the
recommendation; the code lives in ``edge_opt.compress``, ``edge_opt.orchestrate`` and
``edge_opt.decide``."""

from __future__ import annotations

from edge_opt.candidates.plan import (
    candidate_id,
)
from edge_opt.candidates.record import (
    CandidateResult,
    budget_column,
    records_frame,
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
    recommend_across_seeds,
    recommend_candidate,
    recommend_on_device,
)
from edge_opt.orchestrate.prepare import (
    prepare_variants,
)
from edge_opt.orchestrate.sweep import (
    execute_sweep,
    run_sweep,
)

__all__ = [
    "CandidateResult",
    "EpochStats",
    "Recommendation",
    "budget_column",
    "candidate_id",
    "execute_sweep",
    "pareto_frontier",
    "prepare_variants",
    "recommend_across_seeds",
    "recommend_candidate",
    "recommend_on_device",
    "records_frame",
    "run_sweep",
    "train_model",
]
