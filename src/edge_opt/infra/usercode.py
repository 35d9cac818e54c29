"""Importing the user's own code: a ``"module:function"`` or ``"file.py:function"`` reference
(a model or dataset factory), with one-line errors for whatever that code raises."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_opt.errors import EdgeOptError
from edge_opt.infra.stop import UserExit


def exception_line(exc: BaseException) -> str:
    """One line for an exception raised by user code (SystemExit included)."""
    if isinstance(exc, UserExit):
        return f"it called os._exit({exc.code!r}); a factory must return, not end the process"
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r}); a factory must return a model, not exit"
    text = " ".join(str(exc).split())
    text = text if len(text) <= 300 else text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load_callable(
    reference: str, field: str, error: type[EdgeOptError] = EdgeOptError
) -> Callable[..., Any]:
    """Resolve ``"package.module:function"`` or ``"path/to/file.py:function"``; ``field`` names
    the config key in errors (``model.factory``, ``dataset.factory``).

    Raises:
        error: one line naming the field, and what could not be found or what the import
            raised.
    """
    module_ref, sep, attr = reference.rpartition(":")
    if not sep or not module_ref or not attr:
        raise error(
            f"{field}: {reference!r} must look like 'package.module:function' or "
            "'path/to/file.py:function'"
        )
    if module_ref.endswith(".py"):
        path = Path(module_ref).expanduser().resolve()
        if not path.is_file():
            raise error(f"{field}: file {path} does not exist")
        spec = importlib.util.spec_from_file_location(f"edge_opt_user_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise error(f"{field}: cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # lets pickling and torch.fx find the classes
        try:
            spec.loader.exec_module(module)
        except (Exception, SystemExit) as exc:
            sys.modules.pop(spec.name, None)
            raise error(f"{field}: importing {path} failed: {exception_line(exc)}") from exc
    else:
        try:
            module = importlib.import_module(module_ref)
        except ImportError as exc:
            raise error(f"{field}: cannot import {module_ref!r} ({exc})") from None
        except (Exception, SystemExit) as exc:
            raise error(f"{field}: importing {module_ref!r} failed: {exception_line(exc)}") from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise error(f"{field}: {module_ref!r} has no callable {attr!r}")
    return factory
