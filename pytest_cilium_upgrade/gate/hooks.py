"""The gate's pytest hooks: :class:`GatePlugin`, registered by
:mod:`pytest_cilium_upgrade.plugin` only when ``--cilium-upgrade`` is given.

The plugin resolves the options into the run's
:class:`~pytest_cilium_upgrade.gate.session.GateSession` (kept in ``config.stash``
for the items and fixtures), aims collection at the virtual ``cilium-upgrade`` file
of :mod:`pytest_cilium_upgrade.gate.items`, narrows marked user checks to the chosen
phase, records a row per item and writes the summaries. Everything this module
imports (the checks, the model, the flow, the adapters behind the session) is loaded
only for a gate run, never by the other pytest runs of an environment that has the
plugin installed.
"""

from __future__ import annotations

import signal
from collections.abc import Generator
from pathlib import Path
from typing import Final

import pytest

from pytest_cilium_upgrade.checks import Status
from pytest_cilium_upgrade.gate.items import (
    VIRTUAL_FILE,
    CheckItem,
    GateRoot,
    StepItem,
    phase_of,
    write_progress,
)
from pytest_cilium_upgrade.gate.session import GateSession
from pytest_cilium_upgrade.gate.settings import Settings
from pytest_cilium_upgrade.gate.summary import Row, markdown_summary
from pytest_cilium_upgrade.marker import GATE_KEY, MARKER, marker_phase
from pytest_cilium_upgrade.phases import UPGRADE_PHASES

__all__ = ["GatePlugin"]


class GatePlugin:
    """The gate of one pytest run, holding its :class:`GateSession`.

    Built in ``pytest_configure``: it resolves the options (a bad value is a
    :class:`pytest.UsageError`), stores the session under
    :data:`~pytest_cilium_upgrade.marker.GATE_KEY` and aims collection at the rootdir,
    where :class:`~pytest_cilium_upgrade.gate.items.GateRoot` adds the virtual file.
    """

    name: Final = "cilium-upgrade-gate"

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.gate = GateSession(Settings.from_config(config))
        self.gate.progress = lambda line: write_progress(config, line)
        config.stash[GATE_KEY] = self.gate
        if self.gate.settings.perform_upgrade and not self.gate.settings.dry_run:
            _stop_on_sigterm()
        # Collect the virtual file from the rootdir, and only the paths named on the
        # command line besides it: testpaths (the project's own tests) are not the gate.
        self.explicit: list[Path] = []
        if config.args_source == pytest.Config.ArgsSource.ARGS:
            base = config.invocation_params.dir
            self.explicit = [(base / a.split("::")[0]).resolve() for a in config.args]
        root = str(config.rootpath)
        config.args = [*config.args, root] if self.explicit else [root]

    # ------------------------------------------------------------------ collection

    def pytest_ignore_collect(self, collection_path: Path) -> bool | None:
        path = collection_path.resolve()
        if path == self.config.rootpath:
            return None
        for wanted in self.explicit:
            if path == wanted or wanted in path.parents or path in wanted.parents:
                return None
        return True

    @pytest.hookimpl(tryfirst=True)
    def pytest_collect_directory(
        self, path: Path, parent: pytest.Collector
    ) -> pytest.Collector | None:
        if isinstance(parent, pytest.Session) and path == self.config.rootpath:
            return GateRoot.from_parent(parent, path=path)
        return None

    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        """Marked user checks narrowed by --cilium-phase; in a performed upgrade, in order."""
        _refuse_duplicate_checks(items)
        settings = self.gate.settings
        keep: list[pytest.Item] = []
        deselected: list[pytest.Item] = []
        for item in items:
            marker = item.get_closest_marker(MARKER)
            if (
                marker is not None
                and not isinstance(item, CheckItem | StepItem)
                and settings.phase not in ("all", marker_phase(item, marker))
            ):
                deselected.append(item)
            else:
                keep.append(item)
        if deselected:
            config.hook.pytest_deselected(items=deselected)
        items[:] = keep
        if settings.perform_upgrade:
            # user checks run in their phase, between the upgrade steps
            items.sort(key=lambda item: UPGRADE_PHASES.index(phase_of(item) or "pre"))

    # ------------------------------------------------------------------ reporting

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if not (report.when == "call" or report.skipped):
            return report
        phase = phase_of(item)
        if phase is None:
            return report
        if report.failed:
            self.gate.flow.state.failed_phases.add(phase)
        if isinstance(item, CheckItem | StepItem):
            name = item.spec.check_id if isinstance(item, CheckItem) else item.step.name
            if report.failed:
                status, text = "fail", str(report.longrepr).splitlines()[0]
            elif report.skipped:
                status = "skip"
                longrepr = report.longrepr
                text = str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)
                text = text.removeprefix("Skipped: ")
            else:
                status, text = getattr(item, "row_status", "pass"), getattr(item, "row_text", "")
            self.gate.rows.append(Row(phase, name, status, text))
        return report

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        warned = [(spec, r) for spec, r in self.gate.results() if r.status is Status.WARN]
        if warned:
            terminalreporter.section("cilium-upgrade warnings", yellow=True)
            for spec, result in warned:
                terminalreporter.line(f"{VIRTUAL_FILE}::{spec.node_id}: {result.summary}")
                for detail in result.details:
                    terminalreporter.line(f"    {detail}")

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        gate = self.gate
        if gate.settings.perform_upgrade:
            _finish_flow(session, gate)
        rows = gate.rows
        if not rows:
            return
        text = markdown_summary(
            rows, gate.properties("post" if gate.has("post") else "pre"), notes=gate.notes
        )
        for target in gate.settings.summary_paths:
            with open(target, "a", encoding="utf-8") as handle:
                handle.write(text)


def _refuse_duplicate_checks(items: list[pytest.Item]) -> None:
    seen: set[str] = set()
    for item in items:
        if not isinstance(item, CheckItem):
            continue
        if item.nodeid in seen:
            raise pytest.UsageError(
                f"two checks named {item.spec.node_id}; check ids must be unique"
            )
        seen.add(item.nodeid)


def _finish_flow(session: pytest.Session, gate: GateSession) -> None:
    """Clean up after the scripted upgrade and say where it stopped if interrupted."""
    flow = gate.flow
    running = flow.state.running
    cleaned = flow.cleanup()
    if cleaned:
        gate.notes.append(cleaned)
    unlocked = flow.release_lock()
    if unlocked:
        gate.notes.append(unlocked)
    if running is not None:
        gate.notes.append(f"interrupted during {VIRTUAL_FILE}::{running}")
        gate.notes.append(flow.release_state())
        gate.notes.append(
            f"the values saved before the upgrade are in {gate.settings.values_snapshot}; "
            f"the pre-upgrade revision was {flow.state.pre_revision}"
        )
    if flow.state.rolled_back:
        gate.notes.append(
            f"rolled back to revision {flow.state.pre_revision}: the upgrade "
            "did not pass; the job fails"
        )
    for note in gate.notes:
        write_progress(session.config, f"cilium-upgrade: {note}")


def _stop_on_sigterm() -> None:
    """SIGTERM (a CI cancel) ends the run like Ctrl-C, so that clean-up runs."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, handler)
