"""The offline demo: a gated Cilium upgrade on a fresh sandbox, with the real plugin and charts.

The charts are the real upstream ones (see :mod:`cilium_sandbox.charts` for where the
archives come from), served as a Helm repository on 127.0.0.1 and added with
``helm repo add cilium URL``, as a user adds https://helm.cilium.io/. The upgrade is from
the newest patch of the previous minor to the newest release of all, among
REAL_CHART_VERSIONS (1.19.6 to 1.20.0): the patch-first path is honoured.

``upgrade`` (the default): that release is installed from ``cilium/cilium``, then
upgraded by ``pytest --cilium-upgrade --cilium-perform-upgrade --cilium-chart=cilium/cilium``:
values saved, pre-flight installed and waited for, pre checks, pre-flight removed, helm
upgrade, rollout waited for, post checks.

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
from collections.abc import Mapping, Sequence
from pathlib import Path

from cilium_sandbox.chart_repo import ChartRepository
from cilium_sandbox.charts import (
    CHART_NAME,
    REAL_CHART_VERSIONS,
    ChartsMissing,
    ChartSources,
    archive_name,
    chart_images,
    find_repo_root,
    latest,
    newest_patch,
    previous_minor,
    sandbox_values,
    set_args,
)
from cilium_sandbox.cluster import Sandbox
from cilium_sandbox.errors import SandboxError
from cilium_sandbox.faults import ContainerLogs, Fault, PodFault
from pytest_cilium_upgrade.versions import Version


def demo_versions(versions: Sequence[str] = REAL_CHART_VERSIONS) -> tuple[str, str]:
    """(from, to): the newest patch of the previous minor, and the newest release of all."""
    target = latest(versions)
    line = Version.parse(target).minor_str()
    return newest_patch(previous_minor(line, versions), versions), target


DEMO_FROM, DEMO_TO = demo_versions()
NAMESPACE = "kube-system"
REPO_NAME = "cilium"
CHART_REF = f"{REPO_NAME}/{CHART_NAME}"
SCENARIOS = ("upgrade", "failing")
# The validator's success line, as 1.18+ (slog) logs it; the gate matches the message.
VALID_LOG = 'time=2026-01-01T00:00:00.000000000Z level=info msg="All CCNPs and CNPs valid!"'


def _step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def demo_charts(
    charts_dir: Path | None = None, versions: Sequence[str] = (DEMO_FROM, DEMO_TO)
) -> dict[str, Path]:
    """The archives of the demo's versions.

    From ``charts_dir`` alone (a directory of ``cilium-X.tgz``) when given; otherwise
    from the standard sources in order ($CILIUM_CHARTS_DIR, ``../shared/charts/cilium``
    beside the checkout, the cache, ``helm pull`` from the official repository).
    ChartsMissing names what is missing and where it looked.
    """
    if charts_dir is not None:
        found = {v: charts_dir / archive_name(v) for v in versions}
        missing = [v for v, path in found.items() if not path.is_file()]
        if missing:
            place = f"--charts-dir: {charts_dir}"
            if not charts_dir.is_dir():
                place += " (no such directory)"
            raise ChartsMissing(missing, [place])
        return found
    root = find_repo_root(Path.cwd()) or find_repo_root(Path(__file__).parent)
    return ChartSources.default(root).resolve(versions)


def run_demo(
    sandbox: Sandbox,
    charts: Mapping[str, Path],
    *,
    scenario: str = "upgrade",
    reports: Path = Path("reports"),
    keep: bool = False,
    timeout: float = 180,
) -> int:
    """The demo on ``sandbox`` (not yet up) with ``charts`` (version -> archive)."""
    if scenario not in SCENARIOS:
        raise SandboxError(f"demo scenario {scenario!r} is not one of {', '.join(SCENARIOS)}")
    missing = [v for v in (DEMO_FROM, DEMO_TO) if v not in charts]
    if missing:
        raise SandboxError(f"the demo needs the real Cilium charts {', '.join(missing)}")
    archives = {v: charts[v] for v in (DEMO_FROM, DEMO_TO)}
    reports = reports.resolve()
    reports.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    _step(f"sandbox up ({len(sandbox.topology.nodes)} nodes from the kind topology)")
    sandbox.up(timeout=timeout)
    try:
        with ChartRepository(archives, helm=sandbox.binaries.helm3) as repo:
            code = _gated_upgrade(sandbox, repo, archives, scenario, reports)
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


def demo_env(sandbox: Sandbox) -> dict[str, str]:
    """The sandbox's environment with Helm's repositories file and index cache of the demo.

    Both live in the sandbox's work directory: the user's own repositories are neither
    read nor changed, and a fresh ``helm repo add`` fills the cache each time.
    """
    helm_home = sandbox.workdir / "demo-helm"
    return {
        **sandbox.env(),
        "HELM_REPOSITORY_CONFIG": str(helm_home / "repositories.yaml"),
        "HELM_REPOSITORY_CACHE": str(helm_home / "repository"),
    }


def _helm(sandbox: Sandbox, env: Mapping[str, str], *args: str) -> str:
    argv = [str(sandbox.binaries.helm3), *args]
    proc = subprocess.run(
        argv, env=dict(env), capture_output=True, text=True, timeout=300, check=False
    )
    if proc.returncode != 0:
        raise SandboxError(f"helm {' '.join(args[:2])} failed: {proc.stderr.strip()}")
    return proc.stdout


def _gated_upgrade(
    sandbox: Sandbox,
    repo: ChartRepository,
    archives: Mapping[str, Path],
    scenario: str,
    reports: Path,
) -> int:
    env = demo_env(sandbox)
    print(f"kube-apiserver {sandbox.server_version()}; KUBECONFIG={sandbox.kubeconfig}")
    print("real Cilium charts (upstream archives, unmodified):")
    for version, archive in archives.items():
        print(f"  {version}: {archive}")

    _step(f"helm repo add {REPO_NAME} {repo.url}   (served on loopback, index by helm repo index)")
    _helm(sandbox, env, "repo", "add", REPO_NAME, repo.url, "--force-update")
    print(_helm(sandbox, env, "search", "repo", CHART_REF, "--versions").rstrip())

    nodes = len(sandbox.topology.nodes)
    extra = set_args(sandbox_values(DEMO_FROM, nodes=nodes))
    install = [
        "install", "cilium", CHART_REF, "--version", DEMO_FROM, "-n", NAMESPACE,
        "--set", "cluster.name=sandbox", *extra,
    ]  # fmt: skip
    _step(f"helm {' '.join(install)} --wait")
    _helm(sandbox, env, *install, "--wait", "--timeout", "2m")
    print(sandbox.kubectl("-n", NAMESPACE, "get", "daemonsets,deployments", "-o", "wide").rstrip())
    # What the validator container of the pre-flight Deployment will have logged.
    sandbox.set_logs(ContainerLogs(NAMESPACE, "cnp-validator", current=[VALID_LOG]))
    wait = "120"
    if scenario == "failing":
        node = sandbox.topology.workers[-1].name
        image = chart_images(archives[DEMO_TO]).agent
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
        # the checks of a phase in their own order (harmless where pytest-randomly is absent)
        "-p",
        "no:randomly",
        "--cilium-upgrade",
        "--cilium-perform-upgrade",
        f"--cilium-target-version={DEMO_TO}",
        f"--cilium-chart={CHART_REF}",
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
    _step(
        f"pytest --cilium-upgrade --cilium-perform-upgrade --cilium-chart={CHART_REF} "
        f"--cilium-target-version={DEMO_TO} ..."
    )
    gate = subprocess.run(argv, cwd=reports, env=env, check=False)
    _step(f"helm history cilium -n {NAMESPACE}")
    print(_helm(sandbox, env, "history", "cilium", "-n", NAMESPACE).rstrip())
    print(f"\nJUnit report: {reports / f'demo-{scenario}.xml'}\nsummary: {summary}")
    fetched = ", ".join(sorted(repo.downloads & set(archives), key=Version.parse)) or "none"
    print(f"charts fetched from the repository: {fetched}")
    if scenario == "upgrade":
        return gate.returncode
    history = json.loads(_helm(sandbox, env, "history", "cilium", "-n", NAMESPACE, "-o", "json"))
    back = history[-1]["chart"] == f"cilium-{DEMO_FROM}" and history[-1]["status"] == "deployed"
    if gate.returncode != 0 and back:
        print(f"\nas expected: the gate failed the upgrade and rolled back to {DEMO_FROM}")
        return 0
    print(
        f"\nunexpected: gate exit {gate.returncode}, release at {history[-1]['chart']}",
        file=sys.stderr,
    )
    return 1
