"""kube-apiserver stopped and started again under the session's sandbox, kwok with it.

``tests/sandbox/test_faults.py`` shows the gate through an outage on a sandbox of its
own, whose kwok lives through the outage: kwok's watches then come back on client-go's
reflector back-off (0.8 s doubling to [30, 60) s while the API server is away, reset
only after 2 minutes without failure), the Stage watch after some 30 s and the Logs and
ClusterLogs watches whenever their turn comes, so that sandbox is not used again. Here
the outage is on the session's sandbox, which later tests use: ``start_apiserver`` with
``restart_kwok`` starts kwok again once the API server is back, as a kubelet restarted
with its node, and every watch of kwok is back at once. The gate, waiting for the
rollout meanwhile, opens its watch again (a re-list and a re-watch) and reaches the
verdict the rollout deserves; right after, new pod logs are served, a new stage is
applied, and every node is Ready.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
from cilium_sandbox.cluster import KWOK, LEADER_ELECTED, Sandbox
from cilium_sandbox.faults import ContainerLogs, Fault, PodFault
from real_chart_dir import Charts

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.sandbox

CURRENT, TARGET = "1.15.19", "1.16.19"
VALID = 'level=info msg="All CCNPs and CNPs valid!" subsys=preflight'


@pytest.fixture
def release(sandbox: Sandbox, namespace: str, charts: Charts) -> Iterator[str]:
    """Cilium CURRENT installed in a namespace of the session's sandbox; removed after."""
    sandbox.helm(
        3,
        "install",
        "cilium",
        str(charts / CURRENT),
        *charts.values(CURRENT, sandbox),
        "-n",
        namespace,
        "--wait",
        "--timeout",
        "2m",
    )
    charts.use(TARGET)
    yield namespace
    for name in sandbox.helm(3, "list", "-q", "-a", "-n", namespace).stdout.split():
        sandbox.helm(3, "uninstall", name, "-n", namespace, "--wait", check=False)
    sandbox.clear_faults()


def _logs_served(sandbox: Sandbox, namespace: str, pod: str, line: str, within: float) -> float:
    """Seconds until ``kubectl logs`` of ``pod`` shows ``line``."""
    started = time.monotonic()
    while True:
        shown = sandbox.kubectl("logs", "-n", namespace, pod, "-c", "cilium-agent", check=False)
        if line in shown:
            return time.monotonic() - started
        assert time.monotonic() - started < within, f"{pod}: {shown[-300:]!r}"
        time.sleep(0.2)


def test_the_gate_waits_through_a_restart_of_the_session_sandboxs_apiserver(
    sandbox: Sandbox, release: str, charts: Charts, pytester: pytest.Pytester
) -> None:
    namespace = release
    # the new agents are held not ready until the API server is back: the rollout cannot
    # finish before, so the gate's wait has to see it through the outage
    held = PodFault(
        Fault.NEVER_READY,
        namespace=namespace,
        labels={"k8s-app": "cilium"},
        images=[charts.images(TARGET).agent],
    )
    sandbox.add_fault(held)
    sandbox.set_logs(ContainerLogs(namespace, "cnp-validator", current=[VALID]))
    (pytester.path / "pytest.ini").write_text("[pytest]\n")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-rA",
            "--cilium-upgrade",
            "--cilium-perform-upgrade",
            f"--cilium-target-version={TARGET}",
            f"--cilium-kubeconfig={sandbox.kubeconfig}",
            f"--cilium-helm={sandbox.binaries.helm3}",
            f"--cilium-namespace={namespace}",
            f"--cilium-chart={charts}",
            f"--cilium-values-snapshot={pytester.path / 'values.yaml'}",
            f"--cilium-state-file={pytester.path / 'state.json'}",
            "--cilium-timeout=240",
            "--cilium-request-timeout=5",
        ],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    before: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # until the wait for the new agents is under way
            before.append(line)
            if line.startswith("agent ") and "…" in line:
                break
        assert proc.poll() is None, "".join(before)
        pids = sandbox.pids()
        # longer than the 10 s in which the controllers must renew their leader lease
        sandbox.restart_apiserver(16, restart_kwok=True)
        sandbox.heal_fault(held)  # only now can the rollout finish
        rest = proc.stdout.read()
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    restarted = {n for n, pid in sandbox.pids().items() if pids[n] != pid}
    assert restarted == {"kube-apiserver", *LEADER_ELECTED, KWOK}  # etcd ran throughout
    output = "".join(before) + rest
    assert proc.returncode == 0, output
    nodes = len(sandbox.topology.nodes)
    ready = f"cilium-upgrade::upgrade::wait_rollout: DaemonSet cilium: {nodes}/{nodes} ready"
    assert ready in rest, output
    assert "unreachable" not in output
    history = json.loads(sandbox.helm(3, "history", "cilium", "-n", namespace, "-o", "json").stdout)
    assert [(h["chart"], h["status"]) for h in history] == [
        (f"cilium-{CURRENT}", "superseded"),
        (f"cilium-{TARGET}", "deployed"),
    ]

    # The sandbox is as before the outage, for the tests after this one: logs set now
    # are served at once (kwok's Logs watch is back), and every node is Ready.
    agent = sandbox.kubectl(
        "get",
        "pods",
        "-n",
        namespace,
        "-l",
        "k8s-app=cilium",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ).strip()
    marker = f"after the outage {uuid.uuid4().hex[:8]}"
    sandbox.set_logs(ContainerLogs(namespace, "cilium-agent", current=[marker]))
    took = _logs_served(sandbox, namespace, agent, marker, within=10)
    sandbox.wait_nodes_ready(timeout=30)
    print(f"new pod logs served {took:.1f}s after the outage")
