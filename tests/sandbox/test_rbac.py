"""The RBAC roles of ``deploy/rbac`` on the sandbox (RBAC authorization on).

The roles are applied as shipped, moved into the test's namespace: the read-only
identity (``cilium-upgrade-checks``) runs the pre and post checks, and the upgrade
identity (``cilium-upgrade``) the whole gated upgrade. Each runs the gate in a
pytester sub-run with a kubeconfig holding only its ServiceAccount token.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cilium_sandbox.cluster import Sandbox
from cilium_sandbox.faults import ContainerLogs, Fault, PodFault
from identities import CLUSTER_SCOPED, into_namespace, shipped_roles, token_kubeconfig
from junit_report import junit_verdicts
from real_chart_dir import Charts

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.sandbox

ROOT = Path(__file__).resolve().parents[2]
RBAC_FILES = ("checks-clusterrole.yaml", "checks-role.yaml", "upgrade-role.yaml")
VALID = 'level=info msg="All CCNPs and CNPs valid!" subsys=preflight'
PREFLIGHT_SETS = (
    "--set",
    "preflight.enabled=true",
    "--set",
    "agent=false",
    "--set",
    "operator.enabled=false",
)
READER = "cilium-upgrade-checks"
UPGRADER = "cilium-upgrade"
READ_VERBS = {"get", "list", "watch"}


class Rbac:
    """The shipped roles in one test's namespace, and a gate run as either identity."""

    def __init__(
        self, sandbox: Sandbox, namespace: str, pytester: pytest.Pytester, charts: Charts
    ) -> None:
        self.sandbox = sandbox
        self.ns = namespace
        self.pytester = pytester
        self.charts = charts
        self.snapshot = pytester.path / "values.yaml"
        self.state = pytester.path / "state.json"
        self.junit = pytester.path / "junit.xml"
        self.tokens: list[str] = []
        self.cluster_objects: list[str] = []  # kind/name, deleted after the test

    def apply_roles(self) -> None:
        """The YAML as shipped, with kube-system replaced by the test's namespace."""
        docs = shipped_roles(RBAC_FILES)
        self.cluster_objects += into_namespace(docs, self.ns)
        path = self.pytester.path / "rbac.yaml"
        path.write_text(yaml.safe_dump_all(docs))
        self.sandbox.kubectl("apply", "-f", str(path))

    def delete_cluster_objects(self) -> None:
        if self.cluster_objects:
            self.sandbox.kubectl(
                "delete", "--ignore-not-found", "--wait=false", *self.cluster_objects
            )

    def kubeconfig(self, account: str) -> Path:
        """A kubeconfig holding nothing but a token of the ServiceAccount ``account``."""
        path, token = token_kubeconfig(
            self.sandbox, account, self.ns, self.pytester.path / f"{account}.kubeconfig"
        )
        self.tokens.append(token)
        return path

    def can_i(self, account: str, verb: str, resource: str) -> bool:
        user = f"system:serviceaccount:{self.ns}:{account}"
        answer = self.sandbox.kubectl(
            "auth", "can-i", verb, resource, "-n", self.ns, f"--as={user}", check=False
        )
        return answer.strip() == "yes"

    # ------------------------------------------------------------------ as admin
    def helm(self, *args: str) -> str:
        return self.sandbox.helm(3, *args, "-n", self.ns).stdout

    def install(self, version: str) -> None:
        chart = str(self.charts / version)
        sandbox = self.charts.values(version, self.sandbox)
        self.helm("install", "cilium", chart, *sandbox, "--wait", "--timeout", "2m")

    def preflight(self, version: str) -> None:
        self.sandbox.set_logs(ContainerLogs(self.ns, "cnp-validator", current=[VALID]))
        self.helm(
            "install",
            "cilium-preflight",
            str(self.charts / version),
            *PREFLIGHT_SETS,
            "--wait",
            "--timeout",
            "2m",
        )

    def history(self) -> list[tuple[int, str, str]]:
        entries = json.loads(self.helm("history", "cilium", "-o", "json"))
        return [(e["revision"], e["chart"], e["status"]) for e in entries]

    def releases(self) -> list[str]:
        return self.helm("list", "-a", "-q").split()

    def leases(self) -> str:
        return self.sandbox.kubectl("get", "leases", "-n", self.ns, "-o", "name")

    def preflight_cluster_objects(self) -> str:
        return self.sandbox.kubectl(
            "get",
            "clusterrole,clusterrolebinding",
            "--field-selector=metadata.name=cilium-pre-flight",
            "-o",
            "name",
        )

    # ------------------------------------------------------------------ the gate
    def gate(self, kubeconfig: Path, *args: str, helm_major: int = 3) -> pytest.RunResult:
        binaries = self.sandbox.binaries
        helm = binaries.helm3 if helm_major == 3 else binaries.helm4
        self.charts.use_targets(args)
        return self.pytester.runpytest(
            "--cilium-upgrade",
            f"--cilium-kubeconfig={kubeconfig}",
            f"--cilium-helm={helm}",
            f"--cilium-namespace={self.ns}",
            f"--cilium-chart={self.charts}",
            f"--cilium-values-snapshot={self.snapshot}",
            f"--cilium-state-file={self.state}",
            f"--junitxml={self.junit}",
            "-p",
            "no:cacheprovider",
            "-rA",
            *args,
        )

    def flow(
        self, kubeconfig: Path, target: str, *args: str, helm_major: int = 3
    ) -> pytest.RunResult:
        self.sandbox.set_logs(ContainerLogs(self.ns, "cnp-validator", current=[VALID]))
        return self.gate(
            kubeconfig,
            "--cilium-perform-upgrade",
            f"--cilium-target-version={target}",
            "--cilium-timeout=20",
            "--cilium-request-timeout=5",
            *args,
            helm_major=helm_major,
        )

    def verdicts(self) -> dict[str, str]:
        """JUnit testcase name -> 'passed', 'skipped: ...' or the whole failure report."""
        return junit_verdicts(self.junit)

    def assert_no_token_in(self, result: pytest.RunResult) -> None:
        text = result.stdout.str() + self.junit.read_text()
        for token in self.tokens:
            assert token not in text


