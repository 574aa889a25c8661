"""A wait through a rollout of thousands of pods: bounded progress lines, no re-lists.

The Kubernetes adapter is a fake whose watch yields a DaemonSet's status updates as a
large rollout produces them; the clock is the test's, so the lines a wait writes are
counted against the time the events span, not against the machine's speed. Last, the
adapter's own watch, given an ERROR event by the client's list function, watches again.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubeconfigs import write_kubeconfig

from pytest_cilium_upgrade.adapters.kube import Kube
from pytest_cilium_upgrade.redact import Redactor
from pytest_cilium_upgrade.upgrade.outcomes import StepFailed
from pytest_cilium_upgrade.upgrade.waits import PROGRESS_EVERY_S, RolloutWait

NS = "kube-system"
PODS = 5000


def daemonset(ready: int, updated: int = PODS, desired: int = PODS) -> dict[str, Any]:
    return {
        "kind": "DaemonSet",
        "metadata": {"name": "cilium", "namespace": NS, "generation": 2},
        "status": {
            "observedGeneration": 2,
            "desiredNumberScheduled": desired,
            "currentNumberScheduled": desired,
            "numberReady": ready,
            "updatedNumberScheduled": updated,
            "numberAvailable": ready,
        },
    }


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Rollout:
    """The watch of a rollout: one status update per pod turning ready, ``step`` s apart."""

    def __init__(self, clock: Clock, ready: range, step: float, desired: int = PODS) -> None:
        self.clock = clock
        self.ready = ready
        self.step = step
        self.desired = desired
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def get_workload(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        self.calls.append(("get_workload", (name,)))
        return daemonset(0)

    def watch_workload(
        self, kind: str, namespace: str, name: str, timeout_s: float
    ) -> Iterator[dict[str, Any]]:
        self.calls.append(("watch_workload", (name,)))
        for ready in self.ready:
            self.clock.now += self.step
            yield daemonset(ready, updated=self.desired, desired=self.desired)

    def list_pods(self, namespace: str, selector: str | None = None) -> list[dict[str, Any]]:
        self.calls.append(("list_pods", (selector,)))
        return [
            {
                "metadata": {"name": f"cilium-{i:04d}", "namespace": NS},
                "spec": {"nodeName": f"worker-{i}", "containers": [{"name": "cilium-agent"}]},
                "status": {
                    "phase": "Running",
                    "conditions": [{"type": "Ready", "status": str(i % 2 == 0)}],
                    "containerStatuses": [
                        {"name": "cilium-agent", "ready": i % 2 == 0, "state": {"running": {}}}
                    ],
                },
            }
            for i in range(PODS)
        ]

    def list_events(self, namespace: str, involved: str | None = None) -> list[dict[str, Any]]:
        self.calls.append(("list_events", (involved,)))
        return [
            {
                "involvedObject": {"name": involved},
                "type": "Warning",
                "reason": "Unhealthy",
                "message": "Readiness probe failed",
            }
        ]

    def pod_log(self, namespace: str, pod: str, container: str, **kwargs: Any) -> str | None:
        self.calls.append(("pod_log", (pod,)))
        return ""


class Timers:
    """The wait's timer, on the test's clock: :meth:`fire` runs what is due."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.pending: list[tuple[float, Callable[[], None]]] = []
        self.delays: list[float] = []

    def __call__(self, delay: float, action: Callable[[], None]) -> Callable[[], None]:
        entry = (self.clock.now + delay, action)
        self.pending.append(entry)
        self.delays.append(delay)
        return lambda: self.pending.remove(entry) if entry in self.pending else None

    def fire(self) -> None:
        due = [e for e in self.pending if e[0] <= self.clock.now]
        for entry in due:
            self.pending.remove(entry)
            entry[1]()


def waiting(
    rollout: Rollout, clock: Clock, timers: Timers | None = None
) -> tuple[RolloutWait, list[str]]:
    lines: list[str] = []
    wait = RolloutWait(
        rollout,
        NS,
        600,
        progress=lines.append,
        redactor=Redactor,
        clock=clock,
        schedule=timers or Timers(clock),
    )
    return wait, lines


def test_thousands_of_updates_write_a_line_a_second_and_readiness_at_once() -> None:
    clock = Clock()
    # 5,001 updates over 50 s (one every 10 ms): the last one is the healthy state
    rollout = Rollout(clock, range(PODS + 1), step=0.01)
    wait, lines = waiting(rollout, clock)
    done = wait.wait("DaemonSet", "cilium", "agent", clock.now + 600, "k8s-app=cilium")
    assert done == f"DaemonSet cilium: {PODS}/{PODS} ready"
    span = PODS * 0.01
    assert len(lines) <= span / PROGRESS_EVERY_S + 2, lines
    assert len(lines) >= span / PROGRESS_EVERY_S - 1, lines
    assert lines[0] == f"agent 0/{PODS} ready…"
    assert lines[-1] == f"agent {PODS}/{PODS} ready"  # shown with the event that reports it
    # each line is the counts of its moment: ready grows by 100 a second
    counts = [int(line.split()[1].split("/")[0]) for line in lines[1:-1]]
    assert counts == sorted(counts)
    assert all(95 <= b - a <= 105 for a, b in itertools.pairwise(counts)), counts
    # one watch, no list of anything while it ran
    assert [name for name, _ in rollout.calls] == ["get_workload", "watch_workload"]


def test_updates_a_second_apart_are_each_shown() -> None:
    clock = Clock()
    rollout = Rollout(clock, range(9), step=PROGRESS_EVERY_S, desired=8)
    wait, lines = waiting(rollout, clock)
    wait.wait("DaemonSet", "cilium", "agent", clock.now + 600, "k8s-app=cilium")
    assert lines == [f"agent {r}/8 ready…" for r in range(8)] + ["agent 8/8 ready"]


