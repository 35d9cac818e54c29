"""Plugins: packages installed beside edge-opt that add runtimes, dataset formats and device
profiles through Python entry points, without touching edge-opt's files.

A plugin declares, in its ``pyproject.toml``::

    [project.entry-points."edge_opt.runtimes"]
    my-runtime = "my_package.runtime:SPEC"        # a RuntimeSpec, or a callable returning one

    [project.entry-points."edge_opt.datasets"]
    my-format = "my_package.formats:SPEC"         # a DatasetFormatSpec

    [project.entry-points."edge_opt.devices"]
    my-board = "my_package.boards:PROFILE"        # a HardwareProfile

An entry point may also name a list of them. A plugin that fails to import, gives an object of
the wrong kind or registers a name already taken is skipped, with one line naming the plugin
(``Registry.problems``); edge-opt's own entries always win.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

GROUPS = ("edge_opt.runtimes", "edge_opt.datasets", "edge_opt.devices")


@dataclass(frozen=True)
class PluginEntry:
    """One object a plugin's entry point gave, and where it came from."""

    obj: Any
    origin: str  # "plugin 'dist' (entry point 'name = module:attr')"


def _origin(ep: importlib.metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    name = getattr(dist, "name", None) or "unknown distribution"
    return f"plugin {name!r} (entry point '{ep.name} = {ep.value}')"


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r}) while being imported"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def load_group(group: str) -> tuple[list[PluginEntry], list[str]]:
    """Every object the installed plugins register in ``group``, and a line per failure."""
    entries: list[PluginEntry] = []
    problems: list[str] = []
    try:
        points = importlib.metadata.entry_points(group=group)
    except Exception as exc:  # a broken installation's metadata: say so, go on without
        return [], [f"{group}: cannot read the installed plugins ({_one_line(exc)})"]
    for ep in sorted(points, key=lambda e: (e.name, e.value)):
        origin = _origin(ep)
        try:
            obj = ep.load()
            if callable(obj) and not isinstance(obj, type) and not _is_spec(obj):
                obj = obj()
        except (Exception, SystemExit) as exc:  # a plugin's own bug must not stop edge-opt
            problems.append(f"{origin} failed to load: {_one_line(exc)}")
            continue
        items: Iterable[Any] = obj if isinstance(obj, list | tuple) else [obj]
        entries.extend(PluginEntry(item, origin) for item in items)
    return entries, problems


def _is_spec(obj: Any) -> bool:
    """A registry entry is a frozen dataclass instance with a ``name``: not to be called."""
    return hasattr(obj, "__dataclass_fields__") and hasattr(obj, "name")


PluginLoader = Callable[[str], tuple[list[PluginEntry], list[str]]]
