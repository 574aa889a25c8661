"""Snapshot model: construction from Kubernetes JSON, Helm JSON and rendered manifests."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.snapshot.model import (
    AccessReview,
    ClusterSnapshot,
    ContainerStatus,
    HelmHistoryEntry,
    HelmRelease,
    LabelSelector,
    LabelSelectorRequirement,
    Node,
    Pod,
    PodSpecSummary,
    Taint,
    Toleration,
    Workload,
)

RENDERED = Path(__file__).parents[3] / "shared/domain/upstream-rendered"


def rendered(name: str) -> list[dict[str, Any]]:
    path = RENDERED / name
    if not path.is_file():
        pytest.skip(f"upstream render {path} not available")
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


# --------------------------------------------------------------------------- selectors


def test_label_selector_matches() -> None:
    sel = LabelSelector(
        {"k8s-app": "cilium"},
        (
            LabelSelectorRequirement("tier", "In", ("a", "b")),
            LabelSelectorRequirement("legacy", "DoesNotExist"),
        ),
    )
    assert sel.matches({"k8s-app": "cilium", "tier": "a"})
    assert not sel.matches({"k8s-app": "cilium", "tier": "c"})
    assert not sel.matches({"k8s-app": "cilium", "tier": "a", "legacy": ""})
    assert not sel.matches({"tier": "a"})
    assert LabelSelector().matches({"anything": "x"})
    assert LabelSelector().empty


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("k8s-app=cilium", {"k8s-app": "cilium"}, True),
        ("k8s-app==cilium", {"k8s-app": "cilium"}, True),
        ("io.cilium/app=operator,name=cilium-operator", {"io.cilium/app": "operator"}, False),
        (
            "io.cilium/app=operator,name=cilium-operator",
            {"io.cilium/app": "operator", "name": "cilium-operator"},
            True,
        ),
        ("k8s-app!=cilium", {"k8s-app": "cilium-envoy"}, True),
        ("k8s-app!=cilium", {}, True),
        ("k8s-app in (cilium, cilium-envoy)", {"k8s-app": "cilium-envoy"}, True),
        ("k8s-app notin (cilium,cilium-envoy)", {"k8s-app": "cilium-envoy"}, False),
        ("tier", {"tier": ""}, True),
        ("!tier", {"tier": ""}, False),
        ("", {"x": "y"}, True),
    ],
)
def test_label_selector_parse(text: str, labels: dict[str, str], expected: bool) -> None:
    assert LabelSelector.parse(text).matches(labels) is expected


def test_label_selector_round_trips_as_string() -> None:
    sel = LabelSelector.parse("b=2,a=1,tier in (x,y),!old")
    assert str(sel) == "a=1,b=2,tier in (x,y),!old"
    assert LabelSelector.parse(str(sel)) == sel


def test_label_selector_from_k8s_dict() -> None:
    sel = LabelSelector.from_k8s_dict(
        {
            "matchLabels": {"k8s-app": "cilium"},
            "matchExpressions": [{"key": "k", "operator": "In", "values": ["v"]}],
        }
    )
    assert sel.match_labels == {"k8s-app": "cilium"}
    assert sel.match_expressions == (LabelSelectorRequirement("k", "In", ("v",)),)


# --------------------------------------------------------------------------- nodes


def test_node_from_k8s_dict() -> None:
    node = Node.from_k8s_dict(
        {
            "kind": "Node",
            "metadata": {"name": "cp-1", "labels": {"kubernetes.io/hostname": "cp-1"}},
            "spec": {
                "unschedulable": True,
                "taints": [
                    {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
                    {"key": "dedicated", "value": "infra", "effect": "NoExecute"},
                ],
            },
            "status": {
                "conditions": [
                    {"type": "MemoryPressure", "status": "False"},
                    {"type": "Ready", "status": "True"},
                ]
            },
        }
    )
    assert node.name == "cp-1"
    assert node.labels == {"kubernetes.io/hostname": "cp-1"}
    assert node.ready
    assert node.unschedulable
    assert [str(t) for t in node.taints] == [
        "node-role.kubernetes.io/control-plane:NoSchedule",
        "dedicated=infra:NoExecute",
    ]


def test_node_defaults_when_fields_missing() -> None:
    node = Node.from_k8s_dict({"metadata": {"name": "n"}})
    assert (node.ready, node.unschedulable, node.taints, dict(node.labels)) == (
        False,
        False,
        (),
        {},
    )


def test_toleration_defaults_and_text() -> None:
    tol = Toleration.from_k8s_dict({"key": "k", "effect": "NoSchedule", "value": "v"})
    assert tol == Toleration("k", "Equal", "v", "NoSchedule")
    assert str(tol) == "k=v:NoSchedule"
    assert str(Toleration(operator="Exists")) == "* Exists (all effects)"
    assert Toleration.from_k8s_dict({"operator": "Exists", "tolerationSeconds": 30}) == Toleration(
        operator="Exists", toleration_seconds=30
    )


def test_taint_text() -> None:
    assert str(Taint("a", "", "NoSchedule")) == "a:NoSchedule"
    assert str(Taint("a", "b", "NoExecute")) == "a=b:NoExecute"


# --------------------------------------------------------------------------- pods

POD_JSON: dict[str, Any] = {
    "kind": "Pod",
    "metadata": {
        "name": "cilium-abcde",
        "namespace": "kube-system",
        "labels": {"k8s-app": "cilium"},
        "creationTimestamp": "2024-05-01T10:00:00Z",
    },
    "spec": {
        "nodeName": "worker-1",
        "initContainers": [{"name": "config", "image": "quay.io/cilium/cilium:v1.15.1"}],
        "containers": [{"name": "cilium-agent", "image": "quay.io/cilium/cilium:v1.15.1"}],
    },
    "status": {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "False"}],
        "initContainerStatuses": [
            {
                "name": "config",
                "ready": True,
                "restartCount": 0,
                "state": {"terminated": {"reason": "Completed", "exitCode": 0}},
            }
        ],
        "containerStatuses": [
            {
                "name": "cilium-agent",
                "image": "quay.io/cilium/cilium@sha256:0000",
                "ready": False,
                "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
                "lastState": {"terminated": {"reason": "Error", "exitCode": 1}},
            }
        ],
    },
}


def test_pod_from_k8s_dict() -> None:
    pod = Pod.from_k8s_dict(POD_JSON)
    assert (pod.namespace, pod.name, pod.node_name, pod.phase) == (
        "kube-system",
        "cilium-abcde",
        "worker-1",
        "Running",
    )
    assert pod.scheduled
    assert not pod.ready
    assert pod.created == "2024-05-01T10:00:00Z"
    agent = pod.container("cilium-agent")
    assert agent == ContainerStatus(
        name="cilium-agent",
        image="quay.io/cilium/cilium:v1.15.1",  # the spec image, not the resolved one
        ready=False,
        restart_count=4,
        state="waiting",
        waiting_reason="CrashLoopBackOff",
        waiting_message="back-off 40s",
        last_termination_reason="Error",
        last_termination_exit_code=1,
    )
    init = pod.container("config")
    assert init is not None
    assert init.state == "terminated"
    assert init.terminated_reason == "Completed"
    assert pod.restarts == 4
    assert pod.crash_looping
    assert pod.problem() == "cilium-agent CrashLoopBackOff: back-off 40s"


def test_pending_daemonset_pod_is_placed_by_its_node_affinity() -> None:
    pod = Pod.from_k8s_dict(
        {
            "metadata": {"name": "pf-1", "namespace": "kube-system", "labels": {}},
            "spec": {
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {
                                    "matchFields": [
                                        {
                                            "key": "metadata.name",
                                            "operator": "In",
                                            "values": ["worker-3"],
                                        }
                                    ]
                                }
                            ]
                        }
                    }
                },
                "containers": [{"name": "cilium-pre-flight-check", "image": "x"}],
            },
            "status": {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/8 nodes are available: 1 node(s) didn't match pod affinity",
                    }
                ],
            },
        }
    )
    assert pod.node_name == "worker-3"
    assert not pod.scheduled
    assert pod.problem() == (
        "Pending (Unschedulable): 0/8 nodes are available: 1 node(s) didn't match pod affinity"
    )


def test_pod_problem_variants() -> None:
    ok = Pod("ns", "p", "n", containers=(ContainerStatus("c", "i", ready=True, state="running"),))
    assert ok.problem() == ""
    pulling = Pod(
        "ns",
        "p",
        "n",
        phase="Pending",
        ready=False,
        containers=(ContainerStatus("c", "i", state="waiting", waiting_reason="ErrImagePull"),),
    )
    assert pulling.problem() == "c ErrImagePull"
    creating = Pod(
        "ns",
        "p",
        "n",
        phase="Pending",
        ready=False,
        containers=(
            ContainerStatus("c", "i", state="waiting", waiting_reason="ContainerCreating"),
        ),
    )
    assert creating.problem() == "c ContainerCreating"
    not_ready = Pod("ns", "p", "n", ready=False, containers=(ContainerStatus("c", "i"),))
    assert not_ready.problem() == "containers not ready: c"
    gone = Pod("ns", "p", "n", deleting=True)
    assert gone.problem() == "terminating"
    assert Pod("ns", "p", phase="Failed").terminal


def test_pod_from_kubernetes_client_serialization() -> None:
    client = pytest.importorskip("kubernetes.client")
    obj = client.V1Pod(
        metadata=client.V1ObjectMeta(
            name="cilium-x", namespace="kube-system", labels={"k8s-app": "cilium"}
        ),
        spec=client.V1PodSpec(
            node_name="worker-2",
            containers=[
                client.V1Container(name="cilium-agent", image="quay.io/cilium/cilium:v1.16.3")
            ],
        ),
        status=client.V1PodStatus(
            phase="Running",
            conditions=[client.V1PodCondition(type="Ready", status="True")],
            container_statuses=[
                client.V1ContainerStatus(
                    name="cilium-agent",
                    image="quay.io/cilium/cilium:v1.16.3",
                    image_id="",
                    ready=True,
                    restart_count=0,
                    state=client.V1ContainerState(running=client.V1ContainerStateRunning()),
                )
            ],
        ),
    )
    data = client.ApiClient().sanitize_for_serialization(obj)
    pod = Pod.from_k8s_dict(data)
    assert (pod.name, pod.node_name, pod.ready) == ("cilium-x", "worker-2", True)
    container = pod.container("cilium-agent")
    assert container is not None
    assert container.state == "running"


# --------------------------------------------------------------------------- workloads


def test_daemonset_from_k8s_dict_status() -> None:
    wl = Workload.from_k8s_dict(
        {
            "metadata": {"name": "cilium", "namespace": "kube-system", "generation": 3},
            "spec": {
                "selector": {"matchLabels": {"k8s-app": "cilium"}},
                "template": {
                    "metadata": {"labels": {"k8s-app": "cilium"}},
                    "spec": {
                        "containers": [{"name": "cilium-agent", "image": "img:v1.15.1"}],
                        "tolerations": [{"operator": "Exists"}],
                    },
                },
            },
            "status": {
                "desiredNumberScheduled": 8,
                "currentNumberScheduled": 8,
                "numberReady": 7,
                "updatedNumberScheduled": 8,
                "numberAvailable": 7,
                "observedGeneration": 2,
            },
        },
        kind="DaemonSet",
    )
    assert (wl.kind, wl.desired, wl.ready, wl.updated, wl.available) == ("DaemonSet", 8, 7, 8, 7)
    assert wl.selector == LabelSelector({"k8s-app": "cilium"})
    assert wl.container_image("cilium-agent") == "img:v1.15.1"
    assert wl.scheduling.tolerations == (Toleration(operator="Exists"),)
    assert wl.health_problems() == [
        "observedGeneration 2 != generation 3 (controller has not processed the latest spec)",
        "ready 7/8",
        "available 7/8",
    ]
    assert not wl.healthy


def test_deployment_from_k8s_dict_status() -> None:
    wl = Workload.from_k8s_dict(
        {
            "kind": "Deployment",
            "metadata": {"name": "cilium-operator", "generation": 5},
            "spec": {"replicas": 2},
            "status": {
                "replicas": 3,
                "readyReplicas": 2,
                "updatedReplicas": 2,
                "availableReplicas": 2,
                "observedGeneration": 5,
            },
        }
    )
    assert (wl.desired, wl.current, wl.ready) == (2, 3, 2)
    assert wl.health_problems() == ["3 pods for 2 replicas (rollout in progress)"]
    healthy = Workload.from_k8s_dict(
        {
            "kind": "Deployment",
            "metadata": {"name": "x", "generation": 1},
            "spec": {},
            "status": {
                "replicas": 1,
                "readyReplicas": 1,
                "updatedReplicas": 1,
                "availableReplicas": 1,
                "observedGeneration": 1,
            },
        }
    )
    assert healthy.desired == 1
    assert healthy.healthy


def test_rendered_preflight_112_loads() -> None:
    docs = rendered("preflight-1.12.0.yaml")
    ds = Workload.from_k8s_dict(next(d for d in docs if d["kind"] == "DaemonSet"))
    assert ds.name == defaults.PREFLIGHT_DAEMONSET
    assert ds.namespace == "kube-system"
    assert ds.scheduling.host_network
    assert ds.scheduling.tolerations == (
        Toleration("node.kubernetes.io/not-ready", "Equal", "", "NoSchedule"),
        Toleration("node-role.kubernetes.io/master", "Equal", "", "NoSchedule"),
        Toleration("node.cloudprovider.kubernetes.io/uninitialized", "Equal", "true", "NoSchedule"),
        Toleration("CriticalAddonsOnly", "Exists"),
    )
    assert ds.container_image(defaults.PREFLIGHT_CONTAINER) == "quay.io/cilium/cilium:v1.12.0"
    assert ds.container_image(defaults.PREFLIGHT_INIT_CONTAINER) == "quay.io/cilium/cilium:v1.12.0"
    # No status in a render: counted as processed, nothing desired.
    assert ds.observed_generation == ds.generation
    deploy = Workload.from_k8s_dict(next(d for d in docs if d["kind"] == "Deployment"))
    assert deploy.scheduling.node_selector == {"kubernetes.io/os": "linux"}
    (term,) = deploy.scheduling.required_pod_affinity
    assert term.topology_key == "kubernetes.io/hostname"
    assert term.label_selector == LabelSelector({"k8s-app": "cilium"})


def test_rendered_agent_and_operator_load() -> None:
    docs = rendered("agent-operator-1.15.1.yaml")
    snap = ClusterSnapshot.from_k8s_objects(docs)
    agent = snap.workload("DaemonSet", defaults.AGENT_DAEMONSET)
    operator = snap.workload("Deployment", defaults.OPERATOR_DEPLOYMENT)
    assert agent is not None
    assert operator is not None
    assert agent.container_image(defaults.AGENT_CONTAINER) == "quay.io/cilium/cilium:v1.15.1"
    assert operator.container_image(defaults.OPERATOR_CONTAINER) == (
        "quay.io/cilium/operator-generic:v1.15.1"
    )
    assert operator.desired == 2
    assert operator.selector == LabelSelector.parse(defaults.OPERATOR_DEPLOYMENT_SELECTOR)
    assert agent.scheduling.tolerations == (Toleration(operator="Exists"),)


def test_pod_spec_summary_node_affinity() -> None:
    spec = PodSpecSummary.from_k8s_dict(
        {
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "a", "operator": "Exists"}]},
                            {
                                "matchFields": [
                                    {"key": "metadata.name", "operator": "In", "values": ["n"]}
                                ]
                            },
                        ]
                    }
                }
            }
        }
    )
    assert len(spec.required_node_affinity) == 2
    assert str(spec.required_node_affinity[0]) == "a Exists"
    assert str(spec.required_node_affinity[1]) == "field metadata.name In [n]"


# --------------------------------------------------------------------------- helm


def test_helm_release_from_list_entry() -> None:
    rel = HelmRelease.from_helm_list_entry(
        {
            "name": "cilium",
            "namespace": "kube-system",
            "revision": "4",
            "updated": "2024-05-01 10:00:00.0 +0000 UTC",
            "status": "deployed",
            "chart": "cilium-1.15.1",
            "app_version": "1.15.1",
        }
    )
    assert rel == HelmRelease(
        "cilium",
        "kube-system",
        4,
        "deployed",
        "cilium",
        "1.15.1",
        "1.15.1",
        "2024-05-01 10:00:00.0 +0000 UTC",
    )


def test_helm_release_from_status() -> None:
    rel = HelmRelease.from_helm_status(
        {
            "name": "cilium",
            "namespace": "kube-system",
            "version": 7,
            "info": {"status": "pending-upgrade", "last_deployed": "t"},
            "chart": {"metadata": {"name": "cilium", "version": "1.16.0", "appVersion": "1.16.0"}},
        }
    )
    assert (rel.revision, rel.status, rel.chart_version) == (7, "pending-upgrade", "1.16.0")


def test_helm_history_entry() -> None:
    entry = HelmHistoryEntry.from_helm_history_entry(
        {
            "revision": 3,
            "updated": "t",
            "status": "superseded",
            "chart": "cilium-1.14.19",
            "app_version": "1.14.19",
            "description": "Upgrade complete",
        }
    )
    assert (entry.revision, entry.status, entry.chart_version, entry.description) == (
        3,
        "superseded",
        "1.14.19",
        "Upgrade complete",
    )


def test_access_review_from_k8s_dict() -> None:
    review = AccessReview.from_k8s_dict(
        {
            "spec": {
                "resourceAttributes": {
                    "verb": "get",
                    "resource": "pods",
                    "subresource": "log",
                    "namespace": "kube-system",
                }
            },
            "status": {"allowed": False, "reason": "no RBAC policy matched"},
        }
    )
    assert not review.allowed
    assert review.reason == "no RBAC policy matched"
    assert review.answers(defaults.AccessRequirement("get", "pods", subresource="log"))
    assert not review.answers(defaults.AccessRequirement("list", "pods"))


# --------------------------------------------------------------------------- snapshot


def test_snapshot_from_k8s_objects_and_lookups() -> None:
    objects: list[dict[str, Any]] = [
        {"kind": "NodeList", "items": [{"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}]},
        POD_JSON,
        {
            "kind": "Pod",
            "metadata": {"name": "other", "namespace": "default", "labels": {"k8s-app": "cilium"}},
        },
        {
            "kind": "List",
            "items": [
                {"kind": "DaemonSet", "metadata": {"name": "cilium"}},
                {"kind": "ConfigMap", "metadata": {"name": "ignored"}},
            ],
        },
    ]
    snap = ClusterSnapshot.from_k8s_objects(objects, helm_version="v3.15.0")
    assert [n.name for n in snap.nodes] == ["a", "b"]
    assert snap.node("b") is not None
    assert snap.node("zz") is None
    assert snap.helm_version == "v3.15.0"
    assert snap.workload("DaemonSet", "cilium") is not None
    assert snap.workload("Deployment", "cilium") is None
    assert [p.name for p in snap.pods_matching("k8s-app=cilium")] == ["cilium-abcde"]
    assert len(snap.pods_matching("k8s-app=cilium", namespace="")) == 2
    assert [p.name for p in snap.component_pods(defaults.AGENT)] == ["cilium-abcde"]
    # answers are kept per selector and namespace, and not carried into a changed copy
    assert snap.pods_matching("k8s-app=cilium") is snap.pods_matching("k8s-app=cilium")
    assert len(snap.pods_matching("k8s-app=cilium", namespace="")) == 2
    assert replace(snap, pods=()).pods_matching("k8s-app=cilium") == ()
    assert snap.component_workload(defaults.AGENT) is not None
