"""Builders for the checks' tests: hand-built snapshots of a healthy seed cluster, params."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.checks.params import CheckParams
from pytest_cilium_upgrade.checks.result import CheckResult, Status
from pytest_cilium_upgrade.snapshot.model import (
    AccessReview,
    ClusterSnapshot,
    ContainerSpec,
    ContainerStatus,
    HelmHistoryEntry,
    HelmRelease,
    Node,
    Pod,
    PodSpecSummary,
    Taint,
    ValuesSnapshotFile,
    Workload,
)

RENDERED = Path(__file__).parents[3] / "shared/domain/upstream-rendered"
NS = defaults.DEFAULT_NAMESPACE
CP_TAINT = Taint("node-role.kubernetes.io/control-plane", "", "NoSchedule")
SECRET_KEY = "c2VjcmV0LWh1YmJsZS1zZXJ2ZXIta2V5LWRvLW5vdC1wcmludA=="  # noqa: S105 - fixture


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


def load_render(version: str) -> dict[str, Workload]:
    path = RENDERED / f"preflight-{version}.yaml"
    if not path.is_file():
        pytest.skip(f"upstream render {path} not available")
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    return {d["kind"]: Workload.from_k8s_dict(d) for d in docs}
