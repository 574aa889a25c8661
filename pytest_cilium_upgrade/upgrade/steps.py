"""The scripted, gated upgrade: each step is a pytest item between the check phases.

    prepare   save values, install the pre-flight release, wait for it
    pre       the pre checks (plugin)
    upgrade   uninstall the pre-flight, helm upgrade, wait for the rollout
    post      the post checks (plugin)
    rollback  when the upgrade or a post check failed: helm rollback, wait, checks

Steps raise :class:`StepFailed` with a one-line verdict and details. What they stand
on (adapters, state, the Lease, waits, the clean-up of a run) is
:class:`~pytest_cilium_upgrade.upgrade.flow.FlowBase`. The pre-flight release is
uninstalled whatever happens, unless asked to keep it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pytest_cilium_upgrade import checks, defaults
from pytest_cilium_upgrade.adapters.files import (
    ValuesUnreadable,
    read_values,
    write_values_snapshot,
)
from pytest_cilium_upgrade.checks import CheckParams, Status
from pytest_cilium_upgrade.phases import UPGRADE_PHASES, Phase
from pytest_cilium_upgrade.snapshot.read import read_release
from pytest_cilium_upgrade.upgrade.flow import INTERRUPTED_CLEANUP_S, FlowBase, FlowState
from pytest_cilium_upgrade.upgrade.outcomes import StepFailed, StepSkipped
from pytest_cilium_upgrade.upgrade.preflight_values import preflight_values
from pytest_cilium_upgrade.versions import Version

__all__ = [
    "INTERRUPTED_CLEANUP_S",
    "STEPS",
    "FlowState",
    "Step",
    "StepFailed",
    "StepSkipped",
    "UpgradeFlow",
]


@dataclass(frozen=True)
class Step:
    phase: Phase
    name: str
    doc: str
    run: Callable[[UpgradeFlow], str]

    @property
    def id(self) -> str:
        """``phase::name``, as in the item's node id."""
        return f"{self.phase}::{self.name}"


