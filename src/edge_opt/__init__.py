"""edge-opt: choose which compressed variant of a small CNN to ship to an edge device, and why.

Importing the package is cheap: it does not import torch, matplotlib, typer or onnxruntime.
The stages live in sub-packages named after the pipeline (``config``, ``data``, ``models``,
``compress``, ``runtimes``, ``candidates``, ``measure``, ``decide``, ``analysis``,
``orchestrate``, ``search``, ``deploy``, ``reports``; ``infra`` holds the run directory, cache
and logs). edge-opt v1's import paths (``edge_opt.hardware``, ``edge_opt.metrics``, ...) are
facades over them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
