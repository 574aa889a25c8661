"""Scheduling eligibility: taints, cordons, node selectors, node and pod affinity."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from checks_builders import CP_TAINT, load_render, seed_nodes

from pytest_cilium_upgrade.checks.scheduling import (
    TAINT_NODE_NETWORK_UNAVAILABLE,
    TAINT_NODE_NOT_READY,
    TAINT_NODE_UNSCHEDULABLE,
    daemonset_default_tolerations,
    evaluate_node,
    evaluate_nodes,
    node_affinity_mismatch,
    node_selector_mismatches,
    pod_affinity_mismatch,
    term_matches,
    tolerates,
    untolerated_taints,
)
from pytest_cilium_upgrade.snapshot.model import (
    LabelSelector,
    Node,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    Pod,
    PodAffinityTerm,
    PodSpecSummary,
    Taint,
    Toleration,
)


def agent_pods(nodes: Iterable[Node]) -> list[Pod]:
    return [Pod("kube-system", f"cilium-{n.name}", n.name, {"k8s-app": "cilium"}) for n in nodes]


# --------------------------------------------------------------------------- tolerations


@pytest.mark.parametrize(
    ("toleration", "taint", "expected"),
    [
        (Toleration(operator="Exists"), Taint("any", "v", "NoSchedule"), True),
        (Toleration(operator="Exists"), Taint("any", "", "NoExecute"), True),
        (Toleration("k", "Exists"), Taint("k", "whatever", "NoSchedule"), True),
        (Toleration("k", "Exists", effect="NoSchedule"), Taint("k", "", "NoExecute"), False),
        (Toleration("k", "Equal", "v"), Taint("k", "v", "NoSchedule"), True),
        (Toleration("k", "Equal", "v"), Taint("k", "w", "NoSchedule"), False),
        (Toleration("k", "Equal", ""), Taint("k", "", "NoSchedule"), True),
        (Toleration("k", "", "v"), Taint("k", "v", "NoSchedule"), True),
        (Toleration("other", "Exists"), Taint("k", "", "NoSchedule"), False),
        (Toleration(operator="Exists", effect="NoExecute"), Taint("k", "", "NoExecute"), True),
        (Toleration(operator="Exists", effect="NoExecute"), Taint("k", "", "NoSchedule"), False),
        (Toleration("k", "Gt", "1"), Taint("k", "2", "NoSchedule"), False),
        (
            Toleration("node-role.kubernetes.io/master", effect="NoSchedule"),
            CP_TAINT,
            False,
        ),
    ],
)
def test_tolerates(toleration: Toleration, taint: Taint, expected: bool) -> None:
    assert tolerates(toleration, taint) is expected


def test_prefer_no_schedule_does_not_block() -> None:
    taints = [Taint("a", "", "PreferNoSchedule"), Taint("b", "", "NoSchedule")]
    assert untolerated_taints(taints, []) == [taints[1]]


def test_no_execute_blocks() -> None:
    taint = Taint("dedicated", "gpu", "NoExecute")
    assert untolerated_taints([taint], []) == [taint]
    assert untolerated_taints([taint], [Toleration("dedicated", "Equal", "gpu")]) == []


def test_daemonset_default_tolerations() -> None:
    plain = daemonset_default_tolerations(host_network=False)
    keys = {(t.key, t.effect) for t in plain}
    assert (TAINT_NODE_NOT_READY, "NoExecute") in keys
    assert ("node.kubernetes.io/unreachable", "NoExecute") in keys
    assert ("node.kubernetes.io/disk-pressure", "NoSchedule") in keys
    assert ("node.kubernetes.io/memory-pressure", "NoSchedule") in keys
    assert ("node.kubernetes.io/pid-pressure", "NoSchedule") in keys
    assert (TAINT_NODE_UNSCHEDULABLE, "NoSchedule") in keys
    assert (TAINT_NODE_NETWORK_UNAVAILABLE, "NoSchedule") not in keys
    assert all(t.operator == "Exists" for t in plain)
    host = daemonset_default_tolerations(host_network=True)
    assert (TAINT_NODE_NETWORK_UNAVAILABLE, "NoSchedule") in {(t.key, t.effect) for t in host}


def test_daemonset_pods_tolerate_node_condition_taints_only_for_daemonsets() -> None:
    node = Node("n", {}, (Taint("node.kubernetes.io/disk-pressure", "", "NoSchedule"),))
    spec = PodSpecSummary()
    assert evaluate_node(spec, node, daemonset=True).eligible
    verdict = evaluate_node(spec, node, daemonset=False)
    assert not verdict.eligible
    assert (
        verdict.reason_text() == "taint node.kubernetes.io/disk-pressure:NoSchedule not tolerated"
    )


def test_not_ready_no_schedule_taint_is_not_a_daemonset_default() -> None:
    node = Node("n", {}, (Taint(TAINT_NODE_NOT_READY, "", "NoSchedule"),))
    assert not evaluate_node(PodSpecSummary(), node, daemonset=True).eligible


def test_network_unavailable_tolerated_only_with_host_network() -> None:
    node = Node("n", {}, (Taint(TAINT_NODE_NETWORK_UNAVAILABLE, "", "NoSchedule"),))
    assert evaluate_node(PodSpecSummary(host_network=True), node, daemonset=True).eligible
    assert not evaluate_node(PodSpecSummary(host_network=False), node, daemonset=True).eligible


# --------------------------------------------------------------------------- cordon


def test_cordoned_node_blocks_deployments_not_daemonsets() -> None:
    node = Node("n", unschedulable=True)
    assert evaluate_node(PodSpecSummary(), node, daemonset=True).eligible
    verdict = evaluate_node(PodSpecSummary(), node, daemonset=False)
    assert [r.kind for r in verdict.reasons] == ["unschedulable"]


def test_cordoned_node_with_its_taint_reports_once() -> None:
    node = Node(
        "n", taints=(Taint(TAINT_NODE_UNSCHEDULABLE, "", "NoSchedule"),), unschedulable=True
    )
    verdict = evaluate_node(PodSpecSummary(), node, daemonset=False)
    assert [r.kind for r in verdict.reasons] == ["taint"]


def test_cordon_tolerated_explicitly() -> None:
    node = Node("n", unschedulable=True)
    spec = PodSpecSummary(tolerations=(Toleration(TAINT_NODE_UNSCHEDULABLE, "Exists"),))
    assert evaluate_node(spec, node, daemonset=False).eligible


# --------------------------------------------------------------------------- node selector


def test_node_selector() -> None:
    node = Node("n", {"kubernetes.io/os": "linux", "disk": "hdd"})
    assert node_selector_mismatches({"kubernetes.io/os": "linux"}, node) == []
    assert node_selector_mismatches({"disk": "ssd", "zone": "a"}, node) == [
        "nodeSelector disk=ssd not matched (node has disk=hdd)",
        "nodeSelector zone=a not matched (node has no label zone)",
    ]


# --------------------------------------------------------------------------- node affinity


def req(key: str, op: str, *values: str) -> NodeSelectorRequirement:
    return NodeSelectorRequirement(key, op, values)


NODE = Node("node-a", {"zone": "a", "cores": "8", "gpu": ""})


@pytest.mark.parametrize(
    ("requirement", "expected"),
    [
        (req("zone", "In", "a", "b"), True),
        (req("zone", "In", "b"), False),
        (req("missing", "In", "a"), False),
        (req("zone", "NotIn", "b"), True),
        (req("zone", "NotIn", "a"), False),
        (req("missing", "NotIn", "a"), True),
        (req("gpu", "Exists"), True),
        (req("missing", "Exists"), False),
        (req("missing", "DoesNotExist"), True),
        (req("gpu", "DoesNotExist"), False),
        (req("cores", "Gt", "4"), True),
        (req("cores", "Gt", "8"), False),
        (req("cores", "Lt", "16"), True),
        (req("cores", "Lt", "8"), False),
        (req("zone", "Gt", "1"), False),
        (req("missing", "Lt", "1"), False),
        (req("cores", "Gt", "1", "2"), False),
        (req("zone", "Bogus", "a"), False),
    ],
)
def test_match_expressions(requirement: NodeSelectorRequirement, expected: bool) -> None:
    assert term_matches(NodeSelectorTerm((requirement,)), NODE) is expected


@pytest.mark.parametrize(
    ("requirement", "expected"),
    [
        (req("metadata.name", "In", "node-a"), True),
        (req("metadata.name", "In", "node-b"), False),
        (req("metadata.name", "NotIn", "node-b"), True),
        (req("metadata.name", "Exists"), False),
        (req("metadata.uid", "In", "node-a"), False),
    ],
)
def test_match_fields(requirement: NodeSelectorRequirement, expected: bool) -> None:
    assert term_matches(NodeSelectorTerm(match_fields=(requirement,)), NODE) is expected


def test_terms_are_ored_requirements_anded() -> None:
    miss = NodeSelectorTerm((req("zone", "In", "b"),))
    hit = NodeSelectorTerm((req("zone", "In", "a"), req("cores", "Gt", "2")))
    half = NodeSelectorTerm((req("zone", "In", "a"), req("cores", "Gt", "20")))
    assert node_affinity_mismatch([miss, hit], NODE) == ""
    assert node_affinity_mismatch([half], NODE) == (
        "required node affinity not matched: cores Gt [20]"
    )
    assert node_affinity_mismatch([miss, half], NODE) == (
        "required node affinity not matched: none of 2 terms match"
    )
    assert node_affinity_mismatch([], NODE) == ""


def test_empty_term_matches_nothing() -> None:
    assert not term_matches(NodeSelectorTerm(), NODE)


# --------------------------------------------------------------------------- pod affinity

AGENT_TERM = PodAffinityTerm(LabelSelector({"k8s-app": "cilium"}), "kubernetes.io/hostname")


def affinity_reason(node: Node, pods: list[Pod], nodes: list[Node], **kw: Any) -> str:
    return pod_affinity_mismatch(
        [kw.pop("term", AGENT_TERM)],
        node,
        pods=pods,
        nodes={n.name: n for n in nodes},
        pod_namespace=kw.pop("ns", "kube-system"),
        pod_labels=kw.pop("labels", {"k8s-app": "cilium-pre-flight-check"}),
        **kw,
    )


def host(name: str, **labels: str) -> Node:
    return Node(name, {"kubernetes.io/hostname": name, **labels})


def test_pod_affinity_satisfied_by_agent_on_node() -> None:
    a, b = host("a"), host("b")
    pods = [Pod("kube-system", "cilium-1", "a", {"k8s-app": "cilium"})]
    assert affinity_reason(a, pods, [a, b]) == ""
    assert affinity_reason(b, pods, [a, b]) == (
        "required pod affinity not satisfied: no pods matching k8s-app=cilium"
        " on the same kubernetes.io/hostname"
    )


def test_pod_affinity_ignores_unscheduled_terminal_and_other_namespace_pods() -> None:
    a = host("a")
    pods = [
        Pod("kube-system", "pending", "a", {"k8s-app": "cilium"}, scheduled=False),
        Pod("kube-system", "done", "a", {"k8s-app": "cilium"}, phase="Succeeded"),
        Pod("default", "elsewhere", "a", {"k8s-app": "cilium"}),
        Pod("kube-system", "other", "b", {"k8s-app": "cilium"}),
    ]
    assert affinity_reason(a, pods, [a, host("b")]) != ""


def test_pod_affinity_namespaces() -> None:
    a = host("a")
    pods = [Pod("default", "p", "a", {"k8s-app": "cilium"})]
    listed = PodAffinityTerm(AGENT_TERM.label_selector, "kubernetes.io/hostname", ("default",))
    assert affinity_reason(a, pods, [a], term=listed) == ""
    every = PodAffinityTerm(
        AGENT_TERM.label_selector, "kubernetes.io/hostname", namespace_selector=LabelSelector()
    )
    assert affinity_reason(a, pods, [a], term=every) == ""
    team = PodAffinityTerm(
        AGENT_TERM.label_selector,
        "kubernetes.io/hostname",
        namespace_selector=LabelSelector({"team": "x"}),
    )
    assert affinity_reason(a, pods, [a], term=team) != ""
    assert (
        affinity_reason(a, pods, [a], term=team, namespace_labels={"default": {"team": "x"}}) == ""
    )


def test_pod_affinity_topology_domain_wider_than_node() -> None:
    a, b = host("a", zone="z1"), host("b", zone="z1")
    zone_term = PodAffinityTerm(AGENT_TERM.label_selector, "zone")
    pods = [Pod("kube-system", "cilium-1", "a", {"k8s-app": "cilium"})]
    assert affinity_reason(b, pods, [a, b], term=zone_term) == ""


def test_pod_affinity_needs_topology_label_on_node() -> None:
    bare = Node("bare")
    pods = [Pod("kube-system", "cilium-1", "bare", {"k8s-app": "cilium"})]
    reason = affinity_reason(bare, pods, [bare])
    assert "node has no label kubernetes.io/hostname" in reason


def test_pod_affinity_null_selector_matches_nothing() -> None:
    a = host("a")
    pods = [Pod("kube-system", "cilium-1", "a", {"k8s-app": "cilium"})]
    term = PodAffinityTerm(None, "kubernetes.io/hostname")
    assert affinity_reason(a, pods, [a], term=term) != ""


def test_pod_affinity_first_pod_of_self_affine_group() -> None:
    a = host("a")
    term = PodAffinityTerm(LabelSelector({"app": "db"}), "kubernetes.io/hostname")
    assert affinity_reason(a, [], [a], term=term, labels={"app": "db"}) == ""
    assert affinity_reason(a, [], [a], term=term, labels={"app": "web"}) != ""
    # Once a matching pod exists elsewhere, the exception no longer applies.
    b = host("b")
    pods = [Pod("kube-system", "db-1", "b", {"app": "db"})]
    assert affinity_reason(a, pods, [a, b], term=term, labels={"app": "db"}) != ""


def test_evaluate_node_collects_every_reason() -> None:
    node = Node(
        "n",
        {"kubernetes.io/hostname": "n"},
        (CP_TAINT, Taint("dedicated", "infra", "NoExecute")),
    )
    spec = PodSpecSummary(
        node_selector={"kubernetes.io/os": "linux"},
        required_node_affinity=(NodeSelectorTerm((req("zone", "Exists"),)),),
        required_pod_affinity=(AGENT_TERM,),
    )
    verdict = evaluate_node(spec, node, daemonset=True, pods=[], pod_namespace="kube-system")
    assert [r.kind for r in verdict.reasons] == [
        "taint",
        "taint",
        "node-selector",
        "node-affinity",
        "pod-affinity",
    ]
    assert verdict.reasons[1].message == "taint dedicated=infra:NoExecute not tolerated"
    assert verdict.reasons[0].taint == CP_TAINT


def test_pod_affinity_can_be_left_out() -> None:
    spec = PodSpecSummary(required_pod_affinity=(AGENT_TERM,))
    node = host("a")
    assert not evaluate_node(spec, node, daemonset=True).eligible
    assert evaluate_node(spec, node, daemonset=True, check_pod_affinity=False).eligible


def test_bound_node_name() -> None:
    spec = PodSpecSummary(node_name="a")
    assert evaluate_node(spec, host("a"), daemonset=False).eligible
    assert not evaluate_node(spec, host("b"), daemonset=False).eligible


# --------------------------------------------------------------------------- seed scenario


def test_seed_112_preflight_skips_control_plane() -> None:
    ds = load_render("1.12.0")["DaemonSet"]
    nodes = seed_nodes()
    verdicts = evaluate_nodes(
        ds.scheduling,
        nodes,
        daemonset=True,
        pods=agent_pods(nodes),
        pod_namespace="kube-system",
        pod_labels=ds.template_labels,
    )
    ineligible = {name: v.reason_text() for name, v in verdicts.items() if not v.eligible}
    assert ineligible == {
        f"cp-{i}": "taint node-role.kubernetes.io/control-plane:NoSchedule not tolerated"
        for i in range(1, 4)
    }
    assert sum(v.eligible for v in verdicts.values()) == 5


@pytest.mark.parametrize("version", ["1.11.7", "1.15.1"])
def test_seed_other_preflights_cover_every_node(version: str) -> None:
    ds = load_render(version)["DaemonSet"]
    nodes = seed_nodes()
    verdicts = evaluate_nodes(
        ds.scheduling,
        nodes,
        daemonset=True,
        pods=agent_pods(nodes),
        pod_namespace="kube-system",
        pod_labels=ds.template_labels,
    )
    assert all(v.eligible for v in verdicts.values()), verdicts


def test_115_preflight_requires_agent_on_node() -> None:
    ds = load_render("1.15.1")["DaemonSet"]
    nodes = seed_nodes()
    without_agent = nodes[-1]
    verdicts = evaluate_nodes(
        ds.scheduling,
        nodes,
        daemonset=True,
        pods=agent_pods(nodes[:-1]),
        pod_namespace="kube-system",
        pod_labels=ds.template_labels,
    )
    assert not verdicts[without_agent.name].eligible
    assert verdicts[without_agent.name].reasons[0].kind == "pod-affinity"


def test_115_preflight_still_skips_custom_taints() -> None:
    ds = load_render("1.15.1")["DaemonSet"]
    node = Node(
        "infra-1",
        {"kubernetes.io/hostname": "infra-1"},
        (Taint("dedicated", "infra", "NoSchedule"),),
    )
    verdict = evaluate_node(
        ds.scheduling,
        node,
        daemonset=True,
        pods=agent_pods([node]),
        pod_namespace="kube-system",
        pod_labels=ds.template_labels,
    )
    assert verdict.reason_text() == "taint dedicated=infra:NoSchedule not tolerated"
    tolerate_all = PodSpecSummary(tolerations=(Toleration(operator="Exists"),))
    assert evaluate_node(tolerate_all, node, daemonset=True).eligible


def test_112_validator_deployment_placement() -> None:
    deploy = load_render("1.12.0")["Deployment"]
    nodes = seed_nodes()
    verdicts = evaluate_nodes(
        deploy.scheduling,
        nodes,
        daemonset=False,
        pods=agent_pods(nodes),
        pod_namespace="kube-system",
        pod_labels=deploy.template_labels,
    )
    assert sorted(n for n, v in verdicts.items() if v.eligible) == [
        f"worker-{i}" for i in range(1, 6)
    ]
