from __future__ import annotations

import subprocess
import sys

import edge_opt


def test_import_is_light() -> None:
    code = (
        "import sys, edge_opt; heavy = [m for m in ('torch', 'matplotlib', 'typer', "
        "'onnxruntime') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_importing_stages_does_not_import_plotting_or_cli() -> None:
    code = (
        "import sys, edge_opt.orchestrate.pipeline, edge_opt.analysis.hardware; "
        "print([m for m in ('matplotlib', 'typer', 'onnxruntime') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_single_version_string() -> None:
    from importlib.metadata import version

    assert version("edge-opt") == edge_opt.__version__
