"""Timing one generation of a search: the grid's protocol (``edge_opt.measure.harness``) on the
trials that survived screening, side by side with the reference (the unpruned fp32 eager
model), which anchors the paired speedups of every generation."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch

from edge_opt.candidates.plan import SweepPlan
from edge_opt.candidates.preparation import PreparedCandidate
from edge_opt.measure.harness import measure_interleaved
from edge_opt.measure.memory import RssProber
from edge_opt.measure.metrics import throughput_settings
from edge_opt.measure.statistics import paired_speedup
from edge_opt.runtimes.base import RuntimeModel

log = logging.getLogger(__name__)


def _instances(built: RuntimeModel, count: int, threads: int) -> list[RuntimeModel]:
    models = [built]
    for _ in range(count - 1):
        twin = built.fresh_instance(threads)
        if twin is None:
            break
        models.append(twin)
    return models


def _ready(prepared: Sequence[PreparedCandidate]) -> list[tuple[PreparedCandidate, RuntimeModel]]:
    pairs = []
    for p in prepared:
        if p.built is None:
            raise ValueError(f"{p.cid}: only built candidates can be timed")
        pairs.append((p, p.built))
    return pairs


def time_generation(
    prepared: Sequence[PreparedCandidate],
    plan: SweepPlan,
    latency_input: torch.Tensor,
    batch_input: torch.Tensor,
    anchor: str,
) -> dict[str, tuple[float, float, float] | None]:
    """Latency (interleaved, several instances), throughput and peak RSS of ``prepared``,
    written into each; returns each id's paired speedup over ``anchor`` (median, q25, q75)."""
    ready = _ready(prepared)
    harness = plan.harness
    log.info("search: timing %d candidate(s) side by side", len(ready))
    twins = {p.cid: _instances(b, plan.instances, harness.threads) for p, b in ready}
    lat = measure_interleaved(
        {cid: [m.timed_call(latency_input) for m in models] for cid, models in twins.items()},
        harness,
        dict.fromkeys(twins, plan.latency_batch_size),
        anchor=anchor,
    )
    calls: dict[str, Callable[[], object]] = {p.cid: b.timed_call(batch_input) for p, b in ready}
    thr = measure_interleaved(
        calls,
        throughput_settings(harness, plan.throughput_repeats),
        dict.fromkeys(calls, int(batch_input.shape[0])),
        anchor=anchor,
    )
    for p, _ in ready:
        p.latency, p.throughput = lat[p.cid], thr[p.cid]
    if plan.measure_rss:
        _probe_rss(ready, plan, latency_input)
    speedups: dict[str, tuple[float, float, float] | None] = {}
    for p, _ in ready:
        s = paired_speedup(lat[anchor], lat[p.cid]) if anchor in lat else None
        speedups[p.cid] = (s.median, s.q25, s.q75) if s is not None else None
    return speedups


def _probe_rss(
    ready: Sequence[tuple[PreparedCandidate, RuntimeModel]],
    plan: SweepPlan,
    latency_input: torch.Tensor,
) -> None:
    with RssProber() as prober:
        for p, built in ready:
            if built.runtime == "compiled":
                p.rss = (None, None, "not measured: compilation in the child would dominate")
                continue
            probe = prober.probe(
                built.eager.model,
                built.eager.prepare_input(latency_input),
                plan.harness.threads,
                onnx_path=built.artifact,
            )
            p.rss = (probe.cold_mb, probe.warm_mb, probe.note)
