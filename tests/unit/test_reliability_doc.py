"""docs/reliability.md is kept equal to the suite.

Its cases are the rows of its ``| case | command | exit | what the user sees |`` tables:
each says what the user runs, the exit status and the one line they see. Each table's
section names the test module that runs its cases, and each such module checks that
its table lists exactly its cases, in order (``test_the_reliability_doc_lists_every_case``).
This test holds the doc as a whole: at least :data:`AT_LEAST` cases, no id twice, every
module it names there, every case module listed, and no case showing a traceback.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"
HEADER = "| case | command | exit | what the user sees |"
AT_LEAST = 60
# the modules whose cases are rows (their table check is the test named below)
CASE_MODULES = (
    *sorted((ROOT / "tests" / "unit").glob("test_bad_input_*.py")),
    ROOT / "tests" / "unit" / "test_written_files.py",
    ROOT / "tests" / "sandbox" / "test_signals.py",
    ROOT / "tests" / "sandbox" / "test_bad_input.py",
)
TABLE_CHECK = "test_the_reliability_doc_lists_every_case"


def _sections() -> dict[str, str]:
    parts = re.split(r"^## (.+)$", DOC.read_text(), flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _case_tables() -> dict[str, list[list[str]]]:
    """Section title -> the cells of each row of its case table."""
    tables: dict[str, list[list[str]]] = {}
    for title, body in _sections().items():
        lines = body.splitlines()
        if HEADER not in lines:
            continue
        start = lines.index(HEADER) + 2
        rows = []
        for line in lines[start:]:
            if not line.startswith("| "):
                break
            rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
        tables[title] = rows
    return tables


def _defines(path: Path, name: str) -> bool:
    tree = ast.parse(path.read_text())
    return any(isinstance(n, ast.FunctionDef) and n.name == name for n in tree.body)


def _assigns(path: Path, name: str) -> bool:
    tree = ast.parse(path.read_text())
    return any(
        isinstance(n, ast.Assign) and any(getattr(t, "id", None) == name for t in n.targets)
        for n in tree.body
    )


def test_the_doc_holds_enough_cases_each_with_command_exit_and_line() -> None:
    tables = _case_tables()
    rows = [row for table in tables.values() for row in table]
    assert len(rows) >= AT_LEAST, f"{len(rows)} cases in {sorted(tables)}"
    ids = [row[0] for row in rows]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    for row in rows:
        assert len(row) == 4, row
        case, command, exit_status, line = row
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", case), case
        assert command, case
        assert exit_status.isdigit(), (case, exit_status)
        assert exit_status != "0", case  # bad input never passes
        assert line.startswith("`"), (case, line)
        assert line.endswith("`"), (case, line)
        assert "Traceback" not in line, case
        assert "INTERNALERROR" not in line, case


def test_each_case_table_names_the_module_that_runs_it() -> None:
    for title, body in _sections().items():
        if HEADER not in body:
            continue
        named = re.findall(r"`(tests/[\w/]+\.py)`", body.split(HEADER, 1)[0])
        assert named, f"section {title!r} names no test module"
        for module in named:
            assert (ROOT / module).is_file(), f"{title!r} names {module}, which does not exist"


def test_every_case_module_is_named_by_a_section_and_checks_its_table() -> None:
    text = "".join(body.split(HEADER, 1)[0] for body in _sections().values() if HEADER in body)
    for path in CASE_MODULES:
        module = str(path.relative_to(ROOT))
        assert f"`{module}`" in text, f"no case table names {module}"
        if _assigns(path, "CASES"):  # the others test the parts of a table's cases
            assert _defines(path, TABLE_CHECK), f"{module} does not check its table"
