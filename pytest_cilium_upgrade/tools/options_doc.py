"""The Markdown table of the gate's options, for docs/options.md and the README.

``python -m pytest_cilium_upgrade.tools.options_doc --markdown`` prints the table;
``--update FILE`` rewrites the part of FILE between the options-table markers.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from pytest_cilium_upgrade.options import OPTIONS

__all__ = [
    "OPTIONS_TABLE_END",
    "OPTIONS_TABLE_START",
    "main",
    "options_table_markdown",
    "replace_options_table",
]

PROG: Final = "python -m pytest_cilium_upgrade.tools.options_doc"
OPTIONS_TABLE_START: Final = "<!-- options-table:start -->"
OPTIONS_TABLE_END: Final = "<!-- options-table:end -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def options_table_markdown() -> str:
    """The Markdown table of every option (ends with a newline)."""
    lines = [
        "| Option | Environment variable | ini key | Default | Meaning |",
        "|---|---|---|---|---|",
    ]
    for spec in OPTIONS:
        flags = " / ".join(f"`{flag}`" for flag in spec.flags)
        env = f"`{spec.env}`" if spec.env else "—"
        ini = f"`{spec.ini}`" if spec.ini else "—"
        cells = (flags, env, ini, spec.default_text(), spec.describe())
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def replace_options_table(text: str) -> str:
    """``text`` with the part between the options-table markers replaced by the table."""
    start = text.find(OPTIONS_TABLE_START)
    end = text.find(OPTIONS_TABLE_END)
    if start < 0 or end < start:
        raise ValueError(f"no {OPTIONS_TABLE_START} ... {OPTIONS_TABLE_END} section")
    head = text[: start + len(OPTIONS_TABLE_START)]
    return head + "\n" + options_table_markdown() + text[end:]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pytest_cilium_upgrade.tools.options_doc --markdown [--update FILE ...]``."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Print or update the Markdown table of the gate's options.",
    )
    parser.add_argument("--markdown", action="store_true", help="print the options table")
    parser.add_argument(
        "--update",
        action="append",
        default=[],
        metavar="FILE",
        help=f"rewrite the table between {OPTIONS_TABLE_START} and {OPTIONS_TABLE_END} in FILE",
    )
    args = parser.parse_args(argv)
    if not args.markdown and not args.update:
        parser.error("nothing to do: pass --markdown and/or --update FILE")
    if args.markdown:
        sys.stdout.write(options_table_markdown())
    for name in args.update:
        path = Path(name)
        try:
            path.write_text(replace_options_table(path.read_text(encoding="utf-8")), "utf-8")
        except (OSError, ValueError) as exc:
            parser.error(f"{name}: {exc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
