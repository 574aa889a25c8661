"""Reading the JUnit report of a gate sub-run (our own file, not untrusted input)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path


def junit_verdicts(path: Path, *, whole_failure: bool = True) -> dict[str, str]:
    """``classname::name`` of each testcase -> ``passed``, ``skipped: <message>``, or the
    failure: its whole report (``whole_failure``) or only its message."""
    out = {}
    for case in ET.parse(path).getroot().iter("testcase"):  # noqa: S314
        failure, skipped = case.find("failure"), case.find("skipped")
        key = f"{case.get('classname')}::{case.get('name')}"
        if failure is not None:
            message = failure.get("message", "")
            out[key] = (failure.text or message) if whole_failure else message
        elif skipped is not None:
            out[key] = "skipped: " + skipped.get("message", "")
        else:
            out[key] = "passed"
    return out
