"""What the command line prints and logs: the consoles, logging set-up, the progress display,
one line per error, the result tables; and the tuning of edge-opt's own process."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from edge_opt.candidates.columns import C
from edge_opt.errors import ConfigError, EdgeOptError
from edge_opt.reports.tables import TextTable, fit_to_width, terminal_width

if TYPE_CHECKING:
    from edge_opt.infra.progress import Progress


console = Console(stderr=True, soft_wrap=True)  # an error stays one line when piped
out_console = Console()


class _ConsoleFilter(logging.Filter):
    """What reaches the console: edge-opt's own records, and any library's errors. Library
    warnings (torchao, ONNX Runtime, Python warnings) go to the run's log only (-v: all)."""

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        ours = record.name == "edge_opt" or record.name.startswith("edge_opt.")
        return self.verbose or ours or record.levelno >= logging.ERROR


class _LineHandler(logging.Handler):
    """Plain log lines for pipes and CI logs: ``[12:03:04] message``, one line per record,
    never wrapped or rewritten (the console's current file, so a run's redirect applies)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            console.print(self.format(record), markup=False, highlight=False, soft_wrap=True)
        except Exception:
            self.handleError(record)


def setup_logging(verbose: bool, quiet: bool = False) -> None:
    handler: logging.Handler
    if console.is_terminal:
        handler = RichHandler(console=console, show_path=verbose, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s", datefmt="[%X]"))
    else:
        handler = _LineHandler()
        handler.setFormatter(logging.Formatter("[%(asctime)s] %(message)s", datefmt="%H:%M:%S"))
    handler.addFilter(_ConsoleFilter(verbose))
    handler.setLevel(logging.ERROR if quiet and not verbose else logging.DEBUG)
    # Only edge-opt's own loggers speak at INFO; libraries (matplotlib, torch) stay at WARNING.
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    logging.getLogger("edge_opt").setLevel(logging.DEBUG if verbose else logging.INFO)
    # Python warnings become records (``py.warnings``): in a run's log, off the console.
    logging.captureWarnings(True)


def console_to_stderr() -> None:
    """Let the console follow ``sys.stderr`` again (rich reads it at each write when its file
    is unset; pinning the object seen now would break the next in-process invocation)."""
    console.file = None  # type: ignore[assignment]


@contextlib.contextmanager
def run_display(log_path: Path, quiet: bool) -> Iterator[Progress]:
    """For the length of a run: fd 2 (C++ libraries, child processes) goes to the run's log,
    the console keeps the real stderr, and the progress display is chosen for it."""
    from edge_opt.infra.progress import LogProgress, NullProgress, RichProgress
    from edge_opt.infra.runlog import stderr_to_file

    with stderr_to_file(log_path) as terminal:
        console.file = terminal
        progress: Progress
        if quiet:
            progress = NullProgress()
        elif console.is_terminal:
            progress = RichProgress(console)
        else:
            progress = LogProgress()
        try:
            yield progress
        finally:
            progress.finish()  # stops a live bar on every exit path
            console_to_stderr()


def fail(exc: Exception, verbose: bool) -> None:
    if verbose:
        console.print_exception()
    if isinstance(exc, ConfigError):
        where = f" ({exc.source})" if exc.source else ""
        console.print(f"[bold red]error[/]: invalid configuration{where}", soft_wrap=True)
        for problem in exc.problems:
            console.print(f"  {problem}", markup=False, highlight=False, soft_wrap=True)
    elif isinstance(exc, EdgeOptError):
        console.print("[bold red]error[/]: ", end="")
        console.print(str(exc), markup=False, highlight=False, soft_wrap=True)
    else:
        # Not one of ours (OSError, a library's error, a bug): still one line, no traceback.
        text = " ".join(str(exc).split())
        text = text if len(text) <= 500 else text[:497] + "..."
        hint = "" if verbose else " (-v shows the traceback)"
        console.print("[bold red]error[/]: ", end="")
        console.print(
            f"{type(exc).__name__}: {text}{hint}", markup=False, highlight=False, soft_wrap=True
        )
    raise typer.Exit(1)


def os_error_line(exc: OSError, output_dir: str | None) -> str:
    from edge_opt.infra.runstatus import read_status

    where = f"{exc.filename}: " if exc.filename else ""
    what = f"{type(exc).__name__}: {where}{exc.strerror or exc}"
    status = read_status(Path(output_dir)) if output_dir else None
    if status and status.get("stage") == "publishing":
        return (
            f"{what}; the publish of the new results was cut short: `edge-opt report "
            f"{output_dir}` or the same run with --resume finishes it"
        )
    return f"{what}; the previous results in the output directory are intact"


def print_interrupted(output_dir: str | None) -> None:
    from edge_opt.infra.runstatus import read_status

    if output_dir is None:
        console.print("[bold red]interrupted[/]")
        return
    status = read_status(Path(output_dir)) or {}
    resume = status.get("resume_command")
    console.print(
        f"[bold red]interrupted[/] during {status.get('stage', 'start-up')}: finished work is "
        f"kept in {Path(output_dir) / '.edge-opt' / 'cache'}",
        highlight=False,
    )
    if resume:
        console.print(f"resume with: {resume}", markup=False, highlight=False)


def print_table(table: TextTable, full: str) -> None:
    """Print ``table`` with the columns that fit the width whole; say where the rest is."""
    width = terminal_width(out_console.is_terminal, out_console.width, dict(os.environ))
    fitted, dropped = fit_to_width(table, width)
    rich_table = Table(title=fitted.title, title_justify="left")
    for col, col_width in zip(fitted.columns, fitted.widths(), strict=True):
        rich_table.add_column(
            col.header,
            justify=col.justify,  # type: ignore[arg-type]
            no_wrap=True,
            min_width=col_width,
        )
    for row in fitted.rows:
        rich_table.add_row(*row)
    out_console.print(rich_table, width=max(width, 20), crop=False)
    hidden = f"; not shown at width {width}: {', '.join(dropped)}" if dropped else ""
    out_console.print(f"full table: {full}{hidden}", markup=False, soft_wrap=True)


def say(text: str) -> None:
    """One line on stdout, never wrapped (paths, hashes and ids stay whole when piped)."""
    out_console.print(text, markup=False, highlight=False, soft_wrap=True)


def print_multi_seed(result, out: Path) -> None:  # type: ignore[no-untyped-def]
    from edge_opt.reports.tables import multi_seed_table

    print_table(multi_seed_table(result.summary, result.seeds), f"{out}/multi_seed_summary.csv")
    front = ", ".join(result.frontier[C.candidate_id]) if not result.frontier.empty else "(empty)"
    say(f"frontier over seed means: {front}")
    say(f"per-seed runs in {out}/seed_*/, summaries in {out}/multi_seed_summary.*")


def target_lines(recommendation: dict[str, Any]) -> list[str]:
    """The verdict's lines about the target (who measured, for which device, the pick there)."""
    from edge_opt.decide.target import TargetAnswer

    answer = recommendation.get("target")
    return TargetAnswer(**answer).lines() if answer else []


