"""The run directory: refusals, the lock, publishing, status after a dead process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge_opt.infra.rundir import locked_run_dir, open_run_dir
from edge_opt.infra.runstatus import (
    STATE_DIR,
    RunDirError,
    check_output_path,
    read_status,
    require_finished_run,
)


def _complete_run(out: Path, files: dict[str, str]) -> None:
    run_dir = open_run_dir(out)
    for rel, text in files.items():
        (run_dir.staging / rel).parent.mkdir(parents=True, exist_ok=True)
        (run_dir.staging / rel).write_text(text)
    run_dir.publish()
    run_dir.set_status("complete")
    run_dir.close()


@pytest.mark.parametrize("path", ["", "."])
def test_the_current_directory_is_refused(path: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RunDirError, match="is the current directory"):
        check_output_path(path)
    assert list(tmp_path.iterdir()) == []


def test_kernel_file_systems_and_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="under /proc, a kernel file system"):
        check_output_path("/proc/edge-opt-run")
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(RunDirError, match="exists and is not a directory"):
        check_output_path(afile)


def test_a_foreign_non_empty_directory_is_refused_and_left_alone(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("mine")
    with pytest.raises(RunDirError, match="is not empty and is not an edge-opt run"):
        open_run_dir(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis.tex"]


def test_a_refused_resume_leaves_nothing_behind(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="holds no interrupted run to resume"):
        open_run_dir(tmp_path / "new", resume=True)
    assert not (tmp_path / "new").exists()


def test_a_finished_run_needs_overwrite_and_survives_until_publish(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _complete_run(out, {"report.md": "old", "models/a.onnx": "A"})
    with pytest.raises(RunDirError, match="holds a finished run .*pass --overwrite"):
        open_run_dir(out)
    run_dir = open_run_dir(out, overwrite=True)
    assert (out / "report.md").read_text() == "old"  # kept while the new run works
    assert read_status(out)["status"] == "running"
    (run_dir.staging / "report.md").write_text("new")
    run_dir.publish()
    run_dir.close()
    assert (out / "report.md").read_text() == "new"
    assert not (out / "models").exists()  # the old run's file went, with its empty folder


def test_publish_never_deletes_a_file_edge_opt_did_not_write(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _complete_run(out, {"report.md": "old", "models/a.onnx": "A"})
    (out / "models" / "my_notes.txt").write_text("mine")
    (out / "notes.md").write_text("mine too")
    run_dir = open_run_dir(out, overwrite=True)
    (run_dir.staging / "report.md").write_text("new")
    (run_dir.staging / "notes.md").write_text("ours")  # collides with the user's file
    run_dir.publish()
    run_dir.close()
    assert (out / "models" / "my_notes.txt").read_text() == "mine"
    assert not (out / "models" / "a.onnx").exists()
    assert (out / "notes.md").read_text() == "ours"
    assert (out / STATE_DIR / "displaced" / "notes.md").read_text() == "mine too"


def test_a_second_process_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    run_dir = open_run_dir(tmp_path / "run")
    try:
        code = (
            "import sys\nfrom edge_opt.infra.rundir import open_run_dir, RunDirError\n"
            "try:\n    open_run_dir(sys.argv[1])\nexcept RunDirError as e:\n"
            "    print(e)\n    sys.exit(1)\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / "run")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 1
        assert f"in use by another edge-opt process (pid {os.getpid()})" in proc.stdout
    finally:
        run_dir.close()


def test_running_with_a_dead_pid_reads_as_interrupted(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_dir = open_run_dir(out, command=["edge-opt", "run", "cfg.yaml", "-o", str(out)])
    run_dir.stage("training")
    entry = run_dir.cache_root / "baseline" / "k"  # work it made: worth resuming
    entry.mkdir(parents=True)
    (entry / "meta.json").write_text("{}")
    run_dir.close()
    status = json.loads((out / "run_status.json").read_text())
    status["pid"] = 2**22 + 12345  # no such process
    (out / "run_status.json").write_text(json.dumps(status))
    seen = read_status(out)
    assert seen["status"] == "interrupted"
    assert seen["resume_command"] == f"edge-opt run cfg.yaml -o {out} --resume"
    with pytest.raises(RunDirError, match="interrupted during training.*--resume"):
        require_finished_run(out)
    with pytest.raises(RunDirError, match="did not finish .*--resume"):
        open_run_dir(out)
    resumed = open_run_dir(out, resume=True)
    assert resumed.mode == "resume"
    resumed.close()


def test_an_interrupted_publish_is_finished_by_the_next_open(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _complete_run(out, {"report.md": "old", "old_only.csv": "x"})
    run_dir = open_run_dir(out, overwrite=True)
    (run_dir.staging / "report.md").write_text("new")
    journal = {"new": ["report.md"], "old": ["report.md", "old_only.csv"]}
    (run_dir.state / "publish_journal.json").write_text(json.dumps(journal))
    run_dir._lock_fd and os.close(run_dir._lock_fd)  # the process "dies" mid-publish
    run_dir._lock_fd = None
    with locked_run_dir(out):
        pass
    assert (out / "report.md").read_text() == "new"
    assert not (out / "old_only.csv").exists()
    assert not (run_dir.state / "publish_journal.json").exists()


def test_a_finished_run_whose_status_file_was_deleted_is_still_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _complete_run(out, {"report.md": "old"})
    (out / "run_status.json").unlink()
    with pytest.raises(RunDirError, match="holds a finished run"):
        open_run_dir(out)
    assert (out / "report.md").read_text() == "old"


def test_a_publish_cut_short_is_finished_never_left_mixed(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "run"
    _complete_run(out, {"a.csv": "old", "b.csv": "old", "old_only.csv": "old"})
    run_dir = open_run_dir(out, overwrite=True)
    for name in ("a.csv", "b.csv"):
        (run_dir.staging / name).write_text("new")
    real_replace, calls = os.replace, {"n": 0}

    def crash_after_one(src, dst):  # the process dies after moving one file in
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    import edge_opt.infra.rundir as rundir

    monkeypatch.setattr(rundir.os, "replace", crash_after_one)
    with pytest.raises(OSError, match="No space left"):
        run_dir.publish()
    monkeypatch.setattr(rundir.os, "replace", real_replace)
    run_dir.close()
    assert (run_dir.staging / "b.csv").is_file()  # kept: the publish can still be finished
    with locked_run_dir(out) as locked:
        assert locked.status["status"] == "complete"
    assert (out / "a.csv").read_text() == "new"
    assert (out / "b.csv").read_text() == "new"
    assert not (out / "old_only.csv").exists()
    assert "finished by a later command" in read_status(out)["note"]


def test_a_folder_where_a_published_file_goes_is_moved_aside(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _complete_run(out, {"report.md": "old"})
    (out / "roofline.csv").mkdir()
    (out / "roofline.csv" / "inner.txt").write_text("mine")
    run_dir = open_run_dir(out, overwrite=True)
    (run_dir.staging / "roofline.csv").write_text("new")
    (run_dir.staging / "report.md").write_text("new")
    run_dir.publish()
    run_dir.close()
    assert (out / "roofline.csv").read_text() == "new"
    assert (out / STATE_DIR / "displaced" / "roofline.csv" / "inner.txt").read_text() == "mine"


def test_files_exported_into_a_run_are_replaced_with_it(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _complete_run(out, {"report.md": "old"})
    with locked_run_dir(out) as locked:
        (out / "models").mkdir()
        (out / "models" / "p50-int8-eager.pt").write_text("exported")
        locked.record_published(Path("models/p50-int8-eager.pt"))
    run_dir = open_run_dir(out, overwrite=True)
    (run_dir.staging / "report.md").write_text("new")
    run_dir.publish()
    run_dir.close()
    assert not (out / "models").exists()


def test_a_running_status_under_our_own_lock_is_stale(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _complete_run(out, {"run_result.json": "{}"})
    status = json.loads((out / "run_status.json").read_text())
    (out / "run_status.json").write_text(json.dumps({**status, "status": "running", "pid": 1}))
    assert read_status(out)["status"] == "running"  # pid 1 is alive: it looks in progress
    with locked_run_dir(out) as locked:  # but nobody else holds the lock
        assert read_status(locked.out, lock_held=True)["status"] == "interrupted"


def test_a_run_that_failed_before_making_anything_does_not_demand_resume(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_dir = open_run_dir(out)
    run_dir.set_status("failed", error="ConfigError: bad", stage="data")
    run_dir.close()
    again = open_run_dir(out)  # nothing cached, nothing published: nothing to protect
    assert again.mode == "new"
    again.close()
