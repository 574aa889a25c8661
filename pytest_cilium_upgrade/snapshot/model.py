"""The snapshot of cluster and Helm state that the checks read.

Every type is a frozen dataclass built from plain data. The ``from_k8s_dict``
constructors take the JSON form of Kubernetes objects (camelCase keys, as
``kubectl get -o json`` prints them or ``ApiClient().sanitize_for_serialization``
returns them); the ``from_helm_*`` constructors take Helm's ``-o json`` output.
Missing fields fall back to Kubernetes' defaults, so rendered manifests (no
status) and partial fixtures load too.

The dataclasses hold mappings, so they compare by value but are not hashable.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.versions import split_chart

JSONDict = Mapping[str, Any]

# --------------------------------------------------------------------------- coercion helpers


def _map(value: object) -> JSONDict:
    if type(value) is dict:  # nearly always: skip the slower abstract-class check
        return value
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any] | tuple[Any, ...]:
    return value if isinstance(value, list | tuple) else []


def _str(value: object, default: str = "") -> str:
    if value is None:
        return default
    return value if isinstance(value, str) else str(value)


def _opt_str(value: object) -> str | None:
    return None if value is None or value == "" else _str(value)


def _int(value: object, default: int = 0) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return default
    return default


def _opt_int(value: object) -> int | None:
    if value is None or value == "":
        return None
    return _int(value)


def _bool(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _labels(value: object) -> dict[str, str]:
    return {str(k): _str(v) for k, v in _map(value).items()}


# --------------------------------------------------------------------------- selectors


@dataclass(frozen=True)
class LabelSelectorRequirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()

    @classmethod
    def from_k8s_dict(cls, data: JSONDict) -> LabelSelectorRequirement:
        return cls(
            _str(data.get("key")),
            _str(data.get("operator")),
            tuple(_str(v) for v in _list(data.get("values"))),
        )

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "In":
            return present and labels[self.key] in self.values
        if self.operator == "NotIn":
            return not present or labels[self.key] not in self.values
        if self.operator == "Exists":
            return present
        if self.operator == "DoesNotExist":
            return not present
        return False

    def __str__(self) -> str:
        if self.operator == "In":
            return f"{self.key} in ({','.join(self.values)})"
        if self.operator == "NotIn":
            return f"{self.key} notin ({','.join(self.values)})"
        if self.operator == "Exists":
            return self.key
        if self.operator == "DoesNotExist":
            return f"!{self.key}"
        return f"{self.key} {self.operator} ({','.join(self.values)})"


@dataclass(frozen=True)
class LabelSelector:
    """A ``metav1.LabelSelector``. An empty selector matches every object."""

    match_labels: Mapping[str, str] = field(default_factory=dict)
    match_expressions: tuple[LabelSelectorRequirement, ...] = ()

    @classmethod
    def from_k8s_dict(cls, data: JSONDict) -> LabelSelector:
        return cls(
            _labels(data.get("matchLabels")),
            tuple(
                LabelSelectorRequirement.from_k8s_dict(_map(e))
                for e in _list(data.get("matchExpressions"))
            ),
        )

    @classmethod
    def parse(cls, text: str) -> LabelSelector:
        """Parse the string form used by ``kubectl -l`` and the API's ``labelSelector``.

        Supports ``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``, ``k in (a,b)``, ``k notin (a,b)``.
        """
        labels: dict[str, str] = {}
        exprs: list[LabelSelectorRequirement] = []
        for raw in _split_selector(text):
            part = raw.strip()
            if not part:
                continue
            lowered = part.replace("\t", " ")
            if " notin " in lowered or " in " in lowered:
                op = "NotIn" if " notin " in lowered else "In"
                key, _, rest = lowered.partition(" notin " if op == "NotIn" else " in ")
                values = tuple(v.strip() for v in rest.strip().strip("()").split(",") if v.strip())
                exprs.append(LabelSelectorRequirement(key.strip(), op, values))
            elif "!=" in part:
                key, _, value = part.partition("!=")
                exprs.append(LabelSelectorRequirement(key.strip(), "NotIn", (value.strip(),)))
            elif "=" in part:
                key, _, value = part.partition("==") if "==" in part else part.partition("=")
                labels[key.strip()] = value.strip()
            elif part.startswith("!"):
                exprs.append(LabelSelectorRequirement(part[1:].strip(), "DoesNotExist"))
            else:
                exprs.append(LabelSelectorRequirement(part, "Exists"))
        return cls(labels, tuple(exprs))

    def matches(self, labels: Mapping[str, str]) -> bool:
        for key, value in self.match_labels.items():
            if labels.get(key) != value:
                return False
        return all(expr.matches(labels) for expr in self.match_expressions)

    @property
    def empty(self) -> bool:
        return not self.match_labels and not self.match_expressions

    def __str__(self) -> str:
        parts = [f"{k}={v}" for k, v in sorted(self.match_labels.items())]
        parts.extend(str(e) for e in self.match_expressions)
        return ",".join(parts)


def _split_selector(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def as_selector(selector: str | LabelSelector) -> LabelSelector:
    return selector if isinstance(selector, LabelSelector) else LabelSelector.parse(selector)


# --------------------------------------------------------------------------- nodes


@dataclass(frozen=True)
class Taint:
    key: str
    value: str = ""
    effect: str = "NoSchedule"

    @classmethod
    def from_k8s_dict(cls, data: JSONDict) -> Taint:
        return cls(_str(data.get("key")), _str(data.get("value")), _str(data.get("effect")))

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
            _str(data.get("key")),
            _str(data.get("operator")) or "Equal",
            _str(data.get("value")),
            _str(data.get("effect")),
            _opt_int(data.get("tolerationSeconds")),
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
        meta = _map(data.get("metadata"))
        spec = _map(data.get("spec"))
        conditions = _list(_map(data.get("status")).get("conditions"))
        ready = any(
            _map(c).get("type") == "Ready" and _str(_map(c).get("status")) == "True"
            for c in conditions
        )
        return cls(
            name=_str(meta.get("name")),
            labels=_labels(meta.get("labels")),
            taints=tuple(Taint.from_k8s_dict(_map(t)) for t in _list(spec.get("taints"))),
            ready=ready,
            unschedulable=_bool(spec.get("unschedulable")),
        )


# --------------------------------------------------------------------------- scheduling summary


@dataclass(frozen=True)
class NodeSelectorRequirement:
    """One ``matchExpressions``/``matchFields`` entry (In, NotIn, Exists, DoesNotExist, Gt, Lt)."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    @classmethod
    def from_k8s_dict(cls, data: JSONDict) -> NodeSelectorRequirement:
        return cls(
            _str(data.get("key")),
            _str(data.get("operator")),
            tuple(_str(v) for v in _list(data.get("values"))),
        )

    def __str__(self) -> str:
        if self.operator in ("Exists", "DoesNotExist"):
            return f"{self.key} {self.operator}"
        return f"{self.key} {self.operator} [{', '.join(self.values)}]"


