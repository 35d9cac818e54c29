"""The shape docs/architecture.md promises, checked on the source: stage packages layered in
one direction, no import cycle between modules, no function past 80 lines or 12 parameters,
no module past 500 lines, and the run directory written only by the sink and the writers.

Read from the source text (``ast``), nothing imported."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "edge_opt"
# Bottom to top: a package may import only those before it (docs/architecture.md).
LAYERS = (
    "infra",
    "config",
    "models",
    "data",
    "compress",
    "runtimes",
    "measure",
    "candidates",
    "analysis",
    "decide",
    "search",
    "reports",
    "deploy",
    "orchestrate",
    "cli",
)
# edge-opt v1's documented signature, kept as a thin wrapper over SweepPlan (issue 19).
WIDE_BY_CONTRACT = {"orchestrate/sweep.py:run_sweep"}
# What may write files through edge_opt.infra.artifacts: the infrastructure, the writers, the
# run's sink, and a built candidate saving its own deployable file.
WRITERS = ("infra/", "reports/", "deploy/", "cli/", "orchestrate/context.py", "runtimes/base.py")


def _modules() -> dict[str, ast.Module]:
    return {
        path.relative_to(PACKAGE).as_posix(): ast.parse(path.read_text(encoding="utf-8"))
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def _imports(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n.startswith("edge_opt.")}


def _module_name(relative: str) -> str:
    dotted = "edge_opt." + relative.removesuffix(".py").replace("/", ".")
    return dotted.removesuffix(".__init__")


def test_packages_import_only_the_layers_below() -> None:
    wrong = []
    for relative, tree in _modules().items():
        own = relative.split("/")[0]
        if own not in LAYERS:
            continue  # the facades and errors.py at the top level
        for name in _imports(tree):
            other = name.split(".")[1]
            if other in LAYERS and LAYERS.index(other) > LAYERS.index(own):
                wrong.append(f"{relative} imports {name} ({own} is below {other})")
    assert not wrong, "\n".join(sorted(set(wrong)))


def test_no_import_cycle_between_modules() -> None:
    modules = _modules()
    known = {_module_name(r) for r in modules}
    graph: dict[str, set[str]] = defaultdict(set)
    for relative, tree in modules.items():
        source = _module_name(relative)
        for name in _imports(tree):
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != source and not source.startswith(name + "."):
                graph[source].add(name)  # a package's own __init__ is not a cycle
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(known):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles[:5]


def _functions(tree: ast.Module):
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def test_no_function_past_80_lines_or_12_parameters() -> None:
    long, wide = [], []
    for relative, tree in _modules().items():
        for fn in _functions(tree):
            where = f"{relative}:{fn.name}"
            lines = (fn.end_lineno or fn.lineno) - fn.lineno + 1
            if lines > 80:
                long.append(f"{where} ({lines} lines)")
            args = fn.args
            count = len(args.posonlyargs + args.args + args.kwonlyargs)
            count -= 1 if args.args and args.args[0].arg in ("self", "cls") else 0
            if count > 12 and where not in WIDE_BY_CONTRACT:
                wide.append(f"{where} ({count} parameters)")
    assert not long, long
    assert not wide, wide


def test_no_module_past_500_lines() -> None:
    large = [
        f"{path.relative_to(PACKAGE)} ({n})"
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 500
    ]
    assert not large, large


def test_only_the_sink_and_the_writers_write_run_files() -> None:
    writing = [
        relative
        for relative, tree in _modules().items()
        if "edge_opt.infra.artifacts" in {n.rpartition(".")[0] for n in _imports(tree)}
        and not relative.startswith(WRITERS)
    ]
    assert not writing, f"computation modules that write files: {writing}"
