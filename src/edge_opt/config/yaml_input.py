"""Reading YAML written by people, strictly: every problem is one line, nothing is guessed.

PyYAML's ``safe_load`` keeps the last of two equal keys without a word, reads ``1e-3`` as a
string (YAML 1.1 floats need a dot) and expands anchors/aliases into structures that can be
exponentially larger than the file ("billion laughs"). This reader refuses duplicate keys,
reads exponent floats as YAML 1.2 does, and bounds the size of what a document expands to
before anything is built from it, so no error message can grow with the expansion.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

MAX_YAML_BYTES = 1 << 20  # a config is a few hundred bytes; 1 MiB is far beyond any real one
MAX_YAML_VALUES = 10_000  # scalars + lists + mappings after alias expansion
_MERGE_TAG = "tag:yaml.org,2002:merge"
# YAML 1.2 core floats that YAML 1.1 reads as strings: 1e-3, 1E9, -2.5e+4 (no dot needed).
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")


class YamlInputError(ValueError):
    """The text is not acceptable YAML; ``str(exc)`` is one line saying where and why."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that records duplicate keys and reads ``1e-3`` as a float."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[str] = []

    def _plain(self, node: yaml.ScalarNode, pattern: re.Pattern[str], read: Any) -> Any:
        # YAML 1.1 also reads 1:30 (= 90), 0x10, 0o17, 010 and 1_000 as numbers: a config
        # that says so is almost surely a typo, so only plain decimal digits are numbers here.
        text = str(self.construct_scalar(node))
        if not pattern.match(text):
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"{text!r} is not a plain decimal number (YAML 1.1 would read it as "
                f"{read(self, node)}); write it in decimal digits, or quote it",
                node.start_mark,
            )
        return read(self, node)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        return self._plain(node, _PLAIN_INT, yaml.SafeLoader.construct_yaml_int)

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        return self._plain(node, _PLAIN_FLOAT, yaml.SafeLoader.construct_yaml_float)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    "'<<' merge keys are not supported (a merged key and a written one would "
                    "silently override each other); write the keys out",
                    key_node.start_mark,
                )
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            try:
                seen = first_line.get(key)
            except TypeError:  # an unhashable key: PyYAML reports it itself
                continue
            if seen is None:
                first_line[key] = line
                continue
            where = f"line {line}" if seen == line else f"lines {seen} and {line}"
            self.duplicates.append(
                f"{key}: the key appears twice in one mapping ({where}); keep one "
                "(YAML would silently use the last)"
            )
        return super().construct_mapping(node, deep=deep)


_PLAIN_INT = re.compile(r"^[-+]?(0|[1-9][0-9]*)$")
_PLAIN_FLOAT = re.compile(
    r"^[-+]?(\.[0-9]+|[0-9]+\.?[0-9]*)([eE][-+]?[0-9]+)?$|^[-+]?\.(inf|Inf|INF)$|^\.(nan|NaN|NAN)$"
)
_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)
_StrictLoader.add_constructor("tag:yaml.org,2002:float", _StrictLoader.construct_yaml_float)
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789")
)


def _expanded_size_exceeds(node: yaml.Node, limit: int) -> bool:
    """Count nodes as the document would expand (an alias counts every time it is used)."""
    stack, count = [node], 0
    while stack:
        current = stack.pop()
        count += 1
        if count > limit:
            return True
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                stack += (key, value)
        elif isinstance(current, yaml.SequenceNode):
            stack += current.value
    return False


def _describe_yaml_error(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.reader.ReaderError):
        char = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return (
            f"the control character U+{char:04X} at offset {exc.position} is not allowed in "
            "YAML; remove it"
        )
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        context = f" ({exc.context})" if exc.context else ""
        where = f"line {mark.line + 1}, column {mark.column + 1}"
        return f"not valid YAML at {where}: {exc.problem}{context}"
    return f"not valid YAML: {' '.join(str(exc).split())}"


def load_yaml_text(text: str) -> Any:
    """Parse one YAML document strictly.

    Raises:
        YamlInputError: syntax error (with line and column), duplicate keys, or a document that
            expands to more than ``MAX_YAML_VALUES`` values.
    """
    try:
        loader = _StrictLoader(text)  # the reader rejects control characters here
    except yaml.YAMLError as exc:
        raise YamlInputError(_describe_yaml_error(exc)) from None
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as exc:
            raise YamlInputError(_describe_yaml_error(exc)) from None
        if node is None:
            return None
        if _expanded_size_exceeds(node, MAX_YAML_VALUES):
            raise YamlInputError(
                f"the document expands to more than {MAX_YAML_VALUES} values (anchors and "
                "aliases nested in each other?); a config needs far fewer: write the values "
                "out or remove the aliases"
            )
        try:
            data = loader.construct_document(node)
        except yaml.YAMLError as exc:
            raise YamlInputError(_describe_yaml_error(exc)) from None
        if loader.duplicates:
            raise YamlInputError("; ".join(loader.duplicates))
        return data
    finally:
        loader.dispose()


def read_text_file(path: Path, max_bytes: int = MAX_YAML_BYTES) -> str:
    """A small UTF-8 text file's contents (a leading BOM is dropped).

    Raises:
        YamlInputError: the file cannot be read, is too large, binary, or not UTF-8.
    """
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise YamlInputError(
                f"the file is {size} bytes; a config is at most {max_bytes} bytes: "
                "pass the YAML config, not a data file"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise YamlInputError(f"cannot read the file ({exc.strerror or exc})") from None
    if b"\x00" in data:
        raise YamlInputError(
            "the file is binary (it contains NUL bytes), not YAML text; pass the YAML config"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise YamlInputError(
            f"the file is not UTF-8 text: byte 0x{data[exc.start]:02x} on line {line} cannot be "
            "decoded; save the file as UTF-8"
        ) from None


def clip(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters, so no message grows with the input."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def clip_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters (a long container is only counted)."""
    if isinstance(value, (list, tuple, dict, set)) and len(value) > limit:
        return f"<{type(value).__name__} of {len(value)} items>"
    return clip(repr(value), limit)


def how_to_write(wanted: str | None, value: Any) -> str:
    """A "; write ..." hint for a value whose YAML type is wrong (empty if none applies).

    Args:
        wanted: what the field takes, in words (``"a whole number"``); None for no hint.
        value: the value as YAML read it.
    """
    if wanted is None:
        return ""
    if wanted == "a finite number":
        return "; .inf and .nan are not allowed: write a finite number"
    if isinstance(value, str):
        try:
            parsed = load_yaml_text(value)
        except YamlInputError:
            parsed = value
        if not isinstance(parsed, str):
            return f"; the quotes make it a string: write {clip(value)} without quotes"
        return f"; write {wanted}"
    if isinstance(value, bool):
        return f"; YAML reads yes/no/on/off/true/false as booleans: write {wanted}"
    if isinstance(value, float) and wanted == "a whole number":
        return "; write a whole number, without a decimal point or exponent"
    return f"; write {wanted}"
