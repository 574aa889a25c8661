"""The sandbox is a real control plane: upstream scheduling, rollouts, Helm and pod logs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cilium_sandbox.build import KUBERNETES_VERSION
from cilium_sandbox.cluster import Sandbox
from cilium_sandbox.faults import ContainerLogs, Fault, PodFault
from kubernetes import client
from real_chart_dir import Charts

pytestmark = pytest.mark.sandbox


def _pods(sandbox: Sandbox, namespace: str, selector: str) -> list[dict[str, Any]]:
    out = sandbox.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json")
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def _ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


def _daemonset(name: str, image: str, tolerations: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "tolerations": tolerations,
                    "containers": [{"name": "main", "image": image}],
                },
            },
        },
    }


def _apply_in(sandbox: Sandbox, namespace: str, obj: dict[str, Any]) -> None:
    sandbox.kubectl("apply", "-n", namespace, "-f", "-", input_text=json.dumps(obj))


def _rollout(sandbox: Sandbox, namespace: str, what: str, timeout: str = "60s") -> None:
    sandbox.kubectl("rollout", "status", "-n", namespace, what, f"--timeout={timeout}")


def test_nodes_are_the_kind_topology_and_ready(sandbox: Sandbox) -> None:
    nodes = json.loads(sandbox.kubectl("get", "nodes", "-o", "json"))["items"]
    by_name = {n["metadata"]["name"]: n for n in nodes}
    assert sorted(by_name) == sorted(n.name for n in sandbox.topology.nodes)
    for spec in sandbox.topology.nodes:
        node = by_name[spec.name]
        assert node["metadata"]["labels"].items() >= dict(spec.labels).items()
        taints = [(t["key"], t["effect"]) for t in node["spec"].get("taints", [])]
        assert taints == [(t.key, t.effect) for t in spec.taints]
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
        assert ready == "True"
    assert sandbox.server_version() == KUBERNETES_VERSION


def test_daemonset_placement_follows_taints_and_tolerations(
    sandbox: Sandbox, namespace: str
) -> None:
    _apply_in(sandbox, namespace, _daemonset("everywhere", "img:1", [{"operator": "Exists"}]))
    _apply_in(sandbox, namespace, _daemonset("untolerating", "img:1", []))
    _rollout(sandbox, namespace, "daemonset/everywhere")
    _rollout(sandbox, namespace, "daemonset/untolerating")

    everywhere = _pods(sandbox, namespace, "app=everywhere")
    assert sorted(p["spec"]["nodeName"] for p in everywhere) == sorted(
        n.name for n in sandbox.topology.nodes
    )
    assert all(_ready(p) for p in everywhere)

    untolerating = {p["spec"]["nodeName"] for p in _pods(sandbox, namespace, "app=untolerating")}
    control_plane = {n.name for n in sandbox.topology.control_plane}
    assert untolerating == {n.name for n in sandbox.topology.workers}
    assert not untolerating & control_plane


def test_deployment_reaches_one_of_one(sandbox: Sandbox, namespace: str) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "validator"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "validator"}},
            "template": {
                "metadata": {"labels": {"app": "validator"}},
                "spec": {"containers": [{"name": "main", "image": "img:1"}]},
            },
        },
    }
    _apply_in(sandbox, namespace, deployment)
    _rollout(sandbox, namespace, "deployment/validator")
    status = json.loads(
        sandbox.kubectl("get", "deployment", "validator", "-n", namespace, "-o", "json")
    )["status"]
    assert (status["readyReplicas"], status["replicas"]) == (1, 1)


@pytest.mark.parametrize("helm_major", [3, 4])
def test_helm_upgrade_history_rollback_and_values(
    sandbox: Sandbox, namespace: str, charts: Charts, helm_major: int
) -> None:
    old, new = "1.15.0", "1.15.19"  # real charts, a patch upgrade

    def helm(*args: str) -> str:
        return sandbox.helm(helm_major, *args, "-n", namespace).stdout

    version = helm("version", "--short").strip()
    assert version.startswith(f"v{helm_major}.")

    helm(
        "install",
        "cilium",
        str(charts / old),
        *charts.values(old, sandbox),
        "--set",
        "cluster.name=sandbox",
        "--wait",
        "--timeout",
        "2m",
    )
    pods = _pods(sandbox, namespace, "k8s-app=cilium")
    assert len(pods) == len(sandbox.topology.nodes)
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {charts.images(old).agent}

    values = helm("get", "values", "cilium", "-o", "json")
    assert json.loads(values) == {"cluster": {"name": "sandbox"}}

    sandbox.run(
        [
            str(sandbox.bin_dir / f"helm{helm_major}"),
            "upgrade",
            "cilium",
            str(charts / new),
            "-n",
            namespace,
            "-f",
            "-",
            "--wait",
            "--timeout",
            "2m",
        ],
        input_text=values,
    )
    _rollout(sandbox, namespace, "daemonset/cilium")
    pods = _pods(sandbox, namespace, "k8s-app=cilium")
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {charts.images(new).agent}
    assert all(_ready(p) for p in pods)

    history = json.loads(helm("history", "cilium", "-o", "json"))
    assert [(h["revision"], h["chart"], h["status"]) for h in history] == [
        (1, f"cilium-{old}", "superseded"),
        (2, f"cilium-{new}", "deployed"),
    ]

    helm("rollback", "cilium", "1", "--wait", "--timeout", "2m")
    _rollout(sandbox, namespace, "daemonset/cilium")
    pods = _pods(sandbox, namespace, "k8s-app=cilium")
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {charts.images(old).agent}
    history = json.loads(helm("history", "cilium", "-o", "json"))
    assert history[-1]["revision"] == 3
    assert history[-1]["status"] == "deployed"
    assert history[-1]["chart"] == f"cilium-{old}"
    assert json.loads(helm("get", "values", "cilium", "-o", "json")) == {
        "cluster": {"name": "sandbox"}
    }


def test_pod_logs_current_and_previous_through_the_api(
    faults: Sandbox, namespace: str, api: client.ApiClient
) -> None:
    faults.set_logs(
        ContainerLogs(
            namespace=namespace,
            container="cnp-validator",
            current=['level=info msg="All CCNPs and CNPs valid!"'],
            previous=['level=fatal msg="failed to start: Found invalid CiliumNetworkPolicy"'],
        )
    )
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "check"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "check"}},
            "template": {
                "metadata": {"labels": {"app": "check"}},
                "spec": {"containers": [{"name": "cnp-validator", "image": "img:1"}]},
            },
        },
    }
    _apply_in(faults, namespace, deployment)
    _rollout(faults, namespace, "deployment/check")
    pod = _pods(faults, namespace, "app=check")[0]["metadata"]["name"]
    core = client.CoreV1Api(api)
    current = core.read_namespaced_pod_log(pod, namespace, container="cnp-validator")
    previous = core.read_namespaced_pod_log(
        pod, namespace, container="cnp-validator", previous=True
    )
    assert current == 'level=info msg="All CCNPs and CNPs valid!"\n'
    assert previous == 'level=fatal msg="failed to start: Found invalid CiliumNetworkPolicy"\n'


def _wait_for(sandbox: Sandbox, namespace: str, selector: str, jsonpath: str, want: str) -> None:
    sandbox.kubectl(
        "wait",
        "pods",
        "-n",
        namespace,
        "-l",
        selector,
        f"--for=jsonpath={jsonpath}={want}",
        "--timeout=60s",
    )


def test_image_pull_error_for_one_image_on_one_node(faults: Sandbox, namespace: str) -> None:
    worker = faults.topology.workers[-1].name
    faults.add_fault(
        PodFault(Fault.IMAGE_PULL, namespace=namespace, images=["img:2"], nodes=[worker])
    )
    _apply_in(faults, namespace, _daemonset("agent", "img:1", [{"operator": "Exists"}]))
    _rollout(faults, namespace, "daemonset/agent")
    faults.kubectl("set", "image", "-n", namespace, "daemonset/agent", "main=img:2")
    with pytest.raises(Exception, match="exited"):
        _rollout(faults, namespace, "daemonset/agent", timeout="8s")
    pods = _pods(faults, namespace, "app=agent")
    stuck = [p for p in pods if not _ready(p)]
    assert [p["spec"]["nodeName"] for p in stuck] == [worker]
    waiting = stuck[0]["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "ErrImagePull"
    assert "img:2" in waiting["message"]
    healthy = [p for p in pods if _ready(p)]
    assert all(p["spec"]["containers"][0]["image"] in ("img:1", "img:2") for p in healthy)


def test_crash_loop_with_restarts_and_never_ready(faults: Sandbox, namespace: str) -> None:
    faults.add_fault(
        PodFault(
            Fault.CRASH_LOOP,
            namespace=namespace,
            labels={"app": "crash"},
            container="validator",
            restarts=7,
        )
    )
    faults.add_fault(PodFault(Fault.NEVER_READY, namespace=namespace, labels={"app": "stall"}))
    for name, containers in (("crash", ["validator", "sidecar"]), ("stall", ["main"])):
        _apply_in(
            faults,
            namespace,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "labels": {"app": name}},
                "spec": {"containers": [{"name": c, "image": "img:1"} for c in containers]},
            },
        )
    _wait_for(faults, namespace, "app=crash", "{.status.phase}", "Running")
    _wait_for(faults, namespace, "app=stall", "{.status.phase}", "Running")
    crash = _pods(faults, namespace, "app=crash")[0]["status"]
    statuses = {c["name"]: c for c in crash["containerStatuses"]}
    assert statuses["validator"]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert statuses["validator"]["restartCount"] == 7
    assert statuses["validator"]["lastState"]["terminated"]["exitCode"] == 1
    assert "running" in statuses["sidecar"]["state"]
    stall = _pods(faults, namespace, "app=stall")[0]
    assert not _ready(stall)
    assert "running" in stall["status"]["containerStatuses"][0]["state"]


def test_fault_reaches_pods_that_already_run(faults: Sandbox, namespace: str) -> None:
    _apply_in(faults, namespace, _daemonset("agent", "img:1", [{"operator": "Exists"}]))
    _rollout(faults, namespace, "daemonset/agent")
    faults.add_fault(
        PodFault(
            Fault.CRASH_LOOP,
            namespace=namespace,
            labels={"app": "agent"},
            nodes=[faults.topology.workers[0].name],
            restarts=3,
        )
    )
    faults.kubectl(
        "wait",
        "daemonset/agent",
        "-n",
        namespace,
        f"--for=jsonpath={{.status.numberReady}}={len(faults.topology.nodes) - 1}",
        "--timeout=30s",
    )


def test_every_sandbox_listener_is_on_loopback(sandbox: Sandbox) -> None:
    listeners = sandbox.listeners()
    names = {listener.process for listener in listeners}
    assert {"etcd", "kube-apiserver", "kwok-controller"} <= names, listeners
    assert all(listener.address in ("127.0.0.1", "::1") for listener in listeners), listeners
