"""Every check, passing and failing, over hand-built snapshots."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_cilium_upgrade import checks, defaults
from pytest_cilium_upgrade.checks import (
    CHECKS,
    CheckParams,
    CheckResult,
    Status,
    ValueDifference,
    deep_merge,
    diff_values,
    nest_dotted,
    parse_log_fields,
    parse_validator_log,
    parse_values_text,
    run_check,
)
from pytest_cilium_upgrade.redact import REDACTED
from pytest_cilium_upgrade.snapshot.model import (
    AccessReview,
    ChartRender,
    ClusterSnapshot,
    ContainerSpec,
    ContainerStatus,
    HelmHistoryEntry,
    HelmRelease,
    LabelSelector,
    Node,
    Pod,
    PodSpecSummary,
    Taint,
    Toleration,
    ValuesSnapshotFile,
    Workload,
)
from pytest_cilium_upgrade.versions import Version

RENDERED = Path(__file__).parents[3] / "shared/domain/upstream-rendered"
NS = defaults.DEFAULT_NAMESPACE
CP_TAINT = Taint("node-role.kubernetes.io/control-plane", "", "NoSchedule")
SECRET_KEY = "c2VjcmV0LWh1YmJsZS1zZXJ2ZXIta2V5LWRvLW5vdC1wcmludA=="  # noqa: S105 - fixture

# --------------------------------------------------------------------------- builders


def img(repo: str, version: str) -> str:
    return f"quay.io/cilium/{repo}:v{version}"


def seed_nodes() -> tuple[Node, ...]:
    cps = [
        Node(
            f"cp-{i}",
            {
                "kubernetes.io/hostname": f"cp-{i}",
                "kubernetes.io/os": "linux",
                "node-role.kubernetes.io/control-plane": "",
            },
            (CP_TAINT,),
        )
        for i in range(1, 4)
    ]
    workers = [
        Node(f"worker-{i}", {"kubernetes.io/hostname": f"worker-{i}", "kubernetes.io/os": "linux"})
        for i in range(1, 6)
    ]
    return (*cps, *workers)


def cstatus(
    name: str,
    image: str,
    *,
    ready: bool = True,
    restarts: int = 0,
    waiting: str = "",
    last: str = "",
) -> ContainerStatus:
    return ContainerStatus(
        name=name,
        image=image,
        ready=ready,
        restart_count=restarts,
        state="waiting" if waiting else "running",
        waiting_reason=waiting,
        last_termination_reason=last,
        last_termination_exit_code=1 if last else None,
    )


def pod(
    name: str,
    node: str,
    labels: dict[str, str],
    *containers: ContainerStatus,
    phase: str = "Running",
    scheduled: bool = True,
    reason: str = "",
    message: str = "",
    deleting: bool = False,
) -> Pod:
    ready = phase == "Running" and all(c.ready for c in containers)
    return Pod(
        NS,
        name,
        node,
        labels,
        phase,
        ready,
        tuple(containers),
        scheduled=scheduled,
        unschedulable_reason=reason,
        unschedulable_message=message,
        deleting=deleting,
    )


def agent_pod(node: str, version: str = "1.15.1", **kw: Any) -> Pod:
    return pod(
        f"cilium-{node}",
        node,
        {"k8s-app": "cilium"},
        cstatus(defaults.AGENT_CONTAINER, img("cilium", version), **kw),
    )


def operator_pod(i: int, version: str = "1.15.1", **kw: Any) -> Pod:
    return pod(
        f"cilium-operator-{i}",
        f"worker-{i}",
        {"io.cilium/app": "operator", "name": "cilium-operator"},
        cstatus(defaults.OPERATOR_CONTAINER, img("operator-generic", version), **kw),
    )


def workload(
    kind: str,
    name: str,
    container: str,
    image: str,
    count: int,
    *,
    ready: int | None = None,
    labels: dict[str, str] | None = None,
    scheduling: PodSpecSummary | None = None,
    init: tuple[ContainerSpec, ...] = (),
    generation: int = 1,
    observed: int = 1,
) -> Workload:
    r = count if ready is None else ready
    return Workload(
        kind=kind,
        name=name,
        namespace=NS,
        generation=generation,
        observed_generation=observed,
        desired=count,
        current=count,
        ready=r,
        updated=count,
        available=r,
        template_labels=labels or {},
        scheduling=scheduling or PodSpecSummary(),
        containers=(ContainerSpec(container, image),),
        init_containers=init,
    )


def agent_ds(version: str = "1.15.1", count: int = 8, **kw: Any) -> Workload:
    return workload(
        "DaemonSet",
        defaults.AGENT_DAEMONSET,
        defaults.AGENT_CONTAINER,
        img("cilium", version),
        count,
        labels={"k8s-app": "cilium"},
        **kw,
    )


def operator_deploy(version: str = "1.15.1", **kw: Any) -> Workload:
    return workload(
        "Deployment",
        defaults.OPERATOR_DEPLOYMENT,
        defaults.OPERATOR_CONTAINER,
        img("operator-generic", version),
        2,
        **kw,
    )


def release(version: str = "1.15.1", status: str = "deployed", revision: int = 3) -> HelmRelease:
    return HelmRelease(defaults.DEFAULT_RELEASE, NS, revision, status, "cilium", version, version)


VALUES_TEXT = (
    "hubble:\n"
    "  relay:\n"
    "    enabled: true\n"
    "  tls:\n"
    "    server:\n"
    f"      key: {SECRET_KEY}\n"
    "kubeProxyReplacement: true\n"
)
VALUES = yaml.safe_load(VALUES_TEXT)


def values_file(text: str = VALUES_TEXT, mode: int = 0o600) -> ValuesSnapshotFile:
    return ValuesSnapshotFile("/home/ci/cilium-values.yaml", True, mode, text)


def healthy(version: str = "1.15.1", **fields: Any) -> ClusterSnapshot:
    nodes = seed_nodes()
    base: dict[str, Any] = {
        "namespace": NS,
        "server_version": "v1.30.0",
        "access_reviews": tuple(
            AccessReview(r.verb, r.resource, r.group, r.subresource, NS, True)
            for r in defaults.REQUIRED_ACCESS
        ),
        "helm_version": "v3.15.2+g1a500d5",
        "release": release(version),
        "release_history": (
            HelmHistoryEntry(1, "superseded", chart_version="1.14.19"),
            HelmHistoryEntry(2, "superseded", chart_version="1.15.0"),
            HelmHistoryEntry(3, "deployed", chart_version=version),
        ),
        "available_chart_versions": (
            "1.14.19",
            "1.15.0",
            "1.15.1",
            "1.15.7",
            "1.16.0-rc.1",
            "1.16.0",
            "1.16.3",
            "1.17.0",
        ),
        "nodes": nodes,
        "workloads": (agent_ds(version), operator_deploy(version)),
        "pods": (
            *(agent_pod(n.name, version) for n in nodes),
            operator_pod(1, version),
            operator_pod(2, version),
        ),
        "values_snapshot": values_file(),
        "live_values": VALUES,
    }
    base.update(fields)
    return ClusterSnapshot(**base)


def params(**kw: Any) -> CheckParams:
    return CheckParams(**kw)


def assert_status(result: CheckResult, status: Status) -> None:
    assert result.status is status, (result.summary, result.details)


def text_of(result: CheckResult) -> str:
    return "\n".join([result.summary, *result.details, *result.properties.values()])


# --------------------------------------------------------------------------- params


def test_params_validation() -> None:
    with pytest.raises(ValueError, match="coverage policy"):
        CheckParams(coverage_policy="lenient")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        CheckParams(max_agent_restarts=-1)
    with pytest.raises(ValueError, match="semantic version"):
        CheckParams(target_version="1.16")
    assert CheckParams(target_version="v1.16.3").target == Version(1, 16, 3)
    assert CheckParams().coverage_policy == "warn"


# --------------------------------------------------------------------------- access


def test_access_allowed() -> None:
    assert_status(checks.cluster_reachable_and_access_allowed(healthy(), params()), Status.PASS)


def test_access_cluster_unreachable() -> None:
    snap = healthy(api_error="dial tcp 127.0.0.1:6443: connect: connection refused")
    result = checks.cluster_reachable_and_access_allowed(snap, params())
    assert_status(result, Status.FAIL)
    assert "connection refused" in text_of(result)


def test_access_denied_names_verb_and_resource() -> None:
    reviews = tuple(
        replace(r, allowed=not (r.resource == "pods" and r.subresource == "log"), reason="RBAC")
        for r in healthy().access_reviews
    )
    result = checks.cluster_reachable_and_access_allowed(healthy(access_reviews=reviews), params())
    assert_status(result, Status.FAIL)
    assert "cannot get pods/log in namespace kube-system" in result.summary


def test_access_denied_cluster_scoped_and_grouped() -> None:
    reviews = tuple(
        replace(r, allowed=r.resource not in ("nodes", "daemonsets"))
        for r in healthy().access_reviews
    )
    result = checks.cluster_reachable_and_access_allowed(healthy(access_reviews=reviews), params())
    assert_status(result, Status.FAIL)
    assert "forbidden: list nodes (cluster-wide)" in result.details
    assert "forbidden: list daemonsets.apps in namespace kube-system" in result.details


def test_access_not_reviewed_warns() -> None:
    result = checks.cluster_reachable_and_access_allowed(healthy(access_reviews=()), params())
    assert_status(result, Status.WARN)
    assert len(result.details) == len(defaults.REQUIRED_ACCESS)


def test_a_partial_read_fails_the_cluster_check_and_skips_the_rest() -> None:
    # every other cluster check is skipped pointing here: this one must not pass
    error = (
        "nodes: the Kubernetes API at https://127.0.0.1:6443 did not answer list nodes within 2s"
    )
    snap = healthy(read_errors=(error, "validator log: boom"))
    result = checks.cluster_reachable_and_access_allowed(snap, params())
    assert_status(result, Status.FAIL)
    assert result.summary.endswith(f"but not all of it could be read: {error}")
    assert result.details[:2] == [error, "validator log: boom"]
    assert "--cilium-request-timeout" in result.details[-1]
    for spec in checks.checks_for_phase("pre"):
        if spec.func is checks.cluster_reachable_and_access_allowed:
            assert_status(run_check(spec, snap, params()), Status.FAIL)
        elif spec.needs_cluster:
            assert_status(run_check(spec, snap, params()), Status.SKIP)


# --------------------------------------------------------------------------- helm client


@pytest.mark.parametrize(
    ("version", "status"),
    [
        ("v3.15.2+g1a500d5", Status.PASS),
        ("v4.0.1+gabcdef0", Status.PASS),
        ("v2.17.0+ga690bad", Status.FAIL),
        ("v5.0.0", Status.FAIL),
        ("nonsense", Status.FAIL),
        (None, Status.FAIL),
    ],
)
def test_helm_client(version: str | None, status: Status) -> None:
    result = checks.helm_client_supported(healthy(helm_version=version), params())
    assert_status(result, status)


def test_helm_client_missing() -> None:
    snap = healthy(helm_version=None, helm_error="executable 'helm' not found in PATH")
    result = checks.helm_client_supported(snap, params())
    assert_status(result, Status.FAIL)
    assert "not found" in text_of(result)


# --------------------------------------------------------------------------- release


def test_release_deployed() -> None:
    result = checks.release_deployed(healthy(), params())
    assert_status(result, Status.PASS)
    assert result.properties["revision"] == "3"


def test_release_missing() -> None:
    result = checks.release_deployed(healthy(release=None), params())
    assert_status(result, Status.FAIL)
    assert "not found" in result.summary


def test_release_pending_upgrade_says_how_to_recover() -> None:
    history = (
        HelmHistoryEntry(1, "superseded", chart_version="1.14.19"),
        HelmHistoryEntry(2, "deployed", chart_version="1.15.1"),
        HelmHistoryEntry(3, "pending-upgrade", chart_version="1.16.0", description="Preparing"),
    )
    snap = healthy(release=release("1.16.0", "pending-upgrade", 3), release_history=history)
    result = checks.release_deployed(snap, params())
    assert_status(result, Status.FAIL)
    assert "pending-upgrade" in result.summary
    assert "blocks an upgrade" in result.summary
    text = text_of(result)
    assert "helm rollback cilium 2 -n kube-system" in text
    assert "helm history cilium -n kube-system" in text


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        ("pending-rollback", "helm rollback cilium 2"),
        ("failed", "helm rollback cilium 2"),
        ("pending-install", "install never completed"),
        ("uninstalling", "helm status cilium -n kube-system"),
    ],
)
def test_release_not_deployed(status: str, hint: str) -> None:
    history = (
        HelmHistoryEntry(2, "superseded"),
        HelmHistoryEntry(3, status, description='Upgrade "cilium" failed: timed out'),
    )
    snap = healthy(release=release("1.15.1", status, 3), release_history=history)
    result = checks.release_deployed(snap, params())
    assert_status(result, Status.FAIL)
    assert hint in text_of(result)


# --------------------------------------------------------------------------- agent / operator


def test_agent_healthy() -> None:
    result = checks.agent_daemonset_healthy(healthy(), params())
    assert_status(result, Status.PASS)
    assert "8/8 ready" in result.summary
    assert result.properties["image"] == img("cilium", "1.15.1")


def test_agent_missing() -> None:
    snap = healthy(workloads=(operator_deploy(),))
    assert_status(checks.agent_daemonset_healthy(snap, params()), Status.FAIL)


def test_agent_custom_daemonset_name() -> None:
    renamed = replace(agent_ds(), name="cilium-agent-ds")
    snap = healthy(workloads=(renamed, operator_deploy()))
    assert_status(checks.agent_daemonset_healthy(snap, params()), Status.FAIL)
    result = checks.agent_daemonset_healthy(snap, params(agent_daemonset="cilium-agent-ds"))
    assert_status(result, Status.PASS)


def test_agent_rolling_out() -> None:
    snap = healthy(workloads=(agent_ds(ready=7, generation=4, observed=3), operator_deploy()))
    result = checks.agent_daemonset_healthy(snap, params())
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
    result = checks.agent_daemonset_healthy(replace(base, pods=tuple(pods)), params())
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
    result = checks.agent_daemonset_healthy(replace(base, pods=tuple(pods)), params())
    assert_status(result, Status.FAIL)
    assert any("2 images for container cilium-agent" in d for d in result.details)


def test_operator_healthy_and_not() -> None:
    assert_status(checks.operator_healthy(healthy(), params()), Status.PASS)
    snap = healthy(workloads=(agent_ds(), operator_deploy(ready=1)))
    pods = [p for p in snap.pods if p.name != "cilium-operator-2"]
    pods.append(operator_pod(2, ready=False, waiting="ImagePullBackOff"))
    result = checks.operator_healthy(replace(snap, pods=tuple(pods)), params())
    assert_status(result, Status.FAIL)
    assert "pod cilium-operator-2 on node worker-2 not ready: cilium-operator ImagePullBackOff" in (
        result.details
    )
    assert_status(checks.operator_healthy(healthy(workloads=(agent_ds(),)), params()), Status.FAIL)


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
    result = checks.components_on_one_version(healthy(), params())
    assert_status(result, Status.PASS)
    assert result.properties["version"] == "1.15.1"
    assert "hubble-relay: disabled" in result.details
    assert "clustermesh-apiserver: disabled" in result.details


def test_one_version_operator_behind() -> None:
    snap = healthy(workloads=(agent_ds(), operator_deploy("1.14.19")))
    pods = [p for p in snap.pods if "operator" not in p.name]
    pods += [operator_pod(1, "1.14.19"), operator_pod(2, "1.14.19")]
    result = checks.components_on_one_version(replace(snap, pods=tuple(pods)), params())
    assert_status(result, Status.FAIL)
    assert "2 versions (1.14.19, 1.15.1)" in result.summary
    assert any(d.startswith("version 1.14.19: cilium-operator") for d in result.details)


def test_one_version_optional_component_mismatch() -> None:
    wl, p = relay("1.14.19")
    base = healthy()
    snap = replace(base, workloads=(*base.workloads, wl), pods=(*base.pods, p))
    assert_status(checks.components_on_one_version(snap, params()), Status.FAIL)
    wl, p = relay("1.15.1")
    snap = replace(base, workloads=(*base.workloads, wl), pods=(*base.pods, p))
    result = checks.components_on_one_version(snap, params())
    assert_status(result, Status.PASS)
    assert "hubble-relay: 1.15.1" in result.details


def test_one_version_envoy_has_its_own_scheme() -> None:
    base = healthy()
    e_img = "quay.io/cilium/cilium-envoy:v1.29.7-39a2a56bbd5b3a591f69dbca51d3e30ef97e0e51"
    wl, pods = envoy(e_img, e_img)
    snap = replace(base, workloads=(*base.workloads, wl), pods=(*base.pods, *pods))
    result = checks.components_on_one_version(snap, params())
    assert_status(result, Status.PASS)
    assert any(d.startswith("cilium-envoy: image") for d in result.details)
    pinned = checks.components_on_one_version(
        snap, params(expected_images={"cilium-envoy": "quay.io/cilium/cilium-envoy:v1.30.0-x"})
    )
    assert_status(pinned, Status.FAIL)
    wl, pods = envoy(e_img, "quay.io/cilium/cilium-envoy:v1.28.0-old")
    mixed = replace(base, workloads=(*base.workloads, wl), pods=(*base.pods, *pods))
    assert_status(checks.components_on_one_version(mixed, params()), Status.FAIL)


def test_one_version_operator_missing() -> None:
    result = checks.components_on_one_version(healthy(workloads=(agent_ds(),)), params())
    assert_status(result, Status.FAIL)
    assert "cilium-operator: Deployment not found" in result.details


def test_one_version_unversioned_image_warns() -> None:
    digest_only = "quay.io/cilium/operator-generic@sha256:" + "0" * 64
    op = replace(operator_deploy(), containers=(ContainerSpec("cilium-operator", digest_only),))
    snap = healthy(workloads=(agent_ds(), op))
    result = checks.components_on_one_version(snap, params())
    assert_status(result, Status.WARN)


# --------------------------------------------------------------------------- upgrade path


@pytest.mark.parametrize(
    ("current", "target", "kw", "status", "needle"),
    [
        ("1.15.1", None, {}, Status.SKIP, "no target"),
        ("1.15.1", "1.15.7", {}, Status.PASS, "patch upgrade"),
        ("1.15.7", "1.16.3", {}, Status.PASS, "from the latest 1.15 patch"),
        ("1.15.1", "1.16.3", {}, Status.FAIL, "upgrade to 1.15.7 (latest 1.15 patch)"),
        ("1.14.19", "1.16.3", {}, Status.FAIL, "skips 1 minor"),
        ("1.15.7", "1.15.1", {}, Status.FAIL, "downgrade"),
        ("1.15.7", "1.15.1", {"allow_downgrade": True}, Status.WARN, "explicitly allowed"),
        ("1.16.3", "1.15.7", {"allow_downgrade": True}, Status.WARN, "downgrade"),
        ("1.17.0", "1.15.7", {"allow_downgrade": True}, Status.FAIL, "more than one minor"),
        ("1.15.1", "1.15.1", {}, Status.PASS, "already at"),
        ("1.15.1", "1.15.99", {}, Status.FAIL, "not available"),
    ],
)
def test_upgrade_path(
    current: str, target: str | None, kw: dict[str, Any], status: Status, needle: str
) -> None:
    result = checks.upgrade_path_supported(healthy(current), params(target_version=target, **kw))
    assert_status(result, status)
    assert needle in text_of(result)


def test_upgrade_path_suggests_the_steps() -> None:
    result = checks.upgrade_path_supported(healthy("1.14.19"), params(target_version="1.16.3"))
    assert "upgrade through 1.14.19 -> 1.15.7 -> 1.16.3" in result.details
    first = checks.upgrade_path_supported(healthy("1.15.1"), params(target_version="1.16.3"))
    assert any("helm upgrade cilium cilium/cilium --version 1.15.7" in d for d in first.details)


def test_upgrade_path_major() -> None:
    snap = healthy("1.17.0", available_chart_versions=("1.17.0", "2.0.0"))
    result = checks.upgrade_path_supported(snap, params(target_version="2.0.0"))
    assert_status(result, Status.FAIL)
    assert "major" in result.summary


def test_upgrade_path_without_chart_list_warns_on_minor_hop() -> None:
    snap = healthy("1.15.1", available_chart_versions=())
    result = checks.upgrade_path_supported(snap, params(target_version="1.16.0"))
    assert_status(result, Status.WARN)


def test_upgrade_path_current_from_agent_image() -> None:
    snap = healthy("1.15.7", release=None)
    result = checks.upgrade_path_supported(snap, params(target_version="1.16.0"))
    assert_status(result, Status.PASS)
    assert "agent image" in result.details[0]
    unknown = healthy(release=None, workloads=())
    assert_status(
        checks.upgrade_path_supported(unknown, params(target_version="1.16.0")), Status.FAIL
    )


# --------------------------------------------------------------------------- values snapshot


def test_values_snapshot_matches() -> None:
    assert_status(checks.values_snapshot_matches_live(healthy(), params()), Status.PASS)


def test_values_snapshot_readonly_mode_is_fine() -> None:
    snap = healthy(values_snapshot=values_file(mode=0o400))
    assert_status(checks.values_snapshot_matches_live(snap, params()), Status.PASS)


@pytest.mark.parametrize(
    ("vs", "needle"),
    [
        (None, "no values snapshot taken"),
        (ValuesSnapshotFile("/x.yaml", False), "does not exist"),
        (ValuesSnapshotFile("/x.yaml", True, 0o600, None, "Permission denied"), "cannot be read"),
        (values_file(mode=0o644), "mode 0644"),
        (values_file("a: [1,\n  b: {\n"), "does not parse: YAML error at line"),
        (values_file("- just\n- a list\n"), "not a mapping"),
    ],
)
def test_values_snapshot_problems(vs: ValuesSnapshotFile | None, needle: str) -> None:
    result = checks.values_snapshot_matches_live(healthy(values_snapshot=vs), params())
    assert_status(result, Status.FAIL)
    assert needle in text_of(result)


def test_values_snapshot_differs_by_path_without_values() -> None:
    live = deep_merge(
        VALUES, {"hubble": {"tls": {"server": {"key": "bGl2ZS1zZWNyZXQta2V5LTAxMjM0NTY3ODk="}}}}
    )
    live["ipam"] = {"mode": "kubernetes"}
    result = run_check(
        checks.get_check("pre", "values_snapshot_matches_live"),
        healthy(live_values=live),
        params(),
    )
    assert_status(result, Status.FAIL)
    text = text_of(result)
    assert "hubble.tls.server.key (changed)" in text
    assert "ipam (removed)" in text  # present live, missing from the snapshot
    assert SECRET_KEY not in text
    assert "bGl2ZS1zZWNyZXQta2V5LTAxMjM0NTY3ODk=" not in text


def test_values_snapshot_live_not_collected() -> None:
    result = checks.values_snapshot_matches_live(healthy(live_values=None), params())
    assert_status(result, Status.FAIL)


def test_values_parse_error_does_not_echo_content() -> None:
    text = f"hubble:\n  key: {SECRET_KEY}\n  bad: [unclosed\n"
    result = checks.values_snapshot_matches_live(
        healthy(values_snapshot=values_file(text)), params()
    )
    assert_status(result, Status.FAIL)
    assert SECRET_KEY not in text_of(result)


# --------------------------------------------------------------------------- render


def test_render_skipped_passed_failed() -> None:
    assert_status(checks.target_chart_renders_with_snapshot(healthy(), params()), Status.SKIP)
    ok = healthy(target_render=ChartRender("1.16.3", True))
    assert_status(checks.target_chart_renders_with_snapshot(ok, params()), Status.PASS)
    message = (
        "Error: execution error at (cilium/templates/validate.yaml:5:5): tunnel was deprecated"
        " in v1.14 and has been removed in v1.15. For details please refer to"
        " https://docs.cilium.io/en/v1.15/operations/upgrade/#helm-options\n"
    )
    bad = healthy(target_render=ChartRender("1.15.1", False, message))
    result = checks.target_chart_renders_with_snapshot(bad, params())
    assert_status(result, Status.FAIL)
    assert "tunnel was deprecated in v1.14 and has been removed in v1.15" in result.summary
    assert result.details[0].startswith("Error: execution error")


def test_render_failure_is_redacted() -> None:
    message = f"Error: values don't meet the specifications: hubble.tls.server.key={SECRET_KEY}"
    snap = healthy(target_render=ChartRender("1.16.3", False, message))
    result = run_check(
        checks.get_check("pre", "target_chart_renders_with_snapshot"), snap, params()
    )
    assert_status(result, Status.FAIL)
    assert SECRET_KEY not in text_of(result)
    assert REDACTED in text_of(result)


# --------------------------------------------------------------------------- pre-flight coverage


def load_render(version: str) -> dict[str, Workload]:
    path = RENDERED / f"preflight-{version}.yaml"
    if not path.is_file():
        pytest.skip(f"upstream render {path} not available")
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    return {d["kind"]: Workload.from_k8s_dict(d) for d in docs}


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
    result = checks.preflight_covers_agent_nodes(snap, params(target_version="1.12.0"))
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
    result = checks.preflight_covers_agent_nodes(
        snap, params(target_version="1.12.0", coverage_policy="strict")
    )
    assert_status(result, Status.FAIL)
    assert "strict coverage policy" in result.summary
    assert "cp-1, cp-2, cp-3" in result.summary


@pytest.mark.parametrize("version", ["1.11.7", "1.15.1"])
@pytest.mark.parametrize("policy", ["warn", "strict"])
def test_seed_other_preflights_cover_all_eight(version: str, policy: str) -> None:
    snap = seed(version)
    result = checks.preflight_covers_agent_nodes(
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
    assert_status(checks.preflight_covers_agent_nodes(snap, params()), Status.PASS)


def test_coverage_eligible_node_with_image_pull_error_fails() -> None:
    snap = seed("1.15.1")
    pods = [p for p in snap.pods if p.name != "cilium-pre-flight-check-worker-4"]
    pods.append(
        preflight_pod("worker-4", "1.15.1", ready=False, waiting="ErrImagePull", phase="Pending")
    )
    result = checks.preflight_covers_agent_nodes(replace(snap, pods=tuple(pods)), params())
    assert_status(result, Status.FAIL)
    assert (
        "node worker-4: pre-flight pod cilium-pre-flight-check-worker-4: cilium-pre-flight-check"
        in (result.details[0])
    )
    assert "ErrImagePull" in result.details[0]
    assert "pre-flight READY 7 for 8 agent pods" in result.summary


def test_coverage_eligible_node_without_pod_fails() -> None:
    snap = seed("1.15.1", covered=[n for n in (*WORKERS, "cp-1", "cp-2")])
    result = checks.preflight_covers_agent_nodes(snap, params())
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
    result = checks.preflight_covers_agent_nodes(snap, params())
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
    result = checks.preflight_covers_agent_nodes(replace(snap, pods=tuple(pods)), params())
    assert_status(result, Status.PASS)


def test_coverage_without_agent_pods_fails() -> None:
    snap = seed("1.15.1")
    snap = replace(snap, pods=tuple(p for p in snap.pods if p.labels.get("k8s-app") != "cilium"))
    result = checks.preflight_covers_agent_nodes(snap, params())
    assert_status(result, Status.FAIL)
    assert "no running agent pods" in result.summary


def test_coverage_missing_daemonset() -> None:
    result = checks.preflight_covers_agent_nodes(healthy(), params(target_version="1.16.3"))
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
    result = checks.preflight_covers_agent_nodes(replace(snap, nodes=nodes), params())
    assert_status(result, Status.WARN)
    assert result.properties["uncovered_nodes"] == "worker-5"
    assert "taint dedicated=infra:NoSchedule not tolerated" in result.summary


# --------------------------------------------------------------------------- pre-flight image


def test_preflight_image() -> None:
    snap = seed("1.15.1")
    assert_status(
        checks.preflight_runs_target_image(snap, params(target_version="1.15.1")), Status.PASS
    )
    # Without a target, the pre-flight release's chart version is the reference.
    assert_status(checks.preflight_runs_target_image(snap, params()), Status.PASS)
    result = checks.preflight_runs_target_image(snap, params(target_version="1.16.0"))
    assert_status(result, Status.FAIL)
    assert any("expected 1.16.0" in d for d in result.details)


def test_preflight_image_one_pod_off() -> None:
    snap = seed("1.15.1")
    snap = replace(snap, pods=(*snap.pods, preflight_pod("cp-9", "1.15.0")))
    result = checks.preflight_runs_target_image(snap, params(target_version="1.15.1"))
    assert_status(result, Status.FAIL)
    assert result.details == [
        "pod cilium-pre-flight-check-cp-9 container cilium-pre-flight-check:"
        f" {img('cilium', '1.15.0')} (expected 1.15.1)"
    ]


def test_preflight_image_skips_and_missing() -> None:
    assert_status(checks.preflight_runs_target_image(healthy(), params()), Status.SKIP)
    assert_status(
        checks.preflight_runs_target_image(healthy(), params(target_version="1.16.0")),
        Status.FAIL,
    )


def test_preflight_deployment_ready() -> None:
    result = checks.preflight_deployment_ready(seed("1.15.1"), params())
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
    result = checks.preflight_deployment_ready(replace(snap, workloads=wls, pods=pods), params())
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
    assert_status(
        checks.preflight_deployment_ready(replace(snap, workloads=wls), params()), Status.WARN
    )
    assert_status(checks.preflight_deployment_ready(healthy(), params()), Status.FAIL)


# --------------------------------------------------------------------------- CNP validation

LOGRUS_OK = """\
level=info msg="Setting up kubernetes client"
level=info msg="Establishing connection to apiserver" host="https://10.96.0.1:443" subsys=k8s
level=info msg="Connected to apiserver" subsys=k8s
level=info msg="Validation OK!" name=default/allow-dns type=CiliumNetworkPolicy
level=info msg="Validation OK!" name=deny-world type=CiliumClusterwideNetworkPolicy
level=info msg="All CCNPs and CNPs valid!"
"""
SLOG_OK = (
    'time=2025-01-01T10:00:00Z level=INFO source=/go/x.go:1 msg="Validation OK!"'
    " type=CiliumNetworkPolicy name=default/web\n"
    'time=2025-01-01T10:00:00Z level=INFO msg="All CCNPs and CNPs valid!"\n'
)
OLD_OK = """\
level=info msg="Validating CiliumNetworkPolicy 'default/cidr-rule': OK!
level=info msg="Validating CiliumNetworkPolicy 'default/cnp-update': OK!
level=info msg="All CCNPs and CNPs valid!"
"""
INVALID = "\n".join(
    [
        'level=info msg="Validation OK!" name=default/ok type=CiliumNetworkPolicy',
        'level=error msg="Unexpected validation error"'
        ' error="spec.egress[0].toPorts: Invalid value: \\"object\\": port is required"'
        " name=default/broken type=CiliumNetworkPolicy",
        'level=error msg="Unexpected validation error" error="spec: Required value"'
        " name=bad-ccnp type=CiliumClusterwideNetworkPolicy",
        'level=fatal msg="failed to start: Found invalid CiliumNetworkPolicy"',
    ]
)
OLD_INVALID = "\n".join(
    [
        "level=error msg=\"Validating CiliumNetworkPolicy 'team/legacy':"
        ' unexpected validation error: spec.ingress: Invalid value"',
        'level=fatal msg="failed to start: Found invalid CiliumNetworkPolicy"',
    ]
)
NOT_CONFIGURED = (
    'level=fatal msg="failed to start: Kubernetes client not configured. Please provide'
    ' configuration via --k8s-api-server or --k8s-kubeconfig-path"\n'
)
EXCLUDED = "\n".join(
    [
        'level=warn msg="Policy selector references a label excluded from the security identity;'
        ' it will not match endpoints unless --label-prefix-file overrides"'
        " type=CiliumNetworkPolicy name=default/zonal labels=topology.kubernetes.io/zone",
        'level=warn msg="All CCNPs and CNPs are valid,'
        ' but some policies reference identity-excluded labels!"',
    ]
)
IN_PROGRESS = 'level=info msg="Validation OK!" name=default/a type=CiliumNetworkPolicy\n'


def with_logs(current: str | None, previous: str | None = None) -> ClusterSnapshot:
    return healthy(validator_log=current, validator_previous_log=previous)


@pytest.mark.parametrize("log", [LOGRUS_OK, SLOG_OK, OLD_OK])
def test_cnp_valid(log: str) -> None:
    result = checks.cnp_validation_passed(with_logs(log), params())
    assert_status(result, Status.PASS)
    assert "All CCNPs and CNPs valid!" in result.summary


def test_cnp_invalid_in_previous_log_lists_each_policy() -> None:
    result = checks.cnp_validation_passed(with_logs("", INVALID), params())
    assert_status(result, Status.FAIL)
    assert "previous container's log" in result.summary
    assert "2 invalid policies" in result.summary
    assert (
        "invalid CiliumNetworkPolicy default/broken:"
        ' spec.egress[0].toPorts: Invalid value: "object": port is required'
    ) in result.details
    assert "invalid CiliumClusterwideNetworkPolicy bad-ccnp: spec: Required value" in result.details
    assert "Found invalid CiliumNetworkPolicy" in result.details
    assert result.properties["invalid_policies"] == "2"


def test_cnp_invalid_old_format() -> None:
    result = checks.cnp_validation_passed(with_logs(OLD_INVALID), params())
    assert_status(result, Status.FAIL)
    assert "invalid CiliumNetworkPolicy team/legacy: spec.ingress: Invalid value" in result.details


def test_cnp_client_not_configured() -> None:
    result = checks.cnp_validation_passed(with_logs(NOT_CONFIGURED), params())
    assert_status(result, Status.FAIL)
    assert any("Kubernetes client not configured" in d for d in result.details)
    assert any("k8sServiceHost" in d for d in result.details)


def test_cnp_identity_excluded_variant_warns() -> None:
    result = checks.cnp_validation_passed(with_logs(EXCLUDED), params())
    assert_status(result, Status.WARN)
    assert result.details == [
        "CiliumNetworkPolicy default/zonal: selects on label topology.kubernetes.io/zone"
        " excluded from identities"
    ]


def test_cnp_previous_verdict_used_while_current_runs() -> None:
    result = checks.cnp_validation_passed(with_logs(IN_PROGRESS, LOGRUS_OK), params())
    assert_status(result, Status.PASS)
    assert "previous container's log" in result.summary


def test_cnp_no_verdict_and_no_log() -> None:
    assert_status(checks.cnp_validation_passed(with_logs(IN_PROGRESS), params()), Status.FAIL)
    assert_status(checks.cnp_validation_passed(with_logs(None), params()), Status.FAIL)


def test_cnp_api_error_is_a_failure() -> None:
    log = 'level=fatal msg="failed to start: context deadline exceeded"\n'
    result = checks.cnp_validation_passed(with_logs(log), params())
    assert_status(result, Status.FAIL)
    assert "failed to start: context deadline exceeded" in result.details


def test_parse_validator_log_counts() -> None:
    report = parse_validator_log(LOGRUS_OK)
    assert report.all_valid
    assert report.validated_ok == 2
    assert report.succeeded
    assert not report.failed
    json_log = '{"level":"info","msg":"All CCNPs and CNPs valid!"}\n'
    assert parse_validator_log(json_log).all_valid


def test_parse_log_fields() -> None:
    fields = parse_log_fields('level=error msg="a \\"quoted\\" word" name=ns/x empty=')
    assert fields == {"level": "error", "msg": 'a "quoted" word', "name": "ns/x", "empty": ""}
    assert parse_log_fields('{"msg": "m", "n": 1}') == {"msg": "m", "n": "1"}


# --------------------------------------------------------------------------- post: release


def test_release_upgraded() -> None:
    snap = healthy("1.16.3", release=release("1.16.3", revision=4))
    p = params(target_version="1.16.3", recorded_revision=3)
    assert_status(checks.release_upgraded_to_target(snap, p), Status.PASS)


@pytest.mark.parametrize(
    ("rel", "needle"),
    [
        (release("1.15.1", revision=4), "chart version 1.15.1, expected 1.16.3"),
        (release("1.16.3", revision=5), "revision 5, expected 4"),
        (release("1.16.3", "failed", 4), "status failed"),
        (None, "not found"),
    ],
)
def test_release_not_upgraded(rel: HelmRelease | None, needle: str) -> None:
    snap = healthy("1.16.3", release=rel)
    result = checks.release_upgraded_to_target(
        snap, params(target_version="1.16.3", recorded_revision=3)
    )
    assert_status(result, Status.FAIL)
    assert needle in text_of(result)


# --------------------------------------------------------------------------- post: versions


def test_agents_and_operator_on_target() -> None:
    snap = healthy("1.16.3")
    p = params(target_version="1.16.3")
    assert_status(checks.agents_run_target_version(snap, p), Status.PASS)
    assert_status(checks.operator_runs_target_version(snap, p), Status.PASS)
    assert_status(checks.agents_run_target_version(snap, params()), Status.SKIP)


def test_agent_pod_left_on_old_image() -> None:
    base = healthy("1.16.3")
    pods = list(base.pods)
    pods[2] = agent_pod("cp-3", "1.15.7")
    result = checks.agents_run_target_version(
        replace(base, pods=tuple(pods)), params(target_version="1.16.3")
    )
    assert_status(result, Status.FAIL)
    assert f"pod cilium-cp-3 on node cp-3 runs {img('cilium', '1.15.7')}, expected 1.16.3" in (
        result.details
    )


def test_agent_pod_not_ready_after_upgrade() -> None:
    base = healthy("1.16.3")
    pods = list(base.pods)
    pods[5] = agent_pod("worker-3", "1.16.3", ready=False)
    result = checks.agents_run_target_version(
        replace(base, pods=tuple(pods)), params(target_version="1.16.3")
    )
    assert_status(result, Status.FAIL)
    assert any("cilium-worker-3" in d and "not ready" in d for d in result.details)


def test_operator_template_behind() -> None:
    snap = healthy("1.16.3", workloads=(agent_ds("1.16.3"), operator_deploy("1.15.7")))
    result = checks.operator_runs_target_version(snap, params(target_version="1.16.3"))
    assert_status(result, Status.FAIL)
    assert any("template runs" in d for d in result.details)
    assert_status(
        checks.operator_runs_target_version(
            healthy(workloads=(agent_ds(),)), params(target_version="1.15.1")
        ),
        Status.FAIL,
    )


def test_components_on_one_version_after_upgrade() -> None:
    spec = checks.get_check("post", "components_on_one_version")
    assert_status(run_check(spec, healthy("1.16.3"), params()), Status.PASS)


# --------------------------------------------------------------------------- post: values


def test_values_preserved_with_overrides() -> None:
    overrides = {"hubble": {"relay": {"enabled": False}}, "upgradeCompatibility": "1.14"}
    live = deep_merge(VALUES, overrides)
    snap = healthy(live_values=live)
    assert_status(checks.values_preserved(snap, params(intended_overrides=overrides)), Status.PASS)
    result = checks.values_preserved(snap, params())
    assert_status(result, Status.FAIL)
    assert "hubble.relay.enabled (changed) (expected vs live)" in result.details
    assert "upgradeCompatibility (added) (expected vs live)" in result.details


def test_values_lost_secret_not_printed() -> None:
    live = {
        "hubble": {"relay": {"enabled": True}, "tls": {"server": {}}},
        "kubeProxyReplacement": True,
    }
    result = run_check(
        checks.get_check("post", "values_preserved"), healthy(live_values=live), params()
    )
    assert_status(result, Status.FAIL)
    assert "hubble.tls.server.key (removed) (expected vs live)" in result.details
    assert SECRET_KEY not in text_of(result)


def test_values_preserved_needs_inputs() -> None:
    assert_status(checks.values_preserved(healthy(values_snapshot=None), params()), Status.FAIL)
    assert_status(checks.values_preserved(healthy(live_values=None), params()), Status.FAIL)


# --------------------------------------------------------------------------- post: cleanup


def test_preflight_removed() -> None:
    assert_status(checks.preflight_removed(healthy(), params()), Status.PASS)
    uninstalled = healthy(preflight_release=HelmRelease("cilium-preflight", NS, 1, "uninstalled"))
    assert_status(checks.preflight_removed(uninstalled, params()), Status.PASS)


def test_preflight_left_behind() -> None:
    snap = seed("1.15.1")
    result = checks.preflight_removed(snap, params())
    assert_status(result, Status.FAIL)
    text = text_of(result)
    assert "helm uninstall cilium-preflight -n kube-system" in text
    assert "DaemonSet cilium-pre-flight-check still present" in text
    assert "Deployment cilium-pre-flight-check still present" in text


def test_preflight_pods_terminating() -> None:
    lingering = preflight_pod("worker-1", "1.15.1", deleting=True)
    result = checks.preflight_removed(healthy(pods=(lingering,)), params())
    assert_status(result, Status.FAIL)
    assert "pod cilium-pre-flight-check-worker-1 on node worker-1 still present (terminating)" in (
        result.details
    )


# --------------------------------------------------------------------------- post: restarts


def test_restarts_within_limit() -> None:
    base = healthy("1.16.3")
    pods = list(base.pods)
    pods[0] = agent_pod("cp-1", "1.16.3", restarts=1, last="Error")
    result = checks.agent_restarts_within_limit(
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
    result = checks.agent_restarts_within_limit(
        replace(base, pods=tuple(pods)), params(max_agent_restarts=1)
    )
    assert_status(result, Status.FAIL)
    assert "OOMKilled" in result.details[0]
    zero = checks.agent_restarts_within_limit(
        replace(base, pods=tuple(pods)), params(max_agent_restarts=3)
    )
    assert_status(zero, Status.PASS)


def test_restarts_counted_since_baseline() -> None:
    base = healthy()
    pods = list(base.pods)
    pods[0] = agent_pod("cp-1", restarts=7)
    snap = replace(base, pods=tuple(pods))
    assert_status(
        checks.agent_restarts_within_limit(snap, params(max_agent_restarts=0)), Status.FAIL
    )
    assert_status(
        checks.agent_restarts_within_limit(
            snap, params(max_agent_restarts=0, baseline_restarts={"cilium-cp-1": 7})
        ),
        Status.PASS,
    )


def test_restarts_no_agents() -> None:
    assert_status(checks.agent_restarts_within_limit(healthy(pods=()), params()), Status.FAIL)


# --------------------------------------------------------------------------- values helpers


def test_diff_values() -> None:
    expected = {"a": {"b": 1, "c": [1, 2]}, "d": True, "e.f": "x", "g": None}
    actual = {"a": {"b": 2, "c": [1]}, "d": 1, "e.f": "x", "h": {}}
    assert diff_values(expected, actual) == [
        ValueDifference("a.b", "changed"),
        ValueDifference("a.c[1]", "removed"),
        ValueDifference("d", "changed"),
        ValueDifference("g", "removed"),
        ValueDifference("h", "added"),
    ]
    assert diff_values({"e.f": "x"}, {"e.f": "y"}) == [ValueDifference("e\\.f", "changed")]
    assert diff_values(None, {}) == []
    assert diff_values({"a": [{"x": 1}]}, {"a": [{"x": 2}]}) == [
        ValueDifference("a[0].x", "changed")
    ]
    assert diff_values({"a": {"b": 1}}, {"a": "flat"}) == [ValueDifference("a", "changed")]


def test_deep_merge_and_nest_dotted() -> None:
    assert deep_merge({"a": {"b": 1, "c": [1]}}, {"a": {"c": [2], "d": 3}}) == {
        "a": {"b": 1, "c": [2], "d": 3}
    }
    assert nest_dotted({"hubble.relay.enabled": True, "hubble.ui.enabled": False}) == {
        "hubble": {"relay": {"enabled": True}, "ui": {"enabled": False}}
    }
    assert nest_dotted({"podAnnotations.example\\.com/x": "1"}) == {
        "podAnnotations": {"example.com/x": "1"}
    }


def test_parse_values_text() -> None:
    assert parse_values_text("null\n").values == {}
    assert parse_values_text("").values == {}
    assert parse_values_text("a: 1").values == {"a": 1}
    bad = parse_values_text("a: b: c")
    assert bad.values is None
    assert bad.error.startswith("YAML error at line 1")


# --------------------------------------------------------------------------- registry


def test_registry_is_complete_and_unique() -> None:
    pre = [c.check_id for c in checks.checks_for_phase("pre")]
    post = [c.check_id for c in checks.checks_for_phase("post")]
    assert pre == [
        "cluster_reachable_and_access_allowed",
        "helm_client_supported",
        "release_deployed",
        "agent_daemonset_healthy",
        "operator_healthy",
        "components_on_one_version",
        "upgrade_path_supported",
        "values_snapshot_matches_live",
        "target_chart_renders_with_snapshot",
        "preflight_covers_agent_nodes",
        "preflight_runs_target_image",
        "preflight_deployment_ready",
        "cnp_validation_passed",
    ]
    assert post == [
        "release_upgraded_to_target",
        "agents_run_target_version",
        "operator_runs_target_version",
        "components_on_one_version",
        "values_preserved",
        "preflight_removed",
        "agent_restarts_within_limit",
    ]
    assert len({c.node_id for c in CHECKS}) == len(CHECKS)
    for spec in CHECKS:
        assert spec.description
        assert not spec.description.endswith(" ")
        assert spec.func is getattr(checks, spec.check_id)
    with pytest.raises(KeyError):
        checks.get_check("pre", "nope")


def test_run_check_skips_without_cluster_or_helm() -> None:
    down = healthy(api_error="connection refused")
    agent = checks.get_check("pre", "agent_daemonset_healthy")
    assert_status(run_check(agent, down, params()), Status.SKIP)
    access = checks.get_check("pre", "cluster_reachable_and_access_allowed")
    assert_status(run_check(access, down, params()), Status.FAIL)
    no_helm = healthy(helm_error="helm: not found")
    assert_status(
        run_check(checks.get_check("pre", "release_deployed"), no_helm, params()), Status.SKIP
    )
    assert_status(
        run_check(checks.get_check("pre", "helm_client_supported"), no_helm, params()), Status.FAIL
    )


def test_every_check_runs_on_a_healthy_snapshot() -> None:
    snap = healthy()
    for spec in CHECKS:
        result = run_check(spec, snap, params(target_version="1.15.1"))
        assert isinstance(result, CheckResult)
        assert result.summary
        assert "\n" not in result.summary


def test_result_ok_and_redacted() -> None:
    result = CheckResult(Status.WARN, "s", ["d"])
    assert result.ok
    assert not CheckResult(Status.FAIL, "s").ok
    assert LabelSelector.parse(defaults.AGENT_SELECTOR).matches({"k8s-app": "cilium"})


@pytest.mark.parametrize(
    ("status", "summary", "hint"),
    [
        (429, "API server is throttling the gate (429 Too Many Requests)", "FlowSchema"),
        (503, "API server failing (503)", "check its health"),
        (400, "API server refused the first request (400)", "API error"),
        (None, "cluster unreachable", "check the kubeconfig/context"),
    ],
)
def test_api_failures_say_what_the_server_did(status: int | None, summary: str, hint: str) -> None:
    snap = healthy(api_error="API error ... (gave up after 4 attempts)", api_status=status)
    result = checks.cluster_reachable_and_access_allowed(snap, params())
    assert_status(result, Status.FAIL)
    assert result.summary == summary
    assert hint in text_of(result)


@pytest.mark.parametrize(
    ("error", "no_answer", "summary", "hint"),
    [
        (
            "the Kubernetes API at https://10.0.0.1:6443 did not answer get version within 2s",
            True,
            "API server did not answer within the request timeout",
            "--cilium-request-timeout",
        ),
        (
            "could not connect to the Kubernetes API at https://10.0.0.1:6443 within 2s",
            False,
            "cluster unreachable",
            "check the kubeconfig/context",
        ),
        (
            "cannot reach the Kubernetes API at https://10.0.0.1:6443: Connection refused",
            False,
            "cluster unreachable",
            "check the kubeconfig/context",
        ),
    ],
)
def test_an_api_server_too_slow_to_answer_is_not_called_unreachable(
    error: str, no_answer: bool, summary: str, hint: str
) -> None:
    snap = healthy(api_error=error, api_no_answer=no_answer)
    result = checks.cluster_reachable_and_access_allowed(snap, params())
    assert_status(result, Status.FAIL)
    assert result.summary == summary
    assert error in text_of(result)
    assert hint in text_of(result)


def test_an_unreadable_release_state_fails_the_release_checks_and_skips_the_rest() -> None:
    error = "cannot read Helm's release records (Secrets in namespace kube-system): forbidden"
    snap = healthy(release_error=error, release=None)
    for check_id, phase in (("release_deployed", "pre"), ("release_upgraded_to_target", "post")):
        result = checks.run_check(checks.get_check(phase, check_id), snap, params())  # type: ignore[arg-type]
        assert_status(result, Status.FAIL)
        assert result.summary == "release state unreadable"
        assert error in text_of(result)
    skipped = checks.run_check(checks.get_check("pre", "upgrade_path_supported"), snap, params())
    assert_status(skipped, Status.SKIP)
    assert "release state unreadable" in skipped.summary
    helm = checks.run_check(checks.get_check("pre", "helm_client_supported"), snap, params())
    assert_status(helm, Status.PASS)  # helm itself is fine


def test_a_snapshot_the_gate_failed_to_write_says_why() -> None:
    vs = ValuesSnapshotFile(
        path="/ci/values.yaml",
        exists=False,
        write_error="API error 429 Too Many Requests: slow down",
    )
    result = checks.values_snapshot_matches_live(healthy(values_snapshot=vs), params())
    assert_status(result, Status.FAIL)
    assert result.summary == (
        "--cilium-write-snapshot did not write /ci/values.yaml: "
        "API error 429 Too Many Requests: slow down"
    )


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"api_status": 429}, "API server is throttling the gate (429 Too Many Requests)"),
        ({"api_no_answer": True}, "API server did not answer within the request timeout"),
        ({}, "cluster unreachable"),
    ],
)
def test_checks_skipped_for_the_api_say_what_the_server_did(
    fields: dict[str, Any], reason: str
) -> None:
    snap = healthy(api_error="some error", **fields)
    result = checks.run_check(checks.get_check("pre", "agent_daemonset_healthy"), snap, params())
    assert_status(result, Status.SKIP)
    assert result.summary == f"{reason} (see cluster_reachable_and_access_allowed)"
