"""`pytest --cilium-upgrade` against real objects: every check seen passing and failing.

Each test installs releases of the real upstream Cilium charts (``charts``: the archives
of the official repository, unpacked by version) into its own namespace of the
session's sandbox (3 control-plane nodes, 5 workers, as in the seed incident), runs the
gate in a pytester sub-run and reads its outcome, its output, its JUnit report and
summary. The upgrade most tests gate is 1.15.19 (the newest 1.15 patch) to 1.16.19.
"""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import socket
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import yaml
from cilium_sandbox.charts import REAL_CHART_VERSIONS
from cilium_sandbox.cluster import Sandbox
from cilium_sandbox.faults import ContainerLogs, Fault, PodFault
from junit_report import junit_verdicts
from real_chart_dir import Charts

from pytest_cilium_upgrade.adapters.kube import Kube

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.sandbox

VALID = 'level=info msg="All CCNPs and CNPs valid!" subsys=preflight'
PREFLIGHT_SETS = (
    "--set",
    "preflight.enabled=true",
    "--set",
    "agent=false",
    "--set",
    "operator.enabled=false",
)


class Cluster:
    """One test's namespace of the sandbox, with helpers to install and run the gate."""

    def __init__(
        self, sandbox: Sandbox, namespace: str, pytester: pytest.Pytester, charts: Charts
    ) -> None:
        self.sandbox = sandbox
        self.ns = namespace
        self.pytester = pytester
        self.charts = charts
        self.snapshot = pytester.path / "values.yaml"
        self.state = pytester.path / "state.json"
        self.summary = pytester.path / "summary.md"
        self.junit = pytester.path / "junit.xml"

    def helm(self, *args: str) -> str:
        return self.sandbox.helm(3, *args, "-n", self.ns).stdout

    def install(self, version: str, *extra: str, release: str = "cilium") -> None:
        chart = str(self.charts / version)
        sandbox = self.charts.values(version, self.sandbox)
        self.helm("install", release, chart, *sandbox, "--wait", "--timeout", "2m", *extra)

    def preflight(
        self, version: str, *extra: str, validator: Sequence[str] = (VALID,), wait: bool = True
    ) -> None:
        self.sandbox.set_logs(ContainerLogs(self.ns, "cnp-validator", current=list(validator)))
        args = ("--wait", "--timeout", "2m") if wait else ()
        self.helm(
            "install",
            "cilium-preflight",
            str(self.charts / version),
            *PREFLIGHT_SETS,
            *args,
            *extra,
        )

    def upgrade(self, version: str, *extra: str) -> None:
        self.helm(
            "upgrade",
            "cilium",
            str(self.charts / version),
            "-f",
            str(self.snapshot),
            "--wait",
            "--timeout",
            "2m",
            *extra,
        )
        self.sandbox.kubectl(
            "rollout", "status", "-n", self.ns, "daemonset/cilium", "--timeout=60s"
        )

    def fault(self, fault: PodFault) -> None:
        self.sandbox.add_fault(fault)

    def gate(self, *args: str, kubeconfig: Path | None = None) -> pytest.RunResult:
        self.charts.use_targets(args)
        helm = (
            []
            if any(a.startswith("--cilium-helm=") for a in args)
            else [f"--cilium-helm={self.sandbox.binaries.helm3}"]
        )
        return self.pytester.runpytest(
            "--cilium-upgrade",
            f"--cilium-kubeconfig={kubeconfig or self.sandbox.kubeconfig}",
            *helm,
            f"--cilium-namespace={self.ns}",
            f"--cilium-chart={self.charts}",
            f"--cilium-values-snapshot={self.snapshot}",
            f"--cilium-state-file={self.state}",
            f"--cilium-summary={self.summary}",
            f"--junitxml={self.junit}",
            "-p",
            "no:cacheprovider",
            "-rA",
            *args,
        )

    def flow(self, target: str, *args: str, helm: Path | None = None) -> pytest.RunResult:
        """The whole gated upgrade (--cilium-perform-upgrade) to ``target``."""
        self.sandbox.set_logs(ContainerLogs(self.ns, "cnp-validator", current=[VALID]))
        return self.gate(
            "--cilium-perform-upgrade",
            f"--cilium-target-version={target}",
            "--cilium-timeout=20",
            "--cilium-request-timeout=5",
            *([f"--cilium-helm={helm}"] if helm else []),
            *args,
        )

    def history(self) -> list[tuple[int, str, str]]:
        entries = json.loads(self.helm("history", "cilium", "-o", "json"))
        return [(e["revision"], e["chart"], e["status"]) for e in entries]

    def releases(self) -> list[str]:
        return self.helm("list", "-a", "-q").split()

    def verdicts(self) -> dict[str, str]:
        """JUnit testcase name -> 'passed' or the failure message."""
        return junit_verdicts(self.junit, whole_failure=False)


@pytest.fixture
def cluster(
    sandbox: Sandbox, namespace: str, pytester: pytest.Pytester, charts: Charts
) -> Iterator[Cluster]:
    box = Cluster(sandbox, namespace, pytester, charts)
    yield box
    # Cluster-scoped objects of the pre-flight release outlive the namespace: uninstall.
    for release in sandbox.helm(3, "list", "-q", "-a", "-n", namespace).stdout.split():
        sandbox.helm(3, "uninstall", release, "-n", namespace, "--wait", check=False)
    sandbox.clear_faults()


