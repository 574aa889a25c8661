"""The files the gate reads as given, checked when it starts: the chart, values files,
and the state file a post-only run reads.

:func:`input_problems` says what is wrong with ``--cilium-chart`` and
``--cilium-values-file`` before any cluster work, one line each, naming the option,
where its value came from and the file: a missing path, a file that is no chart, a
reference that is neither a path nor ``<repo>/<chart>``, a values file that cannot be
read or is not a YAML mapping. A dry run is refused the same way: it would print a
plan built on them. What only Helm can tell (a repository not added, a chart that
refuses the values) is left to the checks.
"""

from __future__ import annotations

from pathlib import Path

from pytest_cilium_upgrade.adapters.files import ValuesUnreadable, read_values
from pytest_cilium_upgrade.adapters.helm.chart_refs import ChartSourceError
from pytest_cilium_upgrade.adapters.helm.charts import ChartSource
from pytest_cilium_upgrade.errors import GateError
from pytest_cilium_upgrade.gate.settings import Settings
from pytest_cilium_upgrade.gate.state import UpgradeState
from pytest_cilium_upgrade.options import OPTIONS_BY_ATTR

__all__ = ["input_problems"]


def input_problems(settings: Settings) -> list[str]:
    """What is wrong with the chart and the values files this run would use."""

    def origin(attr: str) -> str:
        return f"{OPTIONS_BY_ATTR[attr].flag} (from {settings.source_of(attr)})"

    problems: list[str] = []
    # the chart is used by the pre phase (versions, render) and the upgrade
    if settings.perform_upgrade or "pre" in settings.phases:
        try:
            ChartSource.parse(settings.chart, settings.chart_repo)
        except ChartSourceError as exc:
            where = origin("chart")
            if settings.chart_repo is not None:
                where += f" with {origin('chart_repo')}"
            problems.append(f"{where}: {exc}")
    # the values files go into the upgrade (and its render); read now, never quoted
    if settings.perform_upgrade:
        for path in settings.values_file:
            try:
                read_values(Path(path))
            except ValuesUnreadable as exc:
                problems.append(f"{origin('values_file')}: {exc}")
    # a post-only run judges against what pre recorded: a malformed record is one line
    # now, not the same failure in every post check
    # (special files are refused by the checks of the files we write; never read them)
    if settings.phase == "post" and not settings.perform_upgrade and settings.state_file.is_file():
        try:
            UpgradeState.load(Path(settings.state_file))
        except GateError as exc:
            problems.append(f"{origin('state_file')}: {exc}")
    return problems
