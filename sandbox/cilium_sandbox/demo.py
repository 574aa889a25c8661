"""The offline demo: a gated Cilium upgrade on a fresh sandbox, with the real plugin.

``upgrade`` (the default): stand-in Cilium 1.15.18 (the latest 1.15 patch, so the
patch-first path is honoured) is upgraded to 1.16.15 by ``pytest --cilium-upgrade
--cilium-perform-upgrade``: values saved, pre-flight installed and waited for, pre
checks, pre-flight removed, helm upgrade, rollout waited for, post checks.

``failing``: the same, but the new agent image crash-loops on one node; the rollout
never completes, the gate rolls back to the recorded revision and checks the previous
version again. The demo succeeds when the gate fails and the release is back.

The JUnit report and the Markdown summary are written to ``--reports``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from cilium_sandbox.cluster import Sandbox
from cilium_sandbox.errors import SandboxError
from cilium_sandbox.faults import ContainerLogs, Fault, PodFault

DEMO_FROM = "1.15.18"
DEMO_TO = "1.16.15"
NAMESPACE = "kube-system"
SCENARIOS = ("upgrade", "failing")
VALID_LOG = 'time="2026-01-01T00:00:00Z" level=info msg="All CCNPs and CNPs valid!" subsys=cmd'


def _step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def run_demo(
    sandbox: Sandbox,
    charts: Path,
    *,
    scenario: str = "upgrade",
    reports: Path = Path("reports"),
    keep: bool = False,
    timeout: float = 180,
) -> int:
    if scenario not in SCENARIOS:
        raise SandboxError(f"demo scenario {scenario!r} is not one of {', '.join(SCENARIOS)}")
    for version in (DEMO_FROM, DEMO_TO):
        if not (charts / version / "Chart.yaml").is_file():
            raise SandboxError(
                f"stand-in chart {charts / version} not found (--charts must name the "
                "directory holding the stand-in Cilium charts, e.g. tests/charts)"
            )
    reports = reports.resolve()
    reports.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    _step(f"sandbox up ({len(sandbox.topology.nodes)} nodes from the kind topology)")
    sandbox.up(timeout=timeout)
    try:
        code = _gated_upgrade(sandbox, charts.resolve(), scenario, reports)
    finally:
        if keep:
            print(
                f"\nsandbox left running; stop it with: cilium-sandbox down "
                f"--workdir {sandbox.workdir}"
            )
        else:
            _step("sandbox down")
            sandbox.down()
    print(f"\ndemo finished in {time.monotonic() - started:.1f}s", flush=True)
    return code


def _gated_upgrade(sandbox: Sandbox, charts: Path, scenario: str, reports: Path) -> int:
    print(f"kube-apiserver {sandbox.server_version()}; KUBECONFIG={sandbox.kubeconfig}")
    _step(f"helm install cilium {charts / DEMO_FROM} -n {NAMESPACE} --wait")
    sandbox.helm(
        3,
        "install",
        "cilium",
        str(charts / DEMO_FROM),
        "-n",
        NAMESPACE,
        "--set",
        "cluster.name=sandbox",
        "--wait",
        "--timeout",
        "2m",
    )
    print(sandbox.kubectl("-n", NAMESPACE, "get", "daemonsets,deployments", "-o", "wide").rstrip())
    # What the validator container of the pre-flight Deployment will have logged.
    sandbox.set_logs(ContainerLogs(NAMESPACE, "cnp-validator", current=[VALID_LOG]))
    wait = "120"
    if scenario == "failing":
        node = sandbox.topology.workers[-1].name
        image = f"quay.io/cilium/cilium:v{DEMO_TO}"
        _step(f"fault: cilium-agent pods on {image} crash-loop on {node}")
        sandbox.add_fault(
            PodFault(
                Fault.CRASH_LOOP,
                namespace=NAMESPACE,
                labels={"k8s-app": "cilium"},
                images=[image],
                nodes=[node],
                restarts=4,
            )
        )
        wait = "20"
    (reports / "pytest.ini").write_text("[pytest]\n")
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-c",
        str(reports / "pytest.ini"),
        f"--rootdir={reports}",
        "-p",
        "no:cacheprovider",
        "--cilium-upgrade",
        "--cilium-perform-upgrade",
        f"--cilium-target-version={DEMO_TO}",
        f"--cilium-chart={charts}",
        f"--cilium-kubeconfig={sandbox.kubeconfig}",
        f"--cilium-helm={sandbox.binaries.helm3}",
        f"--cilium-values-snapshot={sandbox.workdir / 'cilium-values.yaml'}",
        f"--cilium-state-file={sandbox.workdir / 'cilium-upgrade-state.json'}",
        f"--cilium-timeout={wait}",
        "--cilium-overwrite-snapshot",
        f"--junitxml={reports / f'demo-{scenario}.xml'}",
        f"--cilium-summary={reports / f'demo-{scenario}.md'}",
    ]
    summary = reports / f"demo-{scenario}.md"
    summary.unlink(missing_ok=True)
    _step(f"pytest --cilium-upgrade --cilium-perform-upgrade --cilium-target-version={DEMO_TO} ...")
    gate = subprocess.run(argv, cwd=reports, env=sandbox.env(), check=False)
    _step(f"helm history cilium -n {NAMESPACE}")
    print(sandbox.helm(3, "history", "cilium", "-n", NAMESPACE).stdout.rstrip())
    print(f"\nJUnit report: {reports / f'demo-{scenario}.xml'}\nsummary: {summary}")
    if scenario == "upgrade":
        return gate.returncode
    history = json.loads(sandbox.helm(3, "history", "cilium", "-n", NAMESPACE, "-o", "json").stdout)
    back = history[-1]["chart"] == f"cilium-{DEMO_FROM}" and history[-1]["status"] == "deployed"
    if gate.returncode != 0 and back:
        print(f"\nas expected: the gate failed the upgrade and rolled back to {DEMO_FROM}")
        return 0
    print(
        f"\nunexpected: gate exit {gate.returncode}, release at {history[-1]['chart']}",
        file=sys.stderr,
    )
    return 1
