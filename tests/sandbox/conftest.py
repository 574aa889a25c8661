"""Fixtures for tests that run against the sandbox (a real apiserver, controllers, scheduler)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from cilium_sandbox.charts import unpack_charts
from cilium_sandbox.cluster import Sandbox
from cilium_sandbox.pytest_plugin import RealCharts
from kubernetes import client, config
from real_chart_dir import Charts


@pytest.fixture(scope="session")
def sandbox(cilium_sandbox: Sandbox) -> Sandbox:
    return cilium_sandbox


@pytest.fixture(scope="session")
def api(sandbox: Sandbox) -> client.ApiClient:
    api: client.ApiClient = config.new_client_from_config(config_file=str(sandbox.kubeconfig))
    return api


def uninstall_releases(sandbox: Sandbox, namespace: str) -> None:
    """Uninstall every Helm release of ``namespace`` (Secret records), waiting for each.

    The real charts create cluster-scoped objects (ClusterRoles, ClusterRoleBindings, from
    1.17 the ``cilium-secrets`` Namespace) that outlive the namespace and that Helm
    refuses to give to a release of another namespace: the next test could not install.
    """
    listed = sandbox.helm(3, "list", "-q", "-a", "-n", namespace, check=False).stdout.split()
    for release in listed:
        sandbox.helm(3, "uninstall", release, "-n", namespace, "--wait", check=False)


@pytest.fixture
def namespace(sandbox: Sandbox) -> Iterator[str]:
    """A fresh namespace per test; its Helm releases uninstalled and it deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    sandbox.kubectl("create", "namespace", name)
    yield name
    uninstall_releases(sandbox, name)
    sandbox.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture
def faults(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The sandbox, with every fault and log source removed after the test."""
    yield sandbox
    sandbox.clear_faults()


@pytest.fixture(scope="session")
def charts(cilium_charts: RealCharts, tmp_path_factory: pytest.TempPathFactory) -> Charts:
    """Every real chart version unpacked into one directory of the session (never the repo)."""
    root = unpack_charts(cilium_charts.uncounted(), tmp_path_factory.mktemp("real-charts"))
    return Charts(cilium_charts, root)