class UpgradeFlow(FlowBase):
    """Runs the steps, in the one order of :data:`STEPS`, with the session's adapters."""

    # ------------------------------------------------------------------ order
    def run_step(self, step: Step) -> str:
        """Run ``step`` after renewing the lock if due; refused unless every earlier step ran.

        The gate sorts the items into the order of :data:`STEPS`; this holds the line
        when something (a plugin, a rerun) runs them otherwise: a step runs once, and
        only after the steps before it.
        """
        ran = self.state.steps_run
        if step.id in ran:
            raise StepFailed(f"refusing to run {step.id} again: each step of the upgrade runs once")
        pending = [s.id for s in STEPS[: STEPS.index(step)] if s.id not in ran]
        if pending:
            raise StepFailed(
                f"refusing to run {step.id} before {', '.join(pending)}: the steps of the "
                "upgrade run in one order",
                ["something reordered or left out the gate's items; run it without them"],
            )
        ran.append(step.id)
        self.renew_lock()
        return step.run(self)

    def steps_pending_for(self, phase: Phase) -> list[str]:
        """The steps that run before the checks of ``phase`` and have not run yet.

        Those of the earlier phases and of ``phase`` itself (its steps come before
        its checks).
        """
        upto = UPGRADE_PHASES[: UPGRADE_PHASES.index(phase) + 1]
        return [s.id for s in STEPS if s.phase in upto and s.id not in self.state.steps_run]

    # ------------------------------------------------------------------ prepare
    def snapshot_values(self) -> str:
        """Save the live values (0600, atomic) and record the release revision."""
        self._need()
        s = self.settings
        reader = self._releases(s.release)  # the revision and the values from one reading
        snapshot = read_release(reader, self.ns, s.release)
        release = snapshot.release
        if release is None:
            raise StepFailed(f"release {s.release} not found in namespace {self.ns}")
        verdict = checks.release_deployed(snapshot, CheckParams(release=s.release))
        if verdict.status is Status.FAIL:
            raise StepFailed(f"refusing to upgrade: {verdict.summary}", verdict.details)
        self.state.pre_revision = release.revision
        self.state.pre_version = release.chart_version
        if not s.dry_run:
            self.lock.take()  # a second gated upgrade is refused meanwhile
        if s.dry_run:
            return (
                f"would save `helm get values {s.release} -n {self.ns}` to "
                f"{s.values_snapshot} (mode {defaults.VALUES_SNAPSHOT_MODE:04o}); "
                f"revision {release.revision}, chart {release.chart_version}"
            )
        values = reader.get_values(s.release, self.ns)
        outcome = write_values_snapshot(
            Path(s.values_snapshot), values, overwrite=s.overwrite_snapshot
        )
        self.state.snapshot_written = True
        return (
            f"values snapshot {s.values_snapshot} {outcome}; release {s.release} "
            f"revision {release.revision}, chart {release.chart_version}"
        )

    def _preflight_values(self) -> tuple[list[str], dict[str, Any]]:
        """What the pre-flight release is given, from the values snapshot (if readable)."""
        try:
            snapshot = read_values(Path(self.settings.values_snapshot))
        except ValuesUnreadable:
            snapshot = {}
        return preflight_values(snapshot)

    def install_preflight(self) -> str:
        """Install the pre-flight release of the target version."""
        _, helm, chart = self._need()
        s = self.settings
        if "prepare" in self.state.failed_phases:
            raise StepSkipped("an earlier prepare step failed; nothing is installed")
        sets, values = self._preflight_values()
        command = helm.install_command(
            s.preflight_release,
            chart,
            self.target,
            self.ns,
            values=values or None,
            set_values=sets,
            wait=False,
        )
        if s.dry_run:
            return "would run: " + self._plan(command)
        if self._release(s.preflight_release) is not None:
            raise StepFailed(
                f"a {s.preflight_release} release already exists in {self.ns}",
                [f"remove it first: helm uninstall {s.preflight_release} -n {self.ns}"],
            )
        self.state.preflight_installed = True
        helm.execute(command)
        return f"installed {s.preflight_release} (chart {self.target})"

    def wait_preflight(self) -> str:
        """Wait (watching) for the pre-flight DaemonSet and Deployment to be ready."""
        self._need()
        if self.settings.dry_run:
            return "would wait for the pre-flight DaemonSet and Deployment to be ready"
        if not self.state.preflight_installed:
            raise StepSkipped("this run installed no pre-flight release")
        deadline = time.monotonic() + self.settings.timeout
        done = [
            self._wait(
                "DaemonSet",
                defaults.PREFLIGHT_DAEMONSET,
                "pre-flight",
                deadline,
                defaults.PREFLIGHT_SELECTOR,
            ),
            self._wait(
                "Deployment",
                defaults.PREFLIGHT_DEPLOYMENT,
                "pre-flight validator",
                deadline,
                defaults.PREFLIGHT_DEPLOYMENT_SELECTOR,
                optional=True,
            ),
        ]
        return "; ".join(d for d in done if d)

    # ------------------------------------------------------------------ upgrade
    def uninstall_preflight(self) -> str:
        """Remove the pre-flight release (also when a check failed)."""
        _, helm, _ = self._need()
        s = self.settings
        command = helm.uninstall_command(
            s.preflight_release, self.ns, wait=True, timeout_s=s.timeout
        )
        if s.dry_run:
            return "would run: " + self._plan(command)
        if not self.state.preflight_installed:
            # never touch a pre-flight this run did not install (another run's, say)
            raise StepSkipped("this run installed no pre-flight release")
        if s.keep_preflight:
            raise StepSkipped(f"{s.preflight_release} kept (--cilium-keep-preflight)")
        if self._release(s.preflight_release) is None:
            self.state.preflight_removed = True
            return f"no {s.preflight_release} release to remove"
        helm.execute(command)
        self.state.preflight_removed = True
        return f"uninstalled {s.preflight_release}"

    def helm_upgrade(self) -> str:
        """helm upgrade with the saved values (never --reuse-values across minors)."""
        _, helm, chart = self._need()
        closed = self.gate_closed()
        if closed:
            raise StepSkipped(closed)
        s = self.settings
        command = helm.upgrade_command(
            s.release,
            chart,
            self.target,
            self.ns,
            values_files=[s.values_snapshot, *s.values_file],
            set_values=self.sets,
            wait=False,
            current_version=self.state.pre_version,
        )
        if s.dry_run:
            return "would run: " + self._plan(command)
        self.state.upgrade_attempted = True
        try:
            helm.execute(command)
        except BaseException:
            self.state.upgrade_failed = True
            raise
        finally:
            release = self._release(s.release)
            if release is not None and release.revision != self.state.pre_revision:
                self.state.upgraded_revision = release.revision
        return f"helm upgrade to {self.target}: revision {self.state.upgraded_revision}"

    def wait_rollout(self) -> str:
        """Wait (watching) for the agent, operator and envoy to roll out."""
        if self.settings.dry_run:
            return "would wait for the agent DaemonSet, operator and envoy to roll out"
        if not self.state.upgrade_attempted:
            raise StepSkipped("no upgrade was made")
        if self.state.upgrade_failed:
            # a rollout of what helm half-applied proves nothing: roll back at once
            raise StepSkipped("helm upgrade failed; nothing to wait for")
        return self._wait_components()

    def _wait_components(self) -> str:
        self._need()
        deadline = time.monotonic() + self.settings.timeout
        done = [
            self._wait(
                "DaemonSet", defaults.AGENT_DAEMONSET, "agent", deadline, defaults.AGENT_SELECTOR
            ),
            self._wait(
                "Deployment",
                defaults.OPERATOR_DEPLOYMENT,
                "operator",
                deadline,
                defaults.OPERATOR_SELECTOR,
            ),
            self._wait(
                "DaemonSet",
                defaults.ENVOY_DAEMONSET,
                "envoy",
                deadline,
                defaults.ENVOY_SELECTOR,
                optional=True,
            ),
        ]
        return "; ".join(d for d in done if d)

    # ------------------------------------------------------------------ rollback
    def rollback_needed(self) -> str | None:
        if self.settings.dry_run:
            return None
        if not self.state.upgrade_attempted or self.state.upgraded_revision is None:
            return None  # nothing was changed (helm refused before creating a revision)
        failed = self.state.failed_phases & {"upgrade", "post"}
        if not failed:
            return None
        return f"the {' and '.join(sorted(failed))} phase failed"

    def helm_rollback(self) -> str:
        """helm rollback to the revision recorded before the upgrade."""
        why = self.rollback_needed()
        if why is None:
            if not self.state.upgrade_attempted:
                raise StepSkipped("no upgrade was made; nothing to roll back")
            if self.state.upgraded_revision is None:
                raise StepSkipped("helm made no new revision; the release is unchanged")
            raise StepSkipped("the upgrade passed its checks; nothing to roll back")
        _, helm, _ = self._need()
        revision = self.state.pre_revision
        assert revision is not None
        release = self._release(self.settings.release)
        if release is not None:
            self.state.upgraded_revision = release.revision
        command = helm.rollback_command(self.settings.release, revision, self.ns, wait=False)
        helm.execute(command)
        self.state.rolled_back = True
        return f"rolled back to revision {revision} ({self.state.pre_version}) because {why}"

    def wait_rollback(self) -> str:
        """Wait (watching) for the previous version to roll out again."""
        if not self.state.rolled_back:
            raise StepSkipped("no rollback was made")
        return self._wait_components()

    def rollback_params(self, base: CheckParams) -> CheckParams:
        pre = self.state.pre_version
        return replace(
            base,
            target=None if pre is None else Version.parse(pre),
            recorded_revision=self.state.upgraded_revision,
        )


STEPS: tuple[Step, ...] = (
    Step(
        "prepare",
        "snapshot_values",
        "Save the live values and record the revision.",
        UpgradeFlow.snapshot_values,
    ),
    Step(
        "prepare",
        "install_preflight",
        "Install the pre-flight release of the target.",
        UpgradeFlow.install_preflight,
    ),
    Step(
        "prepare",
        "wait_preflight",
        "Wait for the pre-flight to be ready.",
        UpgradeFlow.wait_preflight,
    ),
    Step(
        "upgrade",
        "uninstall_preflight",
        "Remove the pre-flight release.",
        UpgradeFlow.uninstall_preflight,
    ),
    Step(
        "upgrade", "helm_upgrade", "helm upgrade with the saved values.", UpgradeFlow.helm_upgrade
    ),
    Step(
        "upgrade", "wait_rollout", "Wait for the new version to roll out.", UpgradeFlow.wait_rollout
    ),
    Step(
        "rollback", "helm_rollback", "Roll back when the upgrade failed.", UpgradeFlow.helm_rollback
    ),
    Step(
        "rollback",
        "wait_rollback",
        "Wait for the previous version to roll out.",
        UpgradeFlow.wait_rollback,
    ),
)
