"""What every step of the performed upgrade stands on: its state, its adapters, the
Lease, waiting, and the clean-up that ends a run.

:class:`FlowBase` holds the adapters (through the Protocols of :mod:`.ports`), what the
steps learned (:class:`FlowState`), the namespace's upgrade Lease (:mod:`.lock`) and
the waits (:mod:`.waits`); :class:`~pytest_cilium_upgrade.upgrade.steps.UpgradeFlow`
adds the steps. After an interruption (Ctrl-C, a CI's SIGTERM) the clean-up runs under
one short deadline of its own, :data:`INTERRUPTED_CLEANUP_S`, whatever the API server
or helm do meanwhile.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Final, NamedTuple, Protocol, runtime_checkable

from pytest_cilium_upgrade.adapters.helm.commands import HelmCommand
from pytest_cilium_upgrade.errors import GateError
from pytest_cilium_upgrade.gate.settings import Settings
from pytest_cilium_upgrade.redact import Redactor
from pytest_cilium_upgrade.snapshot.model import HelmRelease
from pytest_cilium_upgrade.snapshot.read import RecordReleases, ReleaseReader
from pytest_cilium_upgrade.upgrade.lock import UpgradeLock
from pytest_cilium_upgrade.upgrade.outcomes import StepFailed
from pytest_cilium_upgrade.upgrade.ports import ChartSource, FlowCluster, FlowHelm
from pytest_cilium_upgrade.upgrade.waits import Progress, RolloutWait

__all__ = ["INTERRUPTED_CLEANUP_S", "Adapters", "FlowBase", "FlowState"]

# The clean-up of an interrupted run (uninstall the pre-flight, release the lock, read
# the release's state) ends within this many seconds: a CI cancel sends SIGKILL soon
# after its SIGTERM (GitHub Actions 10 s after its first signal).
INTERRUPTED_CLEANUP_S: Final = 7.0


@runtime_checkable
class _Finishing(Protocol):
    """A cluster adapter that can end its requests by a deadline (``Kube``; a fake may not)."""

    def finishing_by(self, deadline: float) -> contextlib.AbstractContextManager[None]: ...


class Adapters(NamedTuple):
    """The adapters a step needs, all present (see :meth:`FlowBase._need`)."""

    kube: FlowCluster
    helm: FlowHelm
    chart: ChartSource


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
    upgrade_failed: bool = False  # helm upgrade ended in an error
    rolled_back: bool = False
    running: str | None = None
    failed_phases: set[str] = field(default_factory=set)
    steps_run: list[str] = field(default_factory=list)  # `phase::name`, as started
    planned: list[str] = field(default_factory=list)


class FlowBase:
    """The adapters, state, Lease and waits of a performed upgrade (``kube``: ``Kube``,
    ``helm``: ``Helm``; ``None`` where one could not be built, see :attr:`unusable`)."""

    def __init__(
        self,
        settings: Settings,
        kube: FlowCluster | None,
        helm: FlowHelm | None,
        chart: ChartSource | None,
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

    def _need(self) -> Adapters:
        """The adapters; StepFailed saying why when one could not be built."""
        if self.kube is None or self.helm is None or self.chart is None:
            if self.unusable:
                raise StepFailed(
                    f"cluster or helm not usable: {self.unusable[0]}", self.unusable[1:]
                )
            raise StepFailed("cluster or helm not usable; see the pre checks for why")
        return Adapters(self.kube, self.helm, self.chart)

    def _plan(self, command: HelmCommand) -> str:
        text = command.display(self.redactor())
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
            if self.helm is None:
                raise StepFailed("release state unknown: no usable helm client")
            return self.helm
        return RecordReleases(self.kube, self.ns, (name,), self.release_records)

    def _release(self, name: str) -> HelmRelease | None:
        status = self._releases(name).status(name, self.ns)
        return HelmRelease.from_helm_status(status) if status is not None else None

    def gate_closed(self) -> str | None:
        closed = sorted(self.state.failed_phases & {"prepare", "pre"})
        if closed:
            return f"gate closed: the {' and '.join(closed)} phase failed; nothing was upgraded"
        return None

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

    # ------------------------------------------------------------------ cleanup
    @contextlib.contextmanager
    def finishing_by(self, deadline: float) -> Iterator[None]:
        """Helm and API requests inside end by ``deadline`` (a ``time.monotonic()`` value)."""
        helm = self.helm
        helm_timeout = helm.timeout if helm is not None else None
        kube = self.kube
        self._deadline = deadline
        try:
            with (
                kube.finishing_by(deadline)
                if isinstance(kube, _Finishing)
                else contextlib.nullcontext()
            ):
                yield
        finally:
            self._deadline = None
            if helm is not None and helm_timeout is not None:
                helm.timeout = helm_timeout

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
        helm = self.helm
        try:
            if helm is None:
                raise GateError("no usable helm client")
            if left is None:
                helm.uninstall(s.preflight_release, self.ns, wait=False)
            elif left <= 0:
                raise GateError("no time was left for it")
            else:
                command = helm.uninstall_command(
                    s.preflight_release, self.ns, wait=False, timeout_s=left
                )
                helm.execute(
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
        if self.kube is None:
            self._need()  # says why there is no cluster adapter
        assert self.kube is not None
        waits = RolloutWait(
            self.kube,
            self.ns,
            self.settings.timeout,
            progress=self.progress,
            redactor=self.redactor,
        )
        return waits.wait(kind, name, label, deadline, selector, optional=optional)
