"""The real Cilium charts as a Helm repository on loopback, used by the real Helm 3 and 4."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from cilium_sandbox.build import Builder, components
from cilium_sandbox.chart_repo import ChartRepository
from cilium_sandbox.charts import CHARTS_DIR_ENV, CHARTS_REPO_ENV, REAL_CHART_VERSIONS
from cilium_sandbox.errors import SandboxError
from cilium_sandbox.pytest_plugin import RealCharts

from pytest_cilium_upgrade.adapters.cachedir import default_cache_dir

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.sandbox

# What Helm 3.22 and 4.3 print when the local index predates the version asked for
# (older Helm 3 releases said `failed to download "cilium/cilium" at version "1.12.0"`).
# Read before pytester points HOME elsewhere: inner runs use the same built binaries.
CACHE = default_cache_dir()
STALE = "chart \"cilium\" matching {v} not found in cilium index. (try 'helm repo update')"


@dataclass
class HelmClient:
    """A Helm client with its own repositories file, caches and no cluster."""

    binary: Path
    home: Path

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HELM_", "KUBECONFIG"))}
        env.update(
            {
                "HELM_REPOSITORY_CONFIG": str(self.home / "repositories.yaml"),
                "HELM_REPOSITORY_CACHE": str(self.home / "repository"),
                "HELM_CONFIG_HOME": str(self.home / "config"),
                "HELM_CACHE_HOME": str(self.home / "cache"),
                "HELM_DATA_HOME": str(self.home / "data"),
                "KUBECONFIG": str(self.home / "no-cluster"),
            }
        )
        return env

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.binary), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
        return proc

    def search(self, *args: str) -> list[str]:
        """Versions ``helm search repo cilium/cilium ARGS`` lists, newest first."""
        found = json.loads(self.run("search", "repo", "cilium/cilium", *args, "-o", "json").stdout)
        assert {entry["name"] for entry in found} <= {"cilium/cilium"}
        return [entry["version"] for entry in found]


@pytest.fixture(params=[3, 4], ids=["helm3", "helm4"])
def helm(request: pytest.FixtureRequest, tmp_path: Path) -> HelmClient:
    name = f"helm{request.param}"
    try:
        built = Builder().ensure(next(c for c in components() if c.name == name))
    except SandboxError as exc:
        pytest.fail(f"cannot build {name}: {exc}", pytrace=False)
    client = HelmClient(built / "helm", tmp_path / "helm-home")
    assert client.run("version", "--short").stdout.startswith(f"v{request.param}.")
    return client


def _by_version(versions: list[str]) -> list[str]:
    return sorted(versions, key=lambda v: tuple(int(p) for p in v.split(".")))


def test_search_lists_exactly_the_served_versions(
    helm: HelmClient, cilium_chart_repo: ChartRepository
) -> None:
    helm.run("repo", "add", "cilium", cilium_chart_repo.url)
    listed = helm.search("--versions")
    assert _by_version(listed) == list(REAL_CHART_VERSIONS) == cilium_chart_repo.versions
    assert listed[0] == "1.20.0", "newest first, as against the public repository"


def test_the_latest_patch_of_a_minor_is_found_through_the_repository(
    helm: HelmClient, cilium_chart_repo: ChartRepository
) -> None:
    helm.run("repo", "add", "cilium", cilium_chart_repo.url)
    assert helm.search("--version", "~1.19.0") == ["1.19.6"]
    assert helm.search("--version", "~1.12.0") == ["1.12.19"]
    assert helm.search() == ["1.20.0"]


def test_pull_gives_the_upstream_archive_unchanged(
    helm: HelmClient,
    cilium_chart_repo: ChartRepository,
    cilium_charts: RealCharts,
    tmp_path: Path,
) -> None:
    helm.run("repo", "add", "cilium", cilium_chart_repo.url)
    out = tmp_path / "pulled"
    out.mkdir()
    helm.run("pull", "cilium/cilium", "--version", "1.19.6", "--destination", str(out))
    assert (out / "cilium-1.19.6.tgz").read_bytes() == cilium_charts["1.19.6"].read_bytes()
    assert "1.19.6" in cilium_chart_repo.downloads


def test_a_stale_local_index_refuses_a_new_version_until_repo_update(
    helm: HelmClient, cilium_charts: RealCharts, tmp_path: Path
) -> None:
    archives: Mapping[str, Path] = cilium_charts.uncounted()
    before = {v: p for v, p in archives.items() if v != "1.12.0"}
    with ChartRepository(before, helm=helm.binary, directory=tmp_path / "repo") as repo:
        helm.run("repo", "add", "cilium", repo.url)
        assert "1.12.0" not in helm.search("--versions")

        repo.add({"1.12.0": cilium_charts["1.12.0"]})
        assert "1.12.0" in repo.versions
        out = tmp_path / "pulled"
        out.mkdir()
        pulled = helm.run(
            "pull", "cilium/cilium", "--version", "1.12.0", "--destination", str(out), check=False
        )
        assert pulled.returncode != 0
        assert STALE.format(v="1.12.0") in pulled.stderr
        installed = helm.run(
            "install",
            "cilium",
            "cilium/cilium",
            "--version",
            "1.12.0",
            "--dry-run=client",
            check=False,
        )
        assert installed.returncode != 0
        assert "INSTALLATION FAILED" in installed.stderr
        assert STALE.format(v="1.12.0") in installed.stderr
        assert "1.12.0" not in repo.downloads

        helm.run("repo", "update", "cilium")
        assert "1.12.0" in helm.search("--versions")
        helm.run("pull", "cilium/cilium", "--version", "1.12.0", "--destination", str(out))
        assert (out / "cilium-1.12.0.tgz").read_bytes() == cilium_charts["1.12.0"].read_bytes()
        assert "1.12.0" in repo.downloads
    assert (tmp_path / "repo" / "index.yaml").is_file()


def test_the_repository_listens_on_loopback_only_and_stops(
    cilium_charts: RealCharts, tmp_path: Path
) -> None:
    with ChartRepository({"1.20.0": cilium_charts["1.20.0"]}, directory=tmp_path / "r") as repo:
        url = repo.url
        assert url.startswith("http://127.0.0.1:")
        index = (tmp_path / "r" / "index.yaml").read_text()
        assert f"{url}/cilium-1.20.0.tgz" in index
        assert (tmp_path / "r" / "cilium-1.20.0.tgz").is_symlink(), "linked, not copied"
    with pytest.raises(SandboxError, match="not running"):
        _ = repo.url


def test_the_summary_counts_the_real_chart_versions_handed_out(
    pytester: pytest.Pytester, cilium_charts: RealCharts, monkeypatch: pytest.MonkeyPatch
) -> None:
    charts = pytester.mkdir("charts")
    for path in cilium_charts.uncounted().values():
        (charts / path.name).symlink_to(path)
    monkeypatch.setenv(CHARTS_DIR_ENV, str(charts))
    monkeypatch.setenv(CHARTS_REPO_ENV, "http://127.0.0.1:9/")
    monkeypatch.setenv("PYTEST_CILIUM_UPGRADE_CACHE", str(CACHE))
    pytester.makepyfile(
        """
        import urllib.request

        def test_by_path(cilium_charts):
            assert cilium_charts["1.19.6"].is_file()
            assert "1.20.0" in cilium_charts  # asking is not using

        def test_through_the_repository(cilium_chart_repo):
            url = f"{cilium_chart_repo.url}/cilium-1.12.0.tgz"
            with urllib.request.urlopen(url) as response:
                assert response.read()
        """
    )
    result = pytester.runpytest_subprocess("-p", "cilium_sandbox.pytest_plugin")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["real Cilium charts used: 2 versions: 1.12.0 1.19.6"])
