"""The ``edge-opt`` command: parse, call one library function, map errors to exit codes.

Exit codes: 0 success; 1 a problem with the config, data, model or run (one line per problem,
no traceback unless ``-v``); 2 bad command-line usage.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from edge_opt import __version__
from edge_opt.errors import ConfigError, EdgeOptError
from edge_opt.reports.tables import TextTable, fit_to_width, terminal_width

if TYPE_CHECKING:
    from edge_opt.infra.progress import Progress

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Choose which compressed variant of a small CNN to ship to an edge device, and why.",
)
console = Console(stderr=True, soft_wrap=True)  # an error stays one line when piped
out_console = Console()


class ExportFormat(StrEnum):
    """What `export --format` accepts (anything else is a usage error, exit 2)."""

    onnx = "onnx"
    pte = "pte"
    torchscript = "torchscript"


ConfigArg = Annotated[Path, typer.Argument(help="YAML config, e.g. configs/default.yaml.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a config key: --set epochs=1 (repeatable)."),
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logs and tracebacks.")]
QuietOpt = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="Print only the final result and errors (no progress)."),
]


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


def _setup_logging(verbose: bool, quiet: bool = False) -> None:
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


def _console_to_stderr() -> None:
    """Let the console follow ``sys.stderr`` again (rich reads it at each write when its file
    is unset; pinning the object seen now would break the next in-process invocation)."""
    console.file = None  # type: ignore[assignment]


@contextlib.contextmanager
def _run_display(log_path: Path, quiet: bool) -> Iterator[Progress]:
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
            _console_to_stderr()


def _fail(exc: Exception, verbose: bool) -> None:
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


def _version(value: bool) -> None:
    if value:
        out_console.print(f"edge-opt {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """edge-opt: prune x precision sweeps, honest measurements, Pareto frontiers, a verdict."""


@app.command()
def validate(config: ConfigArg, set_: SetOpt = None, verbose: VerboseOpt = False) -> None:
    """Print the resolved config, or every problem with it (exit 1)."""
    _setup_logging(verbose)
    from edge_opt.config.loading import dump_config, load_config
    from edge_opt.orchestrate.preflight import preflight

    try:
        cfg = load_config(config, set_ or [])
        problems = preflight(cfg)
        if problems:
            raise ConfigError(problems, str(config))
    except Exception as exc:
        _fail(exc, verbose)
    out_console.print(dump_config(cfg), end="", markup=False, highlight=False)


@app.command()
def run(
    config: ConfigArg,
    set_: SetOpt = None,
    output_dir: Annotated[
        str | None, typer.Option("--output-dir", "-o", help="Overrides output_dir.")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue an interrupted run: reuse its finished training, pruning, "
            "conversion and accuracy; time every candidate again.",
        ),
    ] = False,
    refresh_host_profile: Annotated[
        bool,
        typer.Option(
            "--refresh-host-profile",
            help="Measure this machine's roofs again (config key refresh_host_profile).",
        ),
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Replace the finished run in the output directory (kept until the new run "
            "completes).",
        ),
    ] = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Train (or load) the baseline, sweep pruning x precision, measure, and write the reports.

    The output directory is locked while the run lasts; reports appear in it only when the
    run completes. Ctrl-C or SIGTERM stop it; `--resume` continues it. Progress goes to
    stderr (bars on a terminal, log lines otherwise); library messages go to run.log.
    """
    for a, b, flags in (
        (resume, overwrite, "--resume and --overwrite"),
        (quiet, verbose, "-q and -v"),
    ):
        if a and b:  # a usage error: exit 2, like any other bad combination of options
            raise typer.BadParameter(f"{flags} contradict each other; pass one")
    _setup_logging(verbose, quiet)
    from edge_opt.config.loading import load_config
    from edge_opt.infra.rundir import check_output_path, open_run_dir

    log = logging.getLogger("edge_opt")

    def on_candidate(result, index: int, total: int) -> None:  # type: ignore[no-untyped-def]
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

    overrides = list(set_ or [])
    if output_dir is not None:
        overrides.append(f"output_dir={output_dir}")
    if refresh_host_profile:
        overrides.append("refresh_host_profile=true")
    # Absolute paths: the resume command printed on an interrupt works from any directory.
    command = ["edge-opt", "run", str(config.absolute()), *(f"--set={o}" for o in set_ or [])]
    if output_dir is not None:
        command += ["-o", os.path.abspath(output_dir) if output_dir.strip() else output_dir]
    previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        if output_dir is not None:
            check_output_path(output_dir)  # as typed: `-o ''` is refused as '', not as '.'
        cfg = load_config(config, overrides)
        # Locked and marked `running` before torch is even imported.
        opened = open_run_dir(cfg.output_dir, overwrite=overwrite, resume=resume, command=command)
        with _run_display(opened.log, quiet) as progress:
            from edge_opt.orchestrate.multiseed import MultiSeedResult
            from edge_opt.orchestrate.pipeline import run_experiment

            _collector_after_imports()

            result = run_experiment(
                cfg, on_candidate=on_candidate, opened=opened, progress=progress
            )
    except OSError as exc:  # a full disk, a file-size limit, a vanished directory
        _fail(
            EdgeOptError(_os_error_line(exc, cfg.output_dir if "cfg" in locals() else None)),
            verbose,
        )
    except Exception as exc:
        _fail(exc, verbose)
    except KeyboardInterrupt:
        _print_interrupted(cfg.output_dir if "cfg" in locals() else None)
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    if quiet:
        _print_quiet(result, Path(cfg.output_dir))
    elif isinstance(result, MultiSeedResult):
        _print_multi_seed(result, Path(cfg.output_dir))
    else:
        _print_result(result, Path(cfg.output_dir))


