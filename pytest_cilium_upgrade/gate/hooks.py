"""The gate's pytest hooks, registered by :mod:`pytest_cilium_upgrade.plugin` only when
``--cilium-upgrade`` is given.

The built-in checks are collected as items ``cilium-upgrade::<phase>::<check>`` of a
virtual file in the rootdir (no test file needed), so ``--co``, ``-k``, ``-m`` and
``--deselect`` work on them like on any test; with ``--cilium-perform-upgrade`` the
upgrade's steps are items too, in order. Everything this module imports (the checks,
the model, the flow, the adapters behind the session) is loaded only for a gate run,
never by the other pytest runs of an environment that has the plugin installed.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pytest_cilium_upgrade import checks
from pytest_cilium_upgrade import options as settings
from pytest_cilium_upgrade.checks import CheckResult, CheckSpec, Status
from pytest_cilium_upgrade.errors import GateError
from pytest_cilium_upgrade.gate.session import GateSession
from pytest_cilium_upgrade.gate.summary import Row, markdown_summary
from pytest_cilium_upgrade.plugin import GATE_KEY, MARKER, PHASES, marker_phase
from pytest_cilium_upgrade.upgrade.steps import STEPS, Step, StepFailed, StepSkipped

VIRTUAL_FILE = "cilium-upgrade"
FLOW_PHASES = ("prepare", "pre", "upgrade", "post", "rollback")
ARGS_KEY = pytest.StashKey[list[Path]]()


def start(config: pytest.Config) -> None:
    """Resolve the options into the run's :class:`GateSession`, and aim collection."""
    resolved = settings.Settings.from_config(config)
    gate = GateSession(resolved)
    gate.progress = lambda line: _write_progress(config, line)
    config.stash[GATE_KEY] = gate
    if resolved.perform_upgrade and not resolved.dry_run:
        _stop_on_sigterm()
    # Collect the virtual file from the rootdir, and only the paths named on the
    # command line besides it: testpaths (the project's own tests) are not the gate.
    explicit: list[Path] = []
    if config.args_source == pytest.Config.ArgsSource.ARGS:
        base = config.invocation_params.dir
        explicit = [(base / a.split("::")[0]).resolve() for a in config.args]
    config.stash[ARGS_KEY] = explicit
    config.args = [*config.args, str(config.rootpath)] if explicit else [str(config.rootpath)]


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if ARGS_KEY not in config.stash:
        return None
    path = collection_path.resolve()
    if path == config.rootpath:
        return None
    for wanted in config.stash[ARGS_KEY]:
        if path == wanted or wanted in path.parents or path in wanted.parents:
            return None
    return True


