"""The upgrade Lease: taken once, renewed before a step only when a third of it has passed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pytest_cilium_upgrade.errors import LockHeld
from pytest_cilium_upgrade.upgrade.lock import UpgradeLock
from pytest_cilium_upgrade.upgrade.outcomes import StepFailed


class Leases:
    def __init__(self) -> None:
        self.acquired: list[tuple[str, int]] = []
        self.released: list[str] = []
        self.held_by: str | None = None

    def acquire_lease(self, namespace: str, name: str, holder: str, duration_s: int) -> None:
        if self.held_by is not None and self.held_by != holder:
            raise LockHeld(namespace, name, self.held_by, datetime(2026, 1, 1, tzinfo=UTC))
        self.acquired.append((holder, duration_s))

    def release_lease(self, namespace: str, name: str, holder: str) -> bool:
        self.released.append(holder)
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_steps_in_quick_succession_renew_nothing_until_a_third_has_passed() -> None:
    leases, clock = Leases(), Clock()
    lock = UpgradeLock(leases, "kube-system", 120, clock=clock)
    lock.renew()  # not held yet: nothing to renew
    assert leases.acquired == []
    lock.take()
    for _ in range(6):  # six steps within seconds of each other
        clock.now += 2
        lock.renew()
    assert len(leases.acquired) == 1
    clock.now += 40 - 12  # 40 s (a third of 120) since it was taken
    lock.renew()
    assert len(leases.acquired) == 2
    assert {holder for holder, _ in leases.acquired} == {lock.holder}
    clock.now += 39
    lock.renew()
    assert len(leases.acquired) == 2


def test_a_released_lock_is_taken_again_at_once() -> None:
    leases, clock = Leases(), Clock()
    lock = UpgradeLock(leases, "kube-system", 300, clock=clock)
    lock.take()
    holder = lock.holder
    assert lock.release() is None
    assert leases.released == [holder]
    lock.renew()  # released: renewing takes nothing
    lock.take()
    assert len(leases.acquired) == 2


def test_a_lock_held_by_another_run_is_refused() -> None:
    leases = Leases()
    leases.held_by = "ci job 1 runner-1"
    with pytest.raises(StepFailed, match="refusing to upgrade: another gated upgrade holds"):
        UpgradeLock(leases, "kube-system", 120).take()
