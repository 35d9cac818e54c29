"""The one column schema of a candidate row: every column of ``sweep_results.csv``, in order.

Each column has its name, unit, kind (what it is: an identity, a setting, a measurement, a
model's output, a verdict), the format tables print it with, a short label for table headers
and a one-line meaning. The CSV header, the docs' column table (``docs/outputs.md``), the
Markdown and HTML candidate tables and the terminal table all come from here; a test fails
when any of them drifts. Code names a column as ``C.latency_p50_ms`` (an unknown name is an
``AttributeError``), never as a string of its own.

A *family* is a column per configured value: ``violates_<budget>mb`` per memory budget,
``latency_ms_projected_<device>`` for the target device, ``ratio.<group>`` per channel group of
a search. Its members sit where the family is listed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from edge_opt.candidates.column_types import Column, Kind

M, D, V = Kind.MEASURED, Kind.DERIVED, Kind.VERDICT
_LATENCY = "per call at latency_batch_size, measured"
COLUMNS: tuple[Column, ...] = (
    Column("candidate_id", "", Kind.IDENTITY, "", "candidate", "stable id: pNN-precision-runtime"),
    Column("pruning_level", "fraction", Kind.IDENTITY, ".2f", "pruned", "conv channels removed"),
    Column("precision", "", Kind.IDENTITY, "", "precision", "fp32, fp16, bf16 or int8"),
    Column("runtime", "", Kind.IDENTITY, "", "runtime", "where it runs (a registered runtime)"),
    Column(
        "status",
        "",
        Kind.OUTCOME,
        "",
        "status",
        "ok; failed (with the error); skipped (a runtime that cannot run the precision); in a "
        "search, screened (not timed); timing_pending while a run is in progress",
    ),
    Column("error", "", Kind.OUTCOME, "", "reason", "why a row failed, was skipped or screened"),
    Column(
        "accepted",
        "",
        V,
        "",
        "accepted",
        "fits the active memory budget (and the latency budget, when one is set)",
    ),
    Column("active_budget_mb", "MiB", Kind.SETTING, ".4g", "budget MB", "the deciding budget"),
    Column(
        "budget_metric",
        "",
        Kind.SETTING,
        "",
        "budget on",
        "which memory figure the budgets constrain: model (size) or runtime (+ activations)",
    ),
    Column("parameter_count", "count", Kind.MODELLED, "d", "params", "parameters after pruning"),
    Column("macs_per_sample", "MACs", Kind.MODELLED, "d", "MACs", "multiply-accumulates per image"),
    Column(
        "fine_tune_epochs",
        "epochs",
        Kind.SETTING,
        "d",
        "fine-tune",
        "fine-tuning epochs after pruning (every level, 0 included)",
    ),
    Column("accuracy", "fraction", M, ".4f", "accuracy", "validation top-1 (selection)"),
    Column("accuracy_ci95_low", "fraction", D, ".4f", "acc CI low", "Wilson 95% interval"),
    Column("accuracy_ci95_high", "fraction", D, ".4f", "acc CI high", "Wilson 95% interval"),
    Column("eval_samples", "images", Kind.PROVENANCE, "d", "images", "validation images"),
    Column("latency_ms", "ms", M, ".4g", "mean ms", f"mean latency {_LATENCY}"),
    Column("latency_std_ms", "ms", M, ".4g", "std ms", "standard deviation of the calls"),
    Column("latency_p50_ms", "ms", M, ".4g", "p50 ms", f"median latency {_LATENCY}"),
    Column("latency_p90_ms", "ms", M, ".4g", "p90 ms", "90th percentile per call"),
    Column("latency_p95_ms", "ms", M, ".4g", "p95 ms", "95th percentile per call"),
    Column("latency_p99_ms", "ms", M, ".4g", "p99 ms", "99th percentile per call"),
    Column("latency_min_ms", "ms", M, ".4g", "min ms", "fastest call"),
    Column("latency_iqr_ms", "ms", M, ".4g", "IQR ms", "interquartile range of the calls"),
    Column(
        "latency_p50_ci95_low_ms",
        "ms",
        D,
        ".4g",
        "p50 CI low",
        "95% CI of the p50 (seeded bootstrap over instances and rounds)",
    ),
    Column("latency_p50_ci95_high_ms", "ms", D, ".4g", "p50 CI high", "95% CI of the p50"),
    Column("latency_samples", "calls", Kind.PROVENANCE, "d", "calls", "timed calls pooled"),
    Column("latency_rounds", "rounds", Kind.PROVENANCE, "d", "rounds", "interleaved rounds"),
    Column("latency_batch_size", "images", Kind.SETTING, "d", "batch", "batch of a timed call"),
    Column(
        "latency_stop_reason",
        "",
        Kind.PROVENANCE,
        "",
        "stopped",
        "why timing stopped: converged, instance_spread, dominated, max_rounds, time_cap",
    ),
    Column(
        "latency_dominated_by",
        "",
        Kind.PROVENANCE,
        "",
        "dominated by",
        "stop reason dominated: the candidate that beat it",
    ),
    Column(
        "latency_instances",
        "count",
        Kind.PROVENANCE,
        "d",
        "instances",
        "independently built instances timed and pooled",
    ),
    Column(
        "latency_p50_precision",
        "fraction",
        D,
        ".3f",
        "p50 +-",
        "achieved 95% CI half-width of the p50, relative to the p50",
    ),
    Column("page_faults_per_call", "faults", M, ".3g", "faults/call", "minor page faults"),
    Column(
        "noisy",
        "",
        Kind.PROVENANCE,
        "",
        "noisy",
        "more than 20% of the kept rounds stayed noisy after their retries",
    ),
    Column("noisy_retries", "rounds", Kind.PROVENANCE, "d", "retries", "rounds redone"),
    Column("noisy_rounds", "rounds", Kind.PROVENANCE, "d", "noisy rounds", "kept, still noisy"),
    Column("noisy_signal", "", Kind.PROVENANCE, "", "signal", "which load signal fired, how much"),
    Column("other_cpu_cores", "cores", M, ".3g", "other cores", "most CPU others used in a round"),
    Column(
        "host_slowdown",
        "fraction",
        M,
        ".3g",
        "slowdown",
        "reference kernel's worst slowdown in a kept round vs its typical time",
    ),
    Column("host_reference_ms", "ms", M, ".4g", "reference ms", "reference kernel's typical time"),
    Column(
        "host_drift",
        "fraction",
        M,
        "+.3g",
        "drift",
        "change of that typical time by the end (> 0: the core got slower)",
    ),
    Column(
        "throughput_sps",
        "images/s",
        M,
        ".4g",
        "throughput/s",
        "images per second at throughput_batch_size",
    ),
    Column("throughput_batch_size", "images", Kind.SETTING, "d", "thr batch", "its batch"),
    Column("batch_latency_ms", "ms", M, ".4g", "batch ms", "mean call at throughput batch"),
    Column("batch_latency_p50_ms", "ms", M, ".4g", "batch p50 ms", "median call there"),
    Column(
        "model_size_bytes", "bytes", M, "d", "size B", "serialized deployable (state dict, file)"
    ),
    Column("memory_mb", "MiB", M, ".4g", "size KiB", "model_size_bytes / 2^20", table_scale=1024.0),
    Column(
        "energy_proxy_j",
        "J",
        Kind.MODELLED,
        ".3g",
        "energy J",
        "latency_ms / 1000 x power_watts (modelled)",
    ),
    Column("power_watts", "W", Kind.SETTING, ".3g", "power W", "power the proxy assumes"),
    Column("energy_measured_j", "J", M, ".3g", "RAPL J", "package energy per call (RAPL hosts)"),
    Column("threads", "threads", Kind.SETTING, "d", "threads", "torch threads while timing"),
    Column("latency_multiplier", "x", Kind.SETTING, ".3g", "multiplier", "1 / cpu_frequency_scale"),
    Column(
        "top1_agreement",
        "fraction",
        D,
        ".4f",
        "agreement",
        "validation predictions equal to the unpruned fp32 baseline's",
    ),
    Column(
        "latency_ms_scaled",
        "ms",
        Kind.MODELLED,
        ".4g",
        "mean ms scaled",
        "latency_ms x latency_multiplier (only when it is not 1)",
    ),
    Column(
        "latency_p95_ms_scaled", "ms", Kind.MODELLED, ".4g", "p95 ms scaled", "p95 x multiplier"
    ),
    Column("energy_proxy_j_scaled", "J", Kind.MODELLED, ".3g", "energy J scaled", "x multiplier"),
    Column("test_accuracy", "fraction", M, ".4f", "test acc", "test top-1 (never used to choose)"),
    Column(
        "ref_top1_agreement",
        "fraction",
        D,
        ".4f",
        "ref agreement",
        "on a fixed batch, agreement with the fp32 eager model of the same level",
    ),
    Column(
        "ref_max_abs_error", "logit", D, ".3g", "ref max error", "largest logit difference there"
    ),
    Column(
        "peak_activation_bytes",
        "bytes",
        Kind.MODELLED,
        "d",
        "activations B",
        "peak live activations at the latency batch (liveness walk)",
    ),
    Column(
        "runtime_memory_mb",
        "MiB",
        Kind.MODELLED,
        ".4g",
        "runtime KiB",
        "model size + peak live activations",
        table_scale=1024.0,
    ),
    Column(
        "measured_peak_rss_mb",
        "MiB",
        M,
        ".4g",
        "RSS MB",
        "peak-RSS growth of the first inference in a fresh process",
    ),
    Column("measured_peak_rss_warm_mb", "MiB", M, ".4g", "RSS warm MB", "of the second one"),
    Column("rss_note", "", Kind.PROVENANCE, "", "RSS note", "how the RSS figure was obtained"),
    Column(
        "speedup_vs_baseline",
        "x",
        D,
        ".3g",
        "speedup",
        "paired-round speedup over p00-fp32-eager (median; > 1 = faster)",
    ),
    Column("speedup_q25", "x", D, ".3g", "speedup q25", "its lower quartile"),
    Column("speedup_q75", "x", D, ".3g", "speedup q75", "its upper quartile"),
    Column(
        "violates_{budget}mb",
        "",
        V,
        "",
        "over {budget} MB",
        "one per memory_budgets_mb: the budgeted figure is above it",
    ),
    Column("measure_seconds", "s", Kind.PROVENANCE, ".3g", "prepare s", "converting and measuring"),
    Column(
        "prepared_from_cache",
        "",
        Kind.PROVENANCE,
        "",
        "from cache",
        "--resume reused its conversion, export and accuracy (timing is always new)",
    ),
    Column(
        "slower_than_less_pruned",
        "",
        D,
        "",
        "slower than less pruned",
        "p50 slower, beyond both CIs, than the same precision and runtime pruned less",
    ),
    Column("faster_less_pruned", "", D, "", "beaten by", "the fastest such less pruned candidate"),
    Column(
        "latency_budget_figure",
        "ms",
        Kind.PROVENANCE,
        ".4g",
        "budget p95 ms",
        "the p95 latency_budget_ms was checked on (latency_budget_on says whose)",
    ),
    Column(
        "latency_budget_on",
        "",
        Kind.PROVENANCE,
        "",
        "budget on",
        "whose p95 the latency budget was checked on: the device node's (measured), the "
        "target's (projected, when the target is another machine) or this host's (measured)",
    ),
    Column(
        "violates_latency_budget",
        "",
        V,
        "",
        "over latency budget",
        "that p95 is above latency_budget_ms",
    ),
    Column(
        "measured_on",
        "",
        Kind.PROVENANCE,
        "",
        "measured on",
        "the machine that took the latency figures, as it describes itself",
    ),
    Column(
        "device_latency_p50_ms", "ms", M, ".4g", "device p50 ms", "p50 timed on the device node"
    ),
    Column("device_latency_p50_ci95_low_ms", "ms", D, ".4g", "device CI low", "its 95% CI"),
    Column("device_latency_p50_ci95_high_ms", "ms", D, ".4g", "device CI high", "its 95% CI"),
    Column("device_latency_p95_ms", "ms", M, ".4g", "device p95 ms", "p95 on the device"),
    Column("device_latency_mean_ms", "ms", M, ".4g", "device mean ms", "mean on the device"),
    Column("device_latency_std_ms", "ms", M, ".4g", "device std ms", "std on the device"),
    Column("device_noisy", "", Kind.PROVENANCE, "", "device noisy", "noisy there"),
    Column("device_measured_on", "", Kind.PROVENANCE, "", "device", "the device node, as it says"),
    Column(
        "latency_ms_projected_{device}",
        "ms",
        Kind.MODELLED,
        ".4g",
        "p50 ms on {device}",
        "projected p50 on the target device (see docs/devices.md)",
    ),
    Column(
        "latency_p95_ms_projected_{device}",
        "ms",
        Kind.MODELLED,
        ".4g",
        "p95 ms on {device}",
        "projected p50 on the target x this host's p95/p50 for the candidate",
    ),
    Column(
        "energy_j_projected_{device}",
        "J",
        Kind.MODELLED,
        ".3g",
        "energy J on {device}",
        "projected latency x the device profile's active power",
    ),
    Column("search_trial", "", Kind.IDENTITY, "", "trial", "search: the trial number"),
    Column("search_generation", "", Kind.PROVENANCE, "", "generation", "search: its generation"),
    Column(
        "search_stage",
        "",
        Kind.OUTCOME,
        "",
        "stage",
        "search: the stage that stopped it, timed, or reference",
    ),
    Column(
        "search_accuracy_subset",
        "fraction",
        M,
        ".4f",
        "subset acc",
        "search: accuracy on search.accuracy_subset images",
    ),
    Column(
        "latency_estimate_ms",
        "ms",
        Kind.MODELLED,
        ".4g",
        "estimate ms",
        "search: the latency estimate its dominance screen used",
    ),
    Column(
        "roofline_ms_host",
        "ms",
        Kind.MODELLED,
        ".4g",
        "roofline ms",
        "search: the roofline lower bound on this host",
    ),
    Column("ratio.{group}", "fraction", Kind.IDENTITY, ".2f", "{group}", "search: a group's ratio"),
    Column(
        "verdict",
        "",
        V,
        "",
        "verdict",
        "tables only: recommended, frontier, dominated (accepted), rejected, failed or skipped",
        in_csv=False,
    ),
)

_BY_NAME = {c.name: c for c in COLUMNS}


class _Names:
    """``C.latency_p50_ms`` is ``"latency_p50_ms"``; a name the schema lacks is an error."""

    def __getattr__(self, name: str) -> str:
        if name in _BY_NAME:
            return name
        raise AttributeError(f"{name!r} is not a column of the candidate schema")


C = _Names()


def column(name: str) -> Column:
    """The schema entry of ``name`` (a family member finds its family).

    Raises:
        KeyError: the schema has no such column.
    """
    if name in _BY_NAME:
        return _BY_NAME[name]
    for col in COLUMNS:
        if col.family is not None and col.matches(name):
            return col
    raise KeyError(f"{name!r} is not a column of the candidate schema")


def ordered(names: Iterable[str]) -> list[str]:
    """``names`` in schema order (family members in the order given, at their family's place).

    Raises:
        KeyError: a name the schema does not list.
    """
    position = {c.name: i for i, c in enumerate(COLUMNS)}
    given = list(dict.fromkeys(names))
    keyed = [(position[column(n).name], i, n) for i, n in enumerate(given)]
    return [n for _, _, n in sorted(keyed)]


def label(name: str) -> str:
    """The table header of a column (a family member's label names its value)."""
    col = column(name)
    if col.family is None:
        return col.label
    match = re.fullmatch(
        re.escape(col.name).replace(re.escape("{" + col.family + "}"), "(.+)"), name
    )
    return col.label.replace("{" + col.family + "}", match.group(1) if match else "?")


def formatted(name: str, value: Any) -> str:
    """A value as tables print it: scaled and in the column's format; empty when missing."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    col = column(name)
    if not col.fmt or isinstance(value, bool) or isinstance(value, str):
        return str(value)
    try:
        number = value * col.table_scale if col.table_scale != 1.0 else value
        return format(int(number) if col.fmt == "d" else number, col.fmt)
    except (TypeError, ValueError):
        return str(value)


def schema_table(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> str:
    """A Markdown table of ``rows`` over the schema columns ``names`` (headers: their labels;
    cells: ``formatted``); the columns no row has are left out."""
    present = [n for n in names if any(n in row for row in rows)]
    if not rows or not present:
        return "_(none)_\n"
    lines = ["| " + " | ".join(label(n) for n in present) + " |", "|" + "---|" * len(present)]
    for row in rows:
        cells = (_cell(formatted(n, row.get(n))) for n in present)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """A Markdown cell: a pipe or a line break in a value (an error, a name) cannot split
    the row."""
    return " ".join(text.split()).replace("|", "\\|")


def csv_columns() -> list[Column]:
    """The columns ``sweep_results.csv`` may have, in order."""
    return [c for c in COLUMNS if c.in_csv]


def reference_table(columns: Sequence[Column] | None = None) -> str:
    """The Markdown table of every CSV column (``docs/outputs.md``; a test keeps it current)."""
    lines = ["| column | unit | kind | meaning |", "|---|---|---|---|"]
    for c in csv_columns() if columns is None else columns:
        name = c.name.replace("{", "<").replace("}", ">")
        lines.append(f"| `{name}` | {c.unit} | {c.kind.value} | {c.meaning} |")
    return "\n".join(lines)