@pytest.hookimpl(tryfirst=True)
def pytest_collect_directory(path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    config = parent.config
    if isinstance(parent, pytest.Session) and path == config.rootpath:
        return GateRoot.from_parent(parent, path=path)
    return None


# ---------------------------------------------------------------------------- collection


class GateRoot(pytest.Dir):  # type: ignore[misc]  # the documented way to add a virtual file
    """The rootdir, with the virtual ``cilium-upgrade`` file in front of its contents."""

    def collect(self) -> Iterator[pytest.Item | pytest.Collector]:
        yield GateFile.from_parent(self, path=self.path / VIRTUAL_FILE)
        yield from super().collect()


class GateFile(pytest.File):
    """The built-in checks, one collector per phase (and the upgrade steps when performing)."""

    def collect(self) -> Iterator[pytest.Collector]:
        gate = self.config.stash[GATE_KEY]
        phases = FLOW_PHASES if gate.settings.perform_upgrade else PHASES
        for phase in phases:
            if gate.settings.perform_upgrade or gate.settings.phase in ("all", phase):
                yield PhaseCollector.from_parent(self, name=phase)


class PhaseCollector(pytest.Collector):
    def collect(self) -> Iterator[pytest.Item]:
        for step in STEPS:
            if step.phase == self.name:
                step_item = StepItem.from_parent(self, name=step.name, step=step)
                step_item.add_marker(pytest.mark.cilium_upgrade(phase=self.name))
                yield step_item
        check_phase = "post" if self.name == "rollback" else self.name
        if check_phase not in PHASES:
            return
        extra: list[CheckSpec] = []
        for contributed in self.config.hook.pytest_cilium_upgrade_checks(config=self.config):
            extra.extend(contributed or ())
        # Duplicate ids are refused in pytest_collection_modifyitems: a UsageError
        # raised here would only be reported as a collection error.
        for spec in (*checks.checks_for_phase(check_phase), *extra):  # type: ignore[arg-type]
            if spec.phase != check_phase:
                continue
            if self.name == "rollback":
                spec = replace(spec, phase="rollback")  # type: ignore[arg-type]
            item = CheckItem.from_parent(self, name=spec.check_id, spec=spec)
            item.add_marker(pytest.mark.cilium_upgrade(phase=self.name))
            yield item


class StepItem(pytest.Item):
    """One step of the scripted upgrade (--cilium-perform-upgrade)."""

    def __init__(self, *, step: Step, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.step = step
        self.phase = step.phase

    def runtest(self) -> None:
        gate = self.config.stash[GATE_KEY]
        flow = gate.flow
        flow.state.running = f"{self.step.phase}::{self.step.name}"
        try:
            flow.renew_lock()
            message = self.step.run(flow)
        except StepSkipped as exc:
            flow.state.running = None
            pytest.skip(str(exc))
        except Exception:
            flow.state.running = None
            raise
        # an interruption (KeyboardInterrupt, SIGTERM) leaves `running` set for the report
        flow.state.running = None
        message = gate.redactor().redact(message)
        self.row_text = message
        self.user_properties.append(("step", message))
        self.add_report_section("call", "step", message)
        _write_progress(
            self.config, f"{VIRTUAL_FILE}::{self.step.phase}::{self.step.name}: {message}"
        )

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: Any = None,
    ) -> str:
        redact = self.config.stash[GATE_KEY].redactor().redact
        if isinstance(excinfo.value, StepFailed):
            lines = [excinfo.value.summary, *(f"  {d}" for d in excinfo.value.details)]
            return redact("\n".join(lines))
        if isinstance(excinfo.value, GateError):
            return redact(f"{type(excinfo.value).__name__}: {excinfo.value}")
        return redact(str(super().repr_failure(excinfo, style=style)))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return (
            self.path,
            None,
            f"{VIRTUAL_FILE}::{self.step.phase}::{self.step.name}: {self.step.doc}",
        )


def _write_progress(config: pytest.Config, line: str) -> None:
    """A live line on the terminal, also while a test's output is being captured."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or config.get_verbosity() < 0:
        return
    capture = config.pluginmanager.get_plugin("capturemanager")
    if capture is None:
        reporter.write_line(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


def _check_applies(gate: GateSession, phase: str) -> None:
    """In a performed upgrade, skip checks whose phase did not happen."""
    flow = gate.flow
    if gate.settings.dry_run:
        pytest.skip("dry run: nothing is checked")
    if phase == "post":
        closed = flow.gate_closed()
        if closed:
            pytest.skip(closed)
        if "upgrade" in flow.state.failed_phases:
            pytest.skip("the upgrade step failed; see the upgrade and rollback items")
    if phase == "rollback" and not flow.state.rolled_back:
        pytest.skip("no rollback was made")


class CheckFailed(Exception):
    def __init__(self, result: CheckResult) -> None:
        super().__init__(result.summary)
        self.result = result


class CheckItem(pytest.Item):
    """One built-in (or contributed) check."""

    def __init__(self, *, spec: CheckSpec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec

    def runtest(self) -> None:
        gate = self.config.stash[GATE_KEY]
        if gate.settings.perform_upgrade:
            _check_applies(gate, self.spec.phase)
        result = gate.run(self.spec)
        self.user_properties.extend(gate.properties(self.spec.phase).items())
        self.user_properties.append(("verdict", f"{result.status.value}: {result.summary}"))
        self.row_status, self.row_text = result.status.value, result.summary
        if result.details:
            self.add_report_section("call", "details", "\n".join(result.details))
        if result.status is Status.FAIL:
            raise CheckFailed(result)
        if result.status is Status.SKIP:
            pytest.skip(result.summary)

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: Any = None,
    ) -> str:
        if isinstance(excinfo.value, CheckFailed):
            result = excinfo.value.result
            return "\n".join([result.summary, *(f"  {d}" for d in result.details)])
        if isinstance(excinfo.value, GateError):
            return f"{type(excinfo.value).__name__}: {excinfo.value}"
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{VIRTUAL_FILE}::{self.spec.node_id}: {self.spec.description}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marked user checks narrowed by --cilium-phase; in a performed upgrade, in order."""
    _refuse_duplicate_checks(items)
    gate = config.stash[GATE_KEY]
    phase = gate.settings.phase
    keep: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        marker = item.get_closest_marker(MARKER)
        if (
            marker is not None
            and not isinstance(item, CheckItem | StepItem)
            and phase not in ("all", marker_phase(item, marker))
        ):
            deselected.append(item)
        else:
            keep.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
    items[:] = keep
    if gate.settings.perform_upgrade:
        # user checks run in their phase, between the upgrade steps
        items.sort(key=lambda item: FLOW_PHASES.index(_phase_of(item) or "pre"))


def _phase_of(item: pytest.Item) -> str | None:
    if isinstance(item, CheckItem):
        return item.spec.phase
    if isinstance(item, StepItem):
        return item.phase
    marker = item.get_closest_marker(MARKER)
    return marker_phase(item, marker) if marker is not None else None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    config = item.config
    if GATE_KEY not in config.stash or not (report.when == "call" or report.skipped):
        return report
    gate = config.stash[GATE_KEY]
    phase = _phase_of(item)
    if phase is None:
        return report
    if report.failed:
        gate.flow.state.failed_phases.add(phase)
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
        gate.rows.append(Row(phase, name, status, text))
    return report


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


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if GATE_KEY not in config.stash:
        return
    gate = config.stash[GATE_KEY]
    warned = [(spec, r) for spec, r in gate.results() if r.status is Status.WARN]
    if warned:
        terminalreporter.section("cilium-upgrade warnings", yellow=True)
        for spec, result in warned:
            terminalreporter.line(f"{VIRTUAL_FILE}::{spec.node_id}: {result.summary}")
            for detail in result.details:
                terminalreporter.line(f"    {detail}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if GATE_KEY not in config.stash:
        return
    gate = config.stash[GATE_KEY]
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
        _write_progress(session.config, f"cilium-upgrade: {note}")


def _stop_on_sigterm() -> None:
    """SIGTERM (a CI cancel) ends the run like Ctrl-C, so that clean-up runs."""
    import signal

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, handler)


__all__: Sequence[str] = ("CheckItem", "GateFile", "GateRoot", "StepItem", "start")
