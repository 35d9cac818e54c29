"""The manual's reference sections, generated from the code so they cannot drift: every config
key (from the schema), every column (from the column schema), and what each registry holds
(runtimes, deployable formats, dataset formats, devices, executors, samplers).

A page of ``docs/`` holds a generated section between ``<!-- generated:NAME -->`` and
``<!-- /generated:NAME -->``; ``scripts/docs.py --write`` rewrites them, and
``tests/test_docs.py`` fails when one is stale.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from edge_opt.candidates.columns import reference_table
from edge_opt.config.reference import describe_fields
from edge_opt.config.sections import (
    DatasetSpec,
    ExecutorSpec,
    ModelSpec,
    RecoveryConfig,
    SearchConfig,
)
from edge_opt.config.types import registry
from edge_opt.infra.registry import BUILT_IN
from edge_opt.runtimes.registry import FORMATS

MARKER = re.compile(
    r"(<!-- generated:(?P<name>[a-z-]+) -->\n)(?P<body>.*?)(<!-- /generated:(?P=name) -->)",
    re.DOTALL,
)
# Config keys whose values are a registry's names: the reference lists them.
REGISTRY_FIELDS = {
    "runtimes": "runtime",
    "precisions": "precision",
    "device": "device",
    "quantization_backend": "engine",
    "kind": "executor",
    "sampler": "sampler",
    "format": "dataset format",
}


def _built_in(kind: str) -> list[str]:
    """The names edge-opt itself registers under ``kind`` (the manual leaves plugins out)."""
    reg = registry(kind)
    return [name for name in reg.names() if reg.origin(name) == BUILT_IN]


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _registered(key: str) -> str:
    kind = REGISTRY_FIELDS.get(key)
    if kind is None:
        return ""
    names = _built_in(kind)
    if kind == "dataset format":
        names = [n for n in names if registry(kind).get(n).takes_path]
    return " Registered: " + ", ".join(f"`{n}`" for n in names) + "."


def config_keys() -> str:
    """Every top-level key: default and meaning (and the registered names it accepts)."""
    lines = ["| key | default | meaning |", "|---|---|---|"]
    for key, default, text in describe_fields():
        lines.append(f"| `{key}` | `{default}` | {_cell(text + _registered(key))} |")
    return "\n".join(lines)


def _section(prefix: str, model: type[BaseModel]) -> list[str]:
    lines = [f"| `{prefix}` key | default | meaning |", "|---|---|---|"]
    for name, info in model.model_fields.items():
        default: Any = info.get_default(call_default_factory=True)
        default = list(default) if isinstance(default, tuple) else default
        text = (info.description or "") + _registered(name)
        lines.append(f"| `{name}` | `{json.dumps(default)}` | {_cell(text)} |")
    return lines


def config_sections() -> str:
    """The keys of the nested sections (model, dataset, executor, search, recovery)."""
    parts: list[str] = []
    for prefix, model in (
        ("model", ModelSpec),
        ("dataset", DatasetSpec),
        ("executor", ExecutorSpec),
        ("search", SearchConfig),
        ("recovery", RecoveryConfig),
    ):
        parts += [f"**`{prefix}`**", "", *_section(prefix, model), ""]
    return "\n".join(parts).rstrip()


def runtimes() -> str:
    reg = registry("runtime")
    lines = [
        "| runtime | what it is | refuses | deployable | device node | extra |",
        "|---|---|---|---|---|---|",
    ]
    for name in _built_in(reg.kind):
        spec = reg.get(name)
        refuses = ", ".join(sorted(spec.unsupported)) or "-"
        extra = f"`edge-opt[{spec.extra}]`" if spec.extra else "-"
        lines.append(
            f"| `{name}` | {_cell(spec.description)} | {refuses} | {spec.export_format} | "
            f"{'yes' if spec.device_node else 'no'} | {extra} |"
        )
    return "\n".join(lines)


def deployable_formats() -> str:
    reg = registry("runtime")
    formats = FORMATS
    lines = [
        "| format | file | runs in | batch | `edge-opt predict` |",
        "|---|---|---|---|---|",
    ]
    for name in formats.names():
        f = formats.get(name)
        lines.append(
            f"| `{name}` | `{f.suffix}` | {f.runner} | {f.batch} | {'yes' if f.predict else 'no'} |"
        )
    writers = {n: reg.get(n).export_format for n in _built_in(reg.kind)}
    lines += ["", "Runtime -> format: " + ", ".join(f"`{n}` -> {f}" for n, f in writers.items())]
    return "\n".join(lines)


def dataset_formats() -> str:
    reg = registry("dataset format")
    lines = ["| format | reads | `path` | kwargs |", "|---|---|---|---|"]
    for name in _built_in(reg.kind):
        spec = reg.get(name)
        lines.append(
            f"| `{name}` | {_cell(spec.description)} | {'yes' if spec.takes_path else 'no'} | "
            f"{'yes' if spec.takes_kwargs else 'no'} |"
        )
    return "\n".join(lines)


def _figure(fig: Any) -> str:
    if fig.source == "unknown" or not math.isfinite(fig.value):
        return "unknown"
    return f"{fig.value:g} ({fig.source})"


def devices() -> str:
    reg = registry("device")
    lines = [
        "| device | what it is | bandwidth GB/s | fp32 GMAC/s | fp16 | int8 | power W |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in _built_in(reg.kind):
        p = reg.get(name)
        if p is None:
            lines.append(f"| `{name}` | this machine, measured when a run needs it | | | | | |")
            continue
        peaks = p.peak_gmacs
        lines.append(
            f"| `{name}` | {_cell(p.description)} | {_figure(p.memory_bandwidth_gbps)} | "
            f"{_figure(peaks['fp32'])} | {_figure(peaks['fp16'])} | {_figure(peaks['int8'])} | "
            f"{_figure(p.active_power_watts)} |"
        )
    return "\n".join(lines)


def executors() -> str:
    reg = registry("executor")
    lines = ["| `executor.kind` | what it does | extra |", "|---|---|---|"]
    for name in _built_in(reg.kind):
        kind = reg.get(name)
        extra = f"`edge-opt[{kind.extra}]`" if kind.extra else "-"
        lines.append(f"| `{name}` | {_cell(kind.description)} | {extra} |")
    return "\n".join(lines)


# The stage packages in the order a run meets them; then the infrastructure and the command.
PACKAGE_ORDER = (
    "config",
    "data",
    "models",
    "compress",
    "candidates",
    "runtimes",
    "measure",
    "decide",
    "analysis",
    "search",
    "orchestrate",
    "deploy",
    "reports",
    "infra",
    "cli",
)
PACKAGE = Path(__file__).resolve().parents[1]


def _summary(path: Path) -> str:
    """The first sentence of a module's docstring (read, not imported: no torch)."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    first = " ".join(doc.split("\n\n")[0].split())
    match = re.match(r"(.+?\.)(\s|$)", first)
    return match.group(1) if match else first


