"""The gate under faults of its environment: a helm client killed mid-upgrade, and
kube-apiserver stopped and started again while the gate waits for a rollout."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cilium_sandbox.cluster import LEADER_ELECTED, Sandbox, guarded
from cilium_sandbox.faults import ContainerLogs, Fault, PodFault
from real_chart_dir import Charts

from pytest_cilium_upgrade.adapters.kube import Kube
from pytest_cilium_upgrade.gate.settings import Settings
from pytest_cilium_upgrade.redact import Redactor
from pytest_cilium_upgrade.upgrade.steps import StepFailed, UpgradeFlow

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.sandbox

VALID = 'level=info msg="All CCNPs and CNPs valid!" subsys=preflight'


def test_helm_killed_mid_upgrade_leaves_pending_upgrade_and_the_gate_refuses(
    sandbox: Sandbox, namespace: str, faults: Sandbox, charts: Charts, pytester: pytest.Pytester
) -> None:
    def helm(*args: str) -> str:
        return sandbox.helm(3, *args, "-n", namespace).stdout

    sandbox_values = charts.values("1.15.19", sandbox)
    helm("install", "cilium", str(charts / "1.15.19"), *sandbox_values, "--wait", "--timeout", "2m")
    faults.add_fault(
        PodFault(
            Fault.NEVER_READY,
            namespace=namespace,
            labels={"k8s-app": "cilium"},
            images=[charts.images("1.16.19").agent],
        )
    )
    upgrade = subprocess.Popen(
        [
            str(sandbox.binaries.helm3),
            "upgrade",
            "cilium",
            str(charts / "1.16.19"),
            *sandbox_values,
            "-n",
            namespace,
            "--wait",
            "--timeout",
            "5m",
        ],
        env=sandbox.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Helm records the revision as pending-upgrade before it starts waiting.
        record = "secret/sh.helm.release.v1.cilium.v2"
        sandbox.kubectl("wait", record, "-n", namespace, "--for=create", "--timeout=60s")
        sandbox.kubectl(
            "wait",
            record,
            "-n",
            namespace,
            "--for=jsonpath={.metadata.labels.status}=pending-upgrade",
            "--timeout=60s",
        )
    finally:
        upgrade.send_signal(signal.SIGKILL)
        upgrade.wait(timeout=30)
    status = json.loads(helm("status", "cilium", "-o", "json"))
    assert status["info"]["status"] == "pending-upgrade"

    sandbox.set_logs(
        ContainerLogs(
            namespace, "cnp-validator", current=['level=info msg="All CCNPs and CNPs valid!"']
        )
    )
    result = pytester.runpytest(
        "--cilium-upgrade",
        "--cilium-perform-upgrade",
        "--cilium-target-version=1.16.19",
        f"--cilium-kubeconfig={sandbox.kubeconfig}",
        f"--cilium-helm={sandbox.binaries.helm3}",
        f"--cilium-namespace={namespace}",
        f"--cilium-chart={charts}",
        "-p",
        "no:cacheprovider",
        "--cilium-timeout=20",
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


# ---------------------------------------------------------------------------- API server outages
#
# kube-apiserver is stopped (killed: its connections are reset) and started again with its
# own arguments on its own port; etcd, the controllers, the scheduler and kwok keep running.
# Sandbox.start_apiserver returns once the cluster works again (see its docstring), so a
# failure after it is the gate's, and a failure in it names the sandbox component.
#
# These tests get a sandbox of their own (about 7 s to start) rather than the session's:
# after an outage kwok's watches of Stage, Logs and ClusterLogs objects come back on
# client-go's back-off, up to a minute later, and a later test's fault or pod logs
# created meanwhile would not take effect.


@pytest.fixture
def outage_sandbox(sandbox: Sandbox, tmp_path: Path) -> Iterator[tuple[Sandbox, str]]:
    """A fresh sandbox of the session's topology and a namespace in it; stopped afterwards."""
    box = Sandbox(tmp_path / "sandbox", sandbox.binaries, sandbox.topology)
    with guarded(box):
        box.kubectl("create", "namespace", "outage")
        yield box, "outage"


def _agents(sandbox: Sandbox, namespace: str) -> None:
    """A DaemonSet ``agent`` on every node (control planes included)."""
    sandbox.apply(
        [
            {
                "apiVersion": "apps/v1",
                "kind": "DaemonSet",
                "metadata": {"name": "agent", "namespace": namespace},
                "spec": {
                    "selector": {"matchLabels": {"app": "agent"}},
                    "template": {
                        "metadata": {"labels": {"app": "agent"}},
                        "spec": {
                            "tolerations": [{"operator": "Exists"}],
                            "containers": [{"name": "agent", "image": "example/agent:v1"}],
                        },
                    },
                },
            }
        ]
    )


