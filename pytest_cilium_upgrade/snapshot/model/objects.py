"""The cluster's objects the checks read: nodes, pods and their containers, workloads.

Each is a frozen dataclass built by ``from_k8s_dict`` from the JSON form of the
Kubernetes object (camelCase keys, as ``kubectl get -o json`` prints them). The
dataclasses hold mappings, so they compare by value but are not hashable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.snapshot.model.jsondata import (
    JSONDict,
    as_bool,
    as_int,
    as_labels,
    as_list,
    as_map,
    as_str,
    opt_int,
)
from pytest_cilium_upgrade.snapshot.model.selectors import (
    LabelSelector,
    NodeSelectorTerm,
    PodAffinityTerm,
)

# --------------------------------------------------------------------------- nodes


@dataclass(frozen=True)
class Taint:
    key: str
    value: str = ""
    effect: str = "NoSchedule"

    @classmethod
    def from_k8s_dict(cls, data: JSONDict) -> Taint:
        return cls(as_str(data.get("key")), as_str(data.get("value")), as_str(data.get("effect")))

    def __str__(self) -> str:
        """``key=value:Effect`` or ``key:Effect``, as ``kubectl taint`` writes it."""
        head = f"{self.key}={self.value}" if self.value else self.key
        return f"{head}:{self.effect}"


@dataclass(frozen=True)
class Toleration:
    """A pod toleration. An empty operator means ``Equal``, as in the API."""

    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""
    toleration_seconds: int | None = None

    @classmethod
    def from_k8s_dict(cls, data: JSONDict) -> Toleration:
        return cls(
            as_str(data.get("key")),
            as_str(data.get("operator")) or "Equal",
            as_str(data.get("value")),
            as_str(data.get("effect")),
            opt_int(data.get("tolerationSeconds")),
        )

    def __str__(self) -> str:
        key = self.key or "*"
        text = f"{key} Exists" if self.operator == "Exists" else f"{key}={self.value}"
        return f"{text}:{self.effect}" if self.effect else f"{text} (all effects)"


@dataclass(frozen=True)
class Node:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    ready: bool = True
    unschedulable: bool = False

    @classmethod
    def from_k8s_dict(cls, data: JSONDict) -> Node:
        meta = as_map(data.get("metadata"))
        spec = as_map(data.get("spec"))
        conditions = as_list(as_map(data.get("status")).get("conditions"))
        ready = any(
            as_map(c).get("type") == "Ready" and as_str(as_map(c).get("status")) == "True"
            for c in conditions
        )
        return cls(
            name=as_str(meta.get("name")),
            labels=as_labels(meta.get("labels")),
            taints=tuple(Taint.from_k8s_dict(as_map(t)) for t in as_list(spec.get("taints"))),
            ready=ready,
            unschedulable=as_bool(spec.get("unschedulable")),
        )


# --------------------------------------------------------------------------- scheduling summary


@dataclass(frozen=True)
class PodSpecSummary:
    """What decides where a pod may be placed."""

    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = ()
    required_node_affinity: tuple[NodeSelectorTerm, ...] = ()
    required_pod_affinity: tuple[PodAffinityTerm, ...] = ()
    host_network: bool = False
    node_name: str = ""

    @classmethod
    def from_k8s_dict(cls, spec: JSONDict) -> PodSpecSummary:
        """From a pod spec (``spec`` of a Pod or ``spec.template.spec`` of a workload)."""
        affinity = as_map(spec.get("affinity"))
        node_aff = as_map(
            as_map(affinity.get("nodeAffinity")).get(
                "requiredDuringSchedulingIgnoredDuringExecution"
            )
        )
        pod_aff = as_list(
            as_map(affinity.get("podAffinity")).get(
                "requiredDuringSchedulingIgnoredDuringExecution"
            )
        )
        return cls(
            node_selector=as_labels(spec.get("nodeSelector")),
            tolerations=tuple(
                Toleration.from_k8s_dict(as_map(t)) for t in as_list(spec.get("tolerations"))
            ),
            required_node_affinity=tuple(
                NodeSelectorTerm.from_k8s_dict(as_map(t))
                for t in as_list(node_aff.get("nodeSelectorTerms"))
            ),
            required_pod_affinity=tuple(PodAffinityTerm.from_k8s_dict(as_map(t)) for t in pod_aff),
            host_network=as_bool(spec.get("hostNetwork")),
            node_name=as_str(spec.get("nodeName")),
        )


# --------------------------------------------------------------------------- pods


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str


@dataclass(frozen=True)
class ContainerStatus:
    """A container of a pod: its spec image and its observed state."""

    name: str
    image: str
    ready: bool = False
    restart_count: int = 0
    state: Literal["running", "waiting", "terminated", ""] = ""
    waiting_reason: str = ""
    waiting_message: str = ""
    terminated_reason: str = ""
    last_termination_reason: str = ""
    last_termination_exit_code: int | None = None

    @classmethod
    def from_k8s_dicts(cls, spec: JSONDict, status: JSONDict | None) -> ContainerStatus:
        status = status or {}
        state = as_map(status.get("state"))
        last = as_map(as_map(status.get("lastState")).get("terminated"))
        kind: Literal["running", "waiting", "terminated", ""] = ""
        if "running" in state:
            kind = "running"
        elif "waiting" in state:
            kind = "waiting"
        elif "terminated" in state:
            kind = "terminated"
        waiting = as_map(state.get("waiting"))
        return cls(
            name=as_str(spec.get("name") or status.get("name")),
            image=as_str(spec.get("image") or status.get("image")),
            ready=as_bool(status.get("ready")),
            restart_count=as_int(status.get("restartCount")),
            state=kind,
            waiting_reason=as_str(waiting.get("reason")),
            waiting_message=as_str(waiting.get("message")),
            terminated_reason=as_str(as_map(state.get("terminated")).get("reason")),
            last_termination_reason=as_str(last.get("reason")),
            last_termination_exit_code=opt_int(last.get("exitCode")),
        )


def _containers(specs: Iterable[Any], statuses: Iterable[Any]) -> tuple[ContainerStatus, ...]:
    by_name = {as_str(as_map(s).get("name")): as_map(s) for s in statuses}
    out = [
        ContainerStatus.from_k8s_dicts(as_map(s), by_name.get(as_str(as_map(s).get("name"))))
        for s in specs
    ]
    known = {c.name for c in out}
    out.extend(
        ContainerStatus.from_k8s_dicts({}, s) for name, s in by_name.items() if name not in known
    )
    return tuple(out)


def _target_node_from_affinity(spec: JSONDict) -> str:
    """The node a DaemonSet pod is bound for before it is scheduled (matchFields metadata.name)."""
    summary = PodSpecSummary.from_k8s_dict(spec)
    for term in summary.required_node_affinity:
        for req in term.match_fields:
            if req.key == "metadata.name" and req.operator == "In" and len(req.values) == 1:
                return req.values[0]
    return ""


@dataclass(frozen=True)
class Pod:
    """A pod.

    ``node_name`` is the node it runs on or, for a DaemonSet pod not yet scheduled,
    the node it is bound for (``scheduled`` tells which).
    """

    namespace: str
    name: str
    node_name: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    phase: str = "Running"
    ready: bool = True
    containers: tuple[ContainerStatus, ...] = ()
    init_containers: tuple[ContainerStatus, ...] = ()
    scheduled: bool = True
    unschedulable_reason: str = ""
    unschedulable_message: str = ""
    deleting: bool = False
    created: str = ""

    @classmethod
    def from_k8s_dict(cls, data: JSONDict) -> Pod:
        meta = as_map(data.get("metadata"))
        spec = as_map(data.get("spec"))
        status = as_map(data.get("status"))
        conditions = [as_map(c) for c in as_list(status.get("conditions"))]
        ready = any(
            c.get("type") == "Ready" and as_str(c.get("status")) == "True" for c in conditions
        )
        sched_reason = sched_message = ""
        for cond in conditions:
            if cond.get("type") == "PodScheduled" and as_str(cond.get("status")) == "False":
                sched_reason = as_str(cond.get("reason"))
                sched_message = as_str(cond.get("message"))
        node_name = as_str(spec.get("nodeName"))
        return cls(
            namespace=as_str(meta.get("namespace")),
            name=as_str(meta.get("name")),
            node_name=node_name or _target_node_from_affinity(spec),
            labels=as_labels(meta.get("labels")),
            phase=as_str(status.get("phase"), "Pending"),
            ready=ready,
            containers=_containers(
                as_list(spec.get("containers")), as_list(status.get("containerStatuses"))
            ),
            init_containers=_containers(
                as_list(spec.get("initContainers")), as_list(status.get("initContainerStatuses"))
            ),
            scheduled=bool(node_name),
            unschedulable_reason=sched_reason,
            unschedulable_message=sched_message,
            deleting=meta.get("deletionTimestamp") is not None,
            created=as_str(meta.get("creationTimestamp")),
        )

    @property
    def terminal(self) -> bool:
        return self.phase in ("Succeeded", "Failed")

    def container(self, name: str) -> ContainerStatus | None:
        for c in (*self.containers, *self.init_containers):
            if c.name == name:
                return c
        return None

    @property
    def restarts(self) -> int:
        return sum(c.restart_count for c in self.containers)

    @property
    def crash_looping(self) -> bool:
        return any(
            c.waiting_reason == "CrashLoopBackOff"
            for c in (*self.containers, *self.init_containers)
        )

    def problem(self) -> str:
        """A one-line reason why the pod is not ready, or ``""``."""
        for c in (*self.init_containers, *self.containers):
            if c.waiting_reason and c.waiting_reason not in (
                "ContainerCreating",
                "PodInitializing",
            ):
                msg = f"{c.name} {c.waiting_reason}"
                return f"{msg}: {c.waiting_message}" if c.waiting_message else msg
        if not self.scheduled or self.unschedulable_reason:
            reason = self.unschedulable_reason or "not scheduled"
            msg = f"{self.phase} ({reason})"
            return f"{msg}: {self.unschedulable_message}" if self.unschedulable_message else msg
        for c in (*self.init_containers, *self.containers):
            if c.waiting_reason:
                return f"{c.name} {c.waiting_reason}"
        if self.phase != "Running":
            return self.phase
        if self.deleting:
            return "terminating"
        not_ready = [c.name for c in self.containers if not c.ready]
        if not_ready:
            return "containers not ready: " + ", ".join(not_ready)
        return "" if self.ready else "not ready"


# --------------------------------------------------------------------------- workloads


@dataclass(frozen=True)
class Workload:
    """A DaemonSet or Deployment with the counters cilium-cli reads."""

    kind: str
    name: str
    namespace: str = defaults.DEFAULT_NAMESPACE
    generation: int = 1
    observed_generation: int = 1
    desired: int = 0
    current: int = 0
    ready: int = 0
    updated: int = 0
    available: int = 0
    selector: LabelSelector | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    template_labels: Mapping[str, str] = field(default_factory=dict)
    scheduling: PodSpecSummary = field(default_factory=PodSpecSummary)
    containers: tuple[ContainerSpec, ...] = ()
    init_containers: tuple[ContainerSpec, ...] = ()

    @classmethod
    def from_k8s_dict(cls, data: JSONDict, kind: str | None = None) -> Workload:
        """``kind`` is needed when the dict lacks it (list items from the Python client)."""
        meta = as_map(data.get("metadata"))
        spec = as_map(data.get("spec"))
        status = as_map(data.get("status"))
        template = as_map(spec.get("template"))
        tspec = as_map(template.get("spec"))
        resolved = kind or as_str(data.get("kind"))
        if resolved == "DaemonSet":
            desired = as_int(status.get("desiredNumberScheduled"))
            current = as_int(status.get("currentNumberScheduled"))
            ready = as_int(status.get("numberReady"))
            updated = as_int(status.get("updatedNumberScheduled"))
            available = as_int(status.get("numberAvailable"))
        else:
            desired = as_int(spec.get("replicas"), 1) if "replicas" in spec else 1
            current = as_int(status.get("replicas"))
            ready = as_int(status.get("readyReplicas"))
            updated = as_int(status.get("updatedReplicas"))
            available = as_int(status.get("availableReplicas"))
        sel = spec.get("selector")
        generation = as_int(meta.get("generation"), 1)
        return cls(
            kind=resolved,
            name=as_str(meta.get("name")),
            namespace=as_str(meta.get("namespace"), defaults.DEFAULT_NAMESPACE),
            generation=generation,
            observed_generation=as_int(
                status.get("observedGeneration"), 0 if status else generation
            ),
            desired=desired,
            current=current,
            ready=ready,
            updated=updated,
            available=available,
            selector=LabelSelector.from_k8s_dict(as_map(sel)) if isinstance(sel, Mapping) else None,
            labels=as_labels(meta.get("labels")),
            template_labels=as_labels(as_map(template.get("metadata")).get("labels")),
            scheduling=PodSpecSummary.from_k8s_dict(tspec),
            containers=tuple(
                ContainerSpec(as_str(as_map(c).get("name")), as_str(as_map(c).get("image")))
                for c in as_list(tspec.get("containers"))
            ),
            init_containers=tuple(
                ContainerSpec(as_str(as_map(c).get("name")), as_str(as_map(c).get("image")))
                for c in as_list(tspec.get("initContainers"))
            ),
        )

    def container_image(self, name: str) -> str | None:
        for c in (*self.containers, *self.init_containers):
            if c.name == name:
                return c.image
        return None

    def health_problems(self) -> list[str]:
        """Why the workload is not healthy in cilium-cli's sense (empty when healthy)."""
        problems: list[str] = []
        if self.observed_generation != self.generation:
            problems.append(
                f"observedGeneration {self.observed_generation} != generation {self.generation}"
                " (controller has not processed the latest spec)"
            )
        counts = {
            "ready": self.ready,
            "up-to-date": self.updated,
            "available": self.available,
        }
        for label, value in counts.items():
            if value != self.desired:
                problems.append(f"{label} {value}/{self.desired}")
        if self.kind == "Deployment" and self.current > self.desired:
            problems.append(
                f"{self.current} pods for {self.desired} replicas (rollout in progress)"
            )
        return problems

    @property
    def healthy(self) -> bool:
        return not self.health_problems()
