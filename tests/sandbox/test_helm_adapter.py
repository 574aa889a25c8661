"""The Helm adapter against the sandbox, with Helm 3 and Helm 4 and the real Cilium charts.

1.15.0 and 1.15.19 are the first and the newest 1.15 release; only 1.15.19's
``validate.yaml`` refuses the removed ``tunnel`` value.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cilium_sandbox.charts import REAL_CHART_VERSIONS
from cilium_sandbox.cluster import Sandbox
from cilium_sandbox.faults import Fault, PodFault
from cilium_sandbox.helm import HelmDriver
from real_chart_dir import Charts

from pytest_cilium_upgrade.adapters.helm.charts import ChartSource, ChartSourceKind
from pytest_cilium_upgrade.adapters.helm.client import HelmTimeout
from pytest_cilium_upgrade.errors import HelmFailed, NotFound, Timeout
from pytest_cilium_upgrade.redact import Redactor
from pytest_cilium_upgrade.snapshot.model import HelmHistoryEntry, HelmRelease
from pytest_cilium_upgrade.versions import Version

RELEASE = "cilium"
OLD, NEW = "1.15.0", "1.15.19"
TUNNEL_REMOVED = "tunnel was deprecated in v1.14 and has been removed in v1.15"

pytestmark = pytest.mark.sandbox


@pytest.fixture(params=[3, 4], ids=["helm3", "helm4"])
def helm(request: pytest.FixtureRequest, sandbox: Sandbox) -> HelmDriver:
    binary = sandbox.binaries.helm3 if request.param == 3 else sandbox.binaries.helm4
    return HelmDriver(binary=str(binary), kubeconfig=str(sandbox.kubeconfig), env=sandbox.env())


@pytest.fixture(scope="module")
def source(charts: Charts) -> ChartSource:
    """The real charts as the gate takes a chart directory (one sub-directory per version)."""
    charts.use(OLD, NEW)
    return ChartSource.parse(str(charts))


def _images(sandbox: Sandbox, namespace: str) -> set[str]:
    out = sandbox.kubectl("get", "pods", "-n", namespace, "-l", "k8s-app=cilium", "-o", "json")
    return {p["spec"]["containers"][0]["image"] for p in json.loads(out)["items"]}


def _history(helm: HelmDriver, namespace: str) -> list[HelmHistoryEntry]:
    return [HelmHistoryEntry.from_helm_history_entry(e) for e in helm.history(RELEASE, namespace)]


def test_client_version_is_the_parametrized_major(helm: HelmDriver, sandbox: Sandbox) -> None:
    want = 3 if helm.binary == str(sandbox.binaries.helm3) else 4
    assert helm.version().startswith(f"v{want}.")
    assert helm.major() == want


def test_install_then_status_history_values_and_list_feed_the_model(
    helm: HelmDriver, namespace: str, source: ChartSource
) -> None:
    helm.install(
        RELEASE,
        source,
        OLD,
        namespace,
        values={"cluster": {"name": "sandbox"}},
        set_values=["debug.enabled=true"],
        timeout_s=60,
    )

    status = helm.status(RELEASE, namespace)
    assert status is not None
    release = HelmRelease.from_helm_status(status)
    assert (release.name, release.namespace, release.revision, release.status) == (
        RELEASE,
        namespace,
        1,
        "deployed",
    )
    assert (release.chart_name, release.chart_version, release.app_version) == (
        "cilium",
        OLD,
        OLD,
    )
    assert release.updated
    assert "config" not in status
    assert "resources" not in status["info"]

    history = _history(helm, namespace)
    assert [
        (h.revision, h.status, h.chart_name, h.chart_version, h.app_version) for h in history
    ] == [(1, "deployed", "cilium", OLD, OLD)]
    assert history[0].description == "Install complete"

    assert helm.get_values(RELEASE, namespace) == {
        "cluster": {"name": "sandbox"},
        "debug": {"enabled": True},
    }
    assert helm.get_values(RELEASE, namespace, revision=1) == helm.get_values(RELEASE, namespace)
    computed = helm.get_values(RELEASE, namespace, all_values=True)
    assert computed["cluster"]["name"] == "sandbox"
    assert computed["preflight"]["enabled"] is False

    listed = [HelmRelease.from_helm_list_entry(e) for e in helm.list_releases(namespace)]
    assert [(r.name, r.revision, r.status, r.chart_version) for r in listed] == [
        (RELEASE, 1, "deployed", OLD)
    ]


def test_template_fails_with_the_charts_own_message(
    helm: HelmDriver, namespace: str, source: ChartSource
) -> None:
    manifest = helm.template(RELEASE, source, NEW, namespace)
    kinds = {d["kind"] for d in yaml.safe_load_all(manifest) if d}
    assert {"DaemonSet", "Deployment", "ConfigMap"} <= kinds

    with pytest.raises(HelmFailed) as caught:
        helm.template(RELEASE, source, NEW, namespace, set_values=["tunnel=vxlan"])
    assert TUNNEL_REMOVED in caught.value.stderr
    assert caught.value.exit_code == 1
    assert helm.status(RELEASE, namespace) is None


def test_template_keeps_values_on_stdin_and_secrets_out_of_errors(
    helm: HelmDriver, namespace: str, source: ChartSource
) -> None:
    secret = "c2VjcmV0LWtleS1tYXRlcmlhbC1mb3ItaHViYmxlLXRscw"  # noqa: S105
    values = {"tunnel": "vxlan", "hubble": {"tls": {"server": {"key": secret}}}}
    helm.redactor = Redactor.from_values(values)
    command = helm.template_command(RELEASE, source, NEW, namespace, values=values)
    assert secret not in " ".join(command.argv)
    assert command.display().endswith("# values on stdin")
    with pytest.raises(HelmFailed) as caught:
        helm.execute(command)
    assert TUNNEL_REMOVED in caught.value.stderr
    assert secret not in str(caught.value)


def test_upgrade_with_values_file_rollback_and_uninstall(
    sandbox: Sandbox,
    helm: HelmDriver,
    namespace: str,
    tmp_path: Path,
    charts: Charts,
    source: ChartSource,
) -> None:
    helm.install(RELEASE, source, OLD, namespace, set_values=["cluster.name=sandbox"], timeout_s=60)
    saved = tmp_path / "old-values.yaml"
    saved.write_text(yaml.safe_dump(helm.get_values(RELEASE, namespace)))

    helm.upgrade(RELEASE, source, NEW, namespace, values_files=[saved], timeout_s=60)
    assert _images(sandbox, namespace) == {charts.images(NEW).agent}
    status = helm.status(RELEASE, namespace)
    assert status is not None
    assert HelmRelease.from_helm_status(status).chart_version == NEW
    assert HelmRelease.from_helm_status(status).revision == 2
    assert helm.get_values(RELEASE, namespace) == {"cluster": {"name": "sandbox"}}

    helm.rollback(RELEASE, 1, namespace, wait=True, timeout_s=60)
    assert _images(sandbox, namespace) == {charts.images(OLD).agent}
    history = _history(helm, namespace)
    assert [(h.revision, h.status, h.chart_version) for h in history] == [
        (1, "superseded", OLD),
        (2, "superseded", NEW),
        (3, "deployed", OLD),
    ]
    assert history[-1].description == "Rollback to 1"
    # Helm 4 records which revision a rollback restored; Helm 3 does not.
    raw_history = helm.history(RELEASE, namespace)
    assert raw_history[-1]["rollback_revision"] == (1 if helm.major() == 4 else 0)

    out = helm.uninstall(RELEASE, namespace, wait=True, timeout_s=60)
    assert f'release "{RELEASE}" uninstalled' in out
    assert helm.status(RELEASE, namespace) is None
    with pytest.raises(NotFound, match=f"{RELEASE} not found in namespace {namespace}"):
        helm.uninstall(RELEASE, namespace)


def test_reuse_values_only_for_the_same_chart_version(
    helm: HelmDriver, namespace: str, source: ChartSource
) -> None:
    helm.install(RELEASE, source, OLD, namespace, set_values=["cluster.name=keep"], timeout_s=60)
    with pytest.raises(ValueError, match=r"1\.15\.0 -> 1\.16\.0"):
        helm.upgrade(RELEASE, source, "1.16.0", namespace, reuse_values=True)
    assert not any("upgrade" in call.argv for call in helm.calls)

    # the same chart version again: the one case the upgrade guide calls safe
    helm.upgrade(RELEASE, source, OLD, namespace, reuse_values=True, timeout_s=60)
    assert "--reuse-values" in helm.calls[-1].argv
    assert helm.get_values(RELEASE, namespace) == {"cluster": {"name": "keep"}}

    # A patch of the same minor is refused too: the real 1.15.19 templates read
    # `sysctlfix`, which 1.15.0's values lack, so Helm would fail to render with the old
    # values (the failure of cilium/cilium#18115, within a minor).
    calls = len(helm.calls)
    with pytest.raises(ValueError, match=rf"{OLD} -> {NEW}"):
        helm.upgrade(RELEASE, source, NEW, namespace, reuse_values=True, timeout_s=60)
    assert not any("upgrade" in call.argv for call in helm.calls[calls:])  # only reads ran


def test_missing_release(helm: HelmDriver, namespace: str, source: ChartSource) -> None:
    assert helm.status("absent", namespace) is None
    assert helm.list_releases(namespace) == []
    with pytest.raises(NotFound, match="absent not found"):
        helm.history("absent", namespace)
    with pytest.raises(NotFound):
        helm.get_values("absent", namespace)
    with pytest.raises(NotFound):
        helm.rollback("absent", 1, namespace)
    with pytest.raises(HelmFailed, match="has no deployed releases"):
        helm.upgrade("absent", source, NEW, namespace, wait=False)


def test_wait_past_its_timeout_is_a_helm_timeout(
    faults: Sandbox, helm: HelmDriver, namespace: str, source: ChartSource
) -> None:
    faults.add_fault(PodFault(Fault.NEVER_READY, namespace=namespace))
    with pytest.raises(HelmTimeout) as caught:
        helm.install(RELEASE, source, OLD, namespace, wait=True, timeout_s=3)
    assert isinstance(caught.value, Timeout)
    status = helm.status(RELEASE, namespace)
    assert status is not None
    assert HelmRelease.from_helm_status(status).status == "failed"
    history = helm.history(RELEASE, namespace)
    assert history[-1]["status"] == "failed"


def test_pending_release_is_listed(helm: HelmDriver, namespace: str, source: ChartSource) -> None:
    helm.install(RELEASE, source, OLD, namespace, wait=False)
    # a second release beside it, rendering only what does not clash: the pre-flight's
    helm.install(
        "other",
        source,
        OLD,
        namespace,
        wait=False,
        set_values=["preflight.enabled=true", "agent=false", "operator.enabled=false"],
    )
    names = sorted(e["name"] for e in helm.list_releases(namespace))
    assert names == ["cilium", "other"]
    deployed = helm.list_releases(namespace, all_states=False)
    assert sorted(e["name"] for e in deployed) == ["cilium", "other"]


def test_chart_directory_versions(helm: HelmDriver, charts: Charts, source: ChartSource) -> None:
    want = [Version.parse(v) for v in REAL_CHART_VERSIONS]
    assert sorted(Version.parse(p.parent.name) for p in charts.root.glob("*/Chart.yaml")) == want
    assert source.kind is ChartSourceKind.DIRECTORY
    assert ChartSource.parse(str(charts), helm=helm).versions() == want
    assert not any(call.argv[1:2] == ("search",) for call in helm.calls)


# --------------------------------------------------------------------------- a served repo


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def _serve(directory: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(directory))
    with socketserver.TCPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            thread.join(timeout=5)


def test_repo_source_added_searched_and_rendered(
    helm: HelmDriver, tmp_path: Path, charts: Charts
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {
        **helm.env,
        "HELM_REPOSITORY_CONFIG": str(tmp_path / "repositories.yaml"),
        "HELM_REPOSITORY_CACHE": str(tmp_path / "cache"),
    }
    helm = HelmDriver(binary=helm.binary, kubeconfig=helm.kubeconfig, env=env)
    for version in (OLD, NEW):  # the upstream archives, linked
        (repo / charts.archive(version).name).symlink_to(charts.archive(version))
    with _serve(repo) as url:
        helm.execute(helm.command("repo", "index", str(repo), "--url", url, cluster=False))
        source = ChartSource.parse("mirror/cilium", repo_url=url, helm=helm)
        # named on each command (--repo URL), never added to the repositories file
        assert source.versions() == [Version.parse(OLD), Version.parse(NEW)]
        assert not (tmp_path / "repositories.yaml").exists()
        manifest = helm.template(RELEASE, source, NEW, "kube-system")
        assert charts.images(NEW).agent in manifest
        with pytest.raises(HelmFailed, match=r"1\.16\.0"):
            helm.template(RELEASE, source, "1.16.0", "kube-system")

    packaged = ChartSource.parse(str(repo / f"cilium-{OLD}.tgz"), helm=helm)
    assert packaged.kind is ChartSourceKind.CHART
    assert packaged.versions() == [Version.parse(OLD)]
    assert charts.images(OLD).agent in helm.template(RELEASE, packaged, OLD, "x")
