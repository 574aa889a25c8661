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

import contextlib
import signal
import sys
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Final

import pytest

from pytest_cilium_upgrade.adapters.files import NotRegularFile, append_regular
from pytest_cilium_upgrade.adapters.helm.runner import end_running
from pytest_cilium_upgrade.checks import Status
from pytest_cilium_upgrade.gate.guards import (
    file_problems,
    redact_report,
    summary_origin,
    usage_redactor,
)
from pytest_cilium_upgrade.gate.inputs import input_problems
from pytest_cilium_upgrade.gate.items import (
    VIRTUAL_FILE,
    CheckItem,
    GateRoot,
    StepItem,
    phase_of,
    write_progress,
)
from pytest_cilium_upgrade.gate.order import (
    order_items,
    refuse_missing_steps,
    refuse_options,
    report_header,
)
from pytest_cilium_upgrade.gate.session import GateSession
from pytest_cilium_upgrade.gate.settings import Settings
from pytest_cilium_upgrade.gate.summary import Row, markdown_summary
from pytest_cilium_upgrade.marker import GATE_KEY, MARKER, marker_phase
from pytest_cilium_upgrade.upgrade.steps import INTERRUPTED_CLEANUP_S

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
        try:
            settings = Settings.from_config(config)
        except pytest.UsageError as exc:  # a value may be a --set item: never shown
            raise pytest.UsageError(usage_redactor(config).redact(str(exc))) from None
        # the files the gate writes: refused now, before any cluster work (gate.guards)
        problems = file_problems(settings)
        # the chart and values files it reads: refused now too (gate.inputs)
        problems += input_problems(settings)
        if problems:
            raise pytest.UsageError("\n".join(problems))
        self.gate = GateSession(settings)
        # xdist, --lf, --sw and the like: refused, naming the option (gate.order)
        refuse_options(config, perform=self.gate.settings.perform_upgrade)
        self.deselected: list[pytest.Item] = []
        self.items_modified = False  # our pytest_collection_modifyitems ran to its end
        self.gate.progress = lambda line: write_progress(config, self.gate.redact(line))
        config.stash[GATE_KEY] = self.gate
        self._sigterm = signal.getsignal(signal.SIGTERM)
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

    @pytest.hookimpl(trylast=True)  # after any plugin that reorders items (pytest-randomly)
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        """Marked user checks narrowed by --cilium-phase; the phases and steps in order."""
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
        # user checks run in their phase (between the upgrade steps when performing)
        order_items(items, perform=settings.perform_upgrade)
        self.items_modified = True

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.deselected.extend(items)

    @pytest.hookimpl(tryfirst=True)  # before --co prints the items
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """The order again, after every plugin's hooks; a performed upgrade has every step."""
        if not self.items_modified:
            return  # collection failed (called from a `finally`): its error is the one to show
        perform = self.gate.settings.perform_upgrade
        order_items(session.items, perform=perform)
        if perform:
            refuse_missing_steps(self.config, session.items, self.deselected)

    def pytest_report_header(self, config: pytest.Config) -> str | None:
        return report_header(config, perform=self.gate.settings.perform_upgrade)

    # ------------------------------------------------------------------ reporting

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        redact_report(report, self.gate.redact)  # what the terminal and JUnit get
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
                redact = self.gate.redact
                terminalreporter.line(redact(f"{VIRTUAL_FILE}::{spec.node_id}: {result.summary}"))
                for detail in result.details:
                    terminalreporter.line(redact(f"    {detail}"))

    def pytest_keyboard_interrupt(self) -> None:
        """Ctrl-C or SIGTERM: end the helm commands still running, in any thread.

        API requests under way are abandoned: the snapshot's reader threads are never
        waited for (:class:`~pytest_cilium_upgrade.snapshot.workers.Workers`).
        """
        end_running()

    def pytest_unconfigure(self) -> None:
        self.gate.close()
        if self._sigterm is not None:  # None: a handler not set from Python, left as is
            signal.signal(signal.SIGTERM, self._sigterm)

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
        _write_summaries(session, gate, gate.redact(text))


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
    """Clean up after the scripted upgrade and say where it stopped if interrupted.

    After an interruption the clean-up has :data:`INTERRUPTED_CLEANUP_S` in all, and
    further signals meanwhile are ignored: a hanging API server or helm cannot hold the
    run past a CI's grace period, and a second Ctrl-C cannot cut the clean-up short.
    """
    flow = gate.flow
    running = flow.state.running
    interrupted = session.exitstatus == pytest.ExitCode.INTERRUPTED
    with contextlib.ExitStack() as stack:
        if interrupted and not gate.settings.dry_run:
            write_progress(
                session.config,
                f"cilium-upgrade: interrupted; cleaning up within {INTERRUPTED_CLEANUP_S:g}s",
            )
            stack.enter_context(_signals_ignored())
            stack.enter_context(flow.finishing_by(time.monotonic() + INTERRUPTED_CLEANUP_S))
        cleaned = flow.cleanup()
        if cleaned:
            gate.notes.append(cleaned)
        unlocked = flow.release_lock()
        if unlocked:
            gate.notes.append(unlocked)
        if running is not None or (interrupted and flow.state.pre_revision is not None):
            where = f"{VIRTUAL_FILE}::{running}" if running else "the checks"
            gate.notes.append(f"interrupted during {where}")
            gate.notes.append(flow.release_state())
            snapshot = gate.settings.values_snapshot
            if flow.state.snapshot_written:
                saved = f"the values saved before the upgrade are in {snapshot}"
            else:
                saved = f"no values were saved to {snapshot} by this run"
            gate.notes.append(f"{saved}; the pre-upgrade revision was {flow.state.pre_revision}")
    if flow.state.rolled_back:
        gate.notes.append(
            f"rolled back to revision {flow.state.pre_revision}: the upgrade "
            "did not pass; the job fails"
        )
    for note in gate.notes:
        write_progress(session.config, gate.redact(f"cilium-upgrade: {note}"))


def _write_summaries(session: pytest.Session, gate: GateSession, text: str) -> None:
    """Append the summary to its files; one that cannot be written fails the run.

    The paths were checked at start-up; what still goes wrong (the disk full, the
    directory removed meanwhile) is one line on the terminal. The verdict of the checks
    stands in the output and the JUnit report, but a run that passed exits 1: its
    summary is lost, and a job must not look green without it.
    """
    for target in gate.settings.summary_paths:
        try:
            append_regular(target, text)
        except OSError as exc:
            detail = str(exc) if isinstance(exc, NotRegularFile) else exc.strerror or str(exc)
            line = (
                f"cilium-upgrade: {summary_origin(gate.settings, target)}: cannot write the"
                f" summary to {target}: {detail}; the summary is lost"
            )
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
                line += " and the run fails, although the gate passed"
            reporter = session.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(line, red=True, bold=True)
            else:
                sys.stderr.write(line + "\n")


def _stop_on_sigterm() -> None:
    """SIGTERM (a CI cancel) ends the run like Ctrl-C, so that clean-up runs and the
    reports (JUnit, summary) are written."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, handler)


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    """SIGINT and SIGTERM do nothing inside (a Python handler: the processes started
    meanwhile get the default disposition back, as SIG_IGN would not give them)."""

    def ignore(signum: int, frame: object) -> None:
        pass

    previous = {sig: signal.signal(sig, ignore) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
