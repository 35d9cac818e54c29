"""Print (or, with --write, update in README.md) the table of config keys.

The table is generated from the config's own field descriptions, so README and code agree;
tests/test_config.py fails when they drift. Run: .venv/bin/python scripts/config_table.py --write
"""

from __future__ import annotations

import sys
from pathlib import Path

from edge_opt.config.reference import describe_fields

START, END = "<!-- config-keys:start -->", "<!-- config-keys:end -->"
README = Path(__file__).resolve().parents[1] / "README.md"


def table() -> str:
    lines = ["| key | default | meaning |", "|---|---|---|"]
    lines += [f"| `{key}` | `{default}` | {text} |" for key, default, text in describe_fields()]
    return "\n".join(lines)


def main() -> None:
    if "--write" not in sys.argv:
        print(table())
        return
    text = README.read_text(encoding="utf-8")
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    README.write_text(f"{head}{START}\n{table()}\n{END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    main()
