"""The gate's collectors and items: the virtual ``cilium-upgrade`` file of the rootdir.

The built-in checks are collected as items ``cilium-upgrade::<phase>::<check>`` (no
test file needed), so ``--co``, ``-k``, ``-m`` and ``--deselect`` work on them like
on any test; with ``--cilium-perform-upgrade`` the upgrade's steps are items too,
in order. Each item finds the run's
:class:`~pytest_cilium_upgrade.gate.session.GateSession` in ``config.stash``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

import pytest

from pytest_cilium_upgrade import checks
from pytest_cilium_upgrade.checks import CheckResult, CheckSpec, Status
from pytest_cilium_upgrade.errors import GateError
from pytest_cilium_upgrade.gate.session import GateSession
from pytest_cilium_upgrade.marker import GATE_KEY, MARKER, marker_phase
from pytest_cilium_upgrade.phases import CHECK_PHASES, UPGRADE_PHASES, Phase
from pytest_cilium_upgrade.upgrade.steps import STEPS, Step, StepFailed, StepSkipped

__all__ = [
    "VIRTUAL_FILE",
    "CheckItem",
    "GateFile",
    "GateRoot",
    "PhaseCollector",
    "StepItem",
    "phase_of",
    "write_progress",
]

VIRTUAL_FILE: Final = "cilium-upgrade"


def write_progress(config: pytest.Config, line: str) -> None:
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


# ---------------------------------------------------------------------------- collectors


class GateRoot(pytest.Dir):  # type: ignore[misc]  # the documented way to add a virtual file
    """The rootdir, with the virtual ``cilium-upgrade`` file in front of its contents."""

    def collect(self) -> Iterator[pytest.Item | pytest.Collector]:
        yield GateFile.from_parent(self, path=self.path / VIRTUAL_FILE)
        yield from super().collect()


class GateFile(pytest.File):
    """The built-in checks, one collector per phase (and the upgrade steps when performing)."""

    def collect(self) -> Iterator[pytest.Collector]:
        settings = self.config.stash[GATE_KEY].settings
        phases = UPGRADE_PHASES if settings.perform_upgrade else settings.phases
        for phase in phases:
            yield PhaseCollector.from_parent(self, name=phase, phase=phase)


class PhaseCollector(pytest.Collector):
    """One phase: the upgrade's steps of that phase, then its checks."""

    def __init__(self, *, phase: Phase, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.phase = phase

    def collect(self) -> Iterator[pytest.Item]:
        for step in STEPS:
            if step.phase == self.phase:
                step_item = StepItem.from_parent(self, name=step.name, step=step)
                step_item.add_marker(pytest.mark.cilium_upgrade(phase=self.phase))
                yield step_item
        # the rollback runs the post checks again, against the release rolled back to
        check_phase: Phase = "post" if self.phase == "rollback" else self.phase
        if check_phase not in CHECK_PHASES:
            return
        extra: list[CheckSpec] = []
        for contributed in self.config.hook.pytest_cilium_upgrade_checks(config=self.config):
            extra.extend(contributed or ())
        # Duplicate ids are refused in pytest_collection_modifyitems: a UsageError
        # raised here would only be reported as a collection error.
        for spec in (*checks.checks_for_phase(check_phase), *extra):
            if spec.phase != check_phase:
                continue
            if self.phase == "rollback":
                spec = replace(spec, phase="rollback")
            item = CheckItem.from_parent(self, name=spec.check_id, spec=spec)
            item.add_marker(pytest.mark.cilium_upgrade(phase=self.phase))
            yield item


# ---------------------------------------------------------------------------- items


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
            message = flow.run_step(self.step)  # refused out of order
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
        write_progress(
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
        if isinstance(excinfo.value, GateError):  # its message is written for the user
            return redact(str(excinfo.value))
        return redact(str(super().repr_failure(excinfo, style=style)))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return (
            self.path,
            None,
            f"{VIRTUAL_FILE}::{self.step.phase}::{self.step.name}: {self.step.doc}",
        )


def _check_applies(gate: GateSession, phase: Phase) -> None:
    """In a performed upgrade, skip checks whose phase did not happen."""
    flow = gate.flow
    pending = flow.steps_pending_for(phase)
    if pending:
        # the items are sorted at collection; this holds the line at run time
        raise StepFailed(
            f"refusing to check {phase} before {', '.join(pending)}: the checks of a "
            "phase run after the upgrade's steps before them"
        )
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
        if isinstance(excinfo.value, StepFailed):  # run out of order
            return "\n".join([excinfo.value.summary, *(f"  {d}" for d in excinfo.value.details)])
        if isinstance(excinfo.value, GateError):  # its message is written for the user
            return str(excinfo.value)
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{VIRTUAL_FILE}::{self.spec.node_id}: {self.spec.description}"


def phase_of(item: pytest.Item) -> Phase | None:
    """The phase an item runs in: its check's or step's, or its marker's; None if unmarked."""
    if isinstance(item, CheckItem):
        return item.spec.phase
    if isinstance(item, StepItem):
        return item.phase
    marker = item.get_closest_marker(MARKER)
    return marker_phase(item, marker) if marker is not None else None
