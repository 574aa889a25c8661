"""The workload checks: agent and operator health, versions, restarts."""

from __future__ import annotations

from dataclasses import replace

from checks_builders import (
    agent_ds,
    agent_pod,
    assert_status,
    cstatus,
    healthy,
    img,
    operator_deploy,
    operator_pod,
    params,
    pod,
    text_of,
    workload,
)

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.checks.registry import get_check, run_check
from pytest_cilium_upgrade.checks.result import Status
from pytest_cilium_upgrade.checks.workloads import (
    agent_daemonset_healthy,
    agent_restarts_within_limit,
    agents_run_target_version,
    components_on_one_version,
    operator_healthy,
    operator_runs_target_version,
)
from pytest_cilium_upgrade.snapshot.model import ContainerSpec, Pod, Workload
from pytest_cilium_upgrade.versions import Version

# --------------------------------------------------------------------------- agent / operator


def test_agent_healthy() -> None:
    result = agent_daemonset_healthy(healthy(), params())
    assert_status(result, Status.PASS)
    assert "8/8 ready" in result.summary
    assert result.properties["image"] == img("cilium", "1.15.1")


def test_agent_missing() -> None:
    snap = healthy(workloads=(operator_deploy(),))
    assert_status(agent_daemonset_healthy(snap, params()), Status.FAIL)


def test_agent_custom_daemonset_name() -> None:
    renamed = replace(agent_ds(), name="cilium-agent-ds")
    snap = healthy(workloads=(renamed, operator_deploy()))
    assert_status(agent_daemonset_healthy(snap, params()), Status.FAIL)
    result = agent_daemonset_healthy(snap, params(agent_daemonset="cilium-agent-ds"))
    assert_status(result, Status.PASS)


def test_agent_rolling_out() -> None:
    snap = healthy(workloads=(agent_ds(ready=7, generation=4, observed=3), operator_deploy()))
    result = agent_daemonset_healthy(snap, params())
    assert_status(result, Status.FAIL)
    text = text_of(result)
    assert "ready 7/8" in text
    assert "observedGeneration 3 != generation 4" in text


def test_agent_crash_looping_pod() -> None:
    base = healthy()
    pods = list(base.pods)
    pods[4] = agent_pod(
        "worker-2", ready=False, restarts=6, waiting="CrashLoopBackOff", last="Error"
    )
    result = agent_daemonset_healthy(replace(base, pods=tuple(pods)), params())
    assert_status(result, Status.FAIL)
    assert any(
        "cilium-worker-2 on node worker-2: container cilium-agent is crash-looping" in d
        and "6 restarts" in d
        for d in result.details
    )


def test_agent_two_images() -> None:
    base = healthy()
    pods = list(base.pods)
    pods[0] = agent_pod("cp-1", "1.15.0")
    result = agent_daemonset_healthy(replace(base, pods=tuple(pods)), params())
    assert_status(result, Status.FAIL)
    assert any("2 images for container cilium-agent" in d for d in result.details)


def test_operator_healthy_and_not() -> None:
    assert_status(operator_healthy(healthy(), params()), Status.PASS)
    snap = healthy(workloads=(agent_ds(), operator_deploy(ready=1)))
    pods = [p for p in snap.pods if p.name != "cilium-operator-2"]
    pods.append(operator_pod(2, ready=False, waiting="ImagePullBackOff"))
    result = operator_healthy(replace(snap, pods=tuple(pods)), params())
    assert_status(result, Status.FAIL)
    assert "pod cilium-operator-2 on node worker-2 not ready: cilium-operator ImagePullBackOff" in (
        result.details
    )
    assert_status(operator_healthy(healthy(workloads=(agent_ds(),)), params()), Status.FAIL)


# --------------------------------------------------------------------------- one version


