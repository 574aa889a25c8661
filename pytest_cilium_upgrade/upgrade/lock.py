"""The upgrade lock: a Lease in the release namespace that one gated upgrade holds at a time.

The Lease lasts long enough for any one step and is renewed before a step once a
third of its duration has passed since it was last taken (so at least two thirds of
it are left whenever a step starts), so a run that dies frees it soon; a second gated
upgrade of the same namespace is refused while it is held. Steps that follow each other
within seconds do not each pay two API requests for it.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Protocol

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.errors import GateError, LockHeld
from pytest_cilium_upgrade.upgrade.outcomes import StepFailed


class LeaseClient(Protocol):
    """What the lock asks of the Kubernetes adapter."""

    def acquire_lease(self, namespace: str, name: str, holder: str, duration_s: int) -> None: ...
    def release_lease(self, namespace: str, name: str, holder: str) -> bool: ...


class UpgradeLock:
    """The Lease :data:`~pytest_cilium_upgrade.defaults.UPGRADE_LOCK_LEASE` of ``namespace``.

    ``holder`` is who holds it for this run, None while it is not held.
    """

    def __init__(
        self,
        kube: LeaseClient | None,
        namespace: str,
        duration_s: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.ns = namespace
        self.duration_s = duration_s
        self.holder: str | None = None
        self.clock = clock
        self._taken_at: float | None = None  # clock() before the last take or renewal

    def take(self) -> None:
        """Hold the Lease (or renew it); StepFailed when another run holds it."""
        if self.kube is None:
            raise StepFailed("refusing to upgrade: no cluster to hold the upgrade Lease in")
        holder = self.holder or holder_identity()
        asked = self.clock()
        try:
            self.kube.acquire_lease(self.ns, defaults.UPGRADE_LOCK_LEASE, holder, self.duration_s)
        except LockHeld as exc:
            raise StepFailed(f"refusing to upgrade: {exc}") from exc
        self.holder = holder
        self._taken_at = asked

    def renew(self) -> None:
        """Renew the Lease if this run holds it and a third of its duration has passed."""
        if self.holder is None:
            return
        if self._taken_at is not None and self.clock() - self._taken_at < self.duration_s / 3:
            return
        self.take()

    def release(self) -> str | None:
        """Give the Lease up; why it could not be (it then expires by itself), or None."""
        holder = self.holder
        if holder is None or self.kube is None:
            return None
        self.holder = None
        self._taken_at = None
        try:
            self.kube.release_lease(self.ns, defaults.UPGRADE_LOCK_LEASE, holder)
        except GateError as exc:
            return (
                f"could not release Lease {self.ns}/{defaults.UPGRADE_LOCK_LEASE}: {exc}; "
                f"it expires by itself within {self.duration_s}s"
            )
        return None


def holder_identity() -> str:
    """Who holds the lock: host, process and, in CI, the job."""
    job = os.environ.get("GITHUB_RUN_ID") or os.environ.get("CI_JOB_ID")
    parts = [socket.gethostname(), f"pid {os.getpid()}", uuid.uuid4().hex[:8]]
    if job:
        parts.insert(0, f"ci job {job}")
    return " ".join(parts)
