"""The ``edge-opt`` command: parse, call one library function, map errors to exit codes.

Exit codes: 0 success; 1 a problem with the config, data, model or run (one line per problem,
no traceback unless ``-v``); 2 bad command-line usage.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import warnings
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from edge_opt import __version__
from edge_opt.errors import ConfigError, EdgeOptError

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


def _setup_logging(verbose: bool) -> None:
    handler = RichHandler(console=console, show_path=verbose, markup=False)
    handler.setFormatter(logging.Formatter("%(message)s", datefmt="[%X]"))
    # Only edge-opt's own loggers speak at INFO; libraries (matplotlib, torch) stay at WARNING.
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    logging.getLogger("edge_opt").setLevel(logging.DEBUG if verbose else logging.INFO)
    if not verbose:
        # torch.ao.quantization is deprecated in torch 2.13 and says so on every call.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.ao")


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
    from edge_opt.config import dump_config, load_config
    from edge_opt.pipeline import preflight

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
    verbose: VerboseOpt = False,
) -> None:
    """Train (or load) the baseline, sweep pruning x precision, measure, and write the reports.

    The output directory is locked while the run lasts; reports appear in it only when the
    run completes. Ctrl-C or SIGTERM stop it; `--resume` continues it.
    """
    _setup_logging(verbose)
    from edge_opt.config import load_config
    from edge_opt.rundir import check_output_path, open_run_dir

    log = logging.getLogger("edge_opt")

    def on_candidate(result, index: int, total: int) -> None:  # type: ignore[no-untyped-def]
        if result.metrics is None:
            log.warning("[%d/%d] %s FAILED: %s", index, total, result.candidate_id, result.error)
            return
        m = result.metrics
        log.info(
            "[%d/%d] %-16s acc %.4f  p50 %.4f ms  p95 %.4f ms  %.1f KiB  %s (%.1f s)",
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
        from edge_opt.multiseed import MultiSeedResult
        from edge_opt.pipeline import run_experiment

        result = run_experiment(cfg, on_candidate=on_candidate, opened=opened)
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
    if isinstance(result, MultiSeedResult):
        _print_multi_seed(result, Path(cfg.output_dir))
    else:
        _print_result(result, Path(cfg.output_dir))


def _terminate_as_interrupt(_signum: int, _frame: object) -> None:
    # SIGTERM (kill, a scheduler's stop) behaves exactly like Ctrl-C: status, cleanup, message.
    raise KeyboardInterrupt


def _os_error_line(exc: OSError, output_dir: str | None) -> str:
    from edge_opt.rundir import read_status

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
    from edge_opt.rundir import read_status

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


def _print_multi_seed(result, out: Path) -> None:  # type: ignore[no-untyped-def]
    table = Table(title=f"candidates over seeds {result.seeds} (mean [95% CI])")
    for col in ("candidate", "accuracy", "p50 ms", "accepted share"):
        table.add_column(col, justify="left" if col == "candidate" else "right")

    def ci(row, metric: str, fmt: str) -> str:  # type: ignore[no-untyped-def]
        mean, low, high = (row[f"{metric}_{k}"] for k in ("mean", "ci95_low", "ci95_high"))
        return f"{mean:{fmt}} [{low:{fmt}}, {high:{fmt}}]"

    for _, row in result.summary.iterrows():
        table.add_row(
            row["candidate_id"],
            ci(row, "accuracy", ".4f"),
            ci(row, "latency_p50_ms", ".4f"),
            f"{row['accepted_share']:.2f}",
        )
    out_console.print(table)
    front = ", ".join(result.frontier["candidate_id"]) if not result.frontier.empty else "(empty)"
    out_console.print(f"frontier over seed means: {front}", markup=False)
    out_console.print(
        f"per-seed runs in {out}/seed_*/, summaries in {out}/multi_seed_summary.*", markup=False
    )


def _print_result(result, out: Path) -> None:  # type: ignore[no-untyped-def]
    sweep = result.sweep_frame()
    table = Table(title="candidates (accuracy on validation; latency per call, measured)")
    for col in ("candidate", "status", "accuracy", "p50 ms", "p95 ms", "KiB", "verdict"):
        table.add_column(
            col,
            justify="left" if col in ("candidate", "status", "verdict") else "right",
            no_wrap=col in ("candidate", "verdict"),
        )
    for _, row in sweep.iterrows():
        if row["status"] != "ok":
            table.add_row(row["candidate_id"], row["status"], "", "", "", "", "-")
            continue
        verdict = "accepted" if row["accepted"] else "rejected"
        if row["candidate_id"] == result.recommendation["candidate_id"]:
            verdict = "RECOMMENDED"
        table.add_row(
            row["candidate_id"],
            "ok",
            f"{row['accuracy']:.4f}",
            f"{row['latency_p50_ms']:.4f}",
            f"{row['latency_p95_ms']:.4f}",
            f"{row['model_size_bytes'] / 1024:.1f}",
            verdict,
        )
    out_console.print(table)
    reasons: dict[str, list[str]] = {}
    for _, row in sweep[sweep["status"] != "ok"].iterrows():
        reasons.setdefault(f"{row['status']}: {row['error']}", []).append(row["candidate_id"])
    for reason, ids in reasons.items():
        out_console.print(f"{reason} ({', '.join(ids)})", markup=False)
    rec = result.recommendation
    out_console.print(f"recommended: {rec['candidate_id']} - {rec['reason']}", markup=False)
    for warning in result.warnings:
        out_console.print(f"warning: {warning}", markup=False)
    out_console.print(
        f"reports written to {out}/ (start with report.md and summary.json)", markup=False
    )


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A finished run's output directory.")],
    verbose: VerboseOpt = False,
) -> None:
    """Rebuild every report file of a finished run from its run_result.json."""
    _setup_logging(verbose)
    from edge_opt.reporting import rebuild_reports
    from edge_opt.rundir import describe_status

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
    from edge_opt.export import export_candidate

    try:
        result = export_candidate(run_dir, candidate, fmt.value if fmt else None, output)
    except Exception as exc:
        _fail(exc, verbose)
    out_console.print(
        f"{result.candidate_id}: {result.path} ({result.format}, {result.bytes} bytes, "
        f"sha256 {result.sha256}); {result.note}",
        markup=False,
    )


@app.command()
def profile(config: ConfigArg, set_: SetOpt = None, verbose: VerboseOpt = False) -> None:
    """Profile the configured model operator by operator and write the profile artifacts."""
    _setup_logging(verbose)
    from edge_opt.config import load_config
    from edge_opt.pipeline import profile_model

    try:
        cfg = load_config(config, set_ or [])
        table, folder = profile_model(cfg)
    except Exception as exc:
        _fail(exc, verbose)
    ops = Table(title=f"operators of {table.subject} (per forward, profiler overhead included)")
    for col in ("operator", "latency ms", "memory KB", "calls"):
        ops.add_column(col, justify="left" if col == "operator" else "right")
    for row in table.operator_profile[:20]:
        ops.add_row(
            row["operator"],
            f"{row['latency_ms']:.4f}",
            f"{row['memory_kb']:.1f}",
            f"{row['calls']:g}",
        )
    out_console.print(ops)
    t = table.totals
    util = "n/a" if t["stream_utilization"] is None else f"{t['stream_utilization']:.2%}"
    out_console.print(
        f"totals: {t['latency_ms']:.4f} ms, {t['memory_kb']:.1f} KB, "
        f"{t['estimated_bandwidth_mb_s']:.1f} MB/s, stream utilisation {util}",
        markup=False,
    )
    for key, sentence in table.edge_constraints.items():
        out_console.print(f"{key}: {sentence}", markup=False)
    out_console.print(
        f"written to {folder}/ (operator_profile.csv, hardware_totals.csv, hardware_profile.json)",
        markup=False,
    )


def entrypoint() -> None:
    """Console-script entry point."""
    try:
        app()
    except BrokenPipeError:  # e.g. `edge-opt validate ... | head`
        sys.exit(0)


if __name__ == "__main__":
    entrypoint()
