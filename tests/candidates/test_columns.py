"""One column schema: the CSV header, the typed record's rows, the Markdown, HTML and terminal
tables and the docs' column table all come from ``candidates.columns``, and drift fails here."""

from __future__ import annotations

import ast
import csv
import re
from pathlib import Path

import pytest

from edge_opt.candidates.column_types import Kind
from edge_opt.candidates.columns import (
    COLUMNS,
    C,
    column,
    csv_columns,
    formatted,
    label,
    ordered,
    reference_table,
    schema_table,
)
from edge_opt.candidates.record import CandidateResult, records_frame
from edge_opt.reports import html, markdown
from edge_opt.reports.tables import candidate_table

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src" / "edge_opt"


def _csv_header(run: Path) -> list[str]:
    with (run / "sweep_results.csv").open(encoding="utf-8") as fh:
        return next(csv.reader(fh))


def test_names_are_unique_and_every_column_says_what_it_is() -> None:
    names = [c.name for c in COLUMNS]
    assert len(names) == len(set(names))
    for c in COLUMNS:
        assert c.label, c.name
        assert c.meaning, c.name
        assert isinstance(c.kind, Kind)


def test_the_csv_header_is_schema_columns_in_schema_order(small_run: Path) -> None:
    header = _csv_header(small_run)
    for name in header:
        spec = column(name)  # raises KeyError for a column the schema does not know
        assert spec.in_csv, f"{name} is a table's view, not a CSV column"
    assert header == ordered(header)
    # The identity columns lead, in the schema's order.
    assert header[:4] == [C.candidate_id, C.pruning_level, C.precision, C.runtime]


def test_every_column_a_record_writes_is_in_the_schema() -> None:
    failed = CandidateResult(
        candidate_id="p00-fp32-eager",
        pruning_level=0.0,
        precision="fp32",
        runtime="eager",
        status="failed",
        error="boom",
        parameter_count=None,
        macs_per_sample=None,
        fine_tune_epochs=0,
        metrics=None,
        test_accuracy=None,
        accepted=False,
        active_budget_mb=1.0,
        budget_violations={1.0: None},
    )
    frame = records_frame([failed])
    for name in frame.columns:
        assert column(name).in_csv, name
    assert list(frame.columns) == ordered(frame.columns)


def _column_references() -> set[str]:
    """Every ``C.<name>`` in the package's source."""
    names: set[str] = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "C"
            ):
                names.add(node.attr)
    return names


def test_every_column_the_code_names_exists() -> None:
    known = {c.name for c in COLUMNS if c.family is None}
    assert _column_references() <= known


@pytest.mark.parametrize("names", [markdown.CANDIDATE_TABLE, html.CANDIDATE_TABLE])
def test_report_tables_are_schema_columns_with_schema_labels(names) -> None:
    assert all(column(n).name == n for n in names)  # plain schema columns, no family
    assert [c.label for c in (html.schema_column(n) for n in names)] == [label(n) for n in names]


def test_markdown_table_headers_and_cells_come_from_the_schema(small_run: Path) -> None:
    report = (small_run / "report.md").read_text(encoding="utf-8")
    header = "| " + " | ".join(label(n) for n in markdown.CANDIDATE_TABLE[:3])
    assert header in report
    assert f"| {label(C.memory_mb)} |" in report or f" {label(C.memory_mb)} |" in report


def test_terminal_table_headers_are_schema_labels() -> None:
    import pandas as pd

    frame = pd.DataFrame([{C.candidate_id: "p00-fp32-eager", C.status: "failed"}])
    headers = [c.header for c in candidate_table(frame, None).columns]
    schema_labels = {c.label for c in COLUMNS}
    assert set(headers) <= schema_labels


def test_a_cell_is_scaled_formatted_and_cannot_split_a_row() -> None:
    spec = column(C.memory_mb)
    assert formatted(C.memory_mb, 0.5) == format(0.5 * spec.table_scale, spec.fmt)
    assert formatted(C.accuracy, None) == ""
    table = schema_table([{C.candidate_id: "a|b", C.error: "line\nbreak"}], [C.candidate_id])
    assert "a\\|b" in table
    assert len(table.strip().splitlines()) == 3


def test_families_name_their_members() -> None:
    family = next(c for c in COLUMNS if c.family == "budget")
    member = family.member("1")
    assert column(member) is family
    assert re.search(r"1", label(member))


def test_the_docs_column_table_is_the_schema() -> None:
    page = (REPO / "docs" / "outputs.md").read_text(encoding="utf-8")
    assert reference_table() in page
    assert len(csv_columns()) == reference_table().count("\n| `")