def _secret_lists(sandbox: Sandbox) -> float:
    """LIST secrets the apiserver has served so far (every client).

    Other tests' namespaces are deleted without waiting, and the namespace controller
    lists the secrets of each while it empties it: the count starts once none is left.
    """
    deadline = time.monotonic() + 120
    terminating = "jsonpath={.items[?(@.status.phase=='Terminating')].metadata.name}"
    while sandbox.kubectl("get", "namespaces", "-o", terminating).strip():
        assert time.monotonic() < deadline, "namespaces still terminating after 120s"
        time.sleep(0.5)
    total = 0.0
    for line in sandbox.kubectl("get", "--raw", "/metrics").splitlines():
        if (
            line.startswith("apiserver_request_total{")
            and 'verb="LIST"' in line
            and 'resource="secrets"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _outcome(result: pytest.RunResult) -> dict[str, int]:
    return {k: v for k, v in result.parseoutcomes().items() if k in ("passed", "failed", "skipped")}


# ---------------------------------------------------------------------------- pre: passing


def test_pre_checks_pass_on_a_healthy_cluster_ready_for_the_next_minor(
    cluster: Cluster,
) -> None:
    cluster.install("1.15.19", "--set", "cluster.name=sandbox")
    cluster.preflight("1.16.0")
    lists = _secret_lists(cluster.sandbox)
    result = cluster.gate(
        "--cilium-phase=pre", "--cilium-target-version=1.16.0", "--cilium-write-snapshot"
    )
    assert _outcome(result) == {"passed": 14}, result.stdout.str()
    # Helm's records are listed once: the values written are the values judged
    assert _secret_lists(cluster.sandbox) - lists == 1
    assert yaml.safe_load(cluster.snapshot.read_text()) == {"cluster": {"name": "sandbox"}}
    assert cluster.snapshot.stat().st_mode & 0o777 == 0o600
    state = json.loads(cluster.state.read_text())
    assert (state["revision"], state["chart_version"]) == (1, "1.15.19")
    verdicts = cluster.verdicts()
    assert set(verdicts.values()) == {"passed"}
    assert all(k.startswith("cilium-upgrade.pre::") for k in verdicts)
    assert "Cilium upgrade gate: clear" in cluster.summary.read_text()


def test_snapshot_collection_uses_a_fixed_number_of_api_requests(
    cluster: Cluster, sandbox: Sandbox
) -> None:
    from pytest_cilium_upgrade import defaults
    from pytest_cilium_upgrade.adapters.helm.client import Helm
    from pytest_cilium_upgrade.snapshot.read import CollectRequest, collect

    cluster.install("1.15.19")
    cluster.preflight("1.16.0")
    helm = Helm(
        binary=str(sandbox.binaries.helm3), kubeconfig=str(sandbox.kubeconfig), env=sandbox.env()
    )

    def count() -> tuple[int, int]:
        with Kube(str(sandbox.kubeconfig)) as kube:
            request = CollectRequest(namespace=cluster.ns, release_records="Secret")
            snapshot = collect(kube, helm, request)
            assert snapshot.release is not None
            assert snapshot.preflight_release is not None
            return kube.requests.total, len(snapshot.pods_matching(defaults.AGENT_SELECTOR))

    requests, agents = count()
    extra = [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": f"extra-{i}",
                "labels": {"kubernetes.io/os": "linux", "kubernetes.io/hostname": f"extra-{i}"},
            },
        }
        for i in range(8)
    ]
    sandbox.apply(extra)
    try:
        sandbox.kubectl(
            "wait", "--for=condition=Ready", "--timeout=60s", *[f"node/extra-{i}" for i in range(8)]
        )
        sandbox.kubectl("rollout", "status", "-n", cluster.ns, "daemonset/cilium", "--timeout=60s")
        more_requests, more_agents = count()
    finally:
        sandbox.kubectl("delete", "node", *[f"extra-{i}" for i in range(8)], "--wait=false")
    print(
        f"API requests for one snapshot: {requests} with {agents} agent pods, "
        f"{more_requests} with {more_agents} agent pods"
    )
    assert more_agents == agents + 8
    # version + 7 access reviews + nodes, pods, daemonsets, deployments, Helm's records
    # + validator log; helm itself only runs `version` (no render without a chart)
    assert requests == more_requests == 14
    assert [call.argv[1] for call in helm.calls] == ["version"]


# ---------------------------------------------------------------------------- the seed


def test_seed_scenario_1_12_preflight_skips_control_plane_nodes(cluster: Cluster) -> None:
    """The seed's cluster: 8 agents, and the real 1.12.0 pre-flight on 5 nodes only.

    Its pre-flight DaemonSet takes ``preflight.tolerations``, whose 1.12 default has no
    control-plane toleration. The seed upgraded from 1.11, which no chart at hand has;
    the agent DaemonSet tolerates every taint in every version, so the 1.12.0 agent
    stands for it.
    """
    cluster.install("1.12.0")
    cluster.preflight("1.12.0")
    pods = cluster.sandbox.kubectl(
        "get", "pods", "-n", cluster.ns, "-l", "k8s-app=cilium-pre-flight-check", "-o", "name"
    )
    agents = cluster.sandbox.kubectl(
        "get", "pods", "-n", cluster.ns, "-l", "k8s-app=cilium", "-o", "name"
    )
    assert (len(agents.split()), len(pods.split())) == (8, 5)

    result = cluster.gate(
        "-k", "preflight_covers_agent_nodes", "--cilium-phase=pre", "--cilium-target-version=1.12.0"
    )
    assert _outcome(result) == {"passed": 1}
    text = result.stdout.str()
    assert "cilium-upgrade warnings" in text
    for node in (
        "cilium-upgrade-control-plane",
        "cilium-upgrade-control-plane2",
        "cilium-upgrade-control-plane3",
    ):
        assert (
            f"node {node}: taint node-role.kubernetes.io/control-plane:NoSchedule "
            "not tolerated" in text
        )
    assert "--set preflight.tolerations[0].operator=Exists" in text

    strict = cluster.gate(
        "-k",
        "preflight_covers_agent_nodes",
        "--cilium-phase=pre",
        "--cilium-target-version=1.12.0",
        "--cilium-preflight-coverage=strict",
    )
    assert _outcome(strict) == {"failed": 1}
    message = cluster.verdicts()["cilium-upgrade.pre::preflight_covers_agent_nodes"]
    assert "cilium-upgrade-control-plane3" in message
    for node in ("control-plane", "control-plane2", "control-plane3"):
        taint = "taint node-role.kubernetes.io/control-plane:NoSchedule not tolerated"
        assert f"node cilium-upgrade-{node}: {taint}" in strict.stdout.str()


