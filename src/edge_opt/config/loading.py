"""Reading a config: YAML (or ``--set`` overrides) in, one validated ``ExperimentConfig`` out.

Unknown keys are errors that name the closest valid key; bad values are errors that name the
field, the value and what is allowed, one line per problem (``ConfigError``)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ValidationError,
)

from edge_opt.config.reference import field_names
from edge_opt.config.schema import DATASET_NAMES, ExperimentConfig
from edge_opt.config.sections import (
    DATASET_SPEC_KEYS,
    NESTED_KEYS,
    DatasetSpec,
    RecoveryConfig,
    SearchConfig,
)
from edge_opt.config.yaml_input import (
    YamlInputError,
    clip,
    clip_repr,
    how_to_write,
    load_yaml_text,
    read_text_file,
)
from edge_opt.errors import ConfigError

RENAMED_KEYS = {
    "benchmark_iqr_threshold": "benchmark_iqr_threshold was replaced by benchmark_precision "
    "(the p50's 95% CI half-width relative to the p50, e.g. 0.02): IQR/median measures the "
    "spread of the latency distribution, which more samples do not shrink",
}


def _unknown_key_problems(keys: Iterable[str], valid: list[str], prefix: str = "") -> list[str]:
    problems = []
    for key in keys:
        if key in valid:
            continue
        if not prefix and key in RENAMED_KEYS:
            problems.append(f"{key}: {RENAMED_KEYS[key]}")
            continue
        close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(valid)}"
        problems.append(f"{prefix}{clip(str(key))}: unknown key{hint}")
    return problems


# pydantic error type -> what the value should have been (for the "write ..." hint)
_WANTED = {
    "int_type": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "finite_number": "a finite number",
}


_SECTIONS: dict[str, type[BaseModel]] = {"search": SearchConfig, "recovery": RecoveryConfig}


def _one_branch(errors: list[Any]) -> list[Any]:
    """A union's errors as the branch the value was written for: ``fine_tune_epochs`` is a
    number or a mapping, and a mapping's problems are its entries', not "not an integer". The
    branch names pydantic puts in the location (``constrained-int``, ``dict[...]``) go."""
    kept = []
    for err in errors:
        loc = list(err["loc"])
        if len(loc) > 1 and isinstance(loc[1], str) and ("[" in loc[1] or "constrained" in loc[1]):
            # An error inside the mapping branch (an entry's) or on a mapping value: the value
            # was written as a mapping.
            written_as_mapping = len(loc) > 2 or isinstance(err.get("input"), Mapping)
            if loc[1].startswith("dict[") != written_as_mapping:
                continue
            err = {**err, "loc": (loc[0], *loc[2:])}
        kept.append(err)
    return kept


def _format_validation_error(exc: ValidationError) -> list[str]:
    problems: list[str] = []
    errors = exc.errors()
    # A list whose items failed is also reported "too short after validation" (the bad items
    # are dropped first): that second line contradicts the first, so it is left out.
    with_bad_items = {err["loc"][0] for err in errors if len(err["loc"]) > 1}
    for err in _one_branch(errors):
        if err["type"] == "too_short" and err["loc"] and err["loc"][0] in with_bad_items:
            continue
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"]
        if err["type"] == "value_error":
            # Our own relation checks: already "field: value ..." lines.
            problems += msg.removeprefix("Value error, ").split("\n")
            continue
        field = str(err["loc"][0]) if err["loc"] else ""
        info = ExperimentConfig.model_fields.get(field)
        section = _SECTIONS.get(field)
        if section is not None and len(err["loc"]) > 1:
            info = section.model_fields.get(str(err["loc"][1]))
        hint = f" ({info.description})" if info and info.description else ""
        fix = how_to_write(_WANTED.get(err["type"]), err.get("input"))
        problems.append(f"{loc}: {msg}, got {clip_repr(err.get('input'))}{hint}{fix}")
    return problems


def _dataset_value(value: Any) -> tuple[Any, list[str]]:
    """``dataset`` checked on its own: a name stays a name; a mapping becomes a DatasetSpec
    (its problems as ``dataset.<key>`` lines; a bad one is replaced by the default so the
    rest of the config is still checked)."""
    if isinstance(value, str):
        return value, []
    if not isinstance(value, Mapping):
        return "fashion-mnist", [
            f"dataset: got {clip_repr(value)}; write a dataset name ({', '.join(DATASET_NAMES)}) "
            "or a mapping such as {format: imagefolder, path: DIR}"
        ]
    problems = _unknown_key_problems(value.keys(), list(DATASET_SPEC_KEYS), "dataset.")
    known = {k: v for k, v in value.items() if k in DATASET_SPEC_KEYS}
    try:
        spec = DatasetSpec(**known)
    except ValidationError as exc:
        for err in exc.errors():
            if err["type"] == "value_error":
                problems += err["msg"].removeprefix("Value error, ").split("\n")
                continue
            loc = ".".join(str(p) for p in ("dataset", *err["loc"]))
            fix = how_to_write(_WANTED.get(err["type"]), err.get("input"))
            problems.append(f"{loc}: {err['msg']}, got {clip_repr(err.get('input'))}{fix}")
        return "fashion-mnist", problems
    return spec, problems


def build_config(raw: Mapping[str, Any], source: str | None = None) -> ExperimentConfig:
    """Validate a mapping of config keys.

    Raises:
        ConfigError: listing every unknown key and every invalid value.
    """
    problems = _unknown_key_problems(raw.keys(), field_names())
    known = {k: v for k, v in raw.items() if k in ExperimentConfig.model_fields}
    for name, keys in NESTED_KEYS.items():
        if isinstance(known.get(name), Mapping):
            extra = _unknown_key_problems(known[name].keys(), list(keys), f"{name}.")
            problems += extra
            if extra:
                known[name] = {k: v for k, v in known[name].items() if k in keys}
    if "dataset" in known:
        dataset, dataset_problems = _dataset_value(known["dataset"])
        problems += dataset_problems
        known["dataset"] = dataset
    try:
        cfg = ExperimentConfig(**known)
    except ValidationError as exc:
        problems += _format_validation_error(exc)
        raise ConfigError(problems, source) from None
    if problems:
        raise ConfigError(problems, source)
    return cfg


def _takes_text(key: str) -> bool:
    info = ExperimentConfig.model_fields.get(key)
    return info is not None and info.annotation in (str, str | None, str | DatasetSpec)


def parse_override(text: str) -> tuple[str, Any]:
    """Parse one ``key=value`` override; the value is read as YAML (``[0, 0.5]``, ``true``,
    ``1e-3``), as if it were written in the file. A key whose value is text (``output_dir``,
    ``data_dir``, ``dataset``) keeps the text as given even if it looks like a number."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError([f"--set {clip_repr(text)}: expected KEY=VALUE, e.g. --set epochs=1"])
    try:
        parsed = load_yaml_text(value) if value.strip() else None
    except YamlInputError as exc:
        raise ConfigError([f"--set {key}: {exc}"]) from None
    if _takes_text(key) and isinstance(parsed, (bool, int, float)):
        parsed = value.strip()
    return key, parsed


