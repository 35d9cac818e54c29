"""Rewrite the generated sections of docs/ (config keys, columns, registries) from the code.

Run: .venv/bin/python scripts/docs.py --write   (without --write: list the stale pages, exit 1
if any). tests/test_docs.py fails when a page is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

from edge_opt.reports.reference import render, stale_pages

DOCS = Path(__file__).resolve().parents[1] / "docs"


def main() -> int:
    if "--write" in sys.argv:
        for page in sorted(DOCS.rglob("*.md")):
            text = page.read_text(encoding="utf-8")
            new = render(text)
            if new != text:
                page.write_text(new, encoding="utf-8")
                print(f"rewrote {page.relative_to(DOCS.parent)}")
        return 0
    stale = stale_pages(DOCS)
    for page in stale:
        print(f"stale: {page.relative_to(DOCS.parent)} (run scripts/docs.py --write)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
