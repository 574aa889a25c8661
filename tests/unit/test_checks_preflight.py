"""The pre-flight checks over the seed cluster and upstream renders of the pre-flight."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from checks_builders import (
    NS,
    assert_status,
    cstatus,
    healthy,
    img,
    load_render,
    params,
    pod,
    seed_nodes,
    text_of,
)

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.checks.preflight import (
    preflight_covers_agent_nodes,
    preflight_deployment_ready,
    preflight_removed,
    preflight_runs_target_image,
)
from pytest_cilium_upgrade.checks.result import Status
from pytest_cilium_upgrade.snapshot.model import (
    ClusterSnapshot,
    HelmRelease,
    Node,
    Pod,
    Taint,
    Toleration,
)
from pytest_cilium_upgrade.versions import Version

# --------------------------------------------------------------------------- pre-flight coverage


def preflight_pod(
    node: str, version: str, *, ready: bool = True, waiting: str = "", **kw: Any
) -> Pod:
    return pod(
        f"cilium-pre-flight-check-{node}",
        node,
        {"k8s-app": "cilium-pre-flight-check", "kubernetes.io/cluster-service": "true"},
        cstatus(defaults.PREFLIGHT_CONTAINER, img("cilium", version), ready=ready, waiting=waiting),
        **kw,
    )


def validator_pod(version: str, *, ready: bool = True, waiting: str = "", restarts: int = 0) -> Pod:
    return pod(
        "cilium-pre-flight-check-7d9f-abcde",
        "worker-1",
        {"k8s-app": "cilium-pre-flight-check-deployment"},
        cstatus(
            defaults.CNP_VALIDATOR_CONTAINER,
            img("cilium", version),
            ready=ready,
            waiting=waiting,
            restarts=restarts,
        ),
    )


def seed(version: str, covered: list[str] | None = None, **kw: Any) -> ClusterSnapshot:
    """The seed cluster (3 control-plane + 5 workers, agents on 1.11.7) with a pre-flight."""
    rendered = load_render(version)
    nodes = seed_nodes()
    names = [n.name for n in nodes] if covered is None else covered
    ds = rendered["DaemonSet"]
    ds = replace(ds, desired=len(names), ready=len(names), updated=len(names), available=len(names))
    deploy = replace(rendered["Deployment"], desired=1, ready=1, updated=1, available=1)
    base = healthy("1.11.7")
    return replace(
        base,
        workloads=(*base.workloads, ds, deploy),
        pods=(
            *base.pods,
            *(preflight_pod(n, version) for n in names),
            validator_pod(version),
        ),
        preflight_release=HelmRelease(
            defaults.DEFAULT_PREFLIGHT_RELEASE, NS, 1, "deployed", "cilium", version, version
        ),
        **kw,
    )


WORKERS = [f"worker-{i}" for i in range(1, 6)]


def test_seed_112_warns_and_names_control_plane_nodes() -> None:
    snap = seed("1.12.0", covered=WORKERS)
    result = preflight_covers_agent_nodes(snap, params(target=Version(1, 12, 0)))
    assert_status(result, Status.WARN)
    assert "cp-1, cp-2, cp-3" in result.summary
    assert "taint node-role.kubernetes.io/control-plane:NoSchedule not tolerated" in result.summary
    assert "--set preflight.tolerations[0].operator=Exists" in result.summary
    for i in (1, 2, 3):
        assert (
            f"node cp-{i}: taint node-role.kubernetes.io/control-plane:NoSchedule not tolerated"
            " (fix: --set preflight.tolerations[0].operator=Exists)"
        ) in result.details
    assert result.properties == {
        "agent_nodes": "8",
        "covered_nodes": "5",
        "uncovered_nodes": "cp-1,cp-2,cp-3",
    }
    assert "pre-flight READY 5 for 5 agent pods" in result.summary
    assert "(8 agent pods in all)" in result.summary


def test_seed_112_fails_under_strict_policy() -> None:
    snap = seed("1.12.0", covered=WORKERS)
    result = preflight_covers_agent_nodes(
        snap, params(target=Version(1, 12, 0), coverage_policy="strict")
    )
    assert_status(result, Status.FAIL)
    assert "strict coverage policy" in result.summary
    assert "cp-1, cp-2, cp-3" in result.summary


@pytest.mark.parametrize("version", ["1.11.7", "1.15.1"])
@pytest.mark.parametrize("policy", ["warn", "strict"])
def test_seed_other_preflights_cover_all_eight(version: str, policy: str) -> None:
    snap = seed(version)
    result = preflight_covers_agent_nodes(
        snap,
        params(coverage_policy=policy),
    )
    assert_status(result, Status.PASS)
    assert result.properties["covered_nodes"] == "8"
    assert "every agent node covered" in result.summary


def test_seed_tolerate_all_override_covers_all_eight() -> None:
    # What `--set preflight.tolerations[0].operator=Exists` renders on 1.12 (and 1.16+ by default).
    rendered = load_render("1.12.0")
    fixed = replace(
        rendered["DaemonSet"],
        scheduling=replace(
            rendered["DaemonSet"].scheduling, tolerations=(Toleration(operator="Exists"),)
        ),
    )
    snap = seed("1.12.0")
    snap = replace(
        snap,
        workloads=tuple(
            fixed if (w.kind, w.name) == ("DaemonSet", fixed.name) else w for w in snap.workloads
        ),
    )
    assert_status(preflight_covers_agent_nodes(snap, params()), Status.PASS)


def test_coverage_eligible_node_with_image_pull_error_fails() -> None:
    snap = seed("1.15.1")
    pods = [p for p in snap.pods if p.name != "cilium-pre-flight-check-worker-4"]
    pods.append(
        preflight_pod("worker-4", "1.15.1", ready=False, waiting="ErrImagePull", phase="Pending")
    )
    result = preflight_covers_agent_nodes(replace(snap, pods=tuple(pods)), params())
    assert_status(result, Status.FAIL)
    assert (
        "node worker-4: pre-flight pod cilium-pre-flight-check-worker-4: cilium-pre-flight-check"
        in (result.details[0])
    )
    assert "ErrImagePull" in result.details[0]
    assert "pre-flight READY 7 for 8 agent pods" in result.summary


def test_coverage_eligible_node_without_pod_fails() -> None:
    snap = seed("1.15.1", covered=[n for n in (*WORKERS, "cp-1", "cp-2")])
    result = preflight_covers_agent_nodes(snap, params())
    assert_status(result, Status.FAIL)
    assert "node cp-3: no pre-flight pod" in result.details


def test_coverage_pending_pod_on_node_without_agent_is_reported_not_failed() -> None:
    snap = seed("1.15.1")
    extra = Node("edge-1", {"kubernetes.io/hostname": "edge-1", "kubernetes.io/os": "linux"})
    pending = preflight_pod(
        "edge-1",
        "1.15.1",
        ready=False,
        phase="Pending",
        scheduled=False,
        reason="Unschedulable",
        message="0/9 nodes are available: 1 node(s) didn't match pod affinity rules.",
    )
    snap = replace(snap, nodes=(*snap.nodes, extra), pods=(*snap.pods, pending))
    result = preflight_covers_agent_nodes(snap, params())
    assert_status(result, Status.PASS)
    assert any(
        d.startswith("node edge-1 (no agent pod): pre-flight pod cilium-pre-flight-check-edge-1:")
        and "didn't match pod affinity" in d
        for d in result.details
    )


def test_coverage_fqdn_precache_container_does_not_count() -> None:
    snap = seed("1.15.1")
    pods = []
    for p in snap.pods:
        if p.labels.get("k8s-app") == "cilium-pre-flight-check":
            never_ready = cstatus(defaults.PREFLIGHT_FQDN_PRECACHE_CONTAINER, p.containers[0].image)
            p = replace(
                p, ready=False, containers=(*p.containers, replace(never_ready, ready=False))
            )
        pods.append(p)
    result = preflight_covers_agent_nodes(replace(snap, pods=tuple(pods)), params())
    assert_status(result, Status.PASS)


def test_coverage_without_agent_pods_fails() -> None:
    snap = seed("1.15.1")
    snap = replace(snap, pods=tuple(p for p in snap.pods if p.labels.get("k8s-app") != "cilium"))
    result = preflight_covers_agent_nodes(snap, params())
    assert_status(result, Status.FAIL)
    assert "no running agent pods" in result.summary


def test_coverage_missing_daemonset() -> None:
    result = preflight_covers_agent_nodes(healthy(), params(target=Version(1, 16, 3)))
    assert_status(result, Status.FAIL)
    assert (
        "helm install cilium-preflight cilium/cilium --version 1.16.3 -n kube-system"
        in (result.details[0])
    )
    assert (
        "--set preflight.enabled=true --set agent=false --set operator.enabled=false"
        in (result.details[0])
    )


def test_coverage_custom_taint_on_worker_with_115() -> None:
    snap = seed("1.15.1", covered=[*WORKERS[:-1], "cp-1", "cp-2", "cp-3"])
    nodes = tuple(
        replace(n, taints=(Taint("dedicated", "infra", "NoSchedule"),))
        if n.name == "worker-5"
        else n
        for n in snap.nodes
    )
    result = preflight_covers_agent_nodes(replace(snap, nodes=nodes), params())
    assert_status(result, Status.WARN)
    assert result.properties["uncovered_nodes"] == "worker-5"
    assert "taint dedicated=infra:NoSchedule not tolerated" in result.summary


# --------------------------------------------------------------------------- pre-flight image


def test_preflight_image() -> None:
    snap = seed("1.15.1")
    assert_status(preflight_runs_target_image(snap, params(target=Version(1, 15, 1))), Status.PASS)
    # Without a target, the pre-flight release's chart version is the reference.
    assert_status(preflight_runs_target_image(snap, params()), Status.PASS)
    result = preflight_runs_target_image(snap, params(target=Version(1, 16, 0)))
    assert_status(result, Status.FAIL)
    assert any("expected 1.16.0" in d for d in result.details)


def test_preflight_image_one_pod_off() -> None:
    snap = seed("1.15.1")
    snap = replace(snap, pods=(*snap.pods, preflight_pod("cp-9", "1.15.0")))
    result = preflight_runs_target_image(snap, params(target=Version(1, 15, 1)))
    assert_status(result, Status.FAIL)
    assert result.details == [
        "pod cilium-pre-flight-check-cp-9 container cilium-pre-flight-check:"
        f" {img('cilium', '1.15.0')} (expected 1.15.1)"
    ]


def test_preflight_image_skips_and_missing() -> None:
    assert_status(preflight_runs_target_image(healthy(), params()), Status.SKIP)
    assert_status(
        preflight_runs_target_image(healthy(), params(target=Version(1, 16, 0))),
        Status.FAIL,
    )


def test_preflight_deployment_ready() -> None:
    result = preflight_deployment_ready(seed("1.15.1"), params())
    assert_status(result, Status.PASS)
    assert "READY 1/1" in result.summary


def test_preflight_deployment_not_ready() -> None:
    snap = seed("1.15.1")
    wls = tuple(
        replace(w, ready=0, available=0)
        if w.kind == "Deployment" and w.name == defaults.PREFLIGHT_DEPLOYMENT
        else w
        for w in snap.workloads
    )
    pods = tuple(
        validator_pod("1.15.1", ready=False, waiting="CrashLoopBackOff", restarts=3)
        if p.labels.get("k8s-app") == "cilium-pre-flight-check-deployment"
        else p
        for p in snap.pods
    )
    result = preflight_deployment_ready(replace(snap, workloads=wls, pods=pods), params())
    assert_status(result, Status.FAIL)
    assert "READY 0/1" in result.summary
    assert "crash-looping" in result.details[0]
    assert (
        "kubectl logs -n kube-system deployment/cilium-pre-flight-check -c cnp-validator --previous"
        in result.details[-1]
    )


def test_preflight_deployment_absent() -> None:
    snap = seed("1.15.1")
    wls = tuple(
        w
        for w in snap.workloads
        if w.kind != "Deployment" or w.name != defaults.PREFLIGHT_DEPLOYMENT
    )
    assert_status(preflight_deployment_ready(replace(snap, workloads=wls), params()), Status.WARN)
    assert_status(preflight_deployment_ready(healthy(), params()), Status.FAIL)


# --------------------------------------------------------------------------- post: cleanup


def test_preflight_removed() -> None:
    assert_status(preflight_removed(healthy(), params()), Status.PASS)
    uninstalled = healthy(preflight_release=HelmRelease("cilium-preflight", NS, 1, "uninstalled"))
    assert_status(preflight_removed(uninstalled, params()), Status.PASS)


def test_preflight_left_behind() -> None:
    snap = seed("1.15.1")
    result = preflight_removed(snap, params())
    assert_status(result, Status.FAIL)
    text = text_of(result)
    assert "helm uninstall cilium-preflight -n kube-system" in text
    assert "DaemonSet cilium-pre-flight-check still present" in text
    assert "Deployment cilium-pre-flight-check still present" in text


def test_preflight_pods_terminating() -> None:
    lingering = preflight_pod("worker-1", "1.15.1", deleting=True)
    result = preflight_removed(healthy(pods=(lingering,)), params())
    assert_status(result, Status.FAIL)
    assert "pod cilium-pre-flight-check-worker-1 on node worker-1 still present (terminating)" in (
        result.details
    )
