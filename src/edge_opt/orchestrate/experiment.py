"""What ``edge-opt run`` does, callable from Python: the pipeline and its reports, in a
protected run directory; one run, or one per seed when ``seeds`` is set.

Example:
    >>> from edge_opt.config import load_config
    >>> from edge_opt.orchestrate.experiment import run
    >>> result = run(load_config("configs/quick.yaml"))  # doctest: +SKIP
    >>> result.recommendation["candidate_id"]  # doctest: +SKIP
    'p50-int8-eager'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from edge_opt.candidates.record import CandidateResult
from edge_opt.compress.training import EpochStats
from edge_opt.config.schema import ExperimentConfig
from edge_opt.infra.cache import ArtifactCache
from edge_opt.infra.progress import NullProgress, Progress
from edge_opt.orchestrate.context import RunContext
from edge_opt.orchestrate.multiseed import MultiSeedResult, run_multi_seed
from edge_opt.orchestrate.pipeline import run_pipeline
from edge_opt.orchestrate.protect import protected_run, warn_config_change
from edge_opt.reports.result import RunResult
from edge_opt.reports.writer import write_reports

if TYPE_CHECKING:
    from edge_opt.infra.rundir import RunDir

CandidateCallback = Callable[[CandidateResult, int, int], None]


def run(
    cfg: ExperimentConfig,
    on_candidate: CandidateCallback | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
    *,
    overwrite: bool = False,
    resume: bool = False,
    command: Sequence[str] = ("edge-opt", "run"),
    opened: RunDir | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """``run_pipeline`` then ``write_reports``, in a protected run directory.

    The run is built in ``<output_dir>/.edge-opt/staging`` and published into ``output_dir``
    only when every report file exists; ``run_status.json`` says ``running`` (pid, stage) until
    then. A finished run is replaced only with ``overwrite`` (and stays until the new one
    completes); an interrupted one is continued with ``resume``, reusing the cached training,
    pruning, fine-tuning, conversion, export and accuracy, then timing every candidate again.

    Raises:
        EdgeOptError: a refused output directory, bad data, model or settings.
        KeyboardInterrupt: on Ctrl-C (the status says ``interrupted`` and how to resume).
    """
    with protected_run(cfg.output_dir, overwrite, resume, command, opened) as run_dir:
        warn_config_change(run_dir, cfg)
        context = RunContext(
            run_dir.staging,
            run_dir.tmp,
            ArtifactCache(run_dir.cache_root),
            run_dir.stage,
            progress or NullProgress(),
        )
        result = run_pipeline(cfg, on_candidate, on_epoch, context)
        run_dir.stage("reports")
        write_reports(result, run_dir.staging)
    return result


def run_experiment(
    cfg: ExperimentConfig,
    on_candidate: CandidateCallback | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
    *,
    overwrite: bool = False,
    resume: bool = False,
    command: Sequence[str] = ("edge-opt", "run"),
    opened: RunDir | None = None,
    progress: Progress | None = None,
) -> RunResult | MultiSeedResult:
    """What ``edge-opt run`` does: one run, or one per seed when ``seeds`` is set.

    ``opened``: the run directory, already opened with ``infra.rundir.open_run_dir`` (the CLI
    opens it before importing torch, so the status says ``running`` at once).
    ``progress``: how the long stages show how far they are (``infra.progress``).
    """
    options = {
        "overwrite": overwrite,
        "resume": resume,
        "command": command,
        "opened": opened,
        "progress": progress,
    }
    if cfg.seeds:
        return run_multi_seed(cfg, on_candidate, on_epoch, **options)
    return run(cfg, on_candidate, on_epoch, **options)
