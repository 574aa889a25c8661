"""Can a pod template be placed on a node? Kubernetes' required scheduling rules, offline.

Implements what decides eligibility for the pods the gate cares about:

- taints against tolerations (only ``NoSchedule`` and ``NoExecute`` taints repel;
  ``PreferNoSchedule`` does not), including the tolerations the DaemonSet controller
  adds to every DaemonSet pod;
- ``spec.unschedulable`` (cordoned nodes), which DaemonSet pods tolerate;
- ``nodeSelector`` and required node affinity (``matchExpressions`` on labels with
  In/NotIn/Exists/DoesNotExist/Gt/Lt, ``matchFields`` on ``metadata.name``);
- required pod affinity to pods already running in the same topology domain.

Resource fit, host ports and pod anti-affinity are not evaluated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pytest_cilium_upgrade.snapshot.model import (
    Node,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    Pod,
    PodAffinityTerm,
    PodSpecSummary,
    Taint,
    Toleration,
)

# Well-known Kubernetes taint keys.
TAINT_NODE_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_NODE_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_NODE_DISK_PRESSURE = "node.kubernetes.io/disk-pressure"
TAINT_NODE_MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"
TAINT_NODE_PID_PRESSURE = "node.kubernetes.io/pid-pressure"
TAINT_NODE_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
TAINT_NODE_NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"
TAINT_CONTROL_PLANE = "node-role.kubernetes.io/control-plane"
TAINT_MASTER = "node-role.kubernetes.io/master"

NO_SCHEDULE = "NoSchedule"
PREFER_NO_SCHEDULE = "PreferNoSchedule"
NO_EXECUTE = "NoExecute"
# Effects that keep a new pod off a node.
BLOCKING_EFFECTS = frozenset({NO_SCHEDULE, NO_EXECUTE})

NODE_NAME_FIELD = "metadata.name"


def daemonset_default_tolerations(host_network: bool) -> tuple[Toleration, ...]:
    """The tolerations the DaemonSet controller adds to every pod it creates.

    Not-ready and unreachable (NoExecute), the node-condition taints and
    unschedulable (NoSchedule), and network-unavailable for host-network pods.
    """
    tols = [
        Toleration(TAINT_NODE_NOT_READY, "Exists", effect=NO_EXECUTE),
        Toleration(TAINT_NODE_UNREACHABLE, "Exists", effect=NO_EXECUTE),
        Toleration(TAINT_NODE_DISK_PRESSURE, "Exists", effect=NO_SCHEDULE),
        Toleration(TAINT_NODE_MEMORY_PRESSURE, "Exists", effect=NO_SCHEDULE),
        Toleration(TAINT_NODE_PID_PRESSURE, "Exists", effect=NO_SCHEDULE),
        Toleration(TAINT_NODE_UNSCHEDULABLE, "Exists", effect=NO_SCHEDULE),
    ]
    if host_network:
        tols.append(Toleration(TAINT_NODE_NETWORK_UNAVAILABLE, "Exists", effect=NO_SCHEDULE))
    return tuple(tols)


def tolerates(toleration: Toleration, taint: Taint) -> bool:
    """Whether one toleration matches one taint.

    An empty toleration effect matches every effect; an empty key (only valid with
    ``Exists``) matches every key; ``Equal`` (or empty) compares values, ``Exists``
    ignores them. Any other operator matches nothing.
    """
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if toleration.key and toleration.key != taint.key:
        return False
    if toleration.operator in ("", "Equal"):
        return toleration.value == taint.value
    return toleration.operator == "Exists"


def untolerated_taints(
    taints: Iterable[Taint],
    tolerations: Sequence[Toleration],
    effects: frozenset[str] = BLOCKING_EFFECTS,
) -> list[Taint]:
    """Taints with one of ``effects`` that no toleration matches."""
    return [
        taint
        for taint in taints
        if taint.effect in effects and not any(tolerates(t, taint) for t in tolerations)
    ]


def node_selector_mismatches(node_selector: Mapping[str, str], node: Node) -> list[str]:
    """One message per ``nodeSelector`` entry the node's labels do not satisfy."""
    out: list[str] = []
    for key, value in sorted(node_selector.items()):
        actual = node.labels.get(key)
        if actual is None:
            out.append(f"nodeSelector {key}={value} not matched (node has no label {key})")
        elif actual != value:
            out.append(f"nodeSelector {key}={value} not matched (node has {key}={actual})")
    return out