@pytest.mark.parametrize(
    ("agent", "preflight"),
    [
        ("1.12.19", "1.13.0"),  # 1.13 added the control-plane toleration
        ("1.14.19", "1.15.19"),  # ... and requires an agent pod on the node (1.14.2+)
        ("1.15.19", "1.16.0"),  # 1.16 tolerates every taint
    ],
)
def test_newer_preflights_cover_every_node(cluster: Cluster, agent: str, preflight: str) -> None:
    cluster.install(agent)
    cluster.preflight(preflight)
    result = cluster.gate(
        "-k",
        "preflight_covers_agent_nodes",
        "--cilium-phase=pre",
        "--cilium-preflight-coverage=strict",
    )
    assert _outcome(result) == {"passed": 1}
    assert "cilium-upgrade warnings" not in result.stdout.str()
    summary = cluster.summary.read_text()
    assert "READY 8" in summary, summary


# ---------------------------------------------------------------------------- every chart

# Each real chart version and the next one: every minor from 1.12 to 1.20, its first
# release and its newest patch, installed once as the release and once as the pre-flight.
UPGRADES = list(itertools.pairwise(REAL_CHART_VERSIONS))


@pytest.mark.parametrize(("current", "target"), UPGRADES, ids=[f"{c}-{t}" for c, t in UPGRADES])
def test_pre_phase_passes_for_each_real_chart_and_the_next(
    cluster: Cluster, current: str, target: str
) -> None:
    cluster.install(current)
    cluster.preflight(target)
    result = cluster.gate(
        "--cilium-phase=pre", f"--cilium-target-version={target}", "--cilium-write-snapshot"
    )
    verdicts = cluster.verdicts()
    assert verdicts, result.stdout.str()
    assert {k: v for k, v in verdicts.items() if v != "passed"} == {}, result.stdout.str()

    # what runs is what each chart renders by default: its pinned images, on every node
    now, then = cluster.charts.images(current), cluster.charts.images(target)
    assert _pod_images(cluster, "k8s-app=cilium") == [now.agent] * 8
    envoys = [now.envoy] * 8 if now.envoy else []
    assert _pod_images(cluster, "k8s-app=cilium-envoy") == envoys
    assert _pod_images(cluster, "io.cilium/app=operator") == [now.operator] * 2
    # 1.12's pre-flight skips the 3 control-plane nodes (a warning by default)
    covered = 5 if target.startswith("1.12.") else 8
    assert _pod_images(cluster, "k8s-app=cilium-pre-flight-check") == [then.agent] * covered
    assert ("cilium-upgrade warnings" in result.stdout.str()) == (covered < 8)


def _pod_images(cluster: Cluster, selector: str) -> list[str]:
    """The first container's image of each pod matching ``selector``."""
    out = cluster.sandbox.kubectl(
        "get", "pods", "-n", cluster.ns, "-l", selector,
        "-o", "jsonpath={.items[*].spec.containers[0].image}",
    )  # fmt: skip
    return out.split()


# ---------------------------------------------------------------------------- pre: failing


def _set_release_status(cluster: Cluster, revision: int, status: str) -> None:
    """Rewrite Helm's own record of a revision, as an interrupted `helm upgrade` leaves it."""
    name = f"sh.helm.release.v1.cilium.v{revision}"
    secret = json.loads(
        cluster.sandbox.kubectl("get", "secret", name, "-n", cluster.ns, "-o", "json")
    )
    payload = base64.b64decode(base64.b64decode(secret["data"]["release"]))
    release = json.loads(gzip.decompress(payload))
    release["info"]["status"] = status
    encoded = base64.b64encode(gzip.compress(json.dumps(release).encode())).decode()
    secret["data"]["release"] = base64.b64encode(encoded.encode()).decode()
    secret["metadata"]["labels"]["status"] = status
    # replace, not apply: apply would copy the whole record into an annotation, too big
    cluster.sandbox.kubectl("replace", "-f", "-", input_text=json.dumps(secret))


def test_release_left_pending_upgrade_blocks_the_upgrade(cluster: Cluster) -> None:
    cluster.install("1.15.19")
    _set_release_status(cluster, 1, "pending-upgrade")
    result = cluster.gate("-k", "release_deployed", "--cilium-phase=pre")
    assert _outcome(result) == {"failed": 1}
    message = cluster.verdicts()["cilium-upgrade.pre::release_deployed"]
    assert "pending-upgrade" in message
    assert "helm rollback cilium" in result.stdout.str()


# An operator left on another patch than the agents.
STALE_OPERATOR = "quay.io/cilium/operator-generic:v1.15.0"


def _wait_for_pod_image(cluster: Cluster, selector: str, image: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        images = cluster.sandbox.kubectl(
            "get", "pods", "-n", cluster.ns, "-l", selector,
            "-o", "jsonpath={.items[*].spec.containers[0].image}",
        )  # fmt: skip
        if image in images.split():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"no pod {selector} runs {image} after {timeout:g}s: {images}")
        time.sleep(0.5)


def test_unhealthy_agent_operator_and_mixed_versions(cluster: Cluster) -> None:
    cluster.install("1.15.19")
    node = "cilium-upgrade-worker3"
    cluster.fault(
        PodFault(
            Fault.CRASH_LOOP,
            namespace=cluster.ns,
            labels={"k8s-app": "cilium"},
            nodes=[node],
            restarts=6,
        )
    )
    cluster.fault(
        PodFault(Fault.NEVER_READY, namespace=cluster.ns, labels={"io.cilium/app": "operator"})
    )
    cluster.sandbox.kubectl(
        "wait",
        "daemonset/cilium",
        "-n",
        cluster.ns,
        "--for=jsonpath={.status.numberReady}=7",
        "--timeout=60s",
    )
    cluster.sandbox.kubectl(
        "set",
        "image",
        "-n",
        cluster.ns,
        "deployment/cilium-operator",
        f"cilium-operator={STALE_OPERATOR}",
    )
    # Two replicas, never ready: how far the rollout gets varies; one new pod suffices.
    _wait_for_pod_image(cluster, "io.cilium/app=operator", STALE_OPERATOR)
    result = cluster.gate("-k", "healthy or one_version", "--cilium-phase=pre")
    assert _outcome(result) == {"failed": 3}
    verdicts = cluster.verdicts()
    agent = verdicts["cilium-upgrade.pre::agent_daemonset_healthy"]
    assert "7/8" in agent or "crash" in agent.lower(), agent
    assert node in result.stdout.str()
    assert "CrashLoopBackOff" in result.stdout.str()
    assert "operator" in verdicts["cilium-upgrade.pre::operator_healthy"]
    mixed = verdicts["cilium-upgrade.pre::components_on_one_version"]
    assert "1.15.0" in mixed
    assert "1.15.19" in mixed