def test_a_change_held_back_is_shown_before_the_failure_and_pods_are_described_briefly() -> None:
    clock = Clock()
    # the rollout stalls at 4999/5000, 10 ms after the line of 4998 could not be shown
    rollout = Rollout(clock, range(PODS - 100, PODS), step=0.01)
    wait, lines = waiting(rollout, clock)
    with pytest.raises(StepFailed) as info:
        wait.wait("DaemonSet", "cilium", "agent", clock.now + 600, "k8s-app=cilium")
    assert lines[-1] == f"agent {PODS - 1}/{PODS} ready…"
    assert len(lines) <= 3
    assert info.value.summary.startswith("timed out after 600s waiting for DaemonSet cilium")
    # the first five pods not ready, each with its own events, asked of the server by name
    stuck = [f"cilium-{i:04d}" for i in range(1, 10, 2)]
    events = [args[0] for name, args in rollout.calls if name == "list_events"]
    assert events == stuck
    assert [name for name, _ in rollout.calls].count("list_pods") == 1
    assert info.value.details[1] == "  event Warning Unhealthy: Readiness probe failed"


class Stalls(Rollout):
    """0/8, then 1/8 a tenth of a second later, then no event for a minute."""

    def __init__(self, clock: Clock, timers: Timers) -> None:
        super().__init__(clock, range(0), step=0, desired=8)
        self.timers = timers
        self.seen_while_stalled: list[str] = []
        self.lines: list[str] = []

    def watch_workload(
        self, kind: str, namespace: str, name: str, timeout_s: float
    ) -> Iterator[dict[str, Any]]:
        yield daemonset(0, updated=8, desired=8)
        self.clock.now += 0.1
        yield daemonset(1, updated=8, desired=8)
        for _ in range(60):  # the watch blocks; the timer runs meanwhile
            self.clock.now += 1
            self.timers.fire()
        self.seen_while_stalled = list(self.lines)


def test_a_change_held_back_is_shown_when_its_second_passes_without_another_event() -> None:
    clock = Clock()
    timers = Timers(clock)
    rollout = Stalls(clock, timers)
    wait, lines = waiting(rollout, clock, timers)
    rollout.lines = lines
    with pytest.raises(StepFailed):
        wait.wait("DaemonSet", "cilium", "agent", clock.now + 600, "k8s-app=cilium")
    assert rollout.seen_while_stalled == ["agent 0/8 ready…", "agent 1/8 ready…"]
    assert lines == rollout.seen_while_stalled  # not shown a second time at the failure
    assert timers.delays == [pytest.approx(0.9)]
    assert timers.pending == []


class StallsForReal(Rollout):
    """The same stall with the real clock and timer: the watch waits for the held line."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(Clock(), range(0), step=0, desired=8)
        self.lines = lines
        self.shown_while_blocked = False

    def watch_workload(
        self, kind: str, namespace: str, name: str, timeout_s: float
    ) -> Iterator[dict[str, Any]]:
        yield daemonset(0, updated=8, desired=8)
        yield daemonset(1, updated=8, desired=8)
        stop = time.monotonic() + 10
        while time.monotonic() < stop and len(self.lines) < 2:
            time.sleep(0.01)
        self.shown_while_blocked = len(self.lines) == 2
        yield daemonset(8, updated=8, desired=8)


def test_the_timer_shows_the_held_line_from_its_own_thread() -> None:
    lines: list[str] = []
    rollout = StallsForReal(lines)
    threads = threading.active_count()
    wait = RolloutWait(rollout, NS, 600, progress=lines.append, redactor=Redactor, every=0.05)
    done = wait.wait("DaemonSet", "cilium", "agent", time.monotonic() + 600, "k8s-app=cilium")
    assert done == "DaemonSet cilium: 8/8 ready"
    assert rollout.shown_while_blocked, lines
    assert lines == ["agent 0/8 ready…", "agent 1/8 ready…", "agent 8/8 ready"]
    deadline = time.monotonic() + 10
    while threading.active_count() > threads and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == threads  # no timer left behind


class ErrorThenState:
    """The client's list function: a watch that sends a state, then an ERROR event; the
    next watch sends the healthy state."""

    def __init__(self) -> None:
        self.watches = 0

    def list_namespaced_daemon_set(self, namespace: str, **kwargs: Any) -> Any:
        self.watches += 1
        events: list[dict[str, Any]] = []
        if self.watches == 1:
            events.append({"type": "ADDED", "object": daemonset(3, desired=8, updated=8)})
            status = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}
            events.append({"type": "ERROR", "object": status})
        else:
            events.append({"type": "ADDED", "object": daemonset(8, desired=8, updated=8)})
        return _Streamed(events)


class _Streamed:
    status = 200

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events

    def stream(self, amt: Any = None, decode_content: Any = None) -> Iterator[bytes]:
        for event in self.events:
            yield (json.dumps(event) + "\n").encode()

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


def test_an_error_event_on_the_watch_opens_it_again(tmp_path: Path) -> None:
    kube = Kube(str(write_kubeconfig(tmp_path / "kubeconfig")), sleep=lambda _: None)
    server = ErrorThenState()
    kube.__dict__["_apps"] = server  # the client's AppsV1Api
    seen = []
    for obj in kube.watch_workload("DaemonSet", NS, "cilium", 30):
        seen.append(obj["status"]["numberReady"])
        if len(seen) == 2:
            break
    assert seen == [3, 8]
    assert server.watches == 2
