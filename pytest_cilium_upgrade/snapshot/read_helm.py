"""Helm's part of a snapshot: the client's version, the release state, and the target
chart's render (for the cluster's ``.Capabilities``), versions and default values."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.adapters.helm import records as release_records
from pytest_cilium_upgrade.adapters.helm.chart_refs import not_in_local_index
from pytest_cilium_upgrade.adapters.helm.charts import ChartSource
from pytest_cilium_upgrade.errors import GateError, HelmFailed
from pytest_cilium_upgrade.snapshot.model import (
    ChartRender,
    ChartValues,
    ClusterSnapshot,
    HelmHistoryEntry,
    HelmRelease,
    JSONDict,
)
from pytest_cilium_upgrade.snapshot.read_cluster import Capabilities
from pytest_cilium_upgrade.snapshot.readers import (
    ClusterReader,
    CollectRequest,
    HelmReader,
    RecordLister,
    ReleaseReader,
)
from pytest_cilium_upgrade.snapshot.workers import Workers
from pytest_cilium_upgrade.versions import parse_helm_client_version


class RecordReleases:
    """Release status, history and values from one LIST of Helm's release records.

    Answers as :class:`ReleaseReader` in the shapes helm prints, for every release
    named at construction; the LIST runs once.
    """

    def __init__(
        self, lister: RecordLister, namespace: str, releases: Sequence[str], kind: str
    ) -> None:
        self.namespace = namespace
        self._revisions = release_records.revisions(
            lister.list_release_records(namespace, releases, kind)
        )

    def _history(self, release: str, namespace: str) -> list[release_records.Revision]:
        if namespace != self.namespace:
            raise ValueError(f"records were read in {self.namespace}, not in {namespace}")
        return self._revisions.get(release, [])

    def status(self, release: str, namespace: str) -> JSONDict | None:
        return release_records.status(self._history(release, namespace))

    def history(self, release: str, namespace: str) -> list[JSONDict]:
        return [release_records.history_entry(r) for r in self._history(release, namespace)]

    def get_values(self, release: str, namespace: str) -> JSONDict:
        return release_records.values(self._history(release, namespace))


def collect_helm(
    helm: HelmReader | None,
    reader: Future[ReleaseReader] | None,
    request: CollectRequest,
    error: str | None,
    pool: Workers,
    capabilities: Future[Capabilities] | None = None,
) -> dict[str, Any]:
    if helm is None or reader is None:
        return {"helm_error": error or "no helm client configured"}
    chart = request.chart
    # Rendering and listing chart versions are local (they change nothing and read no
    # release), so they start with `helm version` rather than after it; their results
    # are used only once the client proves to be Helm 3 or 4.
    render = versions = chart_values = None
    if chart is not None:
        render = pool.submit(_render, helm, request, capabilities)
        versions = pool.submit(chart.versions)
        chart_values = pool.submit(_chart_values, request)
    try:
        out: dict[str, Any] = {"helm_version": helm.version()}
    except GateError as exc:
        return {"helm_error": str(exc)}
    parsed = parse_helm_client_version(out["helm_version"])
    if parsed is None or parsed.major not in defaults.HELM_SUPPORTED_MAJORS:
        # nothing is read through a client whose flags and output we do not know
        return {
            **out,
            "helm_error": f"helm {out['helm_version'].strip()!r} is not supported: "
            "only Helm 3 and Helm 4 are",
        }
    try:
        records = reader.result()
    except GateError as exc:  # the LIST of Helm's records failed
        out["release_error"] = (
            f"cannot read Helm's release records "
            f"({request.release_records}s in namespace "
            f"{request.namespace}): {exc}"
        )
    else:
        try:
            out.update(_release_state(records, request, pool))
        except GateError as exc:
            out["release_error"] = f"cannot read the release state with helm: {exc}"
    if render is not None and versions is not None:
        try:
            out["available_chart_versions"] = tuple(str(v) for v in versions.result())
        except GateError as exc:  # the chart's fault, not helm's: the release is read
            out["chart_error"] = f"cannot list the versions of {chart}: {exc}"
        out.update(render.result())
    if chart_values is not None:
        out.update(chart_values.result())
    return out


def release_reader(
    helm: HelmReader, cluster: ClusterReader | None, request: CollectRequest
) -> ReleaseReader:
    """Helm's records through the API when they are there (one LIST), else helm itself."""
    kind = request.release_records
    if kind is None or cluster is None:
        return helm
    return RecordReleases(
        cluster, request.namespace, (request.release, request.preflight_release), kind
    )