@dataclass(frozen=True)
class NodeSelectorTerm:
    """Requirements ANDed together; the terms of a node affinity are ORed."""

    match_expressions: tuple[NodeSelectorRequirement, ...] = ()
    match_fields: tuple[NodeSelectorRequirement, ...] = ()

    @classmethod
    def from_k8s_dict(cls, data: JSONDict) -> NodeSelectorTerm:
        return cls(
            tuple(
                NodeSelectorRequirement.from_k8s_dict(_map(e))
                for e in _list(data.get("matchExpressions"))
            ),
            tuple(
                NodeSelectorRequirement.from_k8s_dict(_map(e))
                for e in _list(data.get("matchFields"))
            ),
        )

    def __str__(self) -> str:
        parts = [str(e) for e in self.match_expressions]
        parts.extend(f"field {e}" for e in self.match_fields)
        return " and ".join(parts) if parts else "(empty term)"


@dataclass(frozen=True)
class PodAffinityTerm:
    """A required pod (anti-)affinity term.

    ``label_selector`` None selects no pod. With neither ``namespaces`` nor
    ``namespace_selector`` the term applies to the incoming pod's own namespace;
    an empty ``namespace_selector`` selects every namespace.
    """

    label_selector: LabelSelector | None
    topology_key: str
    namespaces: tuple[str, ...] = ()
    namespace_selector: LabelSelector | None = None

    @classmethod
    def from_k8s_dict(cls, data: JSONDict) -> PodAffinityTerm:
        sel = data.get("labelSelector")
        ns_sel = data.get("namespaceSelector")
        return cls(
            LabelSelector.from_k8s_dict(_map(sel)) if isinstance(sel, Mapping) else None,
            _str(data.get("topologyKey")),
            tuple(_str(n) for n in _list(data.get("namespaces"))),
            LabelSelector.from_k8s_dict(_map(ns_sel)) if isinstance(ns_sel, Mapping) else None,
        )

    def __str__(self) -> str:
        sel = "nothing" if self.label_selector is None else str(self.label_selector) or "all pods"
        return f"pods matching {sel} on the same {self.topology_key}"


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
        affinity = _map(spec.get("affinity"))
        node_aff = _map(
            _map(affinity.get("nodeAffinity")).get("requiredDuringSchedulingIgnoredDuringExecution")
        )
        pod_aff = _list(
            _map(affinity.get("podAffinity")).get("requiredDuringSchedulingIgnoredDuringExecution")
        )
        return cls(
            node_selector=_labels(spec.get("nodeSelector")),
            tolerations=tuple(
                Toleration.from_k8s_dict(_map(t)) for t in _list(spec.get("tolerations"))
            ),
            required_node_affinity=tuple(
                NodeSelectorTerm.from_k8s_dict(_map(t))
                for t in _list(node_aff.get("nodeSelectorTerms"))
            ),
            required_pod_affinity=tuple(PodAffinityTerm.from_k8s_dict(_map(t)) for t in pod_aff),
            host_network=_bool(spec.get("hostNetwork")),
            node_name=_str(spec.get("nodeName")),
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
        state = _map(status.get("state"))
        last = _map(_map(status.get("lastState")).get("terminated"))
        kind: Literal["running", "waiting", "terminated", ""] = ""
        if "running" in state:
            kind = "running"
        elif "waiting" in state:
            kind = "waiting"
        elif "terminated" in state:
            kind = "terminated"
        waiting = _map(state.get("waiting"))
        return cls(
            name=_str(spec.get("name") or status.get("name")),
            image=_str(spec.get("image") or status.get("image")),
            ready=_bool(status.get("ready")),
            restart_count=_int(status.get("restartCount")),
            state=kind,
            waiting_reason=_str(waiting.get("reason")),
            waiting_message=_str(waiting.get("message")),
            terminated_reason=_str(_map(state.get("terminated")).get("reason")),
            last_termination_reason=_str(last.get("reason")),
            last_termination_exit_code=_opt_int(last.get("exitCode")),
        )


def _containers(specs: Iterable[Any], statuses: Iterable[Any]) -> tuple[ContainerStatus, ...]:
    by_name = {_str(_map(s).get("name")): _map(s) for s in statuses}
    out = [
        ContainerStatus.from_k8s_dicts(_map(s), by_name.get(_str(_map(s).get("name"))))
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
        meta = _map(data.get("metadata"))
        spec = _map(data.get("spec"))
        status = _map(data.get("status"))
        conditions = [_map(c) for c in _list(status.get("conditions"))]
        ready = any(
            c.get("type") == "Ready" and _str(c.get("status")) == "True" for c in conditions
        )
        sched_reason = sched_message = ""
        for cond in conditions:
            if cond.get("type") == "PodScheduled" and _str(cond.get("status")) == "False":
                sched_reason = _str(cond.get("reason"))
                sched_message = _str(cond.get("message"))
        node_name = _str(spec.get("nodeName"))
        return cls(
            namespace=_str(meta.get("namespace")),
            name=_str(meta.get("name")),
            node_name=node_name or _target_node_from_affinity(spec),
            labels=_labels(meta.get("labels")),
            phase=_str(status.get("phase"), "Pending"),
            ready=ready,
            containers=_containers(
                _list(spec.get("containers")), _list(status.get("containerStatuses"))
            ),
            init_containers=_containers(
                _list(spec.get("initContainers")), _list(status.get("initContainerStatuses"))
            ),
            scheduled=bool(node_name),
            unschedulable_reason=sched_reason,
            unschedulable_message=sched_message,
            deleting=meta.get("deletionTimestamp") is not None,
            created=_str(meta.get("creationTimestamp")),
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
        meta = _map(data.get("metadata"))
        spec = _map(data.get("spec"))
        status = _map(data.get("status"))
        template = _map(spec.get("template"))
        tspec = _map(template.get("spec"))
        resolved = kind or _str(data.get("kind"))
        if resolved == "DaemonSet":
            desired = _int(status.get("desiredNumberScheduled"))
            current = _int(status.get("currentNumberScheduled"))
            ready = _int(status.get("numberReady"))
            updated = _int(status.get("updatedNumberScheduled"))
            available = _int(status.get("numberAvailable"))
        else:
            desired = _int(spec.get("replicas"), 1) if "replicas" in spec else 1
            current = _int(status.get("replicas"))
            ready = _int(status.get("readyReplicas"))
            updated = _int(status.get("updatedReplicas"))
            available = _int(status.get("availableReplicas"))
        sel = spec.get("selector")
        generation = _int(meta.get("generation"), 1)
        return cls(
            kind=resolved,
            name=_str(meta.get("name")),
            namespace=_str(meta.get("namespace"), defaults.DEFAULT_NAMESPACE),
            generation=generation,
            observed_generation=_int(status.get("observedGeneration"), 0 if status else generation),
            desired=desired,
            current=current,
            ready=ready,
            updated=updated,
            available=available,
            selector=LabelSelector.from_k8s_dict(_map(sel)) if isinstance(sel, Mapping) else None,
            labels=_labels(meta.get("labels")),
            template_labels=_labels(_map(template.get("metadata")).get("labels")),
            scheduling=PodSpecSummary.from_k8s_dict(tspec),
            containers=tuple(
                ContainerSpec(_str(_map(c).get("name")), _str(_map(c).get("image")))
                for c in _list(tspec.get("containers"))
            ),
            init_containers=tuple(
                ContainerSpec(_str(_map(c).get("name")), _str(_map(c).get("image")))
                for c in _list(tspec.get("initContainers"))
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


# --------------------------------------------------------------------------- helm


@dataclass(frozen=True)
class HelmRelease:
    name: str
    namespace: str
    revision: int
    status: str
    chart_name: str = defaults.CHART_NAME
    chart_version: str = ""
    app_version: str = ""
    updated: str = ""

    @classmethod
    def from_helm_list_entry(cls, data: JSONDict) -> HelmRelease:
        """From one entry of ``helm list -o json`` (chart column ``cilium-1.16.3``)."""
        chart_name, chart_version = split_chart(_str(data.get("chart")))
        return cls(
            name=_str(data.get("name")),
            namespace=_str(data.get("namespace")),
            revision=_int(data.get("revision")),
            status=_str(data.get("status")),
            chart_name=chart_name,
            chart_version=chart_version,
            app_version=_str(data.get("app_version")),
            updated=_str(data.get("updated")),
        )

    @classmethod
    def from_helm_status(cls, data: JSONDict) -> HelmRelease:
        """From ``helm status -o json`` (Helm 3; Helm 4 keeps these fields)."""
        info = _map(data.get("info"))
        meta = _map(_map(data.get("chart")).get("metadata"))
        return cls(
            name=_str(data.get("name")),
            namespace=_str(data.get("namespace")),
            revision=_int(data.get("version")),
            status=_str(info.get("status")),
            chart_name=_str(meta.get("name"), defaults.CHART_NAME),
            chart_version=_str(meta.get("version")),
            app_version=_str(meta.get("appVersion")),
            updated=_str(info.get("last_deployed")),
        )


@dataclass(frozen=True)
class HelmHistoryEntry:
    revision: int
    status: str
    chart_name: str = defaults.CHART_NAME
    chart_version: str = ""
    app_version: str = ""
    description: str = ""
    updated: str = ""

    @classmethod
    def from_helm_history_entry(cls, data: JSONDict) -> HelmHistoryEntry:
        """From one entry of ``helm history -o json``."""
        chart_name, chart_version = split_chart(_str(data.get("chart")))
        return cls(
            revision=_int(data.get("revision")),
            status=_str(data.get("status")),
            chart_name=chart_name,
            chart_version=chart_version,
            app_version=_str(data.get("app_version")),
            description=_str(data.get("description")),
            updated=_str(data.get("updated")),
        )


@dataclass(frozen=True)
class ChartRender:
    """The outcome of rendering a chart version with the values snapshot."""

    chart_version: str
    succeeded: bool
    error: str = ""


@dataclass(frozen=True)
class ValuesSnapshotFile:
    """The saved ``helm get values`` file as read from disk (text is parsed by the checks)."""

    path: str
    exists: bool
    mode: int | None = None
    text: str | None = None
    read_error: str = ""
    # why --cilium-write-snapshot did not write it in this run
    write_error: str = ""


# --------------------------------------------------------------------------- RBAC


@dataclass(frozen=True)
class AccessReview:
    """The answer to one SelfSubjectAccessReview."""

    verb: str
    resource: str
    group: str = ""
    subresource: str = ""
    namespace: str = ""
    allowed: bool = False
    reason: str = ""

    @classmethod
    def from_k8s_dict(cls, data: JSONDict) -> AccessReview:
        attrs = _map(_map(data.get("spec")).get("resourceAttributes"))
        status = _map(data.get("status"))
        return cls(
            verb=_str(attrs.get("verb")),
            resource=_str(attrs.get("resource")),
            group=_str(attrs.get("group")),
            subresource=_str(attrs.get("subresource")),
            namespace=_str(attrs.get("namespace")),
            allowed=_bool(status.get("allowed")),
            reason=_str(status.get("reason")),
        )

    def answers(self, req: defaults.AccessRequirement) -> bool:
        return (self.verb, self.resource, self.group, self.subresource) == (
            req.verb,
            req.resource,
            req.group,
            req.subresource,
        )


# --------------------------------------------------------------------------- snapshot


@dataclass(frozen=True)
class ClusterSnapshot:
    """Everything one phase's checks read, collected once.

    ``api_error`` / ``helm_error`` record that the cluster or the helm client could
    not be reached at all; the checks that need them are then skipped.
    ``release_error`` records that the release state (Helm's records) could not be
    read although helm works.
    """

    namespace: str = defaults.DEFAULT_NAMESPACE
    api_error: str | None = None
    # the HTTP status when the API server answered, but with an error (429, 5xx, ...)
    api_status: int | None = None
    # the API server was reached but did not answer within the request timeout
    api_no_answer: bool = False
    server_version: str | None = None
    access_reviews: tuple[AccessReview, ...] = ()
    helm_version: str | None = None
    helm_error: str | None = None
    release_error: str | None = None
    release: HelmRelease | None = None
    release_history: tuple[HelmHistoryEntry, ...] = ()
    preflight_release: HelmRelease | None = None
    available_chart_versions: tuple[str, ...] = ()
    nodes: tuple[Node, ...] = ()
    workloads: tuple[Workload, ...] = ()
    pods: tuple[Pod, ...] = ()
    validator_log: str | None = None
    validator_previous_log: str | None = None
    values_snapshot: ValuesSnapshotFile | None = None
    live_values: Mapping[str, Any] | None = None
    target_render: ChartRender | None = None
    # reads that failed although the API answered (e.g. a forbidden LIST)
    read_errors: tuple[str, ...] = ()

    @classmethod
    def from_k8s_objects(cls, objects: Iterable[JSONDict], **fields: Any) -> ClusterSnapshot:
        """Sort Node, Pod, DaemonSet, Deployment (and ``List`` wrappers) into a snapshot.

        Other kinds are ignored; ``fields`` fill the remaining attributes.
        """
        nodes: list[Node] = list(fields.pop("nodes", ()))
        workloads: list[Workload] = list(fields.pop("workloads", ()))
        pods: list[Pod] = list(fields.pop("pods", ()))
        for obj in _flatten(objects):
            kind = _str(obj.get("kind"))
            if kind == "Node":
                nodes.append(Node.from_k8s_dict(obj))
            elif kind == "Pod":
                pods.append(Pod.from_k8s_dict(obj))
            elif kind in ("DaemonSet", "Deployment"):
                workloads.append(Workload.from_k8s_dict(obj))
        return cls(nodes=tuple(nodes), workloads=tuple(workloads), pods=tuple(pods), **fields)

    def node(self, name: str) -> Node | None:
        for node in self.nodes:
            if node.name == name:
                return node
        return None

    def workload(self, kind: str, name: str) -> Workload | None:
        for wl in self.workloads:
            if wl.kind == kind and wl.name == name:
                return wl
        return None

    def pods_matching(
        self, selector: str | LabelSelector, namespace: str | None = None
    ) -> tuple[Pod, ...]:
        """Pods whose labels match ``selector`` (in ``namespace``; default the snapshot's)."""
        ns = self.namespace if namespace is None else namespace
        key = (selector, ns) if isinstance(selector, str) else None
        if key is not None and key in self._pods_matching:
            return self._pods_matching[key]
        sel = as_selector(selector)
        found = tuple(
            p for p in self.pods if (not ns or p.namespace == ns) and sel.matches(p.labels)
        )
        if key is not None:
            self._pods_matching[key] = found
        return found

    @functools.cached_property
    def _pods_matching(self) -> dict[tuple[str, str], tuple[Pod, ...]]:
        """The answers of :meth:`pods_matching` by selector: several checks ask alike."""
        return {}

    def component_pods(self, component: defaults.Component) -> tuple[Pod, ...]:
        return self.pods_matching(component.selector)

    def component_workload(self, component: defaults.Component) -> Workload | None:
        return self.workload(component.kind, component.name)


def _flatten(objects: Iterable[JSONDict]) -> Iterable[JSONDict]:
    for obj in objects:
        if not isinstance(obj, Mapping):
            continue
        if _str(obj.get("kind")).endswith("List") or ("items" in obj and "kind" not in obj):
            kind = _str(obj.get("kind")).removesuffix("List")
            for item in _list(obj.get("items")):
                item_map = _map(item)
                if "kind" not in item_map and kind:
                    item_map = {**item_map, "kind": kind}
                yield item_map
        else:
            yield obj
