"""Checks made when the gate starts, before any cluster work.

:func:`file_problems` refuses a path of the files the gate writes (the values
snapshot, the state file, the Markdown summary and ``$GITHUB_STEP_SUMMARY``) that is a
directory, FIFO, socket or device, a summary path that is a symbolic link, and, for a
file this run is to write, a missing or read-only directory: one line per problem,
naming the option, where its value came from and the path, for a usage error.

:func:`usage_redactor` keeps the ``--set`` items out of the usage errors of the options.
:func:`redact_report` is applied to every report of a gate run (the terminal, JUnit and
the summary are written from the reports).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from pytest_cilium_upgrade.adapters.files import path_problem
from pytest_cilium_upgrade.gate.settings import Settings
from pytest_cilium_upgrade.options import GITHUB_STEP_SUMMARY_ENV, OPTIONS_BY_ATTR
from pytest_cilium_upgrade.redact import Redactor, set_item_secrets

__all__ = ["file_problems", "redact_report", "summary_origin", "usage_redactor"]


def summary_origin(settings: Settings, path: Path) -> str:
    """How the user named a summary path: the option and its source, or the variable."""
    if path == settings.summary:
        return f"{OPTIONS_BY_ATTR['summary'].flag} (from {settings.source_of('summary')})"
    return f"${GITHUB_STEP_SUMMARY_ENV}"


def file_problems(settings: Settings) -> list[str]:
    """What is wrong with the paths of the files the gate writes, one line each."""

    def origin(attr: str) -> str:
        return f"{OPTIONS_BY_ATTR[attr].flag} (from {settings.source_of(attr)})"

    writes_pre = settings.perform_upgrade or settings.phase in ("pre", "all")
    problems: list[str] = []
    written = settings.perform_upgrade or settings.write_snapshot
    snapshot = path_problem(Path(settings.values_snapshot), written=written)
    if snapshot is not None:
        problems.append(
            f"{origin('values_snapshot')}: cannot {'write' if written else 'read'} values"
            f" snapshot {settings.values_snapshot}: {snapshot}"
        )
    state = path_problem(Path(settings.state_file), written=writes_pre)
    if state is not None:
        problems.append(
            f"{origin('state_file')}: cannot {'write' if writes_pre else 'read'} state file"
            f" {settings.state_file}: {state}"
        )
    for path in settings.summary_paths:
        problem = path_problem(path, written=True, append=True)
        if problem is not None:
            problems.append(
                f"{summary_origin(settings, path)}: cannot write the summary to {path}: {problem}"
            )
    return problems


def _lines(raw: object) -> list[str]:
    if isinstance(raw, list | tuple):
        return [str(item) for item in raw]
    if isinstance(raw, str):
        return raw.splitlines()
    return []


def usage_redactor(config: pytest.Config, environ: Mapping[str, str] = os.environ) -> Redactor:
    """A redactor of the ``--set`` items from every source, for a usage error (the
    settings, and with them the session's redactor, do not exist yet)."""
    spec = OPTIONS_BY_ATTR["set"]
    items = _lines(config.getoption(spec.dest, default=None))
    if spec.env:
        items += _lines(environ.get(spec.env, ""))
    if spec.ini:
        with contextlib.suppress(ValueError, pytest.UsageError):
            items += _lines(config.getini(spec.ini))
    return Redactor.of(set_item_secrets(items))


def _redacted(value: Any, redact: Callable[[str], str]) -> Any:
    """``value`` as it is when it holds no secret, else its text redacted."""
    text = value if isinstance(value, str) else str(value)
    clean = redact(text)
    return value if clean == text else clean


def redact_report(
    report: pytest.TestReport | pytest.CollectReport, redact: Callable[[str], str]
) -> None:
    """Redact what a report carries to the terminal and to JUnit: the failure or skip
    text, the captured output and log sections, and the user properties."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        path, lineno, message = longrepr
        report.longrepr = (path, lineno, redact(message))
    elif longrepr is not None:
        report.longrepr = _redacted(longrepr, redact)
    report.sections = [(title, redact(content)) for title, content in report.sections]
    if isinstance(report, pytest.TestReport):
        report.user_properties = [
            (name, _redacted(value, redact)) for name, value in report.user_properties
        ]
