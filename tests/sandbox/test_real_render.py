"""The target chart rendered as the cluster would render it, on real charts and real Helm.

The upgrade 1.19.6 -> 1.20.0 of the real upstream charts, under Helm 3 and Helm 4. Every
chart from 1.16 on declares ``kubeVersion: >= 1.21.0-0``, and Helm 3's ``helm template``
assumes Kubernetes v1.20.0 unless told otherwise; 1.20.0's ``validate.yaml`` refuses
``prometheus.serviceMonitor.enabled`` unless ``.Capabilities.APIVersions`` has
``monitoring.coreos.com/v1``, which only the cluster's discovery can say (the sandbox
serves it from a ServiceMonitor CRD, as the Prometheus operator's CRDs would). The gate
renders with the cluster's version and API versions, so its pre phase passes the render
check under both Helm majors, where a render without them fails under both.
"""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cilium_sandbox.cluster import Sandbox
from cilium_sandbox.pytest_plugin import RealCharts

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.adapters.helm.charts import ChartSource
from pytest_cilium_upgrade.adapters.helm.client import Helm
from pytest_cilium_upgrade.adapters.kube import Kube
from pytest_cilium_upgrade.snapshot.read import CollectRequest, collect

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.sandbox

SOURCE, TARGET = "1.19.6", "1.20.0"
RENDER_CHECK = "cilium-upgrade.pre::target_chart_renders_with_snapshot"
SERVICE_MONITORS = "servicemonitors.monitoring.coreos.com"
# 1.19's and 1.20's validate.yaml: a ServiceMonitor needs monitoring.coreos.com/v1
MONITORED = ("--set", "prometheus.enabled=true", "--set", "prometheus.serviceMonitor.enabled=true")
SERVICE_MONITOR_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": SERVICE_MONITORS},
    "spec": {
        "group": "monitoring.coreos.com",
        "scope": "Namespaced",
        "names": {
            "plural": "servicemonitors",
            "singular": "servicemonitor",
            "kind": "ServiceMonitor",
            "listKind": "ServiceMonitorList",
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}


@pytest.fixture(scope="module")
def service_monitors(sandbox: Sandbox) -> Iterator[None]:
    """The ServiceMonitor CRD served by the sandbox for this module's tests."""
    sandbox.apply([SERVICE_MONITOR_CRD])
    sandbox.kubectl(
        "wait", "--for=condition=Established", f"crd/{SERVICE_MONITORS}", "--timeout=60s"
    )
    yield
    sandbox.kubectl("delete", "crd", SERVICE_MONITORS, "--wait=false")


@pytest.fixture(params=[3, 4], ids=["helm3", "helm4"])
def major(request: pytest.FixtureRequest) -> int:
    return int(request.param)


def _helm_binary(sandbox: Sandbox, major: int) -> Path:
    return Path(sandbox.binaries.helm3 if major == 3 else sandbox.binaries.helm4)


def _properties(junit: Path, key: str) -> dict[str, str]:
    """The gate's user properties of the testcase ``key`` (``classname::name``)."""
    for case in ET.parse(junit).getroot().iter("testcase"):  # noqa: S314 - our own report
        if f"{case.get('classname')}::{case.get('name')}" == key:
            return {str(p.get("name")): str(p.get("value")) for p in case.iter("property")}
    raise AssertionError(f"{key} not in {junit}")


def test_the_pre_phase_renders_the_real_target_as_the_cluster_would(
    sandbox: Sandbox,
    namespace: str,
    pytester: pytest.Pytester,
    cilium_charts: RealCharts,
    service_monitors: None,
    major: int,
) -> None:
    source, target = cilium_charts[SOURCE], cilium_charts[TARGET]
    try:
        sandbox.helm(
            major, "install", "cilium", str(source), "-n", namespace, *MONITORED,
            "--wait", "--timeout", "3m",
        )  # fmt: skip
        snapshot = pytester.path / "values.yaml"
        junit = pytester.path / "junit.xml"
        result = pytester.runpytest(
            "--cilium-upgrade",
            "--cilium-phase=pre",
            f"--cilium-kubeconfig={sandbox.kubeconfig}",
            f"--cilium-helm={_helm_binary(sandbox, major)}",
            f"--cilium-namespace={namespace}",
            f"--cilium-chart={target}",
            f"--cilium-target-version={TARGET}",
            f"--cilium-values-snapshot={snapshot}",
            "--cilium-write-snapshot",
            f"--cilium-state-file={pytester.path / 'state.json'}",
            f"--junitxml={junit}",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            "-rA",
        )
        verdict = _properties(junit, RENDER_CHECK)["verdict"]
        server = sandbox.server_version()
        assert verdict.startswith("pass: "), result.stdout.str()
        assert f"chart {TARGET} renders with the values snapshot for Kubernetes {server}" in verdict
        # the snapshot is what the release was installed with
        assert yaml.safe_load(snapshot.read_text()) == {
            "prometheus": {"enabled": True, "serviceMonitor": {"enabled": True}}
        }
        _a_render_without_the_cluster_fails(sandbox, major, target, snapshot, server)
        _the_render_costs_two_requests(sandbox, major, namespace, target, snapshot)
    finally:
        sandbox.helm(major, "uninstall", "cilium", "-n", namespace, "--wait", check=False)


def _a_render_without_the_cluster_fails(
    sandbox: Sandbox, major: int, target: Path, snapshot: Path, server: str
) -> None:
    """The same render with Helm's own assumptions fails: the flags are what make it pass."""
    helm = Helm(str(_helm_binary(sandbox, major)), env=sandbox.env())
    chart = ChartSource.parse(str(target))
    with Kube(str(sandbox.kubeconfig)) as kube:
        api_versions = kube.api_versions()
        assert kube.requests.counts == {"discovery": 2}  # aggregated discovery
    assert "monitoring.coreos.com/v1" in api_versions
    assert "monitoring.coreos.com/v1/ServiceMonitor" in api_versions
    assert "apps/v1/DaemonSet" in api_versions
    assert "v1" in api_versions

    def render(
        *, kube_version: str | None, versions: list[str]
    ) -> subprocess.CompletedProcess[str]:
        command = helm.template_command(
            "cilium", chart, TARGET, "kube-system", [snapshot],
            kube_version=kube_version, api_versions=versions,
        )  # fmt: skip
        return subprocess.run(
            command.argv, env=helm.env, capture_output=True, text=True, timeout=120, check=False
        )

    assert render(kube_version=server, versions=api_versions).returncode == 0
    plain = render(kube_version=None, versions=[])
    assert plain.returncode != 0
    if major == 3:  # Helm 3 assumes Kubernetes v1.20.0
        assert (
            "chart requires kubeVersion: >= 1.21.0-0 which is incompatible with Kubernetes v1.20.0"
            in plain.stderr
        )
    else:  # Helm 4 assumes a newer Kubernetes, but knows nothing of the cluster's CRDs
        assert "Service Monitor requires monitoring.coreos.com/v1 CRDs" in plain.stderr
    # the version alone is not enough: the API versions decide the chart's branches too
    version_only = render(kube_version=server, versions=[])
    assert version_only.returncode != 0
    assert "Service Monitor requires monitoring.coreos.com/v1 CRDs" in version_only.stderr


def _the_render_costs_two_requests(
    sandbox: Sandbox, major: int, namespace: str, target: Path, snapshot: Path
) -> None:
    """One snapshot with the render: the fixed reads, plus the two discovery documents."""
    helm = Helm(str(_helm_binary(sandbox, major)), kubeconfig=str(sandbox.kubeconfig))
    request = CollectRequest(
        namespace=namespace,
        values_snapshot=snapshot,
        target_version=TARGET,
        chart=ChartSource.parse(str(target), helm=helm),
        release_records="Secret",
    )
    with Kube(str(sandbox.kubeconfig)) as kube:
        collected = collect(kube, helm, request)
        counts = dict(kube.requests.counts)
    assert collected.target_render is not None
    assert collected.target_render.succeeded, collected.target_render.error
    # no pre-flight here, so no validator log to read: 13 + 2 (with one, 14 + 2)
    assert counts == {
        "version": 1,
        "create selfsubjectaccessreviews": len(defaults.REQUIRED_ACCESS),
        "list nodes": 1,
        "list pods": 1,
        "list daemonsets": 1,
        "list deployments": 1,
        "list secrets": 1,
        "discovery": 2,
    }


def test_the_api_versions_are_what_helm_itself_sees(sandbox: Sandbox) -> None:
    """Helm's own view (``.Capabilities.APIVersions`` during an install) equals ours."""
    with Kube(str(sandbox.kubeconfig)) as kube:
        ours = set(kube.api_versions())
    assert ours, "discovery returned nothing"
    # a chart that prints what Helm sees, rendered by helm against the cluster (dry run)
    chart = sandbox.workdir / "capabilities-probe"
    (chart / "templates").mkdir(parents=True, exist_ok=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: capabilities-probe\nversion: 0.0.0\n")
    (chart / "templates" / "cm.yaml").write_text("# {{ toJson .Capabilities.APIVersions }}\n")
    for major in (3, 4):
        dry_run = "--dry-run" if major == 3 else "--dry-run=server"
        out = sandbox.helm(major, "install", "probe", str(chart), dry_run, "-n", "default").stdout
        line = next(ln for ln in out.splitlines() if ln.startswith("# ["))
        helms = set(json.loads(line[2:]))
        assert helms == ours, (sorted(helms - ours)[:20], sorted(ours - helms)[:20])
