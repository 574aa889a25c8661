"""The saved values against the target chart, on real charts and the real Helm 3 and 4.

A 1.14 release on native routing (``tunnel: disabled``) is upgraded, on paper, to the
1.15.0 chart, which no longer reads ``tunnel``: it renders without a word and routes by
VXLAN. The pre check ``saved_values_known_to_target_chart`` names the key, with the
chart as a local archive and as ``cilium/cilium`` from a Helm repository on loopback.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cilium_sandbox.chart_repo import ChartRepository
from cilium_sandbox.cluster import Sandbox
from cilium_sandbox.pytest_plugin import RealCharts

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.sandbox

CHECK = "saved_values_known_to_target_chart"
NOTES = "https://docs.cilium.io/en/v1.15/operations/upgrade/#upgrade-notes"
# native routing as the 1.14 chart spells it
NATIVE_1_14 = (
    "--set",
    "tunnel=disabled",
    "--set",
    "autoDirectNodeRoutes=true",
    "--set",
    "ipv4NativeRoutingCIDR=10.0.0.0/8",
)


class Release:
    """A Cilium release in one namespace, and the gate run against it with one Helm."""

    def __init__(
        self, sandbox: Sandbox, namespace: str, pytester: pytest.Pytester, major: int
    ) -> None:
        self.sandbox = sandbox
        self.ns = namespace
        self.pytester = pytester
        self.major = major
        self.binary = sandbox.binaries.helm3 if major == 3 else sandbox.binaries.helm4
        self.snapshot = pytester.path / "values.yaml"

    def helm(self, *args: str) -> str:
        return self.sandbox.helm(self.major, *args, "-n", self.ns).stdout

    def gate(self, chart: str | Path, *args: str) -> pytest.RunResult:
        return self.pytester.runpytest(
            "--cilium-upgrade",
            "--cilium-phase=pre",
            "-k",
            CHECK,
            f"--cilium-kubeconfig={self.sandbox.kubeconfig}",
            f"--cilium-helm={self.binary}",
            f"--cilium-namespace={self.ns}",
            f"--cilium-chart={chart}",
            "--cilium-target-version=1.15.0",
            f"--cilium-values-snapshot={self.snapshot}",
            f"--cilium-state-file={self.pytester.path / 'state.json'}",
            "-p",
            "no:cacheprovider",
            "-rA",
            *args,
        )


@pytest.fixture(params=[3, 4], ids=["helm3", "helm4"])
def release(
    request: pytest.FixtureRequest, sandbox: Sandbox, namespace: str, pytester: pytest.Pytester
) -> Iterator[Release]:
    box = Release(sandbox, namespace, pytester, request.param)
    yield box
    # the chart's cluster-scoped objects outlive the namespace: uninstall (Helm 3 reads the
    # records Helm 4 writes)
    for name in sandbox.helm(3, "list", "-q", "-a", "-n", namespace).stdout.split():
        sandbox.helm(3, "uninstall", name, "-n", namespace, "--wait", check=False)


def _outcome(result: pytest.RunResult) -> dict[str, int]:
    return {k: v for k, v in result.parseoutcomes().items() if k in ("passed", "failed", "skipped")}


def _repo_client_env(home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Helm's repositories file and caches in ``home``, for this process and its children."""
    for var, sub in (
        ("HELM_REPOSITORY_CONFIG", "repositories.yaml"),
        ("HELM_REPOSITORY_CACHE", "repository"),
        ("HELM_CACHE_HOME", "cache"),
        ("HELM_CONFIG_HOME", "config"),
        ("HELM_DATA_HOME", "data"),
    ):
        monkeypatch.setenv(var, str(home / sub))
    return dict(os.environ)


def test_tunnel_removed_in_1_15_is_named_and_refused_when_strict(
    release: Release,
    cilium_charts: RealCharts,
    cilium_chart_repo: ChartRepository,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    release.helm("install", "cilium", str(cilium_charts["1.14.19"]), *NATIVE_1_14)
    target = cilium_charts["1.15.0"]

    warned = release.gate(target, "--cilium-write-snapshot")
    out = warned.stdout.str()
    assert _outcome(warned) == {"passed": 1}, out
    assert "cilium-upgrade warnings" in out
    assert "1 value(s) set for the release not defined by chart 1.15.0: tunnel" in out
    assert "tunnel: chart 1.15.0 defines no top-level key 'tunnel'" in out
    assert NOTES in out
    assert "disabled" not in out  # the key is named, never its value

    # what the warning is about: 1.15.0 takes the saved values and routes by VXLAN
    def rendered(chart: Path) -> str:
        return release.helm("template", "cilium", str(chart), "-f", str(release.snapshot))

    assert 'routing-mode: "native"' in rendered(cilium_charts["1.14.19"])
    assert 'routing-mode: "tunnel"' in rendered(target)

    strict = release.gate(target, "--cilium-values-check=strict")
    assert _outcome(strict) == {"failed": 1}, strict.stdout.str()
    assert "tunnel [strict values check]" in strict.stdout.str()

    # the same chart as `cilium/cilium` from a Helm repository: helm pulls it to read it
    env = _repo_client_env(tmp_path / "helm-home", monkeypatch)
    subprocess.run(
        [str(release.binary), "repo", "add", "cilium", cilium_chart_repo.url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    from_repo = release.gate("cilium/cilium")
    assert _outcome(from_repo) == {"passed": 1}, from_repo.stdout.str()
    assert "not defined by chart 1.15.0: tunnel" in from_repo.stdout.str()
    assert "1.15.0" in cilium_chart_repo.downloads