@pytest.mark.parametrize(
    ("current", "target", "expected"),
    [
        ("1.15.0", "1.16.0", "1.15.19"),  # not on the latest patch before a minor hop
        ("1.15.19", "1.17.0", "1.16"),  # skips a minor
        ("1.12.0", "1.14.19", "1.13"),  # skips a minor, from the oldest chart at hand
        ("1.16.19", "1.15.19", "downgrade"),
    ],
)
def test_upgrade_path_refused(cluster: Cluster, current: str, target: str, expected: str) -> None:
    cluster.install(current)
    result = cluster.gate(
        "-k", "upgrade_path_supported", "--cilium-phase=pre", f"--cilium-target-version={target}"
    )
    assert _outcome(result) == {"failed": 1}
    assert expected in cluster.verdicts()["cilium-upgrade.pre::upgrade_path_supported"]


def test_values_snapshot_must_equal_live_values_and_be_private(cluster: Cluster) -> None:
    planted_key = "-----BEGIN PRIVATE KEY-----PLANTEDSECRETKEYMATERIAL0123456789abcdef"
    cluster.install(
        "1.15.19",
        "--set",
        f"hubble.tls.server.key={planted_key}",
        "--set",
        "hubble.tls.server.cert=PLANTEDCERTDATA0123456789abcdefghijkl",
    )
    cluster.snapshot.write_text(
        yaml.safe_dump(
            {"hubble": {"tls": {"server": {"key": "-----BEGIN PRIVATE KEY-----OLDKEYPLANTED999"}}}}
        )
    )
    cluster.snapshot.chmod(0o644)
    result = cluster.gate("-k", "values_snapshot", "--cilium-phase=pre")
    assert _outcome(result) == {"failed": 1}
    message = cluster.verdicts()["cilium-upgrade.pre::values_snapshot_matches_live"]
    assert "hubble.tls.server" in result.stdout.str()
    assert "0644" in result.stdout.str() or "644" in message
    for secret in (planted_key, "PLANTEDSECRETKEYMATERIAL", "PLANTEDCERTDATA", "OLDKEYPLANTED"):
        assert secret not in result.stdout.str()
        assert secret not in cluster.junit.read_text()
        assert secret not in cluster.summary.read_text()

    cluster.snapshot.unlink()
    written = cluster.gate("-k", "values_snapshot", "--cilium-phase=pre", "--cilium-write-snapshot")
    assert _outcome(written) == {"passed": 1}
    assert "PLANTEDSECRETKEYMATERIAL" not in written.stdout.str()


def test_target_chart_refuses_removed_values_with_its_own_message(cluster: Cluster) -> None:
    cluster.install("1.12.0", "--set", "tunnel=vxlan")
    result = cluster.gate(
        "-k",
        "target_chart_renders",
        "--cilium-phase=pre",
        "--cilium-target-version=1.15.19",
        "--cilium-write-snapshot",
    )
    assert _outcome(result) == {"failed": 1}
    assert "tunnel was deprecated in v1.14 and has been removed in v1.15" in result.stdout.str()


def test_preflight_must_run_the_target_image(cluster: Cluster) -> None:
    cluster.install("1.15.19")
    cluster.preflight("1.16.0")
    result = cluster.gate(
        "-k", "preflight_runs_target_image", "--cilium-phase=pre", "--cilium-target-version=1.16.19"
    )
    assert _outcome(result) == {"failed": 1}
    message = cluster.verdicts()["cilium-upgrade.pre::preflight_runs_target_image"]
    assert "1.16.0" in message or "1.16.0" in result.stdout.str()


def test_crash_looping_validator_fails_with_the_invalid_policy_from_previous_log(
    cluster: Cluster,
) -> None:
    cluster.install("1.15.19")
    previous = [
        "level=info msg=\"Validating CiliumNetworkPolicy 'default/allow-dns': OK!\"",
        'level=error msg="Unexpected validation error" error="invalid port" '
        "type=CiliumNetworkPolicy name=team-a/bad-port",
        'level=fatal msg="failed to start: Found invalid CiliumNetworkPolicy"',
    ]
    cluster.sandbox.set_logs(
        ContainerLogs(
            cluster.ns, "cnp-validator", current=['level=info msg="Starting"'], previous=previous
        )
    )
    cluster.fault(
        PodFault(
            Fault.CRASH_LOOP,
            namespace=cluster.ns,
            labels={"k8s-app": "cilium-pre-flight-check-deployment"},
            container="cnp-validator",
            restarts=4,
        )
    )
    cluster.helm("install", "cilium-preflight", str(cluster.charts / "1.16.0"), *PREFLIGHT_SETS)
    # the Deployment exists once helm returns; its pod only once the controller made it
    cluster.sandbox.kubectl(
        "wait",
        "deployment/cilium-pre-flight-check",
        "-n",
        cluster.ns,
        "--for=jsonpath={.status.replicas}=1",
        "--timeout=60s",
    )
    cluster.sandbox.kubectl(
        "wait",
        "pods",
        "-n",
        cluster.ns,
        "-l",
        "k8s-app=cilium-pre-flight-check-deployment",
        "--for=jsonpath={.status.phase}=Running",
        "--timeout=60s",
    )
    result = cluster.gate(
        "-k", "preflight_deployment_ready or cnp_validation", "--cilium-phase=pre"
    )
    assert _outcome(result) == {"failed": 2}
    verdicts = cluster.verdicts()
    assert "0/1" in verdicts["cilium-upgrade.pre::preflight_deployment_ready"]
    text = result.stdout.str()
    assert "team-a/bad-port" in text
    assert "Found invalid CiliumNetworkPolicy" in text


def test_preflight_image_pull_error_is_reported_by_node(cluster: Cluster) -> None:
    cluster.install("1.15.19")
    cluster.fault(
        PodFault(
            Fault.IMAGE_PULL,
            namespace=cluster.ns,
            images=[cluster.charts.images("1.16.0").agent],
            nodes=["cilium-upgrade-worker2"],
        )
    )
    cluster.preflight("1.16.0", wait=False)
    cluster.sandbox.kubectl(
        "wait",
        "daemonset/cilium-pre-flight-check",
        "-n",
        cluster.ns,
        "--for=jsonpath={.status.numberReady}=7",
        "--timeout=60s",
    )
    result = cluster.gate("-k", "preflight_covers_agent_nodes", "--cilium-phase=pre")
    assert _outcome(result) == {"failed": 1}
    text = result.stdout.str()
    assert "cilium-upgrade-worker2" in text
    assert "ErrImagePull" in text


def test_restricted_identity_is_told_the_missing_verb_and_resource(
    cluster: Cluster, sandbox: Sandbox
) -> None:
    ns = cluster.ns
    sandbox.kubectl("create", "serviceaccount", "reader", "-n", ns)
    sandbox.kubectl(
        "create",
        "role",
        "partial",
        "-n",
        ns,
        "--verb=list,get",
        "--resource=pods,daemonsets.apps,deployments.apps,secrets",
    )
    sandbox.kubectl(
        "create",
        "rolebinding",
        "partial",
        "-n",
        ns,
        "--role=partial",
        f"--serviceaccount={ns}:reader",
    )
    token = sandbox.kubectl("create", "token", "reader", "-n", ns).strip()
    admin = yaml.safe_load(sandbox.kubeconfig.read_text())
    cluster_entry = admin["clusters"][0]
    restricted = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster_entry],
        "users": [{"name": "reader", "user": {"token": token}}],
        "contexts": [
            {
                "name": "reader",
                "context": {"cluster": cluster_entry["name"], "user": "reader", "namespace": ns},
            }
        ],
        "current-context": "reader",
    }
    kubeconfig = cluster.pytester.path / "reader.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(restricted))
    result = cluster.gate("-k", "cluster_reachable", "--cilium-phase=pre", kubeconfig=kubeconfig)
    assert _outcome(result) == {"failed": 1}
    message = cluster.verdicts()["cilium-upgrade.pre::cluster_reachable_and_access_allowed"]
    assert "list nodes" in message
    assert token not in result.stdout.str()


def test_unreachable_cluster_fails_once_and_skips_what_needs_it(cluster: Cluster) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    admin = yaml.safe_load(cluster.sandbox.kubeconfig.read_text())
    admin["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    kubeconfig = cluster.pytester.path / "gone.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(admin))
    result = cluster.gate("--cilium-phase=pre", kubeconfig=kubeconfig)
    outcome = _outcome(result)
    assert outcome["failed"] >= 1
    verdicts = cluster.verdicts()
    assert (
        "cluster unreachable"
        in verdicts["cilium-upgrade.pre::cluster_reachable_and_access_allowed"]
    )
    assert verdicts["cilium-upgrade.pre::agent_daemonset_healthy"].startswith("skipped")
    assert "Traceback" not in result.stdout.str()


def test_missing_helm_client_fails_the_helm_check(cluster: Cluster) -> None:
    result = cluster.pytester.runpytest(
        "--cilium-upgrade",
        f"--cilium-kubeconfig={cluster.sandbox.kubeconfig}",
        f"--cilium-namespace={cluster.ns}",
        "--cilium-helm=/nonexistent/helm",
        "-k",
        "helm_client_supported",
        "-p",
        "no:cacheprovider",
    )
    assert _outcome(result) == {"failed": 1}
    assert "/nonexistent/helm" in result.stdout.str()


# ---------------------------------------------------------------------------- post


def test_post_checks_pass_after_a_real_upgrade_and_fail_without_one(cluster: Cluster) -> None:
    cluster.install("1.15.19", "--set", "cluster.name=sandbox")
    cluster.preflight("1.16.0")
    pre = cluster.gate(
        "--cilium-phase=pre", "--cilium-target-version=1.16.0", "--cilium-write-snapshot"
    )
    assert _outcome(pre) == {"passed": 14}

    not_yet = cluster.gate("--cilium-phase=post", "--cilium-target-version=1.16.0")
    failed = {k for k, v in cluster.verdicts().items() if v != "passed"}
    assert "cilium-upgrade.post::release_upgraded_to_target" in failed
    assert "cilium-upgrade.post::agents_run_target_version" in failed
    assert "cilium-upgrade.post::preflight_removed" in failed
    assert "cilium-upgrade.post::operator_runs_target_version" in failed
    assert _outcome(not_yet)["failed"] >= 4

    cluster.helm("uninstall", "cilium-preflight", "--wait")
    cluster.upgrade("1.16.0")
    post = cluster.gate("--cilium-phase=post", "--cilium-target-version=1.16.0")
    assert _outcome(post) == {"passed": 7}, post.stdout.str()
    assert all(k.startswith("cilium-upgrade.post::") for k in cluster.verdicts())


