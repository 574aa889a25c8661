"""The options table in the documentation is the one the option definitions produce."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pytest_cilium_upgrade.options import OPTIONS
from pytest_cilium_upgrade.tools.options_doc import (
    OPTIONS_TABLE_END,
    OPTIONS_TABLE_START,
    main,
    options_table_markdown,
    replace_options_table,
)

ROOT = Path(__file__).resolve().parents[2]
OPTIONS_DOC = ROOT / "docs" / "options.md"
README = ROOT / "README.md"
REGENERATE = (
    "python -m pytest_cilium_upgrade.tools.options_doc --update docs/options.md --update README.md"
)


def marked_section(text: str) -> str | None:
    """The text between the options-table markers, or None without markers."""
    start = text.find(OPTIONS_TABLE_START)
    end = text.find(OPTIONS_TABLE_END)
    if start < 0 and end < 0:
        return None
    assert 0 <= start < end, "options-table markers missing, doubled or out of order"
    assert text.count(OPTIONS_TABLE_START) == text.count(OPTIONS_TABLE_END) == 1
    return text[start + len(OPTIONS_TABLE_START) : end]


def test_table_lists_every_option_once() -> None:
    table = options_table_markdown()
    rows = table.splitlines()[2:]
    assert len(rows) == len(OPTIONS)
    for spec, row in zip(OPTIONS, rows, strict=True):
        assert row.startswith(f"| `{spec.flag}`")
        assert row.count(" | ") == 4  # five cells: no unescaped "|" inside one
        if spec.env:
            assert f"`{spec.env}`" in row
            assert f"`{spec.ini}`" in row


def test_options_doc_contains_the_table() -> None:
    doc = OPTIONS_DOC.read_text(encoding="utf-8")
    assert options_table_markdown() in doc, f"docs/options.md is out of date: run {REGENERATE}"
    section = marked_section(doc)
    assert section is not None
    assert section.strip() == options_table_markdown().strip()


def test_readme_contains_the_table_between_markers() -> None:
    if not README.exists():
        pytest.skip("no README.md")
    section = marked_section(README.read_text(encoding="utf-8"))
    if section is None:
        pytest.skip("README.md has no options-table markers")
    assert section.strip() == options_table_markdown().strip(), (
        f"README.md's options table is out of date: run {REGENERATE}"
    )


def test_replace_options_table() -> None:
    text = f"intro\n{OPTIONS_TABLE_START}\nold table\n{OPTIONS_TABLE_END}\noutro\n"
    replaced = replace_options_table(text)
    assert replaced == (
        f"intro\n{OPTIONS_TABLE_START}\n{options_table_markdown()}{OPTIONS_TABLE_END}\noutro\n"
    )
    assert replace_options_table(replaced) == replaced
    with pytest.raises(ValueError, match="options-table"):
        replace_options_table("no markers here")


def test_module_prints_the_table() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-W",
            "error",
            "-m",
            "pytest_cilium_upgrade.tools.options_doc",
            "--markdown",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert result.stdout == options_table_markdown()
    assert result.stderr == ""


def test_main_updates_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(f"# x\n{OPTIONS_TABLE_START}\n{OPTIONS_TABLE_END}\n", encoding="utf-8")
    assert main(["--update", str(doc)]) == 0
    assert marked_section(doc.read_text(encoding="utf-8")) == "\n" + options_table_markdown()
    assert capsys.readouterr().out == ""

    unmarked = tmp_path / "plain.md"
    unmarked.write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(SystemExit) as info:
        main(["--update", str(unmarked)])
    assert info.value.code == 2
    assert "no <!-- options-table:start -->" in capsys.readouterr().err


def test_main_needs_something_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "--markdown" in capsys.readouterr().err
