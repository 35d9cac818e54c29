"""``edge-opt validate`` and ``edge-opt run``."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from edge_opt.cli.options import (
    ConfigArg,
    OutputDirOpt,
    OverwriteOpt,
    QuietOpt,
    RefreshHostOpt,
    ResumeOpt,
    SetOpt,
    VerboseOpt,
)
from edge_opt.cli.output import (
    collector_after_imports,
    fail,
    log_candidate,
    os_error_line,
    out_console,
    print_interrupted,
    print_multi_seed,
    print_quiet,
    print_result,
    run_display,
    setup_logging,
    warn_plugin_problems,
)
from edge_opt.errors import ConfigError, EdgeOptError


def validate(config: ConfigArg, set_: SetOpt = None, verbose: VerboseOpt = False) -> None:
    """Print the resolved config, or every problem with it (exit 1)."""
    setup_logging(verbose)
    from edge_opt.config.loading import dump_config, load_config
    from edge_opt.orchestrate.preflight import preflight

    try:
        cfg = load_config(config, set_ or [])
        problems = preflight(cfg)
        if problems:
            raise ConfigError(problems, str(config))
    except Exception as exc:
        warn_plugin_problems()
        fail(exc, verbose)
    warn_plugin_problems()
    out_console.print(dump_config(cfg), end="", markup=False, highlight=False)


def run(
    config: ConfigArg,
    set_: SetOpt = None,
    output_dir: OutputDirOpt = None,
    resume: ResumeOpt = False,
    refresh_host_profile: RefreshHostOpt = False,
    overwrite: OverwriteOpt = False,
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
    setup_logging(verbose, quiet)
    from edge_opt.config.loading import load_config
    from edge_opt.infra.cpu import armv80_problem
    from edge_opt.infra.rundir import open_run_dir
    from edge_opt.infra.runstatus import check_output_path
    from edge_opt.infra.stop import stop_on_signals
    from edge_opt.orchestrate.executors.base import auto_cluster_problem

    overrides, command = _overrides_and_command(config, set_, output_dir, refresh_host_profile)
    with stop_on_signals():  # Ctrl-C and SIGTERM: recorded, never swallowed
        try:
            if output_dir is not None:
                check_output_path(output_dir)  # as typed: `-o ''` is refused as '', not as '.'
            cfg = load_config(config, overrides)
            warn_plugin_problems()
            # Before the run directory exists: an Armv8.0 core a torch build cannot run on.
            cpu_problem = armv80_problem(max(cfg.train_threads, cfg.benchmark_threads))
            cluster_problem = auto_cluster_problem(cfg.executor)
            if cpu_problem or cluster_problem:
                raise EdgeOptError(cpu_problem or cluster_problem)
            # Locked and marked `running` before torch is even imported.
            opened = open_run_dir(
                cfg.output_dir, overwrite=overwrite, resume=resume, command=command
            )
            with run_display(opened.log, quiet) as progress:
                from edge_opt.orchestrate.experiment import run_experiment
                from edge_opt.orchestrate.multiseed import MultiSeedResult

                collector_after_imports()

                result = run_experiment(
                    cfg, on_candidate=log_candidate, opened=opened, progress=progress
                )
        except OSError as exc:  # a full disk, a file-size limit, a vanished directory
            fail(
                EdgeOptError(os_error_line(exc, cfg.output_dir if "cfg" in locals() else None)),
                verbose,
            )
        except Exception as exc:
            fail(exc, verbose)
        except KeyboardInterrupt:
            print_interrupted(cfg.output_dir if "cfg" in locals() else None)
            raise typer.Exit(130) from None
    if quiet:
        print_quiet(result, Path(cfg.output_dir))
    elif isinstance(result, MultiSeedResult):
        print_multi_seed(result, Path(cfg.output_dir))
    else:
        print_result(result, Path(cfg.output_dir))


def _overrides_and_command(
    config: Path, set_: list[str] | None, output_dir: str | None, refresh_host_profile: bool
) -> tuple[list[str], list[str]]:
    """The config overrides the options mean, and the command that resumes this run (absolute
    paths: the resume command printed on an interrupt works from any directory)."""
    overrides = list(set_ or [])
    if output_dir is not None:
        overrides.append(f"output_dir={output_dir}")
    if refresh_host_profile:
        overrides.append("refresh_host_profile=true")
    command = ["edge-opt", "run", str(config.absolute()), *(f"--set={o}" for o in set_ or [])]
    if output_dir is not None:
        command += ["-o", os.path.abspath(output_dir) if output_dir.strip() else output_dir]
    return overrides, command