class Waiting:
    """The gate's wait for DaemonSet ``agent`` with the real adapter, run in a thread."""

    def __init__(self, sandbox: Sandbox, namespace: str, timeout: float) -> None:
        self.progress: list[str] = []
        self.outcome: list[BaseException | str] = []
        self.kube = Kube(str(sandbox.kubeconfig), request_timeout=5)
        self.flow = UpgradeFlow(
            Settings(namespace=namespace, timeout=timeout),
            self.kube,
            helm=None,
            chart=None,
            progress=self.progress.append,
            redactor=Redactor,
        )
        deadline = time.monotonic() + timeout
        self.thread = threading.Thread(target=self._run, args=(deadline,), daemon=True)
        self.thread.start()

    def _run(self, deadline: float) -> None:
        try:
            self.outcome.append(
                self.flow._wait("DaemonSet", "agent", "agent", deadline, "app=agent")
            )
        except BaseException as exc:  # handed to the test
            self.outcome.append(exc)
        finally:
            self.kube.close()

    def sees(self, line: str, timeout: float) -> None:
        end = time.monotonic() + timeout
        while line not in self.progress:
            assert time.monotonic() < end, f"no {line!r} within {timeout:g}s: {self.progress}"
            time.sleep(0.1)

    def failure(self, timeout: float) -> StepFailed:
        self.thread.join(timeout=timeout)
        assert not self.thread.is_alive(), f"the wait outlived its deadline by {timeout:g}s"
        [outcome] = self.outcome
        assert isinstance(outcome, StepFailed), outcome
        return outcome


def test_apiserver_restarted_while_the_gate_waits_for_the_rollout(
    outage_sandbox: tuple[Sandbox, str], charts: Charts, pytester: pytest.Pytester
) -> None:
    sandbox, namespace = outage_sandbox

    def helm(*args: str) -> str:
        return sandbox.helm(3, *args, "-n", namespace).stdout

    sandbox_values = charts.values("1.15.19", sandbox)
    helm("install", "cilium", str(charts / "1.15.19"), *sandbox_values, "--wait", "--timeout", "2m")
    # The new agents are held not ready until the API server is back: the rollout cannot
    # finish before, so the gate's wait has to see it through the outage.
    held = PodFault(
        Fault.NEVER_READY,
        namespace=namespace,
        labels={"k8s-app": "cilium"},
        images=[charts.images("1.16.19").agent],
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
            "--cilium-target-version=1.16.19",
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
        # Longer than the 10 s in which kube-controller-manager and kube-scheduler must
        # renew their leader lease: they exit too, as on a real control-plane node, and
        # are started again as the kubelet would.
        sandbox.restart_apiserver(16)
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
    assert restarted == {"kube-apiserver", *LEADER_ELECTED}  # etcd and kwok ran throughout
    output = "".join(before) + rest
    assert proc.returncode == 0, output
    assert "cilium-upgrade::upgrade::wait_rollout: DaemonSet cilium: 8/8 ready" in rest, output
    assert "unreachable" not in output
    history = json.loads(helm("history", "cilium", "-o", "json"))
    assert [(h["chart"], h["status"]) for h in history] == [
        ("cilium-1.15.19", "superseded"),
        ("cilium-1.16.19", "deployed"),
    ]
    sandbox.wait_nodes_ready(timeout=30)  # every node Ready with only its own taints


def test_waits_judge_the_rollout_after_a_restart_and_name_an_api_server_still_away(
    outage_sandbox: tuple[Sandbox, str],
) -> None:
    sandbox, namespace = outage_sandbox
    sandbox.add_fault(PodFault(Fault.NEVER_READY, namespace=namespace, labels={"app": "agent"}))
    _agents(sandbox, namespace)
    # Two waits for the same agents, both under way when kube-apiserver stops: one whose
    # deadline passes while it is away, one whose deadline passes after it is back.
    long = Waiting(sandbox, namespace, timeout=40)
    long.sees("agent 0/8 ready…", timeout=30)
    short = Waiting(sandbox, namespace, timeout=8)
    short.sees("agent 0/8 ready…", timeout=5)
    sandbox.stop_apiserver()
    stopped = time.monotonic()
    away = short.failure(timeout=10)
    assert time.monotonic() - stopped < 9  # it gave up at its deadline, not later
    sandbox.start_apiserver(wait_kwok=False)  # no new stage is needed
    back = long.failure(timeout=60)

    with Kube(str(sandbox.kubeconfig)) as kube:
        server = kube.server
    assert away.summary.startswith(
        "timed out after 8s waiting for DaemonSet agent: the Kubernetes API server at "
        f"{server} has been unreachable since "
    ), away.summary
    assert (
        "last error: Failed to establish a new connection: [Errno 111] Connection refused"
        in away.summary
    )
    assert away.summary.endswith("last seen: ready 0/8; available 0/8"), away.summary

    # Back before its deadline: the watch was opened again (a re-list: the current
    # state first) and the verdict is about the pods, as without an outage.
    assert long.kube.requests.counts["watch daemonsets.apps"] > 1
    assert back.summary == (
        "timed out after 40s waiting for DaemonSet agent: ready 0/8; available 0/8"
    ), back.summary
    assert any(
        d.startswith("pod agent-") and d.endswith("containers not ready: agent")
        for d in back.details
    ), back.details
