"""The manual is true to the repository: every relative link, file and module it names exists,
every anchor it links to is a heading of its page, the generated reference sections are what
the code gives today, the site's navigation lists every page, and README.md stays a front door."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
import yaml

from edge_opt.config.reference import describe_fields
from edge_opt.infra.plugins import GROUPS
from edge_opt.reports.reference import MARKER, SECTIONS, stale_pages

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = sorted(DOCS.glob("*.md"))
MANUAL = [REPO / "README.md", *PAGES]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
# A path in backticks that names a file or folder of the repository.
REPO_PATH = re.compile(r"`((?:configs|benchmarks|scripts|examples|src|tests|docs)/[^`\s]*)`")
FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)


def _slugs(heading: str) -> set[str]:
    """The anchors a heading gets: GitHub's and MkDocs' (Python-Markdown's ``toc``)."""
    text = re.sub(r"`|\*|_(?=\W)|(?<=\W)_", "", heading.strip()).strip()
    github = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    mkdocs = re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", plain).strip().lower())
    return {github, mkdocs}


def _anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    anchors: set[str] = set()
    for line in text.splitlines():
        if line.startswith("#"):
            anchors |= _slugs(line.lstrip("#"))
    return anchors


def _prose(page: Path) -> str:
    return FENCE.sub("", page.read_text(encoding="utf-8"))


@pytest.mark.parametrize("page", MANUAL, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in LINK.findall(_prose(page)):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target}: no heading #{anchor} in {resolved.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


@pytest.mark.parametrize("page", MANUAL, ids=lambda p: str(p.relative_to(REPO)))
def test_every_file_named_exists(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    missing = [
        name
        for name in sorted(set(REPO_PATH.findall(text)))
        if not re.search(r"[<>*{}]", name) and not (REPO / name).exists()
    ]
    assert not missing, f"{page.name} names files that do not exist: {missing}"


DOTTED = re.compile(r"`(edge_opt(?:\.[A-Za-z_]\w*)+)")
SRC = REPO / "src"


def _module_file(parts: list[str]) -> Path | None:
    path = SRC.joinpath(*parts)
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _names_code(reference: str) -> bool:
    """``edge_opt.a.b`` is a module, or ``edge_opt.a.b.name`` a name its module defines or
    imports (an entry-point group such as ``edge_opt.devices`` is not code)."""
    if reference in GROUPS:
        return True
    parts = reference.split(".")
    for cut in range(len(parts), 0, -1):
        found = _module_file(parts[:cut])
        if found is not None:
            break
    else:
        return False
    rest = parts[cut:]
    if not rest:
        return True
    if len(rest) > 2:  # module.Class.attribute at most
        return False
    name = re.escape(rest[0])
    defined = (  # defined, imported, or re-exported lazily ("name": "module")
        rf"(def|class)\s+{name}\b|^{name}\s*[:=]|^\s+{name},?$|import .*\b{name}\b|\"{name}\":"
    )
    return re.search(defined, found.read_text(encoding="utf-8"), re.MULTILINE) is not None


@pytest.mark.parametrize("page", MANUAL, ids=lambda p: str(p.relative_to(REPO)))
def test_every_module_named_exists(page: Path) -> None:
    missing = sorted({r for r in DOTTED.findall(page.read_text()) if not _names_code(r)})
    assert not missing, f"{page.name} names code that does not exist: {missing}"


def test_generated_sections_are_current() -> None:
    stale = stale_pages(DOCS)
    assert not stale, (
        f"stale generated sections in {[p.name for p in stale]}: run "
        ".venv/bin/python scripts/docs.py --write"
    )


def test_every_generated_section_is_in_the_manual() -> None:
    found = {m.group("name") for page in PAGES for m in MARKER.finditer(page.read_text())}
    assert found == set(SECTIONS)


def test_every_config_key_is_documented() -> None:
    page = (DOCS / "configuration.md").read_text(encoding="utf-8")
    missing = [key for key, _, _ in describe_fields() if f"| `{key}` |" not in page]
    assert not missing


def test_the_site_navigation_lists_every_page() -> None:
    site = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    listed = []
    for entry in site["nav"]:
        listed += list(entry.values()) if isinstance(entry, dict) else [entry]
    assert sorted(listed) == sorted(p.name for p in PAGES)
    assert site["docs_dir"] == "docs"


def test_readme_is_a_front_door() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 400
    assert "make run" in readme
    assert "make test" in readme
    for page in PAGES:  # every page is reachable from the front door
        assert f"docs/{page.name}" in readme, f"README.md does not link docs/{page.name}"


def test_ci_runs_the_test_command_the_readme_gives() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci
    assert "make test" in (REPO / "README.md").read_text(encoding="utf-8")
