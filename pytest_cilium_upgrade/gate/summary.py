"""The Markdown summary of a gate run (for ``$GITHUB_STEP_SUMMARY`` and CI artifacts)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

_ICONS = {
    "pass": "✅ pass",
    "warn": "⚠️ warn",
    "fail": "❌ fail",
    "skip": "⏭️ skip",
    "error": "💥 error",
}


@dataclass(frozen=True)
class Row:
    phase: str
    check: str
    status: str  # pass / warn / fail / skip / error
    summary: str


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip()


def markdown_summary(
    rows: Sequence[Row], properties: Mapping[str, str], notes: Sequence[str] = ()
) -> str:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    verdict = "blocked" if counts.get("fail") or counts.get("error") else "clear"
    lines = [f"## Cilium upgrade gate: {verdict}", ""]
    if properties:
        lines.append(" · ".join(f"**{k}** {_cell(v)}" for k, v in properties.items() if v))
        lines.append("")
    lines.append(", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no checks")
    for note in notes:
        lines += ["", f"> {_cell(note)}"]
    lines += ["", "| phase | check | result | verdict |", "|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row.phase} | `{row.check}` | {_ICONS.get(row.status, row.status)} "
            f"| {_cell(row.summary)} |"
        )
    return "\n".join(lines) + "\n"
