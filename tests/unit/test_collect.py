"""``collect()`` against in-memory fakes of our reader interfaces.

What is pinned here: the reads are concurrent, Helm's release state comes from one
LIST of its records when they are in the API, and a failed read becomes a field of
the snapshot, never an exception.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest
from test_release_records import release, secret

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.adapters.helm.charts import ChartSource
from pytest_cilium_upgrade.errors import (
    ApiError,
    ApiUnreachable,
    Forbidden,
    HelmFailed,
    NoAnswer,
)
from pytest_cilium_upgrade.snapshot import read as collect_module
from pytest_cilium_upgrade.snapshot import workers
from pytest_cilium_upgrade.snapshot.model import ApiFailure, ChartRender, JSONDict
from pytest_cilium_upgrade.snapshot.read import CollectRequest, RecordReleases, collect

NS = "kube-system"
API_VERSIONS = ("apps/v1", "apps/v1/DaemonSet", "monitoring.coreos.com/v1", "v1", "v1/Pod")


class FakeCluster:
    """Answers from fixed data; ``barrier`` makes the first LISTs wait for one another."""

    def __init__(
        self, *, records: list[JSONDict] | None = None, barrier: threading.Barrier | None = None
    ) -> None:
        self.records = records or []
        self.barrier = barrier
        self.calls: list[str] = []
        self.failing: dict[str, Exception] = {}
        self._lock = threading.Lock()

    def _call(self, what: str) -> None:
        with self._lock:
            self.calls.append(what)
        if what in self.failing:
            raise self.failing[what]
        if self.barrier is not None and what.startswith("list "):
            with self._lock:
                first = sum(c.startswith("list ") for c in self.calls) <= self.barrier.parties
            if first:
                self.barrier.wait()

    def server_version(self) -> str:
        self._call("version")
        return "v1.36.3"

    def api_versions(self) -> list[str]:
        self._call("api versions")
        return list(API_VERSIONS)

    def access_reviews(
        self, namespace: str, requirements: Iterable[defaults.AccessRequirement]
    ) -> list[JSONDict]:
        self._call("access review")
        return [
            {
                "spec": {"resourceAttributes": {"verb": r.verb, "resource": r.resource}},
                "status": {"allowed": True},
            }
            for r in requirements
        ]

    def list_nodes(self) -> list[JSONDict]:
        self._call("list nodes")
        return [{"metadata": {"name": "n1"}}]

    def list_pods(self, namespace: str, selector: str | None = None) -> list[JSONDict]:
        self._call("list pods")
        return []

    def list_daemonsets(self, namespace: str) -> list[JSONDict]:
        self._call("list daemonsets")
        return []

    def list_deployments(self, namespace: str) -> list[JSONDict]:
        self._call("list deployments")
        return []

    def pod_log(
        self, namespace: str, pod: str, container: str, *, previous: bool = False
    ) -> str | None:
        self._call("pod log")
        return None

    def list_release_records(
        self, namespace: str, releases: Iterable[str], kind: str = "Secret"
    ) -> list[JSONDict]:
        self._call(f"records {kind} {','.join(sorted(releases))}")
        return self.records


class FakeHelm:
    def __init__(self, version: str = "v3.22.0") -> None:
        self._version = version
        self.calls: list[str] = []
        self.rendered: list[tuple[str | None, tuple[str, ...]]] = []
        self.render_error: Exception | None = HelmFailed(
            ["helm", "template"], 1, "values don't meet the specifications"
        )

    def version(self) -> str:
        self.calls.append("version")
        return self._version

    def status(self, release: str, namespace: str) -> JSONDict | None:
        self.calls.append(f"status {release}")
        if release != defaults.DEFAULT_RELEASE:
            return None
        return {
            "name": release,
            "namespace": namespace,
            "version": 1,
            "info": {"status": "deployed"},
            "chart": {"metadata": {"name": "cilium", "version": "1.15.18"}},
        }

    def history(self, release: str, namespace: str) -> list[JSONDict]:
        self.calls.append(f"history {release}")
        return [{"revision": 1, "status": "deployed", "chart": "cilium-1.15.18"}]

    def get_values(self, release: str, namespace: str) -> JSONDict:
        self.calls.append(f"values {release}")
        return {"from": "helm"}

    def template(
        self,
        release: str,
        chart: Any,
        version: str,
        namespace: str,
        values_files: Sequence[str] = (),
        set_values: Sequence[str] = (),
        *,
        kube_version: str | None = None,
        api_versions: Sequence[str] = (),
    ) -> str:
        self.calls.append("template")
        self.rendered.append((kube_version, tuple(api_versions)))
        if self.render_error is not None:
            raise self.render_error
        return "---\n"


RECORDS = [
    secret(release("cilium", 1, "superseded", "1.15.18")),
    secret(release("cilium", 2, "deployed", "1.15.19")),
    secret(release("cilium-preflight", 1, "deployed", "1.16.15")),
]


def test_the_lists_are_read_concurrently() -> None:
    # Each LIST waits at the barrier until as many are in flight as there are
    # connections (3 of the 4): read one after another, the first would time out and
    # break the barrier.
    assert collect_module._API_WORKERS == 3
    cluster = FakeCluster(barrier=threading.Barrier(3, timeout=10))
    snapshot = collect(cluster, None, CollectRequest())
    assert snapshot.read_errors == ()
    assert [n.name for n in snapshot.nodes] == ["n1"]
    assert cluster.calls.count("access review") == len(defaults.REQUIRED_ACCESS)
    assert len(snapshot.access_reviews) == len(defaults.REQUIRED_ACCESS)


def test_release_state_comes_from_one_list_of_records() -> None:
    cluster, helm = FakeCluster(records=RECORDS), FakeHelm()
    snapshot = collect(cluster, helm, CollectRequest(release_records="Secret"))
    assert [c for c in cluster.calls if c.startswith("records")] == [
        "records Secret cilium,cilium-preflight"
    ]
    assert helm.calls == ["version"]  # no helm process for status, history or values
    assert snapshot.release is not None
    assert snapshot.preflight_release is not None
    assert (snapshot.release.revision, snapshot.release.chart_version) == (2, "1.15.19")
    assert [h.status for h in snapshot.release_history] == ["superseded", "deployed"]
    assert snapshot.live_values == {"ipam": {"mode": "kubernetes"}, "revision": 2}
    assert snapshot.preflight_release.chart_version == "1.16.15"


def test_without_records_helm_is_asked() -> None:
    cluster, helm = FakeCluster(records=RECORDS), FakeHelm()
    snapshot = collect(cluster, helm, CollectRequest(release_records=None))
    assert not [c for c in cluster.calls if c.startswith("records")]
    assert sorted(helm.calls) == sorted(
        ["version", "status cilium", "history cilium", "values cilium", "status cilium-preflight"]
    )
    assert snapshot.live_values == {"from": "helm"}
    assert snapshot.preflight_release is None


def test_a_missing_release_has_no_history_or_values() -> None:
    request = CollectRequest(release_records="Secret")
    snapshot = collect(FakeCluster(records=[]), FakeHelm(), request)
    assert snapshot.release is None
    assert snapshot.live_values is None
    assert snapshot.release_history == ()
    assert snapshot.helm_error is None


def test_unsupported_helm_gives_no_release_state() -> None:
    # the records are listed beside `helm version`, but not used for a client we do
    # not know
    cluster = FakeCluster(records=RECORDS)
    snapshot = collect(cluster, FakeHelm("v2.17.0"), CollectRequest(release_records="Secret"))
    assert snapshot.helm_error is not None
    assert "not supported" in snapshot.helm_error
    assert snapshot.release is None
    assert snapshot.release_history == ()
    assert snapshot.live_values is None


def test_a_forbidden_records_list_is_a_release_error_not_a_helm_error() -> None:
    cluster = FakeCluster(records=RECORDS)
    cluster.failing["records Secret cilium,cilium-preflight"] = Forbidden(
        "list", "secrets", NS, "no"
    )
    snapshot = collect(cluster, FakeHelm(), CollectRequest(release_records="Secret"))
    assert snapshot.helm_error is None  # helm itself is fine
    assert snapshot.release_error == (
        "cannot read Helm's release records (Secrets in namespace kube-system): "
        "forbidden: cannot list secrets in namespace kube-system: no"
    )
    assert snapshot.release is None


def test_an_api_error_keeps_its_status() -> None:
    cluster = FakeCluster()
    cluster.failing["version"] = ApiError(429, "Too Many Requests", "slow down")
    snapshot = collect(cluster, None, CollectRequest())
    assert snapshot.api_failure is not None
    assert snapshot.api_failure.status == 429
    assert snapshot.api_failure.message == "API error 429 Too Many Requests: slow down"
    assert not snapshot.api_failure.no_answer


def test_an_api_server_that_does_not_answer_in_time_is_told_apart() -> None:
    cluster = FakeCluster()
    cluster.failing["version"] = NoAnswer("did not answer get version within 2s")
    snapshot = collect(cluster, None, CollectRequest())
    assert snapshot.api_failure is not None
    assert snapshot.api_failure.no_answer
    assert snapshot.api_failure.status is None
    refused = FakeCluster()
    refused.failing["version"] = ApiUnreachable("cannot reach the Kubernetes API")
    refused_failure = collect(refused, None, CollectRequest()).api_failure
    assert refused_failure is not None
    assert not refused_failure.no_answer


def test_failed_reads_become_fields() -> None:
    cluster = FakeCluster()
    cluster.failing["list pods"] = Forbidden("list", "pods", NS, "no")
    cluster.failing["access review"] = ApiUnreachable("gone")
    snapshot = collect(cluster, None, CollectRequest())
    assert snapshot.pods == ()
    assert snapshot.access_reviews == ()
    assert len(snapshot.read_errors) == 2  # one for all access reviews, one for pods
    assert snapshot.read_errors[0].startswith("access review: ")
    assert snapshot.read_errors[1].startswith("pods: ")
    assert [n.name for n in snapshot.nodes] == ["n1"]


def test_an_unreachable_api_is_one_error_and_no_more_requests() -> None:
    cluster = FakeCluster()
    cluster.failing["version"] = ApiUnreachable("cannot reach the Kubernetes API")
    snapshot = collect(cluster, None, CollectRequest())
    assert snapshot.api_failure == ApiFailure("cannot reach the Kubernetes API")
    assert cluster.calls == ["version"]


def test_the_render_runs_with_the_reads_and_its_failure_is_recorded(tmp_path: Any) -> None:
    snapshot_file = tmp_path / "values.yaml"
    snapshot_file.write_text("ipam: {mode: kubernetes}\n")

    class Chart:
        repo_name = None  # a chart on disk

        def versions(self) -> list[str]:
            return ["1.15.18", "1.16.15"]

        def chart_files(self, version: str, names: Iterable[str]) -> dict[str, str]:
            return {}

    helm = FakeHelm()
    snapshot = collect(
        FakeCluster(records=RECORDS),
        helm,
        CollectRequest(
            release_records="Secret",
            chart=cast(ChartSource, Chart()),
            target_version="1.16.15",
            values_snapshot=snapshot_file,
        ),
    )
    assert "template" in helm.calls
    assert snapshot.target_render is not None
    assert not snapshot.target_render.succeeded
    assert "specifications" in snapshot.target_render.error
    assert snapshot.available_chart_versions == ("1.15.18", "1.16.15")


class _Chart:
    repo_name = None  # a chart on disk

    def versions(self) -> list[str]:
        return ["1.19.6", "1.20.0"]

    def chart_files(self, version: str, names: Iterable[str]) -> dict[str, str]:
        return {}


def _render_request(tmp_path: Path) -> CollectRequest:
    snapshot_file = tmp_path / "values.yaml"
    snapshot_file.write_text("ipam: {mode: kubernetes}\n")
    return CollectRequest(
        release_records="Secret",
        chart=cast(ChartSource, _Chart()),
        target_version="1.20.0",
        values_snapshot=snapshot_file,
    )


def test_the_target_is_rendered_for_the_clusters_version_and_api_versions(
    tmp_path: Path,
) -> None:
    cluster, helm = FakeCluster(records=RECORDS), FakeHelm()
    helm.render_error = None
    snapshot = collect(cluster, helm, _render_request(tmp_path))
    # what `helm upgrade` would read from this cluster, read once
    assert helm.rendered == [("v1.36.3", API_VERSIONS)]
    assert cluster.calls.count("api versions") == 1
    assert cluster.calls.count("version") == 1
    assert snapshot.target_render == ChartRender(
        "1.20.0", True, kube_version="v1.36.3", api_versions=len(API_VERSIONS)
    )


def test_a_discovery_slower_than_every_list_still_feeds_the_render(tmp_path: Path) -> None:
    class SlowDiscovery(FakeCluster):
        def api_versions(self) -> list[str]:
            # answers only once every other read of the cluster is done
            deadline = time.monotonic() + 10
            while "list deployments" not in self.calls or "list daemonsets" not in self.calls:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            time.sleep(0.2)
            return super().api_versions()

    cluster, helm = SlowDiscovery(records=RECORDS), FakeHelm()
    helm.render_error = None
    snapshot = collect(cluster, helm, _render_request(tmp_path))
    assert helm.rendered == [("v1.36.3", API_VERSIONS)]
    assert snapshot.target_render is not None
    assert snapshot.target_render.succeeded


def test_without_a_render_the_api_versions_are_not_read(tmp_path: Path) -> None:
    cluster = FakeCluster(records=RECORDS)
    request = replace(_render_request(tmp_path), chart=None)
    collect(cluster, FakeHelm(), request)
    assert "api versions" not in cluster.calls
    missing = replace(_render_request(tmp_path), values_snapshot=tmp_path / "none.yaml")
    collect(cluster, FakeHelm(), missing)
    assert "api versions" not in cluster.calls


def test_unread_api_versions_mean_no_render_rather_than_helms_defaults(tmp_path: Path) -> None:
    cluster, helm = FakeCluster(records=RECORDS), FakeHelm()
    cluster.failing["api versions"] = NoAnswer("did not answer get /apis within 2s")
    snapshot = collect(cluster, helm, _render_request(tmp_path))
    assert "template" not in helm.calls
    render = snapshot.target_render
    assert render is not None
    assert (render.rendered, render.succeeded) == (False, False)
    assert "did not answer get /apis within 2s" in render.error
    # the other reads are not affected
    assert snapshot.read_errors == ()
    assert snapshot.api_failure is None


def test_an_unreachable_api_renders_nothing_and_reads_nothing_more(tmp_path: Path) -> None:
    cluster, helm = FakeCluster(records=RECORDS), FakeHelm()
    cluster.failing["version"] = ApiUnreachable("cannot reach the Kubernetes API")
    snapshot = collect(cluster, helm, _render_request(tmp_path))
    assert "template" not in helm.calls
    assert "api versions" not in cluster.calls
    assert snapshot.target_render is not None
    assert not snapshot.target_render.rendered
    assert "cannot reach the Kubernetes API" in snapshot.target_render.error


def test_release_state_read_already_is_not_read_again() -> None:
    cluster, helm = FakeCluster(records=[]), FakeHelm()
    request = CollectRequest(namespace=NS, release_records="Secret")
    already = RecordReleases(
        FakeCluster(records=RECORDS), NS, (request.release, request.preflight_release), "Secret"
    )
    snapshot = collect(cluster, helm, request, releases=already)
    assert not [c for c in cluster.calls if c.startswith("records")]
    assert snapshot.release is not None
    assert (snapshot.release.revision, snapshot.release.chart_version) == (2, "1.15.19")
    assert snapshot.preflight_release is not None
    assert helm.calls == ["version"]


def test_records_are_read_in_one_namespace_only() -> None:
    reader = RecordReleases(FakeCluster(records=RECORDS), NS, ("cilium",), "Secret")
    with pytest.raises(ValueError, match="not in default"):
        reader.status("cilium", "default")


class GcObservingCluster(FakeCluster):
    """Notes whether the cyclic collector ran while each LIST was read."""

    def __init__(self) -> None:
        super().__init__()
        self.gc_enabled: list[bool] = []

    def list_pods(self, namespace: str, selector: str | None = None) -> list[JSONDict]:
        self.gc_enabled.append(gc.isenabled())
        return super().list_pods(namespace, selector)


def test_the_collector_is_paused_while_reading_and_resumed_after() -> None:
    assert gc.isenabled()
    cluster = GcObservingCluster()
    collect(cluster, FakeHelm(), CollectRequest(namespace=NS))
    assert cluster.gc_enabled == [False]
    assert gc.isenabled()

    cluster.failing["version"] = ApiUnreachable("connection refused")
    collect(cluster, FakeHelm(), CollectRequest(namespace=NS))
    assert gc.isenabled()


def test_gc_pauses_nest_and_leave_a_disabled_collector_disabled() -> None:
    with workers.gc_paused():
        with workers.gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause still holds
    assert gc.isenabled()

    gc.disable()
    try:
        with workers.gc_paused():
            pass
        assert not gc.isenabled()  # the caller's choice, not ours to undo
    finally:
        gc.enable()

    with pytest.raises(RuntimeError), workers.gc_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()
