"""A small name -> object registry with a decorator that refuses duplicates (models, precisions)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind; ``kind`` appears in error messages."""

    def __init__(self, kind: str, error: type[Exception] = ValueError) -> None:
        self.kind = kind
        self._error = error
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering an entry under ``name``; a second use of a name is an error."""

        def decorator(entry: T) -> T:
            if name in self._entries:
                raise self._error(f"{self.kind} {name!r} is already registered; pick another name")
            self._entries[name] = entry
            return entry

        return decorator

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise self._error(
                f"{self.kind}: {name!r} is not a registered {self.kind}; "
                f"allowed: {', '.join(self.names())}"
            )
        return self._entries[name]

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries
