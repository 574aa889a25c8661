"""Helm's release records read through the API agree with what helm itself prints.

The gate reads a release's status, history and values from one LIST of Helm's
records instead of four helm processes. Here real Helm 3 and Helm 4 write the records
(with the default Secret driver and with ``HELM_DRIVER=configmap``), and the two ways
of reading them are compared field by field.
"""

from __future__ import annotations

import pytest
from cilium_sandbox.cluster import Sandbox
from cilium_sandbox.helm import HelmDriver
from real_chart_dir import Charts

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.adapters.helm.charts import ChartSource
from pytest_cilium_upgrade.adapters.helm.normalize import normalize_history_entry, normalize_status
from pytest_cilium_upgrade.adapters.kube import Kube
from pytest_cilium_upgrade.snapshot.read import RecordReleases

PLANTED = "tok-PLANTED-records-789"

pytestmark = pytest.mark.sandbox


@pytest.mark.parametrize("driver", ["secret", "configmap"])
@pytest.mark.parametrize("major", [3, 4], ids=["helm3", "helm4"])
def test_records_read_through_the_api_match_helms_own_output(
    sandbox: Sandbox, namespace: str, charts: Charts, major: int, driver: str
) -> None:
    charts.use("1.15.0", "1.15.19", "1.16.19")
    source = ChartSource.parse(str(charts))
    binary = sandbox.binaries.helm3 if major == 3 else sandbox.binaries.helm4
    helm = HelmDriver(
        binary=str(binary),
        kubeconfig=str(sandbox.kubeconfig),
        env={**sandbox.env(), "HELM_DRIVER": driver},
    )
    try:
        helm.install(
            "cilium",
            source,
            "1.15.0",
            namespace,
            set_values=["cluster.name=sandbox"],
            timeout_s=60,
        )
        helm.upgrade(
            "cilium",
            source,
            "1.15.19",
            namespace,
            values={"cluster": {"name": "sandbox"}, "hubble": {"token": PLANTED}},
            timeout_s=60,
        )
        helm.rollback("cilium", 1, namespace, timeout_s=60)
        helm.install(
            "cilium-preflight",
            source,
            "1.16.19",
            namespace,
            set_values=list(defaults.PREFLIGHT_SET_VALUES),
            timeout_s=60,
        )

        kind = "ConfigMap" if driver == "configmap" else "Secret"
        with Kube(str(sandbox.kubeconfig)) as kube:
            names = ("cilium", "cilium-preflight", "absent")
            records = RecordReleases(kube, namespace, names, kind)
            assert kube.requests.counts == {f"list {kind.lower()}s": 1}

        for release in ("cilium", "cilium-preflight"):
            status = records.status(release, namespace)
            assert status is not None
            assert normalize_status(status, None) == helm.status(release, namespace)
            assert [
                normalize_history_entry(e) for e in records.history(release, namespace)
            ] == helm.history(release, namespace)
            assert records.get_values(release, namespace) == helm.get_values(release, namespace)

        history = records.history("cilium", namespace)
        assert [(e["revision"], e["status"], e["chart"]) for e in history] == [
            (1, "superseded", "cilium-1.15.0"),
            (2, "superseded", "cilium-1.15.19"),
            (3, "deployed", "cilium-1.15.0"),
        ]
        # the rollback restored revision 1's values: the planted token is only in history
        assert records.get_values("cilium", namespace) == {"cluster": {"name": "sandbox"}}
        status = records.status("cilium", namespace)
        assert status is not None
        assert PLANTED not in repr(status)
        assert records.status("absent", namespace) is None
        assert records.history("absent", namespace) == []
    finally:
        for release in ("cilium-preflight", "cilium"):  # cluster-scoped objects too
            helm.uninstall(release, namespace, wait=True, timeout_s=60)