def _terminate_as_interrupt(_signum: int, _frame: object) -> None:
    # SIGTERM (kill, a scheduler's stop) behaves exactly like Ctrl-C: status, cleanup, message.
    raise KeyboardInterrupt


def _os_error_line(exc: OSError, output_dir: str | None) -> str:
    from edge_opt.infra.rundir import read_status

    where = f"{exc.filename}: " if exc.filename else ""
    what = f"{type(exc).__name__}: {where}{exc.strerror or exc}"
    status = read_status(Path(output_dir)) if output_dir else None
    if status and status.get("stage") == "publishing":
        return (
            f"{what}; the publish of the new results was cut short: `edge-opt report "
            f"{output_dir}` or the same run with --resume finishes it"
        )
    return f"{what}; the previous results in the output directory are intact"


def _print_interrupted(output_dir: str | None) -> None:
    from edge_opt.infra.rundir import read_status

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


def _print_table(table: TextTable, full: str) -> None:
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


def _say(text: str) -> None:
    """One line on stdout, never wrapped (paths, hashes and ids stay whole when piped)."""
    out_console.print(text, markup=False, highlight=False, soft_wrap=True)


def _print_multi_seed(result, out: Path) -> None:  # type: ignore[no-untyped-def]
    from edge_opt.reports.tables import multi_seed_table

    _print_table(multi_seed_table(result.summary, result.seeds), f"{out}/multi_seed_summary.csv")
    front = ", ".join(result.frontier["candidate_id"]) if not result.frontier.empty else "(empty)"
    _say(f"frontier over seed means: {front}")
    _say(f"per-seed runs in {out}/seed_*/, summaries in {out}/multi_seed_summary.*")


def _print_result(result, out: Path) -> None:  # type: ignore[no-untyped-def]
    from edge_opt.reports.tables import candidate_table

    sweep = result.sweep_frame()
    rec = result.recommendation
    _print_table(
        candidate_table(sweep, rec["candidate_id"]),
        f"{out}/sweep_results.csv ({len(sweep.columns)} columns), report.md",
    )
    reasons: dict[str, list[str]] = {}
    for _, row in sweep[sweep["status"] != "ok"].iterrows():
        reasons.setdefault(f"{row['status']}: {row['error']}", []).append(row["candidate_id"])
    for reason, ids in reasons.items():
        _say(f"{reason} ({', '.join(ids)})")
    _say(f"recommended: {rec['candidate_id']} - {rec['reason']}")
    for warning in result.warnings:
        _say(f"warning: {warning}")
    _say(f"reports written to {out}/ (start with report.md and summary.json; log: run.log)")


def _print_quiet(result, out: Path) -> None:  # type: ignore[no-untyped-def]
    """--quiet: the answer and where the rest is, nothing else."""
    from edge_opt.orchestrate.multiseed import MultiSeedResult

    if isinstance(result, MultiSeedResult):  # several seeds: one recommendation per seed
        picks = ", ".join(
            f"seed {s}: {r.recommendation['candidate_id']}"
            for s, r in zip(result.seeds, result.runs, strict=True)
        )
        _say(f"recommended per seed: {picks}")
    else:
        rec = result.recommendation
        _say(f"recommended: {rec['candidate_id']} - {rec['reason']}")
        if result.warnings:
            _say(f"{len(result.warnings)} warning(s): see {out}/report.md")
    _say(f"reports written to {out}/")


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A finished run's output directory.")],
    verbose: VerboseOpt = False,
) -> None:
    """Rebuild every report file of a finished run from its run_result.json."""
    _setup_logging(verbose)
    from edge_opt.infra.rundir import describe_status
    from edge_opt.reports.writer import rebuild_reports

    try:
        paths, status = rebuild_reports(run_dir)
    except Exception as exc:
        _fail(exc, verbose)
    if status.get("status") in ("interrupted", "failed"):
        console.print(
            f"note: {describe_status(run_dir, status)}; rebuilt the previous complete run",
            markup=False,
            highlight=False,
        )
    out_console.print(f"rewrote {len(paths)} files in {run_dir}/", markup=False)


