"""edge-opt: choose which compressed variant of a small CNN to ship to an edge device, and why.

Importing the package is cheap: it does not import torch, matplotlib, typer or onnxruntime.
The stages live in their own modules (``edge_opt.config``, ``edge_opt.data``, ...).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