def print_result(result, out: Path) -> None:  # type: ignore[no-untyped-def]
    from edge_opt.reports.tables import candidate_table

    sweep = result.sweep_frame()
    rec = result.recommendation
    for line in target_lines(rec):
        say(line)
    print_table(
        candidate_table(sweep, rec[C.candidate_id]),
        f"{out}/sweep_results.csv ({len(sweep.columns)} columns), report.md",
    )
    reasons: dict[str, list[str]] = {}
    for _, row in sweep[sweep[C.status] != "ok"].iterrows():
        reasons.setdefault(f"{row['status']}: {row['error']}", []).append(row[C.candidate_id])
    for reason, ids in reasons.items():
        say(f"{reason} ({', '.join(ids)})")
    say(f"recommended: {rec['candidate_id']} - {rec['reason']}")
    for warning in result.warnings:
        say(f"warning: {warning}")
    say(f"reports written to {out}/ (start with report.md and summary.json; log: run.log)")


def print_quiet(result, out: Path) -> None:  # type: ignore[no-untyped-def]
    """--quiet: the answer and where the rest is, nothing else."""
    from edge_opt.orchestrate.multiseed import MultiSeedResult

    if isinstance(result, MultiSeedResult):  # several seeds: one recommendation per seed
        picks = ", ".join(
            f"seed {s}: {r.recommendation['candidate_id']}"
            for s, r in zip(result.seeds, result.runs, strict=True)
        )
        say(f"recommended per seed: {picks}")
    else:
        rec = result.recommendation
        for line in target_lines(rec):
            say(line)
        say(f"recommended: {rec['candidate_id']} - {rec['reason']}")
        if result.warnings:
            say(f"{len(result.warnings)} warning(s): see {out}/report.md")
    say(f"reports written to {out}/")


# Set by the console script: the process is edge-opt's own (not a library caller or a test
# runner), so its garbage collector may be tuned for one run.
_OWN_PROCESS = False


def mark_own_process() -> None:
    """Called by the console script only (``entrypoint``)."""
    global _OWN_PROCESS
    _OWN_PROCESS = True


def collector_after_imports() -> None:
    """In edge-opt's own process, move what the imports made (torch, pandas, ...: hundreds of
    thousands of long-lived objects) out of the collector's scans: each full collection during
    the run then scans only what the run creates."""
    if _OWN_PROCESS:
        gc.collect()
        gc.freeze()


def warn_plugin_problems() -> None:
    """One line on stderr per installed plugin that was left out, and why."""
    from edge_opt.config.types import plugin_problems

    for problem in plugin_problems():
        console.print(f"warning: {problem}", markup=False, highlight=False)


def log_candidate(result: Any, index: int, total: int) -> None:
    """One log line per finished candidate (the run's ``on_candidate``)."""
    log = logging.getLogger("edge_opt")
    if result.status == "skipped":  # a runtime that cannot run the precision: not a failure
        log.info("[%d/%d] %s skipped: %s", index, total, result.candidate_id, result.error)
        return
    if result.metrics is None:
        log.warning("[%d/%d] %s FAILED: %s", index, total, result.candidate_id, result.error)
        return
    m = result.metrics
    log.info(
        "[%d/%d] %-20s acc %.4f  p50 %.4f ms  p95 %.4f ms  %.1f KiB  %s (%.1f s)",
        index,
        total,
        result.candidate_id,
        m.accuracy,
        m.latency_p50_ms,
        m.latency_p95_ms,
        m.model_size_bytes / 1024,
        "accepted" if result.accepted else "rejected",
        result.measure_seconds,
    )