def test_post_checks_catch_a_broken_upgrade(cluster: Cluster) -> None:
    cluster.install("1.15.19")
    pre = cluster.gate(
        "-k",
        "values_snapshot",
        "--cilium-phase=pre",
        "--cilium-target-version=1.16.0",
        "--cilium-write-snapshot",
    )
    assert _outcome(pre) == {"passed": 1}
    node = "cilium-upgrade-worker4"
    cluster.fault(
        PodFault(
            Fault.IMAGE_PULL,
            namespace=cluster.ns,
            images=[cluster.charts.images("1.16.0").agent],
            nodes=[node],
        )
    )
    cluster.helm(
        "upgrade",
        "cilium",
        str(cluster.charts / "1.16.0"),
        "-f",
        str(cluster.snapshot),
        "--set",
        "debug.enabled=true",
    )
    cluster.sandbox.kubectl(
        "wait",
        "daemonset/cilium",
        "-n",
        cluster.ns,
        "--for=jsonpath={.status.updatedNumberScheduled}=8",
        "--timeout=60s",
    )
    cluster.fault(
        PodFault(
            Fault.CRASH_LOOP,
            namespace=cluster.ns,
            labels={"k8s-app": "cilium"},
            nodes=["cilium-upgrade-worker"],
            restarts=9,
        )
    )
    # and the operator left behind on the old version
    cluster.sandbox.kubectl(
        "set",
        "image",
        "-n",
        cluster.ns,
        "deployment/cilium-operator",
        f"cilium-operator={cluster.charts.images('1.15.19').operator}",
    )
    cluster.sandbox.kubectl(
        "rollout", "status", "-n", cluster.ns, "deployment/cilium-operator", "--timeout=60s"
    )
    result = cluster.gate("--cilium-phase=post", "--cilium-target-version=1.16.0")
    verdicts = cluster.verdicts()
    text = result.stdout.str()
    assert verdicts["cilium-upgrade.post::operator_runs_target_version"] != "passed"
    assert verdicts["cilium-upgrade.post::components_on_one_version"] != "passed"
    assert verdicts["cilium-upgrade.post::release_upgraded_to_target"] == "passed"
    assert verdicts["cilium-upgrade.post::agents_run_target_version"] != "passed"
    assert node in text
    assert "ErrImagePull" in text
    assert verdicts["cilium-upgrade.post::values_preserved"] != "passed"
    assert "debug (added)" in text
    assert verdicts["cilium-upgrade.post::agent_restarts_within_limit"] != "passed"
    assert "9 restart(s)" in text


# ---------------------------------------------------------------------------- the scripted upgrade


@pytest.mark.parametrize("helm_major", [3, 4])
def test_gated_upgrade_end_to_end(cluster: Cluster, sandbox: Sandbox, helm_major: int) -> None:
    cluster.install("1.15.19", "--set", "cluster.name=sandbox")
    helm = sandbox.binaries.helm3 if helm_major == 3 else sandbox.binaries.helm4
    result = cluster.flow("1.16.19", helm=helm)
    assert _outcome(result) == {"passed": 27, "skipped": 9}, result.stdout.str()
    assert cluster.history() == [
        (1, "cilium-1.15.19", "superseded"),
        (2, "cilium-1.16.19", "deployed"),
    ]
    assert cluster.releases() == ["cilium"]  # the pre-flight release is gone
    text = result.stdout.str()
    assert "pre-flight 8/8 ready" in text
    assert "agent 8/8 ready" in text
    classnames = {k.split("::")[0] for k in cluster.verdicts()}
    assert classnames == {
        f"cilium-upgrade.{p}" for p in ("prepare", "pre", "upgrade", "post", "rollback")
    }
    assert yaml.safe_load(cluster.snapshot.read_text()) == {"cluster": {"name": "sandbox"}}


def test_preflight_never_ready_closes_the_gate_and_cleans_up(cluster: Cluster) -> None:
    cluster.install("1.15.19")
    cluster.fault(
        PodFault(
            Fault.IMAGE_PULL,
            namespace=cluster.ns,
            images=[cluster.charts.images("1.16.19").agent],
            nodes=["cilium-upgrade-worker5"],
        )
    )
    result = cluster.flow("1.16.19", "--cilium-timeout=8")
    verdicts = cluster.verdicts()
    assert "timed out after 8s" in verdicts["cilium-upgrade.prepare::wait_preflight"]
    assert "cilium-upgrade-worker5" in result.stdout.str()
    assert verdicts["cilium-upgrade.pre::preflight_covers_agent_nodes"] != "passed"
    assert verdicts["cilium-upgrade.upgrade::uninstall_preflight"] == "passed"
    assert "gate closed" in verdicts["cilium-upgrade.upgrade::helm_upgrade"]
    assert cluster.history() == [(1, "cilium-1.15.19", "deployed")]
    assert cluster.releases() == ["cilium"]
    assert result.ret != 0


def test_crash_looping_validator_closes_the_gate(cluster: Cluster) -> None:
    cluster.install("1.15.19")
    cluster.fault(
        PodFault(
            Fault.CRASH_LOOP,
            namespace=cluster.ns,
            labels={"k8s-app": "cilium-pre-flight-check-deployment"},
            container="cnp-validator",
            restarts=3,
        )
    )
    cluster.sandbox.set_logs(
        ContainerLogs(
            cluster.ns,
            "cnp-validator",
            current=[],
            previous=[
                'level=fatal msg="failed to start: Found invalid CiliumClusterwideNetworkPolicy"'
            ],
        )
    )
    result = cluster.gate(
        "--cilium-perform-upgrade", "--cilium-target-version=1.16.19", "--cilium-timeout=8"
    )
    verdicts = cluster.verdicts()
    assert verdicts["cilium-upgrade.pre::preflight_deployment_ready"] != "passed"
    assert verdicts["cilium-upgrade.pre::cnp_validation_passed"] != "passed"
    assert "Found invalid CiliumClusterwideNetworkPolicy" in result.stdout.str()
    assert "gate closed" in verdicts["cilium-upgrade.upgrade::helm_upgrade"]
    assert cluster.history() == [(1, "cilium-1.15.19", "deployed")]
    assert cluster.releases() == ["cilium"]


def test_chart_refusing_the_upgrade_values_closes_the_gate(cluster: Cluster) -> None:
    cluster.install("1.15.19")
    result = cluster.flow("1.16.19", "--cilium-set=encryption.keyFile=keys")
    verdicts = cluster.verdicts()
    assert verdicts["cilium-upgrade.pre::target_chart_renders_with_snapshot"] != "passed"
    assert "encryption.keyFile" in result.stdout.str()
    assert "gate closed" in verdicts["cilium-upgrade.upgrade::helm_upgrade"]
    assert cluster.history() == [(1, "cilium-1.15.19", "deployed")]