def _modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if p.name not in ("__init__.py", "__main__.py"))


def package_map() -> str:
    """Every package and module of ``edge_opt`` with the first sentence of its docstring."""
    lines = ["| package | module | what it holds |", "|---|---|---|"]
    for name in PACKAGE_ORDER:
        folder = PACKAGE / name
        lines.append(f"| **`{name}/`** | | {_cell(_summary(folder / '__init__.py'))} |")
        for module in _modules(folder):
            dotted = module.relative_to(folder).with_suffix("").as_posix().replace("/", ".")
            lines.append(f"| | `{dotted}` | {_cell(_summary(module))} |")
    top = sorted(p for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    lines.append("| **top level** | | edge-opt v1's import paths (facades) and the errors |")
    lines += [f"| | `{p.stem}` | {_cell(_summary(p))} |" for p in top]
    return "\n".join(lines)


SECTIONS: dict[str, Callable[[], str]] = {
    "config-keys": config_keys,
    "config-sections": config_sections,
    "columns": reference_table,
    "runtimes": runtimes,
    "deployable-formats": deployable_formats,
    "dataset-formats": dataset_formats,
    "devices": devices,
    "executors": executors,
    "package-map": package_map,
}


def render(text: str) -> str:
    """``text`` with every generated section written anew."""

    def fill(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in SECTIONS:
            raise KeyError(f"generated section {name!r} is unknown; known: {', '.join(SECTIONS)}")
        return f"{match.group(1)}{SECTIONS[name]()}\n{match.group(4)}"

    return MARKER.sub(fill, text)


def stale_pages(docs: Path) -> list[Path]:
    """The pages whose generated sections differ from what the code says now."""
    return [
        page
        for page in sorted(docs.rglob("*.md"))
        if render(page.read_text(encoding="utf-8")) != page.read_text(encoding="utf-8")
    ]
