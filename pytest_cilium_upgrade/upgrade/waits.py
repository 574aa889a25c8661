"""Waiting for a workload to roll out: a watch with a deadline, reporting progress.

A wait follows the workload through one watch until it is healthy or the deadline
passes, and reports each new count (``pre-flight 5/8 ready``). When the deadline
passes it fails with what was last seen and, unless the API server itself was away,
the pods that are not ready with their events and the tail of their logs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

from pytest_cilium_upgrade.errors import ApiUnreachable, GateError
from pytest_cilium_upgrade.redact import Redactor
from pytest_cilium_upgrade.snapshot.model import JSONDict, Pod, Workload
from pytest_cilium_upgrade.upgrade.outcomes import StepFailed

Progress = Callable[[str], None]
_TAIL_PODS = 5
_TAIL_LINES = 8


class WorkloadWatcher(Protocol):
    """What a wait reads through the Kubernetes adapter."""

    def get_workload(self, kind: str, namespace: str, name: str) -> JSONDict | None: ...
    def watch_workload(
        self, kind: str, namespace: str, name: str, timeout_s: float
    ) -> Iterator[JSONDict]: ...
    def list_pods(self, namespace: str, selector: str | None = None) -> list[JSONDict]: ...
    def list_events(self, namespace: str) -> list[JSONDict]: ...
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
    ) -> None:
        self.kube = kube
        self.ns = namespace
        self.timeout = timeout
        self.progress = progress
        self.redactor = redactor

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
        last = ""
        workload: Workload | None = None
        try:
            for obj in self.kube.watch_workload(kind, self.ns, name, max(1.0, remaining)):
                workload = Workload.from_k8s_dict(obj, kind=kind)
                line = f"{label} {workload.ready}/{workload.desired} ready"
                if workload.updated != workload.desired:
                    line += f", {workload.updated}/{workload.desired} updated"
                if line != last:
                    self.progress(line + ("" if workload.healthy else "…"))
                    last = line
                if workload.healthy:
                    return f"{kind} {name}: {workload.ready}/{workload.desired} ready"
        except ApiUnreachable as exc:
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
        problems = workload.health_problems() if workload else ["never observed"]
        raise StepFailed(
            f"timed out after {self.timeout:g}s waiting for {kind} {name}: " + "; ".join(problems),
            self._not_ready_details(selector),
        )

    def _not_ready_details(self, selector: str) -> list[str]:
        """The pods that are not ready, their events and the tail of their logs."""
        try:
            pods = [Pod.from_k8s_dict(p) for p in self.kube.list_pods(self.ns, selector)]
            events = self.kube.list_events(self.ns)
        except GateError as exc:
            return [f"could not describe the pods: {exc}"]
        details: list[str] = []
        stuck = [p for p in pods if not p.ready][:_TAIL_PODS]
        for pod in stuck:
            details.append(
                f"pod {pod.name} on node {pod.node_name or '(none)'}: "
                f"{pod.problem() or 'not ready'}"
            )
            for event in _events_for(events, pod.name)[-3:]:
                details.append(f"  event {event}")
            for container in pod.containers:
                if container.ready:
                    continue
                log = self.kube.pod_log(self.ns, pod.name, container.name, tail_lines=_TAIL_LINES)
                for line in (log or "").splitlines()[-_TAIL_LINES:]:
                    details.append(f"  log {container.name}: {line}")
        redactor = self.redactor()
        return [redactor.redact(d) for d in details]


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