def relay(version: str) -> tuple[Workload, Pod]:
    wl = workload(
        "Deployment",
        defaults.HUBBLE_RELAY_DEPLOYMENT,
        defaults.HUBBLE_RELAY_CONTAINER,
        img("hubble-relay", version),
        1,
    )
    p = pod(
        "hubble-relay-1",
        "worker-3",
        {"k8s-app": "hubble-relay"},
        cstatus(defaults.HUBBLE_RELAY_CONTAINER, img("hubble-relay", version)),
    )
    return wl, p


def envoy(*images: str) -> tuple[Workload, list[Pod]]:
    wl = workload(
        "DaemonSet", defaults.ENVOY_DAEMONSET, defaults.ENVOY_CONTAINER, images[0], len(images)
    )
    pods = [
        pod(
            f"cilium-envoy-{i}",
            f"worker-{i + 1}",
            {"k8s-app": "cilium-envoy"},
            cstatus(defaults.ENVOY_CONTAINER, image),
        )
        for i, image in enumerate(images)
    ]
    return wl, pods


def test_one_version_pass_lists_disabled() -> None:
    result = components_on_one_version(healthy(), params())
    assert_status(result, Status.PASS)
    assert result.properties["version"] == "1.15.1"
    assert "hubble-relay: disabled" in result.details
    assert "clustermesh-apiserver: disabled" in result.details


def test_one_version_operator_behind() -> None:
    snap = healthy(workloads=(agent_ds(), operator_deploy("1.14.19")))
    pods = [p for p in snap.pods if "operator" not in p.name]
    pods += [operator_pod(1, "1.14.19"), operator_pod(2, "1.14.19")]
    result = components_on_one_version(replace(snap, pods=tuple(pods)), params())
    assert_status(result, Status.FAIL)
    assert "2 versions (1.14.19, 1.15.1)" in result.summary
    assert any(d.startswith("version 1.14.19: cilium-operator") for d in result.details)


def test_one_version_optional_component_mismatch() -> None:
    wl, p = relay("1.14.19")
    base = healthy()
    snap = replace(base, workloads=(*base.workloads, wl), pods=(*base.pods, p))
    assert_status(components_on_one_version(snap, params()), Status.FAIL)
    wl, p = relay("1.15.1")
    snap = replace(base, workloads=(*base.workloads, wl), pods=(*base.pods, p))
    result = components_on_one_version(snap, params())
    assert_status(result, Status.PASS)
    assert "hubble-relay: 1.15.1" in result.details


def test_one_version_envoy_has_its_own_scheme() -> None:
    base = healthy()
    e_img = "quay.io/cilium/cilium-envoy:v1.29.7-39a2a56bbd5b3a591f69dbca51d3e30ef97e0e51"
    wl, pods = envoy(e_img, e_img)
    snap = replace(base, workloads=(*base.workloads, wl), pods=(*base.pods, *pods))
    result = components_on_one_version(snap, params())
    assert_status(result, Status.PASS)
    assert any(d.startswith("cilium-envoy: image") for d in result.details)
    pinned = components_on_one_version(
        snap, params(expected_images={"cilium-envoy": "quay.io/cilium/cilium-envoy:v1.30.0-x"})
    )
    assert_status(pinned, Status.FAIL)
    wl, pods = envoy(e_img, "quay.io/cilium/cilium-envoy:v1.28.0-old")
    mixed = replace(base, workloads=(*base.workloads, wl), pods=(*base.pods, *pods))
    assert_status(components_on_one_version(mixed, params()), Status.FAIL)


def test_one_version_operator_missing() -> None:
    result = components_on_one_version(healthy(workloads=(agent_ds(),)), params())
    assert_status(result, Status.FAIL)
    assert "cilium-operator: Deployment not found" in result.details


def test_one_version_unversioned_image_warns() -> None:
    digest_only = "quay.io/cilium/operator-generic@sha256:" + "0" * 64
    op = replace(operator_deploy(), containers=(ContainerSpec("cilium-operator", digest_only),))
    snap = healthy(workloads=(agent_ds(), op))
    result = components_on_one_version(snap, params())
    assert_status(result, Status.WARN)


