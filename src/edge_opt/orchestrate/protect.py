"""A run inside its protected run directory: locked, logged to its run.log, published only
when complete, and its status recorded on every way out (``infra.rundir``)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from edge_opt.config.schema import ExperimentConfig
from edge_opt.infra.runlog import RUN_LOG, log_to_file
from edge_opt.infra.runstatus import now_iso
from edge_opt.infra.stop import check_stop

if TYPE_CHECKING:
    from edge_opt.infra.rundir import RunDir

log = logging.getLogger(__name__)


def warn_config_change(run_dir: RunDir, cfg: ExperimentConfig) -> None:
    """On a resume, say which config keys differ from the interrupted run's."""
    changed = [k for k in run_dir.remember_config(cfg.to_dict()) if k != "output_dir"]
    if changed:
        log.warning(
            "resuming with a config that differs from the interrupted run's in %s: the work "
            "these keys affect is done again (the cache keys differ), the rest is reused",
            ", ".join(changed),
        )


@contextlib.contextmanager
def protected_run(
    output_dir: str | Path,
    overwrite: bool,
    resume: bool,
    command: Sequence[str],
    opened: RunDir | None = None,
) -> Iterator[RunDir]:
    """Open and lock the run directory (or take ``opened``, already locked by the caller);
    publish its staging folder if the block completes.

    Every log record and Python warning of the block goes to the run's log (``run_dir.log``,
    published as ``run.log``; see ``infra.runlog``).

    On any exception the status records ``interrupted`` (Ctrl-C, SIGTERM) or ``failed`` with
    the error and the command that resumes; scratch space is removed on every exit path.
    """
    from edge_opt.infra.rundir import open_run_dir

    run_dir = opened or open_run_dir(
        output_dir, overwrite=overwrite, resume=resume, command=command
    )
    try:
        header = f"edge-opt run ({run_dir.mode}) in {run_dir.out}, pid {os.getpid()}"
        with log_to_file(run_dir.log, header):
            yield run_dir
        check_stop()  # a Ctrl-C swallowed in a finalizer still stops the run before publish
        shutil.copyfile(run_dir.log, run_dir.staging / RUN_LOG)  # published with the run
        run_dir.publish()
        run_dir.set_status("complete", stage="done", finished_at=now_iso())
    except BaseException as exc:
        _record_failure(run_dir, exc)
        raise
    finally:
        run_dir.close()


def _record_failure(run_dir: RunDir, exc: BaseException) -> None:
    state = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
    error = (
        "interrupted (Ctrl-C or SIGTERM)"
        if state == "interrupted"
        else (f"{type(exc).__name__}: {exc}")
    )
    with contextlib.suppress(OSError):  # a full disk must not hide the original error
        run_dir.set_status(state, error=error[:2000], stage=run_dir.status.get("stage"))
