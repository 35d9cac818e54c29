"""The run's log: library records, Python warnings and fd-2 output go to the file, not stderr."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from edge_opt.infra.runlog import log_to_file, stderr_to_file


def test_library_records_and_warnings_go_to_the_file(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    before = list(logging.getLogger().handlers)
    with log_to_file(log, "edge-opt run (new)"):
        logging.getLogger("torchao").warning("Failed to load _C_mxfp8.so")
        logging.getLogger().warning("Please consider pre-processing before quantization.")
        warnings.warn("torch.ao.quantization is deprecated", UserWarning, stacklevel=1)
    logging.getLogger("torchao").warning("after the block")  # no longer captured
    text = log.read_text()
    assert "INFO    edge_opt.run: edge-opt run (new)" in text
    assert "WARNING torchao: Failed to load _C_mxfp8.so" in text
    assert "WARNING root: Please consider pre-processing before quantization." in text
    assert "py.warnings" in text
    assert "torch.ao.quantization is deprecated" in text
    assert "after the block" not in text
    assert logging.getLogger().handlers == before


def test_an_error_ending_the_block_is_logged_with_its_traceback(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    with pytest.raises(RuntimeError, match="boom"), log_to_file(log):
        raise RuntimeError("boom")
    text = log.read_text()
    assert "ERROR   edge_opt.run: run stopped: RuntimeError: boom" in text
    assert "Traceback (most recent call last)" in text


def test_fd2_writes_of_c_code_and_children_go_to_the_file(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "run.log"
    with stderr_to_file(log) as terminal:
        os.write(2, b"USDT:2026-11-22 profiler_start\n")  # what kineto's C++ does
        subprocess.run(
            [sys.executable, "-c", "import sys; sys.stderr.write('child says hi\\n')"],
            check=True,
        )
        terminal.write("progress for a person\n")
    os.write(2, b"after the block\n")
    captured = capfd.readouterr().err
    text = log.read_text()
    assert "USDT:2026-11-22 profiler_start" in text
    assert "child says hi" in text
    assert "progress for a person" not in text
    assert "progress for a person" in captured
    assert "USDT" not in captured
    assert "child says hi" not in captured
    assert "after the block" in captured  # fd 2 is restored


def test_warnings_reach_the_file_when_capture_was_on_and_the_hook_replaced(
    tmp_path: Path,
) -> None:
    """``logging.captureWarnings(True)`` done earlier (the CLI does it) is a no-op the second
    time, even after something (pytest, catch_warnings) replaced the hook: the block must
    route warnings itself."""
    log = tmp_path / "run.log"
    logging.captureWarnings(True)
    try:
        with warnings.catch_warnings(record=True) as outer:
            warnings.simplefilter("always")
            with log_to_file(log):
                warnings.warn("inductor: copy construct from a tensor", UserWarning, stacklevel=1)
    finally:
        logging.captureWarnings(False)
    assert "inductor: copy construct from a tensor" in log.read_text()
    assert outer == []
