"""The gate under faults of its environment: a helm client killed mid-upgrade."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from pytest_cilium_upgrade.sandbox.cluster import Sandbox
from pytest_cilium_upgrade.sandbox.faults import ContainerLogs, Fault, PodFault

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.sandbox

CHARTS = Path(__file__).resolve().parents[1] / "charts"


def test_helm_killed_mid_upgrade_leaves_pending_upgrade_and_the_gate_refuses(
    sandbox: Sandbox, namespace: str, faults: Sandbox, pytester: pytest.Pytester
) -> None:
    def helm(*args: str) -> str:
        return sandbox.helm(3, *args, "-n", namespace).stdout

    helm("install", "cilium", str(CHARTS / "1.15.18"), "--wait", "--timeout", "2m")
    faults.add_fault(PodFault(Fault.NEVER_READY, namespace=namespace,
                              labels={"k8s-app": "cilium"},
                              images=["quay.io/cilium/cilium:v1.16.15"]))
    upgrade = subprocess.Popen(
        [str(sandbox.binaries.helm3), "upgrade", "cilium", str(CHARTS / "1.16.15"),
         "-n", namespace, "--wait", "--timeout", "5m"],
        env=sandbox.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        # Helm records the revision as pending-upgrade before it starts waiting.
        record = "secret/sh.helm.release.v1.cilium.v2"
        sandbox.kubectl("wait", record, "-n", namespace, "--for=create", "--timeout=60s")
        sandbox.kubectl("wait", record, "-n", namespace,
                        "--for=jsonpath={.metadata.labels.status}=pending-upgrade",
                        "--timeout=60s")
    finally:
        upgrade.send_signal(signal.SIGKILL)
        upgrade.wait(timeout=30)
    status = json.loads(helm("status", "cilium", "-o", "json"))
    assert status["info"]["status"] == "pending-upgrade"

    sandbox.set_logs(ContainerLogs(namespace, "cnp-validator",
                                   current=['level=info msg="All CCNPs and CNPs valid!"']))
    result = pytester.runpytest(
        "--cilium-upgrade", "--cilium-perform-upgrade", "--cilium-target-version=1.16.15",
        f"--cilium-kubeconfig={sandbox.kubeconfig}", f"--cilium-helm={sandbox.binaries.helm3}",
        f"--cilium-namespace={namespace}", f"--cilium-chart={CHARTS}",
        "-p", "no:cacheprovider", "-k", "snapshot_values or helm_upgrade or release_deployed",
    )
    text = result.stdout.str()
    assert "refusing to upgrade" in text
    assert "pending-upgrade" in text
    assert f"helm rollback cilium 1 -n {namespace}" in text
    history = json.loads(helm("history", "cilium", "-o", "json"))
    assert [h["status"] for h in history] == ["deployed", "pending-upgrade"]
    helm("rollback", "cilium", "1", "--wait", "--timeout", "2m")  # the recovery works
    for release in helm("list", "-q", "-a").split():
        helm("uninstall", release, "--wait")