def test_agents_failing_after_the_upgrade_are_rolled_back(cluster: Cluster) -> None:
    cluster.install("1.15.19")
    cluster.fault(
        PodFault(
            Fault.CRASH_LOOP,
            namespace=cluster.ns,
            labels={"k8s-app": "cilium"},
            images=[cluster.charts.images("1.16.19").agent],
            nodes=["cilium-upgrade-worker2"],
            restarts=4,
        )
    )
    result = cluster.flow("1.16.19", "--cilium-timeout=20")
    assert result.ret != 0
    verdicts = cluster.verdicts()
    assert "timed out" in verdicts["cilium-upgrade.upgrade::wait_rollout"]
    assert verdicts["cilium-upgrade.rollback::helm_rollback"] == "passed"
    rollback_checks = {
        k: v for k, v in verdicts.items() if k.startswith("cilium-upgrade.rollback::")
    }
    assert set(rollback_checks.values()) == {"passed"}, rollback_checks
    assert cluster.history() == [
        (1, "cilium-1.15.19", "superseded"),
        (2, "cilium-1.16.19", "superseded"),
        (3, "cilium-1.15.19", "deployed"),
    ]
    assert "rolled back to revision 1" in cluster.summary.read_text()


def test_pending_release_is_refused_with_the_recovery_command(cluster: Cluster) -> None:
    cluster.install("1.15.19")
    _set_release_status(cluster, 1, "pending-upgrade")
    result = cluster.flow("1.16.19")
    verdicts = cluster.verdicts()
    assert "refusing to upgrade" in verdicts["cilium-upgrade.prepare::snapshot_values"]
    assert "helm rollback cilium" in result.stdout.str()
    assert "gate closed" in verdicts["cilium-upgrade.upgrade::helm_upgrade"]
    assert cluster.releases() == ["cilium"]


def test_dry_run_prints_the_plan_and_changes_nothing(cluster: Cluster) -> None:
    cluster.install("1.15.19")
    result = cluster.flow("1.16.19", "--cilium-dry-run")
    text = result.stdout.str()
    assert "would run:" in text
    assert f"install cilium-preflight {cluster.charts / '1.16.19'}" in text
    assert "--set preflight.enabled=true" in text
    assert f"upgrade cilium {cluster.charts / '1.16.19'}" in text
    assert "--reuse-values" not in text
    assert not cluster.snapshot.exists()
    assert cluster.history() == [(1, "cilium-1.15.19", "deployed")]
    assert cluster.releases() == ["cilium"]


def test_sigterm_during_a_wait_cleans_up_and_says_where_it_stopped(
    cluster: Cluster, sandbox: Sandbox
) -> None:
    import signal
    import subprocess
    import sys

    cluster.install("1.15.19")
    cluster.fault(
        PodFault(
            Fault.NEVER_READY, namespace=cluster.ns, labels={"k8s-app": "cilium-pre-flight-check"}
        )
    )
    sandbox.set_logs(ContainerLogs(cluster.ns, "cnp-validator", current=[VALID]))
    (cluster.pytester.path / "pytest.ini").write_text("[pytest]\n")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--cilium-upgrade",
            "--cilium-perform-upgrade",
            "--cilium-target-version=1.16.19",
            f"--cilium-kubeconfig={sandbox.kubeconfig}",
            f"--cilium-helm={sandbox.binaries.helm3}",
            f"--cilium-namespace={cluster.ns}",
            f"--cilium-chart={cluster.charts}",
            f"--cilium-values-snapshot={cluster.snapshot}",
            f"--cilium-state-file={cluster.state}",
            "--cilium-timeout=120",
        ],
        cwd=cluster.pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # wait until the wait for the pre-flight is under way
            if line.startswith("pre-flight "):
                break
        # A second gated upgrade of the same release meanwhile is refused by the lock.
        second = cluster.flow("1.16.19")
        assert second.ret != 0
        refused = cluster.verdicts()["cilium-upgrade.prepare::snapshot_values"]
        assert "another gated upgrade holds Lease" in refused
        assert f"pid {proc.pid}" in refused
        proc.send_signal(signal.SIGTERM)
        rest = proc.stdout.read()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode != 0
    assert "interrupted during cilium-upgrade::prepare::wait_preflight" in rest
    assert "release cilium is deployed at revision 1" in rest
    assert "uninstalled cilium-preflight during clean-up" in rest
    assert cluster.releases() == ["cilium"]
    assert cluster.snapshot.is_file()  # nothing the user had is lost
    leases = sandbox.kubectl("get", "leases", "-n", cluster.ns, "-o", "name")
    assert "cilium-upgrade-lock" not in leases  # released on the way out


def test_preflight_carries_api_server_and_image_values_from_the_snapshot(
    cluster: Cluster,
) -> None:
    cluster.install(
        "1.15.19",
        "--set",
        "k8sServiceHost=127.0.0.1",
        "--set",
        "k8sServicePort=6443",
        "--set",
        "image.repository=registry.local/cilium",
        "--set",
        "image.useDigest=false",
    )
    result = cluster.flow("1.16.19", "--cilium-keep-preflight")
    verdicts = cluster.verdicts()
    for step in (
        "prepare::snapshot_values",
        "prepare::install_preflight",
        "prepare::wait_preflight",
    ):
        assert verdicts[f"cilium-upgrade.{step}"] == "passed", result.stdout.str()
    assert verdicts["cilium-upgrade.upgrade::uninstall_preflight"].startswith("skipped")
    values = json.loads(cluster.helm("get", "values", "cilium-preflight", "-o", "json"))
    assert values["k8sServiceHost"] == "127.0.0.1"
    assert values["k8sServicePort"] == 6443
    assert values["preflight"]["image"] == {"repository": "registry.local/cilium"}
    assert (values["preflight"]["enabled"], values["agent"], values["operator"]["enabled"]) == (
        True,
        False,
        False,
    )
    images = cluster.sandbox.kubectl(
        "get",
        "daemonset",
        "cilium-pre-flight-check",
        "-n",
        cluster.ns,
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    )
    assert images.startswith("registry.local/cilium:v1.16.19")
    envs = cluster.sandbox.kubectl(
        "get",
        "deployment",
        "cilium-pre-flight-check",
        "-n",
        cluster.ns,
        "-o",
        "jsonpath={.spec.template.spec.containers[0].env}",
    )
    assert "127.0.0.1" in envs