# --------------------------------------------------------------------------- post: versions


def test_agents_and_operator_on_target() -> None:
    snap = healthy("1.16.3")
    p = params(target=Version(1, 16, 3))
    assert_status(agents_run_target_version(snap, p), Status.PASS)
    assert_status(operator_runs_target_version(snap, p), Status.PASS)
    assert_status(agents_run_target_version(snap, params()), Status.SKIP)


def test_agent_pod_left_on_old_image() -> None:
    base = healthy("1.16.3")
    pods = list(base.pods)
    pods[2] = agent_pod("cp-3", "1.15.7")
    result = agents_run_target_version(
        replace(base, pods=tuple(pods)), params(target=Version(1, 16, 3))
    )
    assert_status(result, Status.FAIL)
    assert f"pod cilium-cp-3 on node cp-3 runs {img('cilium', '1.15.7')}, expected 1.16.3" in (
        result.details
    )


def test_agent_pod_not_ready_after_upgrade() -> None:
    base = healthy("1.16.3")
    pods = list(base.pods)
    pods[5] = agent_pod("worker-3", "1.16.3", ready=False)
    result = agents_run_target_version(
        replace(base, pods=tuple(pods)), params(target=Version(1, 16, 3))
    )
    assert_status(result, Status.FAIL)
    assert any("cilium-worker-3" in d and "not ready" in d for d in result.details)


def test_operator_template_behind() -> None:
    snap = healthy("1.16.3", workloads=(agent_ds("1.16.3"), operator_deploy("1.15.7")))
    result = operator_runs_target_version(snap, params(target=Version(1, 16, 3)))
    assert_status(result, Status.FAIL)
    assert any("template runs" in d for d in result.details)
    assert_status(
        operator_runs_target_version(
            healthy(workloads=(agent_ds(),)), params(target=Version(1, 15, 1))
        ),
        Status.FAIL,
    )


def test_components_on_one_version_after_upgrade() -> None:
    spec = get_check("post", "components_on_one_version")
    assert_status(run_check(spec, healthy("1.16.3"), params()), Status.PASS)


# --------------------------------------------------------------------------- post: restarts


def test_restarts_within_limit() -> None:
    base = healthy("1.16.3")
    pods = list(base.pods)
    pods[0] = agent_pod("cp-1", "1.16.3", restarts=1, last="Error")
    result = agent_restarts_within_limit(
        replace(base, pods=tuple(pods)), params(max_agent_restarts=1)
    )
    assert_status(result, Status.PASS)
    assert result.details == [
        "pod cilium-cp-1 on node cp-1: 1 restart(s) since the upgrade, last termination: Error"
    ]


def test_restarts_over_limit() -> None:
    base = healthy("1.16.3")
    pods = list(base.pods)
    pods[3] = agent_pod("worker-1", "1.16.3", restarts=3, last="OOMKilled")
    result = agent_restarts_within_limit(
        replace(base, pods=tuple(pods)), params(max_agent_restarts=1)
    )
    assert_status(result, Status.FAIL)
    assert "OOMKilled" in result.details[0]
    zero = agent_restarts_within_limit(
        replace(base, pods=tuple(pods)), params(max_agent_restarts=3)
    )
    assert_status(zero, Status.PASS)


def test_restarts_counted_since_baseline() -> None:
    base = healthy()
    pods = list(base.pods)
    pods[0] = agent_pod("cp-1", restarts=7)
    snap = replace(base, pods=tuple(pods))
    assert_status(agent_restarts_within_limit(snap, params(max_agent_restarts=0)), Status.FAIL)
    assert_status(
        agent_restarts_within_limit(
            snap, params(max_agent_restarts=0, baseline_restarts={"cilium-cp-1": 7})
        ),
        Status.PASS,
    )


def test_restarts_no_agents() -> None:
    assert_status(agent_restarts_within_limit(healthy(pods=()), params()), Status.FAIL)