@pytest.fixture
def rbac(
    sandbox: Sandbox, namespace: str, pytester: pytest.Pytester, charts: Charts
) -> Iterator[Rbac]:
    box = Rbac(sandbox, namespace, pytester, charts)
    try:
        box.apply_roles()
        yield box
    finally:
        # The pre-flight's ClusterRole and ClusterRoleBinding outlive the namespace.
        for release in sandbox.helm(3, "list", "-q", "-a", "-n", namespace).stdout.split():
            sandbox.helm(3, "uninstall", release, "-n", namespace, "--wait", check=False)
        box.delete_cluster_objects()
        sandbox.clear_faults()


def _outcome(result: pytest.RunResult) -> dict[str, int]:
    return {k: v for k, v in result.parseoutcomes().items() if k in ("passed", "failed", "skipped")}


def _not_passed(verdicts: dict[str, str], phase: str) -> dict[str, str]:
    return {
        k: v
        for k, v in verdicts.items()
        if k.startswith(f"cilium-upgrade.{phase}::") and v != "passed"
    }


# ---------------------------------------------------------------------------- the files


def test_read_only_roles_grant_only_reads_and_bindings_name_shipped_roles() -> None:
    docs = shipped_roles(RBAC_FILES)
    roles = {
        (d["kind"], d["metadata"]["name"]) for d in docs if d["kind"] in ("Role", "ClusterRole")
    }
    for doc in docs:
        if doc["kind"] not in CLUSTER_SCOPED:
            assert doc["metadata"]["namespace"] == "kube-system", doc["metadata"]
        if "roleRef" in doc:
            assert (doc["roleRef"]["kind"], doc["roleRef"]["name"]) in roles, doc["metadata"]
        if doc["kind"] in ("Role", "ClusterRole") and doc["metadata"]["name"] == READER:
            verbs = {v for rule in doc["rules"] for v in rule["verbs"]}
            assert verbs <= READ_VERBS, (doc["kind"], verbs - READ_VERBS)


# ---------------------------------------------------------------------------- read-only


@pytest.mark.parametrize("helm_major", [3, 4])
def test_pre_checks_pass_under_the_read_only_roles(rbac: Rbac, helm_major: int) -> None:
    rbac.install("1.15.19")
    rbac.preflight("1.16.19")
    reader = rbac.kubeconfig(READER)
    for verb, resource in (
        ("create", "secrets"),
        ("create", "leases.coordination.k8s.io"),
        ("patch", "daemonsets.apps"),
        ("delete", "pods"),
        ("create", "clusterroles.rbac.authorization.k8s.io"),
    ):
        assert not rbac.can_i(READER, verb, resource), f"{READER} may {verb} {resource}"

    result = rbac.gate(
        reader,
        "--cilium-phase=pre",
        "--cilium-target-version=1.16.19",
        "--cilium-write-snapshot",
        helm_major=helm_major,
    )
    assert _outcome(result) == {"passed": 14}, result.stdout.str()
    assert "forbidden" not in result.stdout.str().lower()  # no read was refused either
    verdicts = rbac.verdicts()
    assert verdicts["cilium-upgrade.pre::cluster_reachable_and_access_allowed"] == "passed"
    assert json.loads(rbac.state.read_text())["revision"] == 1
    rbac.assert_no_token_in(result)


