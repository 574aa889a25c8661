"""The scripted, gated upgrade: each step is a pytest item between the check phases.

    prepare   save values, install the pre-flight release, wait for it
    pre       the pre checks (plugin)
    upgrade   uninstall the pre-flight, helm upgrade, wait for the rollout
    post      the post checks (plugin)
    rollback  when the upgrade or a post check failed: helm rollback, wait, checks

Steps raise :class:`StepFailed` with a one-line verdict and details; waiting uses
watches with a deadline and reports progress (:mod:`.waits`), and the run holds the
namespace's upgrade Lease (:mod:`.lock`). The pre-flight release is uninstalled
whatever happens, unless asked to keep it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pytest_cilium_upgrade import checks, defaults
from pytest_cilium_upgrade.adapters.files import (
    ValuesUnreadable,
    read_values,
    write_values_snapshot,
)
from pytest_cilium_upgrade.checks import CheckParams, Status
from pytest_cilium_upgrade.errors import GateError
from pytest_cilium_upgrade.gate.settings import Settings
from pytest_cilium_upgrade.phases import Phase
from pytest_cilium_upgrade.redact import Redactor
from pytest_cilium_upgrade.snapshot.model import HelmRelease
from pytest_cilium_upgrade.snapshot.read import read_release
from pytest_cilium_upgrade.upgrade.lock import UpgradeLock
from pytest_cilium_upgrade.upgrade.outcomes import StepFailed, StepSkipped
from pytest_cilium_upgrade.upgrade.waits import Progress, RolloutWait

__all__ = ["STEPS", "FlowState", "Step", "StepFailed", "StepSkipped", "UpgradeFlow"]


@dataclass
class FlowState:
    """What the steps learned, for later steps, cleanup and the report."""

    pre_revision: int | None = None
    pre_version: str | None = None
    preflight_installed: bool = False
    preflight_removed: bool = False
    upgraded_revision: int | None = None
    upgrade_attempted: bool = False
    rolled_back: bool = False
    running: str | None = None
    failed_phases: set[str] = field(default_factory=set)
    planned: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Step:
    phase: Phase
    name: str
    doc: str
    run: Callable[[UpgradeFlow], str]


class UpgradeFlow:
    """Runs the steps with the session's adapters (``kube``: kube.Kube, ``helm``: helm.Helm)."""

    def __init__(
        self,
        settings: Settings,
        kube: Any,
        helm: Any,
        chart: Any,
        *,
        progress: Progress,
        redactor: Callable[[], Redactor],
        sets: Sequence[str] = (),
    ) -> None:
        self.sets = tuple(sets)
        self.settings = settings
        self.kube = kube
        self.helm = helm
        self.chart = chart
        self.progress = progress
        self.redactor = redactor
        self.state = FlowState()
        self.lock = UpgradeLock(kube, settings.namespace, self.lock_duration)

    # ------------------------------------------------------------------ helpers
    @property
    def ns(self) -> str:
        return self.settings.namespace

    @property
    def target(self) -> str:
        assert self.settings.target_version is not None
        return str(self.settings.target_version)

    def _need(self) -> None:
        if self.kube is None or self.helm is None or self.chart is None:
            raise StepFailed("cluster or helm not usable; see the pre checks for why")

    def _plan(self, command: Any) -> str:
        text: str = command.display(self.redactor())
        self.state.planned.append(text)
        return text

    def _release(self, name: str) -> HelmRelease | None:
        status = self.helm.status(name, self.ns)
        return HelmRelease.from_helm_status(status) if status is not None else None

    def gate_closed(self) -> str | None:
        closed = sorted(self.state.failed_phases & {"prepare", "pre"})
        if closed:
            return f"gate closed: the {' and '.join(closed)} phase failed; nothing was upgraded"
        return None

    # ------------------------------------------------------------------ the lock
    @property
    def lock_duration(self) -> int:
        """Long enough for any one step, renewed before each: a dead run frees it soon."""
        return int(max(120.0, 2 * self.settings.timeout + 60))

    def renew_lock(self) -> None:
        self.lock.renew()

    def release_lock(self) -> str | None:
        return self.lock.release()

    # ------------------------------------------------------------------ prepare
    def snapshot_values(self) -> str:
        """Save the live values (0600, atomic) and record the release revision."""
        self._need()
        s = self.settings
        snapshot = read_release(self.helm, self.ns, s.release)
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
        values = self.helm.get_values(s.release, self.ns)
        outcome = write_values_snapshot(
            Path(s.values_snapshot), values, overwrite=s.overwrite_snapshot
        )
        return (
            f"values snapshot {s.values_snapshot} {outcome}; release {s.release} "
            f"revision {release.revision}, chart {release.chart_version}"
        )

    def _preflight_values(self) -> tuple[list[str], dict[str, Any]]:
        """--set items and values carried from the snapshot into the pre-flight release."""
        sets = list(defaults.PREFLIGHT_SET_VALUES)
        values: dict[str, Any] = {}
        try:
            snapshot = read_values(Path(self.settings.values_snapshot))
        except ValuesUnreadable:
            snapshot = {}
        for key in ("k8sServiceHost", "k8sServicePort"):
            if snapshot.get(key) not in (None, ""):
                values[key] = snapshot[key]
        if snapshot.get("imagePullSecrets"):
            values["imagePullSecrets"] = snapshot["imagePullSecrets"]
        # The pre-flight pulls the target image from where the agent's comes from: the
        # agent's registry, never its tag or digest (those name the current version).
        image: dict[str, Any] = {}
        agent = snapshot.get("image")
        if isinstance(agent, Mapping):
            image.update({k: agent[k] for k in ("repository", "pullPolicy") if agent.get(k)})
        preflight = snapshot.get("preflight")
        if isinstance(preflight, Mapping) and isinstance(preflight.get("image"), Mapping):
            image.update(preflight["image"])  # set for the pre-flight itself: as given
        if image:
            values["preflight"] = {"image": image}
        return sets, values

    def install_preflight(self) -> str:
        """Install the pre-flight release of the target version."""
        self._need()
        s = self.settings
        if "prepare" in self.state.failed_phases:
            raise StepSkipped("an earlier prepare step failed; nothing is installed")
        sets, values = self._preflight_values()
        command = self.helm.install_command(
            s.preflight_release,
            self.chart,
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
        self.helm.execute(command)
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
        self._need()
        s = self.settings
        command = self.helm.uninstall_command(
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
        self.helm.execute(command)
        self.state.preflight_removed = True
        return f"uninstalled {s.preflight_release}"

    def helm_upgrade(self) -> str:
        """helm upgrade with the saved values (never --reuse-values across minors)."""
        self._need()
        closed = self.gate_closed()
        if closed:
            raise StepSkipped(closed)
        s = self.settings
        command = self.helm.upgrade_command(
            s.release,
            self.chart,
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
            self.helm.execute(command)
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
        self._need()
        revision = self.state.pre_revision
        assert revision is not None
        release = self._release(self.settings.release)
        if release is not None:
            self.state.upgraded_revision = release.revision
        command = self.helm.rollback_command(self.settings.release, revision, self.ns, wait=False)
        self.helm.execute(command)
        self.state.rolled_back = True
        return f"rolled back to revision {revision} ({self.state.pre_version}) because {why}"

    def wait_rollback(self) -> str:
        """Wait (watching) for the previous version to roll out again."""
        if not self.state.rolled_back:
            raise StepSkipped("no rollback was made")
        return self._wait_components()

    def rollback_params(self, base: CheckParams) -> CheckParams:
        from pytest_cilium_upgrade.versions import Version

        pre = self.state.pre_version
        return replace(
            base,
            target=None if pre is None else Version.parse(pre),
            recorded_revision=self.state.upgraded_revision,
        )

    # ------------------------------------------------------------------ cleanup
    def cleanup(self) -> str | None:
        """Uninstall a pre-flight release we installed and did not remove yet."""
        s = self.settings
        if not self.state.preflight_installed or self.state.preflight_removed:
            return None
        if s.keep_preflight:
            return f"{s.preflight_release} kept (--cilium-keep-preflight)"
        try:
            self.helm.uninstall(s.preflight_release, self.ns, wait=False)
        except GateError as exc:
            return (
                f"could not uninstall {s.preflight_release}: {exc}; remove it with "
                f"helm uninstall {s.preflight_release} -n {self.ns}"
            )
        self.state.preflight_removed = True
        return f"uninstalled {s.preflight_release} during clean-up"

    def release_state(self) -> str:
        try:
            release = self._release(self.settings.release)
        except GateError as exc:
            return f"release state unknown: {exc}"
        if release is None:
            return f"release {self.settings.release} not found"
        return (
            f"release {release.name} is {release.status} at revision {release.revision} "
            f"(chart {release.chart_version})"
        )

    # ------------------------------------------------------------------ waiting
    def _wait(
        self,
        kind: str,
        name: str,
        label: str,
        deadline: float,
        selector: str,
        *,
        optional: bool = False,
    ) -> str:
        waits = RolloutWait(
            self.kube,
            self.ns,
            self.settings.timeout,
            progress=self.progress,
            redactor=self.redactor,
        )
        return waits.wait(kind, name, label, deadline, selector, optional=optional)


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
