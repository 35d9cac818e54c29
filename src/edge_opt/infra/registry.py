"""A registry: the one list of names of one kind (runtimes, precisions, dataset formats,
devices, executors, samplers, models), each with the facts its name implies.

``register`` refuses a name twice. A registry with an entry-point ``group`` also holds what
installed plugins add (``infra.plugins``), loaded the first time its names are asked for; a
plugin that fails, gives the wrong kind of object or takes a name already registered is left
out, with one line in ``problems()`` naming it. The config validates against ``names()``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

BUILT_IN = "edge-opt"
NAME_RULE = re.compile(r"[a-z][a-z0-9_]*(-[a-z0-9_]+)*")


def check_name(kind: str, name: object) -> None:
    """A registered name becomes part of candidate ids, column and file names: keep it plain.

    Raises:
        ValueError: naming the rule.
    """
    if not isinstance(name, str) or not NAME_RULE.fullmatch(name) or len(name) > 40:
        raise ValueError(
            f"{kind} name {name!r}: use lower-case letters, digits, '_' and single '-' (at most "
            "40 characters), starting with a letter"
        )


def _name_attribute(entry: Any) -> str:
    return str(entry.name)


class Registry(Generic[T]):
    """Named entries of one kind; ``kind`` appears in error messages."""

    def __init__(
        self,
        kind: str,
        error: type[Exception] = ValueError,
        *,
        group: str | None = None,
        entry_type: type | None = None,
        name_of: Callable[[Any], str] = _name_attribute,
    ) -> None:
        self.kind = kind
        self.group = group
        self._error = error
        self._entry_type = entry_type
        self._name_of = name_of
        self._entries: dict[str, T] = {}
        self._origins: dict[str, str] = {}
        self._problems: list[str] = []
        self._plugins_loaded = group is None

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering an entry under ``name``; a second use of a name is an error."""

        def decorator(entry: T) -> T:
            self.add(entry, name)
            return entry

        return decorator

    def add(self, entry: T, name: str | None = None, origin: str = BUILT_IN) -> T:
        """Register ``entry`` (under ``name``, or its own ``name``)."""
        key = name if name is not None else self._name_of(entry)
        if key in self._entries:
            raise self._error(
                f"{self.kind} {key!r} is already registered ({self._origins[key]}); pick "
                "another name"
            )
        self._entries[key] = entry
        self._origins[key] = origin
        return entry

    def _load_plugins(self) -> None:
        if self._plugins_loaded or self.group is None:
            return
        self._plugins_loaded = True
        from edge_opt.infra.plugins import load_group

        entries, problems = load_group(self.group)
        claims: dict[str, list[Any]] = {}
        for plugin in entries:
            problem = self._plugin_problem(plugin.obj, plugin.origin)
            if problem is not None:
                problems.append(problem)
                continue
            claims.setdefault(self._name_of(plugin.obj), []).append(plugin)
        for name, plugins in claims.items():
            if len(plugins) > 1:  # no plugin may win by the order entry points sort in
                origins = " and ".join(p.origin for p in plugins)
                problems.append(
                    f"{self.kind} {name!r} is registered by {origins}: all are left out "
                    "(uninstall all but one, or rename)"
                )
                continue
            self._entries[name] = plugins[0].obj
            self._origins[name] = plugins[0].origin
        self._problems.extend(problems)

    def _plugin_problem(self, obj: Any, origin: str) -> str | None:
        wanted = self._entry_type
        if wanted is not None and not isinstance(obj, wanted):
            return (
                f"{origin} gives a {type(obj).__name__}, not a {wanted.__name__}: it adds no "
                f"{self.kind}"
            )
        try:
            name = self._name_of(obj)
        except Exception:  # noqa: BLE001 - any object without a usable name is refused
            return f"{origin} gives a {self.kind} without a name: it adds nothing"
        if not name or not isinstance(name, str):
            return f"{origin} gives a {self.kind} without a name: it adds nothing"
        if name in self._entries:
            return (
                f"{origin} registers {self.kind} {name!r}, which {self._origins[name]} "
                "already registered: it is left out (give it another name)"
            )
        return None

    def get(self, name: str) -> T:
        self._load_plugins()
        if name not in self._entries:
            raise self._error(self.unknown(name))
        return self._entries[name]

    def unknown(self, name: object) -> str:
        """The one-line message for a name not registered: what is allowed, and why a plugin
        that might have added it is missing."""
        message = (
            f"{self.kind}: {name!r} is not a registered {self.kind}; "
            f"allowed: {', '.join(self.names())}"
        )
        if self._problems:
            message += f" ({'; '.join(self._problems)})"
        return message

    def names(self) -> list[str]:
        self._load_plugins()
        return list(self._entries)

    def origin(self, name: str) -> str:
        """``edge-opt`` for a built-in entry, else the plugin that registered it."""
        self._load_plugins()
        return self._origins[name]

    def problems(self) -> list[str]:
        """One line per plugin of this registry's group that was left out, and why."""
        self._load_plugins()
        return list(self._problems)

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._entries
