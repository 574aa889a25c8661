"""LIST responses decoded to the fields the model reads give the same model as whole ones.

The objects below set every field that ``Node``, ``Pod`` and ``Workload`` read (and
many they do not), so a field missing from a shape in ``api_shapes`` changes a model
here and fails the comparison.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from kubeconfigs import Response, write_kubeconfig

from pytest_cilium_upgrade.adapters import api_shapes
from pytest_cilium_upgrade.adapters.kube import Kube
from pytest_cilium_upgrade.snapshot.model import Node, Pod, Workload

MANAGED = [
    {
        "manager": "kube-controller-manager",
        "operation": "Update",
        "apiVersion": "v1",
        "time": "2026-11-28T04:00:00Z",
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:k8s-app": {}}}},
    }
]
META_EXTRA = {
    "uid": "0b0c",
    "resourceVersion": "42",
    "managedFields": MANAGED,
    "annotations": {"kubectl.kubernetes.io/restartedAt": "now"},
    "ownerReferences": [
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "name": "cilium",
            "uid": "1",
            "controller": True,
        }
    ],
}
AFFINITY = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {
                    "matchFields": [
                        {"key": "metadata.name", "operator": "In", "values": ["worker-7"]}
                    ],
                    "matchExpressions": [
                        {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}
                    ],
                },
            ]
        }
    },
    "podAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {
                "labelSelector": {
                    "matchLabels": {"k8s-app": "cilium"},
                    "matchExpressions": [{"key": "tier", "operator": "Exists"}],
                },
                "namespaceSelector": {"matchLabels": {"team": "net"}},
                "namespaces": ["kube-system"],
                "topologyKey": "kubernetes.io/hostname",
            },
        ]
    },
    "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []},
}
TOLERATIONS = [
    {"operator": "Exists"},
    {
        "key": "node.kubernetes.io/not-ready",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    },
    {"key": "dedicated", "value": "net", "effect": "NoSchedule"},
]
POD_SPEC = {
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": TOLERATIONS,
    "affinity": AFFINITY,
    "hostNetwork": True,
    "containers": [
        {
            "name": "cilium-agent",
            "image": "quay.io/cilium/cilium:v1.16.15",
            "env": [
                {"name": "K8S_NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
            ],
            "resources": {"requests": {"cpu": "100m"}},
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": 9879}},
        }
    ],
    "initContainers": [
        {
            "name": "mount-cgroup",
            "image": "quay.io/cilium/cilium:v1.16.15",
            "securityContext": {"privileged": True},
        }
    ],
    "volumes": [{"name": "bpf-maps", "hostPath": {"path": "/sys/fs/bpf"}}],
    "serviceAccountName": "cilium",
}


def _node(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "labels": {"node-role.kubernetes.io/control-plane": ""},
            **META_EXTRA,
        },
        "spec": {"podCIDR": "10.0.0.0/24", **spec},
        "status": {
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": "True", "reason": "KubeletReady"},
            ],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
            "images": [{"names": ["quay.io/cilium/cilium"], "sizeBytes": 1}],
        },
    }


NODES = [
    _node(
        "control-plane",
        taints=[
            {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
            {"key": "dedicated", "value": "net", "effect": "NoExecute"},
        ],
        unschedulable=True,
    ),
    _node("worker-1"),
]


def _pod(name: str, *, node: str | None, running: bool, deleting: bool = False) -> dict[str, Any]:
    spec = copy.deepcopy(POD_SPEC)
    if node is not None:
        spec["nodeName"] = node
    meta: dict[str, Any] = {
        "name": name,
        "namespace": "kube-system",
        "labels": {"k8s-app": "cilium"},
        "creationTimestamp": "2026-11-28T04:00:00Z",
        **META_EXTRA,
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-11-28T04:10:00Z"
    state = (
        {"running": {"startedAt": "2026-11-28T04:01:00Z"}}
        if running
        else {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s"}}
    )
    return {
        "metadata": meta,
        "spec": spec,
        "status": {
            "phase": "Running" if running else "Pending",
            "podIP": "10.0.0.9",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False" if node is None else "True",
                    "reason": "Unschedulable",
                    "message": "0/2 nodes are available",
                },
                {"type": "Ready", "status": "True" if running else "False"},
            ],
            "containerStatuses": [
                {
                    "name": "cilium-agent",
                    "image": "quay.io/cilium/cilium:v1.16.15",
                    "imageID": "sha256:0",
                    "ready": running,
                    "restartCount": 4,
                    "started": running,
                    "state": state,
                    "lastState": {
                        "terminated": {
                            "reason": "Error",
                            "exitCode": 137,
                            "finishedAt": "2026-11-28T04:00:30Z",
                        }
                    },
                }
            ],
            "initContainerStatuses": [
                {
                    "name": "mount-cgroup",
                    "image": "quay.io/cilium/cilium:v1.16.15",
                    "ready": True,
                    "restartCount": 0,
                    "state": {"terminated": {"reason": "Completed", "exitCode": 0}},
                }
            ],
            # a status for a container no longer in the spec
            "ephemeralContainerStatuses": [],
        },
    }


PODS = [
    _pod("cilium-a", node="worker-1", running=True),
    _pod("cilium-b", node=None, running=False),
    _pod("cilium-c", node="control-plane", running=True, deleting=True),
]
PODS[1]["status"]["containerStatuses"].append(
    {
        "name": "gone",
        "image": "busybox",
        "ready": False,
        "restartCount": 1,
        "state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
    }
)


def _workload(kind: str, name: str, status: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "kube-system",
            "generation": 3,
            "labels": {"k8s-app": name},
            **META_EXTRA,
        },
        "spec": {
            "selector": {
                "matchLabels": {"k8s-app": name},
                "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["test"]}],
            },
            "template": {
                "metadata": {
                    "creationTimestamp": None,
                    "labels": {"k8s-app": name, "tier": "agent"},
                },
                "spec": copy.deepcopy(POD_SPEC),
            },
            "revisionHistoryLimit": 10,
            **spec,
        },
        "status": {"observedGeneration": 2, **status},
    }


DAEMONSETS = [
    _workload(
        "DaemonSet",
        "cilium",
        {
            "desiredNumberScheduled": 5,
            "currentNumberScheduled": 4,
            "numberReady": 3,
            "updatedNumberScheduled": 2,
            "numberAvailable": 1,
            "numberMisscheduled": 0,
        },
        updateStrategy={"type": "RollingUpdate"},
    )
]
DEPLOYMENTS = [
    _workload(
        "Deployment",
        "cilium-operator",
        {
            "replicas": 3,
            "readyReplicas": 2,
            "updatedReplicas": 1,
            "availableReplicas": 1,
            "conditions": [{"type": "Available", "status": "True"}],
        },
        replicas=2,
    ),
    _workload("Deployment", "cilium-pre-flight-check", {}),  # replicas unset: 1
]


def _body(items: list[dict[str, Any]]) -> bytes:
    return json.dumps(
        {"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": "7"}, "items": items}
    ).encode()


@pytest.mark.parametrize(
    ("items", "shape", "build"),
    [
        (NODES, api_shapes.NodeList, Node.from_k8s_dict),
        (PODS, api_shapes.PodList, Pod.from_k8s_dict),
        (DAEMONSETS, api_shapes.WorkloadList, lambda d: Workload.from_k8s_dict(d, "DaemonSet")),
        (DEPLOYMENTS, api_shapes.WorkloadList, lambda d: Workload.from_k8s_dict(d, "Deployment")),
    ],
    ids=["nodes", "pods", "daemonsets", "deployments"],
)
def test_shaped_decoding_gives_the_same_models_as_whole_objects(
    items: list[dict[str, Any]], shape: type[Any], build: Any
) -> None:
    body = _body(items)
    shaped = api_shapes.decode_list(body, shape)["items"]
    whole = json.loads(body)["items"]
    assert [build(i) for i in shaped] == [build(i) for i in whole]
    # and it did leave out what the model never reads
    assert "managedFields" not in shaped[0]["metadata"]
    assert len(json.dumps(shaped)) < len(json.dumps(whole))


def test_the_models_see_the_fields_set_above() -> None:
    """The comparison above means something only if the fixtures reach the model."""
    pod = Pod.from_k8s_dict(api_shapes.decode_list(_body(PODS), api_shapes.PodList)["items"][1])
    assert (pod.node_name, pod.scheduled, pod.unschedulable_reason) == (
        "worker-7",
        False,
        "Unschedulable",
    )
    agent = pod.container("cilium-agent")
    assert agent is not None
    assert (
        agent.state,
        agent.waiting_reason,
        agent.restart_count,
        agent.last_termination_exit_code,
    ) == ("waiting", "CrashLoopBackOff", 4, 137)
    assert pod.container("gone") is not None
    node = Node.from_k8s_dict(api_shapes.decode_list(_body(NODES), api_shapes.NodeList)["items"][0])
    assert (node.unschedulable, len(node.taints), node.ready) == (True, 2, True)
    ds = Workload.from_k8s_dict(
        api_shapes.decode_list(_body(DAEMONSETS), api_shapes.WorkloadList)["items"][0], "DaemonSet"
    )
    assert (ds.desired, ds.current, ds.ready, ds.updated, ds.available) == (5, 4, 3, 2, 1)
    assert (ds.scheduling.host_network, len(ds.scheduling.tolerations)) == (True, 3)
    assert ds.scheduling.required_pod_affinity[0].namespace_selector is not None


def test_a_response_that_does_not_fit_the_shape_is_read_whole() -> None:
    odd = copy.deepcopy(PODS[0])
    odd["status"]["containerStatuses"][0]["restartCount"] = "4"  # never sent so, but
    body = _body([odd])
    decoded = api_shapes.decode_list(body, api_shapes.PodList)
    assert decoded == json.loads(body)


def test_not_json_is_an_error_as_before() -> None:
    with pytest.raises(json.JSONDecodeError, match="Expecting value"):
        api_shapes.decode_list(b"<html>", api_shapes.PodList)


def test_the_adapter_lists_through_the_shapes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube = Kube(str(write_kubeconfig(tmp_path / "kubeconfig")))
    bodies = {
        "/api/v1/nodes": _body(NODES),
        "/api/v1/namespaces/kube-system/pods": _body(PODS),
        "/apis/apps/v1/namespaces/kube-system/daemonsets": _body(DAEMONSETS),
        "/apis/apps/v1/namespaces/kube-system/deployments": _body(DEPLOYMENTS),
    }

    def call_api(
        method: str,
        url: str,
        headers: dict[str, str],
        body: Any,
        post: Any,
        _request_timeout: Any = None,
    ) -> Response:
        return Response(200, bodies[url.removeprefix("https://127.0.0.1:1").split("?")[0]])

    monkeypatch.setattr(kube._api, "call_api", call_api)
    listed = [
        kube.list_nodes(),
        kube.list_pods("kube-system"),
        kube.list_daemonsets("kube-system"),
        kube.list_deployments("kube-system"),
    ]
    kinds = ["Node", "Pod", "DaemonSet", "Deployment"]
    for items, kind in zip(listed, kinds, strict=True):
        assert items
        assert all(i["kind"] == kind for i in items)
        assert all("managedFields" not in i["metadata"] for i in items)
    assert [Pod.from_k8s_dict(p) for p in listed[1]] == [Pod.from_k8s_dict(p) for p in PODS]
