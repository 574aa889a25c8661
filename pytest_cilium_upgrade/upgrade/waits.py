"""Waiting for a workload to roll out: a watch with a deadline, reporting progress.

A wait follows the workload through one watch until it is healthy or the deadline
passes, and reports the counts as they change (``pre-flight 5/8 ready``). When the
deadline passes it fails with what was last seen and, unless the API server itself was
away, the pods that are not ready with their events and the tail of their logs.

The watch selects the one workload by name, so its events are the workload's status
updates, not its pods': a rollout of 5,000 pods is a stream of a few thousand small
events at most, each handled as it comes (decoded, compared, dropped; nothing is
listed again and nothing accumulates). Progress lines are bounded in time rather than
in events: the first state, then at most one line every :data:`PROGRESS_EVERY_S`
seconds with the counts of the moment, and the healthy state at once, so a large
rollout writes a line a second or so however fast its pods turn ready, and the wait
notices readiness with the event that reports it. A change held back is shown once its
second has passed, whether or not another event comes (a timer, since the watch blocks
until the next one), and before the failure when the wait ends unhealthy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

from pytest_cilium_upgrade.errors import ApiUnreachable, GateError
from pytest_cilium_upgrade.redact import Redactor
from pytest_cilium_upgrade.snapshot.model import JSONDict, Pod, Workload
from pytest_cilium_upgrade.upgrade.outcomes import StepFailed

Progress = Callable[[str], None]
Cancel = Callable[[], None]
# ``schedule(delay, action)`` runs ``action`` in ``delay`` seconds unless cancelled
Schedule = Callable[[float, Callable[[], None]], Cancel]
PROGRESS_EVERY_S = 1.0
_TAIL_PODS = 5
_TAIL_LINES = 8


class WorkloadWatcher(Protocol):
    """What a wait reads through the Kubernetes adapter."""

    def get_workload(self, kind: str, namespace: str, name: str) -> JSONDict | None: ...
    def watch_workload(
        self, kind: str, namespace: str, name: str, timeout_s: float
    ) -> Iterator[JSONDict]: ...
    def list_pods(self, namespace: str, selector: str | None = None) -> list[JSONDict]: ...
    def list_events(self, namespace: str, involved: str | None = None) -> list[JSONDict]: ...
    def pod_log(
        self, namespace: str, pod: str, container: str, *, tail_lines: int | None = None
    ) -> str | None: ...


class RolloutWait:
    """Waits in ``namespace`` through ``kube``; ``timeout`` is what the deadlines allow."""

    def __init__(
        self,
        kube: WorkloadWatcher,
        namespace: str,
        timeout: float,
        *,
        progress: Progress,
        redactor: Callable[[], Redactor],
        every: float = PROGRESS_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
        schedule: Schedule | None = None,
    ) -> None:
        self.kube = kube
        self.ns = namespace
        self.timeout = timeout
        self.progress = progress
        self.redactor = redactor
        self.every = every
        self.clock = clock
        self.schedule = schedule or _later

    def wait(
        self,
        kind: str,
        name: str,
        label: str,
        deadline: float,
        selector: str,
        *,
        optional: bool = False,
    ) -> str:
        """Until ``kind`` ``name`` is healthy: a line saying so (``""`` if optional and absent).

        ``label`` names it in progress lines; ``selector`` finds its pods when it is not
        ready by ``deadline`` (a :func:`time.monotonic` time), which raises StepFailed.
        """
        remaining = deadline - time.monotonic()
        if self.kube.get_workload(kind, self.ns, name) is None:
            if optional:
                return ""
            raise StepFailed(f"{kind} {name} not found in namespace {self.ns}")
        lines = _Lines(self.progress, self.every, self.clock, self.schedule)
        try:
            return self._watch(kind, name, label, deadline, selector, remaining, lines)
        finally:
            lines.close()

    def _watch(
        self,
        kind: str,
        name: str,
        label: str,
        deadline: float,
        selector: str,
        remaining: float,
        lines: _Lines,
    ) -> str:
        workload: Workload | None = None
        try:
            for obj in self.kube.watch_workload(kind, self.ns, name, max(1.0, remaining)):
                workload = Workload.from_k8s_dict(obj, kind=kind)
                line = f"{label} {workload.ready}/{workload.desired} ready"
                if workload.updated != workload.desired:
                    line += f", {workload.updated}/{workload.desired} updated"
                if workload.healthy:
                    lines.show(line, final=True)
                    return f"{kind} {name}: {workload.ready}/{workload.desired} ready"
                lines.show(line + "…")
        except ApiUnreachable as exc:
            lines.flush()
            # The deadline passed with the API server away: say so, not "not ready" alone,
            # and do not ask it to describe the pods.
            seen = "; ".join(workload.health_problems()) if workload else "never observed"
            raise StepFailed(
                f"timed out after {self.timeout:g}s waiting for {kind} {name}: "
                f"{exc}; last seen: {seen}",
                [
                    f"{kind} {name} could not be watched until the deadline: the Kubernetes API "
                    "server was unreachable; check the control plane (kube-apiserver, its "
                    "load balancer, etcd) before running the gate again"
                ],
            ) from exc
        lines.flush()
        problems = workload.health_problems() if workload else ["never observed"]
        raise StepFailed(
            f"timed out after {self.timeout:g}s waiting for {kind} {name}: " + "; ".join(problems),
            self._not_ready_details(selector),
        )

    def _not_ready_details(self, selector: str) -> list[str]:
        """The pods that are not ready, their events and the tail of their logs."""
        try:
            pods = self.kube.list_pods(self.ns, selector)
            # models of the first few pods not ready only (a DaemonSet may have thousands)
            stuck = [p for p in map(Pod.from_k8s_dict, pods) if not p.ready][:_TAIL_PODS]
            del pods
            # each pod's own events, selected by the server: not every event of the namespace
            events = {pod.name: self.kube.list_events(self.ns, pod.name) for pod in stuck}
        except GateError as exc:
            return [f"could not describe the pods: {exc}"]
        details: list[str] = []
        for pod in stuck:
            details.append(
                f"pod {pod.name} on node {pod.node_name or '(none)'}: "
                f"{pod.problem() or 'not ready'}"
            )
            for event in _events_for(events[pod.name], pod.name)[-3:]:
                details.append(f"  event {event}")
            for container in pod.containers:
                if container.ready:
                    continue
                log = self.kube.pod_log(self.ns, pod.name, container.name, tail_lines=_TAIL_LINES)
                for line in (log or "").splitlines()[-_TAIL_LINES:]:
                    details.append(f"  log {container.name}: {line}")
        redactor = self.redactor()
        return [redactor.redact(d) for d in details]


def _later(delay: float, action: Callable[[], None]) -> Cancel:
    timer = threading.Timer(delay, action)
    timer.daemon = True
    timer.start()
    return timer.cancel


class _Lines:
    """Progress lines, at most one every ``every`` seconds but the first and the last.

    A line that changes sooner is held, and shown when its second has passed: by the
    next event after that, or by a timer if none comes (the watch blocks until the next
    event, which may be minutes away in a stalled rollout). :meth:`flush` shows a held
    line at once; :meth:`close` cancels the timer. A lock keeps the timer's line and the
    wait's from interleaving.
    """

    def __init__(
        self, progress: Progress, every: float, clock: Callable[[], float], schedule: Schedule
    ) -> None:
        self.progress = progress
        self.every = every
        self.clock = clock
        self.schedule = schedule
        self.shown = ""
        self.held = ""
        self.at: float | None = None
        self.lock = threading.Lock()
        self.cancel: Cancel | None = None
        self.closed = False

    def show(self, line: str, *, final: bool = False) -> None:
        with self.lock:
            if line == self.shown:
                self.held = ""
                return
            now = self.clock()
            if final or self.at is None or now - self.at >= self.every:
                self._write(line, now)
            else:
                self.held = line
                self._due_in(self.at + self.every - now)

    def flush(self) -> None:
        with self.lock:
            if self.held:
                self._write(self.held, self.clock())

    def close(self) -> None:
        with self.lock:
            self.closed = True
            if self.cancel is not None:
                self.cancel()
                self.cancel = None

    def _write(self, line: str, now: float) -> None:
        self.progress(line)
        self.shown, self.held, self.at = line, "", now

    def _due_in(self, delay: float) -> None:
        if self.cancel is None and not self.closed:
            self.cancel = self.schedule(max(0.0, delay), self._due)

    def _due(self) -> None:
        with self.lock:
            self.cancel = None
            if not self.held or self.closed or self.at is None:
                return
            now = self.clock()
            if now - self.at >= self.every:
                self._write(self.held, now)
            else:  # a line was shown since the timer was set: wait for its second
                self._due_in(self.at + self.every - now)


def _events_for(events: Iterable[Mapping[str, Any]], pod: str) -> list[str]:
    found = []
    for event in events:
        involved = event.get("involvedObject") or {}
        if involved.get("name") == pod:
            found.append(
                f"{event.get('type', '')} {event.get('reason', '')}: "
                f"{event.get('message', '')}".strip()
            )
    return found