def _as_int(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None


def _requirement_matches(req: NodeSelectorRequirement, value: str | None) -> bool:
    op = req.operator
    if op == "In":
        return value is not None and value in req.values
    if op == "NotIn":
        return value is None or value not in req.values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt"):
        if value is None or len(req.values) != 1:
            return False
        have, want = _as_int(value), _as_int(req.values[0])
        if have is None or want is None:
            return False
        return have > want if op == "Gt" else have < want
    return False


def _field_matches(req: NodeSelectorRequirement, node: Node) -> bool:
    # Only metadata.name is a supported field, with In/NotIn.
    if req.key != NODE_NAME_FIELD or req.operator not in ("In", "NotIn"):
        return False
    return _requirement_matches(req, node.name)


def term_matches(term: NodeSelectorTerm, node: Node) -> bool:
    """A term matches when all its requirements do; an empty term matches nothing."""
    if not term.match_expressions and not term.match_fields:
        return False
    return all(
        _requirement_matches(r, node.labels.get(r.key)) for r in term.match_expressions
    ) and all(_field_matches(r, node) for r in term.match_fields)


def node_affinity_mismatch(terms: Sequence[NodeSelectorTerm], node: Node) -> str:
    """``""`` when the required node affinity admits ``node``, else why not."""
    if not terms or any(term_matches(t, node) for t in terms):
        return ""
    if len(terms) == 1:
        term = terms[0]
        failed = [
            str(r)
            for r in term.match_expressions
            if not _requirement_matches(r, node.labels.get(r.key))
        ]
        failed.extend(f"field {r}" for r in term.match_fields if not _field_matches(r, node))
        detail = "; ".join(failed) if failed else str(term)
        return f"required node affinity not matched: {detail}"
    return f"required node affinity not matched: none of {len(terms)} terms match"


def _term_namespaces(
    term: PodAffinityTerm, pod_namespace: str, namespace_labels: Mapping[str, Mapping[str, str]]
) -> set[str] | None:
    """Namespaces a term looks in; None means every namespace."""
    if term.namespace_selector is not None and term.namespace_selector.empty:
        return None
    names = set(term.namespaces)
    if term.namespace_selector is not None:
        names.update(
            ns for ns, labels in namespace_labels.items() if term.namespace_selector.matches(labels)
        )
    elif not names:
        names.add(pod_namespace)
    return names


def _pod_matches_term(
    term: PodAffinityTerm,
    pod_namespace: str,
    pod_labels: Mapping[str, str],
    incoming_namespace: str,
    namespace_labels: Mapping[str, Mapping[str, str]],
) -> bool:
    if term.label_selector is None:
        return False
    namespaces = _term_namespaces(term, incoming_namespace, namespace_labels)
    if namespaces is not None and pod_namespace not in namespaces:
        return False
    return term.label_selector.matches(pod_labels)


DomainCounts = dict[tuple[str, str], int]


def affinity_domain_counts(
    terms: Sequence[PodAffinityTerm],
    *,
    pods: Iterable[Pod],
    nodes: Mapping[str, Node],
    pod_namespace: str,
    namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> DomainCounts:
    """How many running pods matching every term sit in each (topology key, value) domain.

    It does not depend on the node being judged: compute it once per pod template and
    pass it to :func:`pod_affinity_mismatch` for every node.
    """
    ns_labels = namespace_labels or {}
    counts: DomainCounts = {}
    for pod in pods:
        if not pod.scheduled or pod.terminal or not pod.node_name:
            continue
        if not all(
            _pod_matches_term(t, pod.namespace, pod.labels, pod_namespace, ns_labels) for t in terms
        ):
            continue
        host = nodes.get(pod.node_name)
        if host is None:
            continue
        for t in terms:
            value = host.labels.get(t.topology_key)
            if value is not None:
                counts[(t.topology_key, value)] = counts.get((t.topology_key, value), 0) + 1
    return counts


def pod_affinity_mismatch(
    terms: Sequence[PodAffinityTerm],
    node: Node,
    *,
    pods: Iterable[Pod],
    nodes: Mapping[str, Node],
    pod_namespace: str,
    pod_labels: Mapping[str, str],
    namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
    counts: DomainCounts | None = None,
) -> str:
    """``""`` when required pod affinity admits ``node``, else why not.

    As in the scheduler, only running (assigned, non-terminal) pods that match every
    term count; each term's topology domain of ``node`` must hold one. If no pod in
    the cluster matches and the incoming pod matches its own terms, it is admitted
    (the first pod of a group with affinity to itself).
    """
    if not terms:
        return ""
    ns_labels = namespace_labels or {}
    for term in terms:
        if term.topology_key not in node.labels:
            return f"required pod affinity to {term}: node has no label {term.topology_key}"
    if counts is None:
        counts = affinity_domain_counts(
            terms,
            pods=pods,
            nodes=nodes,
            pod_namespace=pod_namespace,
            namespace_labels=ns_labels,
        )
    missing = [
        t for t in terms if counts.get((t.topology_key, node.labels[t.topology_key]), 0) <= 0
    ]
    if not missing:
        return ""
    if not counts and all(
        _pod_matches_term(t, pod_namespace, pod_labels, pod_namespace, ns_labels) for t in terms
    ):
        return ""
    return "required pod affinity not satisfied: no " + "; no ".join(str(t) for t in missing)


IneligibilityKind = Literal[
    "taint", "unschedulable", "node-selector", "node-affinity", "pod-affinity"
]


@dataclass(frozen=True)
class Ineligibility:
    """One reason a pod cannot be placed on a node."""

    kind: IneligibilityKind
    message: str
    taint: Taint | None = None

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class NodeEligibility:
    node: str
    reasons: tuple[Ineligibility, ...] = ()

    @property
    def eligible(self) -> bool:
        return not self.reasons

    def reason_text(self) -> str:
        return "; ".join(r.message for r in self.reasons)


def effective_tolerations(spec: PodSpecSummary, *, daemonset: bool) -> tuple[Toleration, ...]:
    if not daemonset:
        return spec.tolerations
    return (*spec.tolerations, *daemonset_default_tolerations(spec.host_network))


def evaluate_node(
    spec: PodSpecSummary,
    node: Node,
    *,
    daemonset: bool,
    pods: Iterable[Pod] = (),
    nodes: Mapping[str, Node] | None = None,
    pod_namespace: str = "",
    pod_labels: Mapping[str, str] | None = None,
    namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
    check_pod_affinity: bool = True,
    affinity_counts: DomainCounts | None = None,
) -> NodeEligibility:
    """Every reason a pod with ``spec`` cannot be placed on ``node`` (none: eligible).

    ``daemonset`` adds the DaemonSet controller's default tolerations. ``pods`` and
    ``nodes`` (by name) are the cluster's existing pods and nodes, used for pod
    affinity; ``pod_namespace`` and ``pod_labels`` describe the incoming pod.
    """
    reasons: list[Ineligibility] = []
    tolerations = effective_tolerations(spec, daemonset=daemonset)
    for taint in untolerated_taints(node.taints, tolerations):
        reasons.append(Ineligibility("taint", f"taint {taint} not tolerated", taint))
    if node.unschedulable:
        cordon = Taint(TAINT_NODE_UNSCHEDULABLE, "", NO_SCHEDULE)
        already = any(r.taint == cordon for r in reasons)
        if not already and not any(tolerates(t, cordon) for t in tolerations):
            reasons.append(Ineligibility("unschedulable", "node is cordoned (unschedulable)"))
    reasons.extend(
        Ineligibility("node-selector", msg)
        for msg in node_selector_mismatches(spec.node_selector, node)
    )
    affinity = node_affinity_mismatch(spec.required_node_affinity, node)
    if affinity:
        reasons.append(Ineligibility("node-affinity", affinity))
    if spec.node_name and spec.node_name != node.name:
        reasons.append(Ineligibility("node-affinity", f"pod is bound to node {spec.node_name}"))
    if check_pod_affinity and spec.required_pod_affinity:
        node_map = nodes if nodes is not None else {node.name: node}
        msg = pod_affinity_mismatch(
            spec.required_pod_affinity,
            node,
            pods=pods,
            nodes=node_map,
            pod_namespace=pod_namespace,
            pod_labels=pod_labels or {},
            namespace_labels=namespace_labels,
            counts=affinity_counts,
        )
        if msg:
            reasons.append(Ineligibility("pod-affinity", msg))
    return NodeEligibility(node.name, tuple(reasons))


def evaluate_nodes(
    spec: PodSpecSummary,
    nodes: Sequence[Node],
    *,
    daemonset: bool,
    pods: Iterable[Pod] = (),
    pod_namespace: str = "",
    pod_labels: Mapping[str, str] | None = None,
    namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, NodeEligibility]:
    """:func:`evaluate_node` for every node, keyed by node name."""
    node_map = {n.name: n for n in nodes}
    pod_list = list(pods)
    return {
        n.name: evaluate_node(
            spec,
            n,
            daemonset=daemonset,
            pods=pod_list,
            nodes=node_map,
            pod_namespace=pod_namespace,
            pod_labels=pod_labels,
            namespace_labels=namespace_labels,
        )
        for n in nodes
    }
