"""The offline demo: a stand-in Cilium release on a fresh sandbox, shown and taken down."""

from __future__ import annotations

import time
from pathlib import Path

from pytest_cilium_upgrade.sandbox.cluster import Sandbox, running
from pytest_cilium_upgrade.sandbox.errors import SandboxError

DEMO_CHART_VERSION = "1.15.18"
NAMESPACE = "kube-system"


def _step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def run_demo(sandbox: Sandbox, charts: Path, *, keep: bool = False, timeout: float = 180) -> int:
    chart = charts / DEMO_CHART_VERSION
    if not (chart / "Chart.yaml").is_file():
        raise SandboxError(
            f"stand-in chart {chart} not found (--charts must name the directory holding "
            f"the stand-in Cilium charts, e.g. tests/charts)"
        )
    started = time.monotonic()
    _step(f"sandbox up ({len(sandbox.topology.nodes)} nodes from the kind topology)")
    if keep:
        sandbox.up(timeout=timeout)
        _show(sandbox, chart)
        print(f"\nsandbox left running; stop it with: pytest-cilium-upgrade sandbox down "
              f"--workdir {sandbox.workdir}")
    else:
        with running(sandbox, timeout=timeout):
            _show(sandbox, chart)
        _step("sandbox down")
    print(f"\ndemo finished in {time.monotonic() - started:.1f}s", flush=True)
    return 0


def _show(sandbox: Sandbox, chart: Path) -> None:
    print(f"kube-apiserver {sandbox.server_version()}; KUBECONFIG={sandbox.kubeconfig}")
    _step(f"helm install cilium {chart} -n {NAMESPACE} --wait")
    out = sandbox.helm(3, "install", "cilium", str(chart), "-n", NAMESPACE,
                       "--wait", "--timeout", "2m").stdout
    print("\n".join(line for line in out.splitlines() if line.startswith(("STATUS", "REVISION"))))
    _step("kubectl get nodes")
    print(sandbox.kubectl("get", "nodes", "-o", "wide").rstrip())
    _step(f"kubectl -n {NAMESPACE} get daemonsets,deployments,pods")
    print(sandbox.kubectl("-n", NAMESPACE, "get", "daemonsets,deployments,pods", "-o", "wide")
          .rstrip())
    _step(f"helm list -n {NAMESPACE}")
    print(sandbox.helm(3, "list", "-n", NAMESPACE).stdout.rstrip())
