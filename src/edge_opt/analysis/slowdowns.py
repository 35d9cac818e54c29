"""Where fewer MACs did not mean less time: a candidate slower, beyond both CIs, than the same
precision and runtime pruned less (the summary warns about each; ``channel_multiple`` often
cures it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from edge_opt.candidates.record import CandidateResult, SlowerThanLessPruned


def flag_slower_than_less_pruned(records: Sequence[CandidateResult]) -> list[CandidateResult]:
    """Each record with ``slower_than_less_pruned`` set: True (and the fastest such less pruned
    id) when its p50 is slower beyond both 95% CIs than a less pruned candidate of the same
    precision and runtime, False when not, None when it was not timed. Records are unchanged
    when no candidate was timed."""
    timed = [r for r in records if r.status == "ok" and r.metrics is not None]
    if not timed:
        return list(records)
    out = []
    for r in records:
        m = r.metrics
        if r.status != "ok" or m is None:
            out.append(replace(r, slower_than_less_pruned=SlowerThanLessPruned(None)))
            continue
        faster = [
            o
            for o in timed
            if o.precision == r.precision
            and o.runtime == r.runtime
            and o.pruning_level < r.pruning_level
            and o.metrics is not None
            and o.metrics.latency_p50_ci95_high_ms < m.latency_p50_ci95_low_ms
        ]
        beaten_by = None
        if faster:
            fastest = min(faster, key=lambda o: o.metrics.latency_p50_ms if o.metrics else 0.0)
            beaten_by = fastest.candidate_id
        flag = SlowerThanLessPruned(bool(faster), beaten_by)
        out.append(replace(r, slower_than_less_pruned=flag))
    return out