def read_release(reader: ReleaseReader, namespace: str, release: str) -> ClusterSnapshot:
    """A snapshot of ``release`` alone: its status and history, read now.

    For judging the release between the phases (the upgrade reads it before saving its
    values); reading errors propagate.
    """
    status = reader.status(release, namespace)
    if status is None:
        return ClusterSnapshot(namespace=namespace)
    history = reader.history(release, namespace)
    return ClusterSnapshot(
        namespace=namespace,
        release=HelmRelease.from_helm_status(status),
        release_history=tuple(HelmHistoryEntry.from_helm_history_entry(h) for h in history),
    )


def _release_state(reader: ReleaseReader, request: CollectRequest, pool: Workers) -> dict[str, Any]:
    ns = request.namespace
    release, preflight = request.release, request.preflight_release
    calls: dict[str, Callable[[], Any]] = {
        "status": lambda: reader.status(release, ns),
        "history": lambda: reader.history(release, ns),
        "values": lambda: reader.get_values(release, ns),
        "preflight": lambda: reader.status(preflight, ns),
    }
    futures = {name: pool.submit(call) for name, call in calls.items()}
    out: dict[str, Any] = {}
    status = futures["status"].result()
    if status is not None:
        out["release"] = HelmRelease.from_helm_status(status)
        out["release_history"] = tuple(
            HelmHistoryEntry.from_helm_history_entry(h) for h in futures["history"].result()
        )
        out["live_values"] = futures["values"].result()
    else:
        for name in ("history", "values"):  # not found, as status said
            futures[name].exception()
    preflight_status = futures["preflight"].result()
    if preflight_status is not None:
        out["preflight_release"] = HelmRelease.from_helm_status(preflight_status)
    return out


def renders(request: CollectRequest) -> bool:
    """Whether the target chart is rendered: a chart, a target and a snapshot to render with."""
    snapshot = request.values_snapshot
    return (
        request.chart is not None
        and request.target_version is not None
        and snapshot is not None
        and snapshot.is_file()
    )


def _render(
    helm: HelmReader, request: CollectRequest, capabilities: Future[Capabilities] | None
) -> dict[str, Any]:
    """Render the target chart with the snapshot values (the chart's own validation),
    for the cluster's Kubernetes version and API versions, as ``helm upgrade`` would."""
    target = request.target_version
    snapshot = request.values_snapshot
    chart = request.chart
    if target is None or snapshot is None or chart is None or capabilities is None:
        return {}
    try:
        cluster = capabilities.result()
    except Exception as exc:  # any failure to read them is reported
        return {
            "target_render": ChartRender(
                target,
                succeeded=False,
                rendered=False,
                error="not rendered: the cluster's Kubernetes version and API versions"
                f" could not be read ({exc})",
            )
        }

    def outcome(error: str | None) -> dict[str, Any]:
        return {
            "target_render": ChartRender(
                target,
                succeeded=error is None,
                error=error or "",
                kube_version=cluster.kube_version,
                api_versions=len(cluster.api_versions),
            )
        }

    try:
        helm.template(
            request.release,
            chart,
            target,
            request.namespace,
            values_files=[os.fspath(snapshot), *map(os.fspath, request.extra_values_files)],
            set_values=request.extra_sets,
            kube_version=cluster.kube_version or None,
            api_versions=cluster.api_versions,
        )
    except HelmFailed as exc:
        return outcome(_index_hint(chart, target, exc.stderr) + exc.stderr)
    except GateError as exc:
        return outcome(str(exc))
    return outcome(None)


def _index_hint(chart: ChartSource, version: str, stderr: str) -> str:
    """Why Helm could not download a repository chart's version, and what to run."""
    repo = chart.repo_name
    if repo is None or not not_in_local_index(stderr):
        return ""
    return (
        f"Error: helm's local index of repository {repo} does not list {chart.ref}"
        f" version {version} (an index older than the release, or a version that is not"
        f" published): update it with `helm repo update {repo}`\n"
    )


def _chart_values(request: CollectRequest) -> dict[str, Any]:
    """The target chart's ``values.yaml`` and ``values.schema.json`` (read where a local
    chart is; a repo chart is pulled), for the check of the values against them."""
    target = request.target_version
    if target is None or request.chart is None:
        return {}
    names = (defaults.CHART_VALUES_FILE, defaults.CHART_SCHEMA_FILE)
    try:
        files = request.chart.chart_files(target, names)
    except GateError as exc:
        chart_values = ChartValues(target, error=str(exc))
    else:
        chart_values = ChartValues(
            target,
            values_yaml=files.get(defaults.CHART_VALUES_FILE),
            schema_json=files.get(defaults.CHART_SCHEMA_FILE),
        )
    return {"target_chart_values": chart_values}