def load_config(
    path: str | Path, overrides: Iterable[str] | Mapping[str, Any] = ()
) -> ExperimentConfig:
    """Read a YAML file into a validated, frozen ``ExperimentConfig``.

    Args:
        path: YAML file with a mapping of config keys (every key is optional).
        overrides: ``"key=value"`` strings (as given to ``--set``) or a mapping, applied last.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: the file is missing, too large, binary, not UTF-8 or not YAML, has a
            duplicate key or an alias expansion beyond ``MAX_YAML_VALUES``, or keys/values
            are invalid.

    Example:
        >>> cfg = load_config("configs/quick.yaml", ["epochs=1"])  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "no such file"
        raise ConfigError([f"{path}: {what}; pass a YAML config such as configs/default.yaml"])
    try:
        raw = load_yaml_text(read_text_file(path))
    except YamlInputError as exc:
        raise ConfigError([str(exc)], str(path)) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            [f"top level must be a mapping of keys, got {type(raw).__name__}"], str(path)
        )
    items = overrides.items() if isinstance(overrides, Mapping) else map(parse_override, overrides)
    pairs = list(items)
    try:
        return build_config(with_overrides(raw, pairs), str(path))
    except ConfigError as exc:  # a bad value that came from --set: say so, not only the file
        named = [k for k, _ in pairs if any(p.startswith((f"{k}:", f"{k}.")) for p in exc.problems)]
        if not named:
            raise
        raise ConfigError(exc.problems, f"{path} with --set {', '.join(named)}") from None


# A section written as one word stands for this key of its mapping (``model: SmallCNN``).
_SECTION_SHORTHAND = {"model": "name", "executor": "kind", "dataset": "name"}


def with_overrides(raw: Mapping[str, Any], pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """``raw`` with each (key, value) set; a dotted key of a section (``recovery.steps``)
    sets that one key inside the section and keeps its others."""
    merged = dict(raw)
    for key, value in pairs:
        head, dot, rest = key.partition(".")
        if not (dot and rest and head in NESTED_KEYS):
            merged[key] = value
            continue
        section = merged.get(head)
        if isinstance(section, str) and head in _SECTION_SHORTHAND:
            section = {_SECTION_SHORTHAND[head]: section}
        if section is None:
            section = {}
        if not isinstance(section, Mapping):
            merged[key] = value  # reported as an unknown key, naming it
            continue
        merged[head] = {**section, rest: value}
    return merged


def dump_config(cfg: ExperimentConfig) -> str:
    """The resolved config as YAML (written next to the outputs)."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