@app.command()
def compare(
    run_dirs: Annotated[
        list[Path], typer.Argument(help="Two or more finished runs; the first is the reference.")
    ],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Directory for comparison.md and comparison.html."),
    ] = Path("."),
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace comparison files already there.")
    ] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Compare finished runs: deltas with CIs, rank agreement, whether the pick changed."""
    _setup_logging(verbose)
    from edge_opt.reports.compare import check_comparison_output, compare_runs, write_comparison

    try:
        check_comparison_output(output, run_dirs, overwrite)  # before reading any run
        paths, markdown = write_comparison(compare_runs(run_dirs), output, overwrite)
    except Exception as exc:
        _fail(exc, verbose)
    out_console.print(markdown, markup=False, highlight=False, soft_wrap=True)
    out_console.print(f"written: {', '.join(str(p) for p in paths)}", markup=False)


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A finished run's output directory.")],
    candidate: Annotated[
        str | None, typer.Option("--candidate", "-c", help="Candidate id; default: recommended.")
    ] = None,
    fmt: Annotated[
        ExportFormat | None,
        typer.Option("--format", "-f", help="onnx, pte (ExecuTorch) or torchscript."),
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write.")] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Re-export a candidate of a finished run (ONNX, .pte or TorchScript); print its sha256."""
    _setup_logging(verbose)
    from edge_opt.deploy.export import export_candidate

    try:
        result = export_candidate(run_dir, candidate, fmt.value if fmt else None, output)
    except Exception as exc:
        _fail(exc, verbose)
    _say(
        f"{result.candidate_id}: {result.path} ({result.format}, {result.bytes} bytes, "
        f"sha256 {result.sha256}); {result.note}; sidecar {result.sidecar}"
    )


@app.command()
def predict(
    model: Annotated[Path, typer.Argument(help="An exported model: models/<id>.onnx or .pt.")],
    images: Annotated[list[Path], typer.Argument(help="PNG, JPEG or BMP files.")],
    sidecar: Annotated[
        Path | None, typer.Option("--sidecar", help="The model's sidecar; default <id>.json.")
    ] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Run an exported model on image files (preprocessed as its sidecar says): class and
    probability per image. For .onnx, torch is not needed."""
    _setup_logging(verbose)
    from edge_opt.deploy.predict import predict_images

    try:
        predictions = predict_images(model, images, sidecar)
    except Exception as exc:
        _fail(exc, verbose)
    for p in predictions:  # tab-separated: image, class name, probability, class index
        typer.echo(f"{p.image}\t{p.class_name}\t{p.probability:.4f}\t{p.class_index}")


@app.command()
def profile(
    config: ConfigArg, set_: SetOpt = None, quiet: QuietOpt = False, verbose: VerboseOpt = False
) -> None:
    """Profile the configured model operator by operator and write the profile artifacts."""
    _setup_logging(verbose, quiet)
    from edge_opt.config.loading import load_config
    from edge_opt.infra.runlog import log_to_file, stderr_to_file
    from edge_opt.reports.tables import operator_table

    try:
        cfg = load_config(config, set_ or [])
        log_path = Path(cfg.output_dir) / "profile" / "profile.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.unlink(missing_ok=True)
        # The profiler's kineto prints `USDT: ... profiler_start` lines to fd 2: into the log.
        with stderr_to_file(log_path) as terminal, log_to_file(log_path, "edge-opt profile"):
            console.file = terminal
            try:
                from edge_opt.orchestrate.preflight import profile_model

                table, folder = profile_model(cfg)
            finally:
                _console_to_stderr()
    except OSError as exc:
        _fail(EdgeOptError(_os_error_line(exc, None)), verbose)
    except Exception as exc:
        _fail(exc, verbose)
    if not quiet:
        rows = table.operator_profile[:20]
        _print_table(operator_table(rows, table.subject), f"{folder}/operator_profile.csv")
    t = table.totals
    util = "n/a" if t["stream_utilization"] is None else f"{t['stream_utilization']:.2%}"
    _say(
        f"totals: {t['latency_ms']:.4f} ms, {t['memory_kb']:.1f} KB, "
        f"{t['estimated_bandwidth_mb_s']:.1f} MB/s, stream utilisation {util}"
    )
    if not quiet:
        for key, sentence in table.edge_constraints.items():
            _say(f"{key}: {sentence}")
    _say(
        f"written to {folder}/ (operator_profile.csv, hardware_totals.csv, "
        "hardware_profile.json, profile.log)"
    )


def entrypoint() -> None:
    """Console-script entry point."""
    global _OWN_PROCESS
    _OWN_PROCESS = True
    try:
        app()
    except BrokenPipeError:  # e.g. `edge-opt validate ... | head`
        sys.exit(0)
    finally:
        # Everything is written: the interpreter's last garbage collection would only scan
        # what the process ends with anyway (1.3 s at the end of a default run, measured).
        gc.freeze()


# Set by the console script: the process is edge-opt's own (not a library caller or a test
# runner), so its garbage collector may be tuned for one run.
_OWN_PROCESS = False


def _collector_after_imports() -> None:
    """In edge-opt's own process, move what the imports made (torch, pandas, ...: hundreds of
    thousands of long-lived objects) out of the collector's scans: each full collection during
    the run then scans only what the run creates."""
    if _OWN_PROCESS:
        gc.collect()
        gc.freeze()


if __name__ == "__main__":
    entrypoint()
