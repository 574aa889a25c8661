"""The scripted, gated upgrade: each step is a pytest item between the check phases.

    prepare   save values, install the pre-flight release, wait for it
    pre       the pre checks (plugin)
    upgrade   uninstall the pre-flight, helm upgrade, wait for the rollout
    post      the post checks (plugin)
    rollback  when the upgrade or a post check failed: helm rollback, wait, checks

Steps raise :class:`StepFailed` with a one-line verdict and details; waiting uses
watches with a deadline and reports progress (:mod:`.waits`), and the run holds the
namespace's upgrade Lease (:mod:`.lock`). The pre-flight release is uninstalled
whatever happens, unless asked to keep it; after an interruption (Ctrl-C, a CI's
SIGTERM) the clean-up runs under one short deadline of its own,
:data:`INTERRUPTED_CLEANUP_S`, whatever the API server or helm do meanwhile.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, cast

from pytest_cilium_upgrade import checks, defaults
from pytest_cilium_upgrade.adapters.files import (
    ValuesUnreadable,
    read_values,
    write_values_snapshot,
)
from pytest_cilium_upgrade.checks import CheckParams, Status
from pytest_cilium_upgrade.errors import GateError
from pytest_cilium_upgrade.gate.settings import Settings
from pytest_cilium_upgrade.phases import UPGRADE_PHASES, Phase
from pytest_cilium_upgrade.redact import Redactor
from pytest_cilium_upgrade.snapshot.model import HelmRelease
from pytest_cilium_upgrade.snapshot.read import RecordReleases, ReleaseReader, read_release
from pytest_cilium_upgrade.upgrade.lock import UpgradeLock
from pytest_cilium_upgrade.upgrade.outcomes import StepFailed, StepSkipped
from pytest_cilium_upgrade.upgrade.waits import Progress, RolloutWait

__all__ = [
    "INTERRUPTED_CLEANUP_S",
    "STEPS",
    "FlowState",
    "Step",
    "StepFailed",
    "StepSkipped",
    "UpgradeFlow",
]

# The clean-up of an interrupted run (uninstall the pre-flight, release the lock, read
# the release's state) ends within this many seconds: a CI cancel sends SIGKILL soon
# after its SIGTERM (GitHub Actions 10 s after its first signal).
INTERRUPTED_CLEANUP_S: Final = 7.0


@dataclass
class FlowState:
    """What the steps learned, for later steps, cleanup and the report."""

    pre_revision: int | None = None
    pre_version: str | None = None
    snapshot_written: bool = False  # the live values are in the snapshot file
    preflight_installed: bool = False
    preflight_removed: bool = False
    upgraded_revision: int | None = None
    upgrade_attempted: bool = False
    rolled_back: bool = False
    running: str | None = None
    failed_phases: set[str] = field(default_factory=set)
    steps_run: list[str] = field(default_factory=list)  # `phase::name`, as started
    planned: list[str] = field(default_factory=list)


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
        release_records: str | None = None,
    ) -> None:
        self.sets = tuple(sets)
        # the kind holding Helm's release records ("Secret", "ConfigMap"): the release's
        # state is then read with one LIST, not with helm processes (see _releases)
        self.release_records = release_records
        self.settings = settings
        self.kube = kube
        self.helm = helm
        self.chart = chart
        self.progress = progress
        self.redactor = redactor
        self.state = FlowState()
        self._deadline: float | None = None  # see finishing_by
        # why the cluster or helm adapter could not be built, when one could not
        self.unusable: tuple[str, ...] = ()
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
            if self.unusable:
                raise StepFailed(
                    f"cluster or helm not usable: {self.unusable[0]}", self.unusable[1:]
                )
            raise StepFailed("cluster or helm not usable; see the pre checks for why")

    def _plan(self, command: Any) -> str:
        text: str = command.display(self.redactor())
        self.state.planned.append(text)
        return text

    def _releases(self, name: str) -> ReleaseReader:
        """Release ``name``'s state as it is now.

        From one LIST of its Helm release records through the API (strongly consistent:
        a revision helm has just written is in it) where they are kept there, as the
        snapshots read them; else from helm's own processes (``status`` and ``get
        metadata``: two per question), e.g. with HELM_DRIVER=sql.
        """
        if self.release_records is None or self.kube is None:
            return cast(ReleaseReader, self.helm)
        return RecordReleases(self.kube, self.ns, (name,), self.release_records)

    def _release(self, name: str) -> HelmRelease | None:
        status = self._releases(name).status(name, self.ns)
        return HelmRelease.from_helm_status(status) if status is not None else None

    def gate_closed(self) -> str | None:
        closed = sorted(self.state.failed_phases & {"prepare", "pre"})
        if closed:
            return f"gate closed: the {' and '.join(closed)} phase failed; nothing was upgraded"
        return None

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

    # ------------------------------------------------------------------ the lock
    @property
    def lock_duration(self) -> int:
        """Long enough for any one step, with two thirds of it left whenever a step starts
        (see :class:`UpgradeLock`): a dead run frees it soon."""
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
    @contextlib.contextmanager
    def finishing_by(self, deadline: float) -> Iterator[None]:
        """Helm and API requests inside end by ``deadline`` (a ``time.monotonic()`` value)."""
        helm_timeout = self.helm.timeout if self.helm is not None else None
        finishing = getattr(self.kube, "finishing_by", None)  # a fake cluster may not
        self._deadline = deadline
        try:
            with finishing(deadline) if finishing is not None else contextlib.nullcontext():
                yield
        finally:
            self._deadline = None
            if helm_timeout is not None:
                self.helm.timeout = helm_timeout

    def _time_left(self) -> float | None:
        """Seconds left before the clean-up's deadline (None: no deadline); caps helm's."""
        if self._deadline is None:
            return None
        left = self._deadline - time.monotonic()
        if left > 0 and self.helm is not None:
            self.helm.timeout = min(self.helm.timeout, left)
        return left

    def cleanup(self) -> str | None:
        """Uninstall a pre-flight release we installed and did not remove yet."""
        s = self.settings
        if not self.state.preflight_installed or self.state.preflight_removed:
            return None
        if s.keep_preflight:
            return f"{s.preflight_release} kept (--cilium-keep-preflight)"
        left = self._time_left()
        try:
            if left is None:
                self.helm.uninstall(s.preflight_release, self.ns, wait=False)
            elif left <= 0:
                raise GateError("no time was left for it")
            else:
                command = self.helm.uninstall_command(
                    s.preflight_release, self.ns, wait=False, timeout_s=left
                )
                self.helm.execute(
                    replace(command, timeout=left), release=s.preflight_release, namespace=self.ns
                )
        except GateError as exc:
            return (
                f"could not uninstall {s.preflight_release}: {exc}; remove it with "
                f"helm uninstall {s.preflight_release} -n {self.ns}"
            )
        self.state.preflight_removed = True
        return f"uninstalled {s.preflight_release} during clean-up"

    def release_state(self) -> str:
        if self.helm is None:
            return "release state unknown: no usable helm client"
        left = self._time_left()
        if left is not None and left <= 0:
            return "release state unknown: no time was left to ask helm"
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