def test_post_checks_pass_under_the_read_only_roles(rbac: Rbac) -> None:
    rbac.install("1.15.19")
    rbac.preflight("1.16.19")
    reader = rbac.kubeconfig(READER)
    pre = rbac.gate(
        reader, "--cilium-phase=pre", "--cilium-target-version=1.16.19", "--cilium-write-snapshot"
    )
    assert _outcome(pre) == {"passed": 14}, pre.stdout.str()

    # the upgrade itself, by an administrator
    rbac.helm("uninstall", "cilium-preflight", "--wait")
    rbac.helm(
        "upgrade",
        "cilium",
        str(rbac.charts / "1.16.19"),
        "-f",
        str(rbac.snapshot),
        "--wait",
        "--timeout",
        "2m",
    )
    rbac.sandbox.kubectl("rollout", "status", "-n", rbac.ns, "daemonset/cilium", "--timeout=60s")

    post = rbac.gate(reader, "--cilium-phase=post", "--cilium-target-version=1.16.19")
    assert _outcome(post) == {"passed": 7}, post.stdout.str()
    assert "forbidden" not in post.stdout.str().lower()
    assert _not_passed(rbac.verdicts(), "post") == {}
    rbac.assert_no_token_in(post)


def test_performing_the_upgrade_under_the_read_only_roles_stops_at_the_first_write(
    rbac: Rbac,
) -> None:
    rbac.install("1.15.19")
    reader = rbac.kubeconfig(READER)
    result = rbac.flow(reader, "1.16.19")
    assert result.ret != 0
    verdicts = rbac.verdicts()
    user = f'User "system:serviceaccount:{rbac.ns}:{READER}"'

    # The first write is taking the upgrade lock; the message names verb, resource and who.
    refused = verdicts["cilium-upgrade.prepare::snapshot_values"]
    assert f"cannot create leases.coordination.k8s.io in namespace {rbac.ns}" in refused
    assert f'{user} cannot create resource "leases"' in refused
    # Helm, if it gets to try, is refused by the API and says so.
    install = verdicts["cilium-upgrade.prepare::install_preflight"]
    assert install.startswith("skipped") or (
        "INSTALLATION FAILED" in install and f"is forbidden: {user} cannot" in install
    ), install
    assert "gate closed" in verdicts["cilium-upgrade.upgrade::helm_upgrade"]
    for phase in ("post", "rollback"):
        later = {k: v for k, v in verdicts.items() if k.startswith(f"cilium-upgrade.{phase}::")}
        assert later, phase
        assert all(v.startswith("skipped") for v in later.values()), later

    # nothing half-done: no pre-flight, no lock, the release as it was
    assert rbac.releases() == ["cilium"]
    assert rbac.history() == [(1, "cilium-1.15.19", "deployed")]
    assert "cilium-upgrade-lock" not in rbac.leases()
    assert rbac.preflight_cluster_objects() == ""
    rbac.assert_no_token_in(result)


# ---------------------------------------------------------------------------- the upgrade role


@pytest.mark.parametrize("helm_major", [3, 4])
def test_gated_upgrade_passes_under_the_upgrade_role(rbac: Rbac, helm_major: int) -> None:
    rbac.install("1.15.19")
    upgrader = rbac.kubeconfig(UPGRADER)
    result = rbac.flow(upgrader, "1.16.19", helm_major=helm_major)
    assert result.ret == 0, result.stdout.str()
    verdicts = rbac.verdicts()
    for phase in ("prepare", "pre", "upgrade", "post"):
        assert _not_passed(verdicts, phase) == {}, result.stdout.str()
    assert rbac.history() == [
        (1, "cilium-1.15.19", "superseded"),
        (2, "cilium-1.16.19", "deployed"),
    ]
    assert rbac.releases() == ["cilium"]
    assert "cilium-upgrade-lock" not in rbac.leases()
    assert rbac.preflight_cluster_objects() == ""  # uninstalled with the pre-flight
    rbac.assert_no_token_in(result)


def test_rollback_passes_under_the_upgrade_role(rbac: Rbac) -> None:
    rbac.install("1.15.19")
    rbac.sandbox.add_fault(
        PodFault(
            Fault.CRASH_LOOP,
            namespace=rbac.ns,
            labels={"k8s-app": "cilium"},
            images=[rbac.charts.images("1.16.19").agent],
            nodes=["cilium-upgrade-worker2"],
            restarts=4,
        )
    )
    upgrader = rbac.kubeconfig(UPGRADER)
    result = rbac.flow(upgrader, "1.16.19", "--cilium-timeout=10")
    assert result.ret != 0
    verdicts = rbac.verdicts()
    assert "timed out" in verdicts["cilium-upgrade.upgrade::wait_rollout"]
    assert verdicts["cilium-upgrade.rollback::helm_rollback"] == "passed"
    assert _not_passed(verdicts, "rollback") == {}, result.stdout.str()
    assert rbac.history() == [
        (1, "cilium-1.15.19", "superseded"),
        (2, "cilium-1.16.19", "superseded"),
        (3, "cilium-1.15.19", "deployed"),
    ]
    # the rollback removed what only 1.16 renders
    assert (
        rbac.sandbox.kubectl(
            "get", "daemonset", "cilium-envoy", "-n", rbac.ns, "--ignore-not-found", "-o", "name"
        )
        == ""
    )
    assert "cilium-upgrade-lock" not in rbac.leases()
    rbac.assert_no_token_in(result)
