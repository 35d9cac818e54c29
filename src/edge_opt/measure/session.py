"""The one timing session: every built candidate timed side by side, for the grid and the search.

1. latency at the latency batch, in interleaved rounds (``measure.harness``), each candidate
   with up to ``instances`` independently built instances pooled; a ``Dominance`` (the
   decision's rule, ``decide.dominance``) may stop a candidate that can no longer matter;
2. throughput at the evaluation batch, in a few fixed rounds (reported, it decides nothing);
3. speedups from paired rounds against the anchor (``p00-fp32-eager``);
4. peak RSS of one inference per candidate in a fresh child process, after all timing
   (children would disturb it), one lane per core.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from edge_opt.infra.progress import NullProgress, Progress
from edge_opt.measure.energy import RaplReader
from edge_opt.measure.harness import HarnessSettings, StopRule, measure_interleaved
from edge_opt.measure.memory import RssProbe, probe_many
from edge_opt.measure.metrics import throughput_settings
from edge_opt.measure.statistics import LatencyStats, paired_speedup
from edge_opt.runtimes.base import RuntimeModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionSettings:
    """How a session times: the harness protocol and the batches."""

    harness: HarnessSettings
    instances: int = 1  # independently built instances of each candidate, timed side by side
    throughput_repeats: int = 10
    latency_batch_size: int = 1


@dataclass(frozen=True)
class Timing:
    """One candidate's figures from a session."""

    latency: LatencyStats
    throughput: LatencyStats
    speedup: tuple[float, float, float] | None  # over the anchor: median, q25, q75


def _instances(built: RuntimeModel, count: int, threads: int) -> list[RuntimeModel]:
    """The built candidate and up to ``count - 1`` independently built twins."""
    models = [built]
    for _ in range(count - 1):
        twin = built.fresh_instance(threads)
        if twin is None:
            break
        models.append(twin)
    return models


def time_side_by_side(
    built: Mapping[str, RuntimeModel],
    settings: SessionSettings,
    latency_input: torch.Tensor,
    batch_input: torch.Tensor,
    anchor: str,
    *,
    dominance: StopRule | None = None,
    measure_energy: bool = False,
    progress: Progress | None = None,
) -> dict[str, Timing]:
    """Latency, throughput and the paired speedup of every candidate in ``built`` (by id).

    With ``measure_energy`` and RAPL counters on this host, each call's package energy is read
    too; then no candidate stops as dominated (measured energy need not follow time).
    """
    if not built:
        return {}
    harness, progress = settings.harness, progress or NullProgress()
    log.info(
        "timing %d candidate(s) in interleaved rounds at batch %d (%d thread(s))",
        len(built),
        settings.latency_batch_size,
        harness.threads,
    )
    rapl = RaplReader() if measure_energy else None
    energy = rapl if rapl is not None and rapl.available else None
    twins = {cid: _instances(b, settings.instances, harness.threads) for cid, b in built.items()}
    progress.start("timing latency", harness.max_rounds, "rounds (at most)")
    lat = measure_interleaved(
        {cid: [m.timed_call(latency_input) for m in models] for cid, models in twins.items()},
        harness,
        dict.fromkeys(twins, settings.latency_batch_size),
        on_round=lambda _r, _n: progress.advance(1),
        energy_reader=energy,
        anchor=anchor,
        dominance=None if energy is not None else dominance,
    )
    progress.finish()
    _log_rounds("latency", lat)
    log.info("timing throughput at batch %d", int(batch_input.shape[0]))
    thr_settings = throughput_settings(harness, settings.throughput_repeats)
    calls: dict[str, Callable[[], object]] = {
        cid: b.timed_call(batch_input) for cid, b in built.items()
    }
    progress.start("timing throughput", thr_settings.max_rounds, "rounds (at most)")
    thr = measure_interleaved(
        calls,
        thr_settings,
        dict.fromkeys(calls, int(batch_input.shape[0])),
        on_round=lambda _r, _n: progress.advance(1),
        anchor=anchor,
    )
    progress.finish()
    _log_rounds("throughput", thr, reasons=False)
    base = lat.get(anchor)
    timings = {}
    for cid in built:
        speedup = None
        if base is not None:
            s = paired_speedup(base, lat[cid])
            speedup = (s.median, s.q25, s.q75)
        timings[cid] = Timing(lat[cid], thr[cid], speedup)
    return timings


def probe_peak_rss(
    built: Mapping[str, RuntimeModel],
    latency_input: torch.Tensor,
    threads: int,
    unprobed: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> dict[str, RssProbe]:
    """Peak-RSS growth of one inference of each candidate in a fresh child process, one lane
    per core; ``unprobed`` (id -> why) are not probed and say why."""
    progress, unprobed = progress or NullProgress(), unprobed or {}
    progress.start("peak RSS", len(built), "candidates")
    results = {cid: RssProbe(None, None, why) for cid, why in unprobed.items() if cid in built}
    for cid in results:
        progress.advance(1, cid)
    probed = [cid for cid in built if cid not in results]
    jobs = [
        (
            built[cid].eager.model,
            built[cid].eager.prepare_input(latency_input),
            built[cid].artifact,
            built[cid].deployable_format if built[cid].artifact is not None else None,
        )
        for cid in probed
    ]
    probes = probe_many(
        jobs,
        threads,
        lanes=max(1, os.cpu_count() or 1),
        on_done=lambda i: progress.advance(1, probed[i]),
    )
    results.update(zip(probed, probes, strict=True))
    progress.finish()
    return {cid: results[cid] for cid in built}


def _log_rounds(what: str, stats: Mapping[str, LatencyStats], reasons: bool = True) -> None:
    """One line after a timing phase: how many rounds it took and why candidates stopped
    (``reasons``: not for throughput, whose rounds are fixed)."""
    if not stats:
        return
    rounds = max(s.rounds for s in stats.values())
    if not reasons:
        log.info("%s timing: %d round(s)", what, rounds)
        return
    counted = Counter(s.stop_reason for s in stats.values()).most_common()
    stops = ", ".join(f"{n} {reason}" for reason, n in counted)
    log.info("%s timing: %d round(s); candidates stopped: %s", what, rounds, stops)
