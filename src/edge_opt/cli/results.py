"""Commands on a finished run or its files: ``report``, ``compare``, ``export``, ``predict``,
``profile``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edge_opt.cli.options import ConfigArg, ExportFormat, QuietOpt, SetOpt, VerboseOpt
from edge_opt.cli.output import (
    console,
    console_to_stderr,
    fail,
    os_error_line,
    out_console,
    print_table,
    say,
    setup_logging,
)
from edge_opt.errors import EdgeOptError
from edge_opt.infra.text import one_field

if TYPE_CHECKING:
    pass


def report(
    run_dir: Annotated[Path, typer.Argument(help="A finished run's output directory.")],
    verbose: VerboseOpt = False,
) -> None:
    """Rebuild every report file of a finished run from its run_result.json."""
    setup_logging(verbose)
    from edge_opt.infra.runstatus import describe_status
    from edge_opt.reports.writer import rebuild_reports

    try:
        paths, status = rebuild_reports(run_dir)
    except Exception as exc:
        fail(exc, verbose)
    if status.get("status") in ("interrupted", "failed"):
        console.print(
            f"note: {describe_status(run_dir, status)}; rebuilt the previous complete run",
            markup=False,
            highlight=False,
        )
    out_console.print(f"rewrote {len(paths)} files in {run_dir}/", markup=False)


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
    setup_logging(verbose)
    from edge_opt.reports.compare import check_comparison_output, compare_runs
    from edge_opt.reports.compare_render import write_comparison

    try:
        check_comparison_output(output, run_dirs, overwrite)  # before reading any run
        paths, markdown = write_comparison(compare_runs(run_dirs), output, overwrite)
    except Exception as exc:
        fail(exc, verbose)
    out_console.print(markdown, markup=False, highlight=False, soft_wrap=True)
    out_console.print(f"written: {', '.join(str(p) for p in paths)}", markup=False)


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
    allow_factory: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-factory",
            help="A model or dataset factory (module:function) of the run's config that may be "
            "imported to rebuild it; repeat for both. Without it, a factory-built run is refused.",
        ),
    ] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Re-export a candidate of a finished run (ONNX, .pte or TorchScript); print its sha256."""
    setup_logging(verbose)
    from edge_opt.deploy.export import export_candidate

    try:
        result = export_candidate(
            run_dir, candidate, fmt.value if fmt else None, output, allow_factory or ()
        )
    except Exception as exc:
        fail(exc, verbose)
    say(
        f"{result.candidate_id}: {result.path} ({result.format}, {result.bytes} bytes, "
        f"sha256 {result.sha256}); {result.note}; sidecar {result.sidecar}"
    )


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
    setup_logging(verbose)
    from edge_opt.deploy.predict import predict_images

    try:
        predictions = predict_images(model, images, sidecar)
    except Exception as exc:
        fail(exc, verbose)
    for p in predictions:  # tab-separated: image, class name, probability, class index
        # One line per image: a file name with a tab or newline is printed escaped.
        fields = (one_field(str(p.image)), one_field(p.class_name))
        typer.echo(f"{fields[0]}\t{fields[1]}\t{p.probability:.4f}\t{p.class_index}")


def profile(
    config: ConfigArg, set_: SetOpt = None, quiet: QuietOpt = False, verbose: VerboseOpt = False
) -> None:
    """Profile the configured model operator by operator and write the profile artifacts."""
    setup_logging(verbose, quiet)
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
                from edge_opt.reports.hardware_files import write_hardware_profile_artifacts

                table = profile_model(cfg)
                folder = Path(cfg.output_dir) / "profile"
                write_hardware_profile_artifacts(table, folder)
            finally:
                console_to_stderr()
    except OSError as exc:
        fail(EdgeOptError(os_error_line(exc, None)), verbose)
    except Exception as exc:
        fail(exc, verbose)
    if not quiet:
        rows = table.operator_profile[:20]
        print_table(operator_table(rows, table.subject), f"{folder}/operator_profile.csv")
    t = table.totals
    util = "n/a" if t["stream_utilization"] is None else f"{t['stream_utilization']:.2%}"
    say(
        f"totals: {t['latency_ms']:.4f} ms, {t['memory_kb']:.1f} KB, "
        f"{t['estimated_bandwidth_mb_s']:.1f} MB/s, stream utilisation {util}"
    )
    if not quiet:
        for key, sentence in table.edge_constraints.items():
            say(f"{key}: {sentence}")
    say(
        f"written to {folder}/ (operator_profile.csv, hardware_totals.csv, "
        "hardware_profile.json, profile.log)"
    )