def test_extra_values_and_upgrade_compatibility_reach_the_release_and_count_as_intended(
    cluster: Cluster,
) -> None:
    cluster.install("1.15.19")
    extra = cluster.pytester.path / "extra.yaml"
    extra.write_text("hubble:\n  relay:\n    enabled: false\n")
    result = cluster.flow(
        "1.16.19",
        f"--cilium-values-file={extra}",
        "--cilium-set=debug.enabled=true",
        "--cilium-upgrade-compatibility=1.15",
    )
    assert _outcome(result) == {"passed": 27, "skipped": 9}, result.stdout.str()
    live = json.loads(cluster.helm("get", "values", "cilium", "-o", "json"))
    assert str(live["upgradeCompatibility"]) == "1.15"
    assert live["debug"] == {"enabled": True}
    assert live["hubble"] == {"relay": {"enabled": False}}
    assert cluster.verdicts()["cilium-upgrade.post::values_preserved"] == "passed"


def _lease(cluster: Cluster, holder: str, renewed_seconds_ago: int, duration: int) -> None:
    from datetime import UTC, datetime, timedelta

    renewed = datetime.now(UTC) - timedelta(seconds=renewed_seconds_ago)
    cluster.sandbox.kubectl(
        "apply",
        "-f",
        "-",
        input_text=json.dumps(
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": "cilium-upgrade-lock", "namespace": cluster.ns},
                "spec": {
                    "holderIdentity": holder,
                    "leaseDurationSeconds": duration,
                    "renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                },
            }
        ),
    )


def test_lock_held_by_another_run_refuses_and_an_expired_one_is_reclaimed(
    cluster: Cluster,
) -> None:
    cluster.install("1.15.19")
    cluster.preflight("1.16.19")  # the pre-flight of the run that holds the lock
    _lease(cluster, "ci job 4242 runner-7", renewed_seconds_ago=5, duration=600)
    refused = cluster.flow("1.16.19")
    verdicts = cluster.verdicts()
    message = verdicts["cilium-upgrade.prepare::snapshot_values"]
    assert "holder ci job 4242 runner-7" in message
    assert f"kubectl delete lease cilium-upgrade-lock -n {cluster.ns}" in refused.stdout.str()
    assert verdicts["cilium-upgrade.prepare::install_preflight"].startswith("skipped")
    assert verdicts["cilium-upgrade.upgrade::uninstall_preflight"].startswith("skipped")
    assert "gate closed" in verdicts["cilium-upgrade.upgrade::helm_upgrade"]
    assert sorted(cluster.releases()) == ["cilium", "cilium-preflight"]  # left alone
    assert cluster.history() == [(1, "cilium-1.15.19", "deployed")]
    cluster.helm("uninstall", "cilium-preflight", "--wait")

    _lease(cluster, "ci job 4242 runner-7", renewed_seconds_ago=700, duration=600)
    reclaimed = cluster.flow("1.16.19")
    assert _outcome(reclaimed) == {"passed": 27, "skipped": 9}, reclaimed.stdout.str()
    leases = cluster.sandbox.kubectl("get", "leases", "-n", cluster.ns, "-o", "name")
    assert "cilium-upgrade-lock" not in leases


def test_planted_secrets_never_reach_output_report_or_summary(cluster: Cluster) -> None:
    tls_key = "-----BEGIN PRIVATE KEY-----PLANTEDTLSKEYMATERIALabcdefghij0123456789"
    cert = "PLANTEDCERTIFICATEDATA0123456789abcdefghijklmnop"
    set_key = "PLANTEDSETTOKENqwertyuiop0123456789asdfghjk"
    cluster.install(
        "1.15.19",
        "--set",
        f"hubble.tls.server.key={tls_key}",
        "--set",
        f"hubble.tls.server.cert={cert}",
    )
    planted = (tls_key, "PLANTEDTLSKEYMATERIAL", cert, set_key)

    dry = cluster.flow("1.16.19", "--cilium-dry-run", f"--cilium-set=hubble.tls.ca.key={set_key}")
    # a failing run that rolls back, with the secret also in an upgrade --set
    cluster.fault(
        PodFault(
            Fault.CRASH_LOOP,
            namespace=cluster.ns,
            labels={"k8s-app": "cilium"},
            images=[cluster.charts.images("1.16.19").agent],
            nodes=["cilium-upgrade-worker"],
            restarts=2,
        )
    )
    failing = cluster.flow(
        "1.16.19",
        "--cilium-timeout=8",
        "--cilium-overwrite-snapshot",
        f"--cilium-set=hubble.tls.ca.key={set_key}",
        "-vv",
        "-rA",
    )
    assert failing.ret != 0
    assert cluster.verdicts()["cilium-upgrade.rollback::helm_rollback"] == "passed"
    for run in (dry, failing):
        text = run.stdout.str() + run.stderr.str()
        for secret in planted:
            assert secret not in text
    for secret in planted:
        assert secret not in cluster.junit.read_text()
        assert secret not in cluster.summary.read_text()
    # The state file records the upgrade's --set items by design (post judges the
    # values against them), so it may hold set_key, and only that: the release's own
    # values are not copied into it. Like the values snapshot, it is private (0600).
    state = cluster.state.read_text()
    for secret in (tls_key, "PLANTEDTLSKEYMATERIAL", cert):
        assert secret not in state
    assert cluster.state.stat().st_mode & 0o777 == 0o600
    assert "[REDACTED]" in dry.stdout.str()  # the --set value in the printed plan
    assert cluster.snapshot.stat().st_mode & 0o777 == 0o600
