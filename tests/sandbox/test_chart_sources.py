"""Chart sources as users have them, with the real Helm 3 and 4 and the real charts.

The charts are served as a Helm repository on 127.0.0.1 (``cilium_chart_repo``, or a
repository of the test's own when versions are published during the test). Each test
gives the gate a Helm home of the user's (repositories file, caches) and proves:

* ``--cilium-chart-repo URL``: the pre phase lists the versions, renders the target and
  reads its values from the repository itself, the pre-flight install and the upgrade
  take the chart from it, and the user's repositories file is byte for byte the same;
* a stale local index (``helm repo add`` before a version was published): the gate with
  ``cilium/cilium`` names the cause and ``helm repo update cilium``, while
  ``--cilium-chart-repo`` just works, leaving the user's stale index as it was.

No OCI registry runs here: the ``oci://`` argument lists are unit-tested only
(``tests/unit/test_chart_source_kinds.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cilium_sandbox.chart_repo import ChartRepository
from cilium_sandbox.cluster import Sandbox
from cilium_sandbox.pytest_plugin import RealCharts

from pytest_cilium_upgrade.adapters.helm.charts import ChartSource
from pytest_cilium_upgrade.adapters.helm.client import Helm
from pytest_cilium_upgrade.adapters.helm.commands import PRIVATE_REPO

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.sandbox

CURRENT = "1.19.6"
TARGET = "1.20.0"
CHECKS = (
    "upgrade_path_supported",
    "target_chart_renders_with_snapshot",
    "saved_values_known_to_target_chart",
)


class User:
    """A user's Helm home (repositories file, caches) and the gate run as they run it."""

    def __init__(
        self,
        sandbox: Sandbox,
        namespace: str,
        pytester: pytest.Pytester,
        major: int,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        self.sandbox = sandbox
        self.ns = namespace
        self.pytester = pytester
        self.major = major
        self.binary = sandbox.binaries.helm3 if major == 3 else sandbox.binaries.helm4
        self.home = pytester.path / "helm-home"
        self.repositories = self.home / "repositories.yaml"
        # the gate runs in this process and passes its environment to helm
        for var, sub in (
            ("HELM_REPOSITORY_CONFIG", "repositories.yaml"),
            ("HELM_REPOSITORY_CACHE", "repository"),
            ("HELM_CACHE_HOME", "cache"),
            ("HELM_CONFIG_HOME", "config"),
            ("HELM_DATA_HOME", "data"),
        ):
            monkeypatch.setenv(var, str(self.home / sub))
        monkeypatch.delenv("HELM_DRIVER", raising=False)

    def helm(self, *args: str) -> str:
        """``helm ARGS`` as the user runs it: their Helm home, no cluster."""
        proc = subprocess.run(
            [str(self.binary), *args],
            env=dict(os.environ),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, f"helm {' '.join(args)}: {proc.stderr}"
        return proc.stdout

    def listed(self, ref: str = "cilium/cilium") -> list[str]:
        """What the user's own ``helm search repo`` lists (their local index)."""
        found = json.loads(self.helm("search", "repo", ref, "--versions", "-o", "json"))
        return sorted(e["version"] for e in found if e["name"] == ref)

    def install(self, archive: Path) -> None:
        self.sandbox.helm(self.major, "install", "cilium", str(archive), "-n", self.ns)

    def gate(self, *args: str) -> pytest.RunResult:
        return self.pytester.runpytest(
            "--cilium-upgrade",
            "--cilium-phase=pre",
            "-k",
            " or ".join(CHECKS),
            f"--cilium-kubeconfig={self.sandbox.kubeconfig}",
            f"--cilium-helm={self.binary}",
            f"--cilium-namespace={self.ns}",
            f"--cilium-target-version={TARGET}",
            "--cilium-write-snapshot",
            "--cilium-overwrite-snapshot",
            f"--cilium-values-snapshot={self.pytester.path / 'values.yaml'}",
            f"--cilium-state-file={self.pytester.path / 'state.json'}",
            "-p",
            "no:cacheprovider",
            "-rA",
            *args,
        )

    def client(self) -> Helm:
        return Helm(str(self.binary), kubeconfig=self.sandbox.kubeconfig)


@pytest.fixture(params=[3, 4], ids=["helm3", "helm4"])
def user(
    request: pytest.FixtureRequest,
    sandbox: Sandbox,
    namespace: str,
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[User]:
    yield User(sandbox, namespace, pytester, request.param, monkeypatch)
    # the chart's cluster-scoped objects outlive the namespace (Helm 3 reads Helm 4's records)
    for name in sandbox.helm(3, "list", "-q", "-a", "-n", namespace).stdout.split():
        sandbox.helm(3, "uninstall", name, "-n", namespace, "--wait", check=False)


def _outcome(result: pytest.RunResult) -> dict[str, int]:
    return {k: v for k, v in result.parseoutcomes().items() if k in ("passed", "failed", "skipped")}


def test_a_repository_given_by_url_serves_the_whole_upgrade_and_adds_nothing(
    user: User, cilium_charts: RealCharts, cilium_chart_repo: ChartRepository
) -> None:
    user.install(cilium_charts[CURRENT])
    url = cilium_chart_repo.url

    # a user with no repository added: the gate adds none, writes no repositories file
    summary = user.pytester.path / "summary.md"
    fresh = user.gate(f"--cilium-chart-repo={url}", f"--cilium-summary={summary}")
    assert _outcome(fresh) == {"passed": 3}, fresh.stdout.str()
    # the versions were listed: 1.19.6 is confirmed as the latest 1.19 patch
    assert f"minor upgrade {CURRENT} -> {TARGET} from the latest 1.19 patch" in summary.read_text()
    assert not user.repositories.exists(), "the gate added no repository"
    assert TARGET in cilium_chart_repo.downloads

    # a user with repositories of their own: the file stays byte for byte the same
    user.helm("repo", "add", "cilium", url)
    user.helm("repo", "add", "mirror", url)
    before = user.repositories.read_bytes()
    again = user.gate(f"--cilium-chart-repo={url}", "--cilium-chart=cilium")
    assert _outcome(again) == {"passed": 3}, again.stdout.str()
    assert user.repositories.read_bytes() == before
    assert PRIVATE_REPO not in before.decode()

    # the pre-flight install and the upgrade the performed upgrade runs, from the same
    # source: `helm install/upgrade ... cilium --repo URL --version X` on the cluster
    helm = user.client()
    source = ChartSource.parse("cilium/cilium", url, helm=helm)
    preflight = helm.install_command(
        "cilium-preflight",
        source,
        TARGET,
        user.ns,
        set_values=["preflight.enabled=true", "agent=false", "operator.enabled=false"],
        wait=False,
    )
    upgrade = helm.upgrade_command(
        "cilium",
        source,
        TARGET,
        user.ns,
        values_files=[user.pytester.path / "values.yaml"],
        wait=False,
    )
    for command in (preflight, upgrade):
        assert command.argv[3:6] == ("cilium", "--repo", url)
        helm.execute(command)
    status = helm.status("cilium", user.ns)
    assert status is not None
    assert status["chart"]["metadata"]["version"] == TARGET
    assert user.repositories.read_bytes() == before


def test_a_stale_local_index_is_named_and_a_repository_url_needs_no_update(
    user: User, cilium_charts: RealCharts, pytester: pytest.Pytester
) -> None:
    archives = {v: p for v, p in cilium_charts.uncounted().items() if v != TARGET}
    with ChartRepository(archives, helm=user.binary, directory=pytester.path / "repo") as repo:
        user.install(cilium_charts[CURRENT])
        user.helm("repo", "add", "cilium", repo.url)
        repo.add({TARGET: cilium_charts[TARGET]})  # published after the user's `repo add`
        assert TARGET in repo.versions
        assert TARGET not in user.listed(), "the user's local index predates it"
        before = user.repositories.read_bytes()

        stale = user.gate("--cilium-chart=cilium/cilium")
        out = stale.stdout.str()
        assert stale.ret != 0, out
        assert "FAILED cilium-upgrade::pre::upgrade_path_supported" in out
        assert "FAILED cilium-upgrade::pre::target_chart_renders_with_snapshot" in out
        assert "local index" in out
        assert "helm repo update cilium" in out
        assert TARGET not in repo.downloads

        fresh = user.gate(f"--cilium-chart-repo={repo.url}")
        assert _outcome(fresh) == {"passed": 3}, fresh.stdout.str()
        assert TARGET in repo.downloads
        # the user's files are theirs: still the same, the index still stale
        assert user.repositories.read_bytes() == before
        assert TARGET not in user.listed()
