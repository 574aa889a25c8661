"""Collect one :class:`~pytest_cilium_upgrade.model.ClusterSnapshot` through the adapters.

The number of API requests is fixed: the version, one SelfSubjectAccessReview per
required permission, one LIST each of nodes, pods, DaemonSets and Deployments in the
release namespace (filtered in memory by label selector), and at most two log reads
of the CNP validator. It does not grow with the number of nodes or pods.

The collector depends only on the narrow reader interfaces below, so unit tests can
hand it in-memory fakes of our own adapters.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.errors import GateError, HelmFailed
from pytest_cilium_upgrade.model import (
    AccessReview,
    ChartRender,
    ClusterSnapshot,
    HelmHistoryEntry,
    HelmRelease,
    Node,
    Pod,
    ValuesSnapshotFile,
    Workload,
    as_selector,
)
from pytest_cilium_upgrade.versions import parse_helm_client_version

JSONDict = dict[str, Any]


class ClusterReader(Protocol):
    def server_version(self) -> str: ...
    def access_reviews(
        self, namespace: str, requirements: Iterable[defaults.AccessRequirement]
    ) -> list[JSONDict]: ...
    def list_nodes(self) -> list[JSONDict]: ...
    def list_pods(self, namespace: str, selector: str | None = None) -> list[JSONDict]: ...
    def list_daemonsets(self, namespace: str) -> list[JSONDict]: ...
    def list_deployments(self, namespace: str) -> list[JSONDict]: ...
    def pod_log(
        self, namespace: str, pod: str, container: str, *, previous: bool = False
    ) -> str | None: ...


class ChartVersions(Protocol):
    def versions(self) -> list[str]: ...


class HelmReader(Protocol):
    def version(self) -> str: ...
    def status(self, release: str, namespace: str) -> JSONDict | None: ...
    def history(self, release: str, namespace: str) -> list[JSONDict]: ...
    def get_values(self, release: str, namespace: str) -> JSONDict: ...
    def template(
        self, release: str, chart: Any, version: str, namespace: str,
        values_files: Sequence[str] = (), set_values: Sequence[str] = (),
    ) -> str: ...


@dataclass(frozen=True)
class CollectRequest:
    """What to collect: the release, where its snapshot is, what to render."""

    namespace: str = defaults.DEFAULT_NAMESPACE
    release: str = defaults.DEFAULT_RELEASE
    preflight_release: str = defaults.DEFAULT_PREFLIGHT_RELEASE
    values_snapshot: Path | None = None
    target_version: str | None = None
    chart: Any = None  # a helm.ChartSource; rendered with the snapshot when given
    # what the upgrade will add on top of the snapshot, rendered with it
    extra_values_files: tuple[Path, ...] = ()
    extra_sets: tuple[str, ...] = ()
    requirements: tuple[defaults.AccessRequirement, ...] = defaults.REQUIRED_ACCESS


def read_values_snapshot(path: Path) -> ValuesSnapshotFile:
    """The snapshot file as it is on disk; its text is parsed (and never echoed) by the checks."""
    try:
        info = path.stat()
        text = path.read_text()
    except FileNotFoundError:
        return ValuesSnapshotFile(path=str(path), exists=False)
    except OSError as exc:
        return ValuesSnapshotFile(
            path=str(path), exists=path.exists(), read_error=exc.strerror or str(exc)
        )
    return ValuesSnapshotFile(
        path=str(path), exists=True, mode=stat.S_IMODE(info.st_mode), text=text
    )


def collect(
    cluster: ClusterReader | None,
    helm: HelmReader | None,
    request: CollectRequest,
    *,
    cluster_error: str | None = None,
    helm_error: str | None = None,
) -> ClusterSnapshot:
    """Read everything the checks need; failures become fields, never exceptions.

    ``cluster_error`` / ``helm_error`` say why an adapter could not even be built
    (e.g. a malformed kubeconfig, no helm binary).
    """
    fields: dict[str, Any] = {"namespace": request.namespace}
    fields.update(_collect_cluster(cluster, request, cluster_error))
    fields.update(_collect_helm(helm, request, helm_error))
    if request.values_snapshot is not None:
        fields["values_snapshot"] = read_values_snapshot(request.values_snapshot)
    return ClusterSnapshot(**fields)


def _collect_cluster(
    cluster: ClusterReader | None, request: CollectRequest, error: str | None
) -> dict[str, Any]:
    if cluster is None:
        return {"api_error": error or "no cluster configured"}
    ns = request.namespace
    try:
        version = cluster.server_version()
    except GateError as exc:
        return {"api_error": str(exc)}
    out: dict[str, Any] = {"server_version": version}
    read_errors: list[str] = []

    def attempt(what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except GateError as exc:
            read_errors.append(f"{what}: {exc}")
            return []

    reviews = attempt("access review", cluster.access_reviews, ns, request.requirements)
    out["access_reviews"] = tuple(AccessReview.from_k8s_dict(r) for r in reviews)
    out["nodes"] = tuple(Node.from_k8s_dict(n) for n in attempt("nodes", cluster.list_nodes))
    pods = tuple(Pod.from_k8s_dict(p) for p in attempt("pods", cluster.list_pods, ns))
    out["pods"] = pods
    workloads = [
        Workload.from_k8s_dict(w, kind="DaemonSet")
        for w in attempt("daemonsets", cluster.list_daemonsets, ns)
    ] + [
        Workload.from_k8s_dict(w, kind="Deployment")
        for w in attempt("deployments", cluster.list_deployments, ns)
    ]
    out["workloads"] = tuple(workloads)
    logs = _validator_logs(cluster, ns, pods)
    read_errors += logs.pop("read_errors", ())
    out.update(logs)
    out["read_errors"] = tuple(read_errors)
    return out


def _validator_logs(cluster: ClusterReader, namespace: str, pods: Sequence[Pod]) -> dict[str, Any]:
    """The cnp-validator's current log, and its previous one when it has restarted."""
    selector = as_selector(defaults.PREFLIGHT_DEPLOYMENT_SELECTOR)
    validators = [
        p
        for p in pods
        if p.namespace == namespace and selector.matches(p.labels) and not p.terminal
    ]
    if not validators:
        return {}
    pod = validators[0]
    container = pod.container(defaults.CNP_VALIDATOR_CONTAINER)
    try:
        current = cluster.pod_log(namespace, pod.name, defaults.CNP_VALIDATOR_CONTAINER)
        previous = None
        if container is not None and container.restart_count > 0:
            previous = cluster.pod_log(
                namespace, pod.name, defaults.CNP_VALIDATOR_CONTAINER, previous=True
            )
    except GateError as exc:
        return {"read_errors": (f"validator log: {exc}",)}
    return {"validator_log": current, "validator_previous_log": previous}


def _collect_helm(
    helm: HelmReader | None, request: CollectRequest, error: str | None
) -> dict[str, Any]:
    if helm is None:
        return {"helm_error": error or "no helm client configured"}
    try:
        out: dict[str, Any] = {"helm_version": helm.version()}
    except GateError as exc:
        return {"helm_error": str(exc)}
    parsed = parse_helm_client_version(out["helm_version"])
    if parsed is None or parsed.major not in (3, 4):
        # nothing else is asked of a client whose flags and output we do not know
        return {**out, "helm_error": f"helm {out['helm_version'].strip()!r} is not supported: "
                                     "only Helm 3 and Helm 4 are"}
    ns = request.namespace
    try:
        status = helm.status(request.release, ns)
        if status is not None:
            out["release"] = HelmRelease.from_helm_status(status)
            out["release_history"] = tuple(
                HelmHistoryEntry.from_helm_history_entry(h)
                for h in helm.history(request.release, ns)
            )
            out["live_values"] = helm.get_values(request.release, ns)
        preflight = helm.status(request.preflight_release, ns)
        if preflight is not None:
            out["preflight_release"] = HelmRelease.from_helm_status(preflight)
    except GateError as exc:
        out["helm_error"] = str(exc)
        return out
    chart = request.chart
    if chart is not None:
        try:
            out["available_chart_versions"] = tuple(str(v) for v in chart.versions())
        except GateError as exc:
            out["helm_error"] = f"cannot list chart versions of {chart}: {exc}"
            return out
        out.update(_render(helm, request))
    return out


def _render(helm: HelmReader, request: CollectRequest) -> dict[str, Any]:
    """Render the target chart with the snapshot values (the chart's own validation)."""
    target = request.target_version
    snapshot = request.values_snapshot
    if target is None or snapshot is None or not snapshot.is_file():
        return {}
    try:
        helm.template(
            request.release, request.chart, target, request.namespace,
            values_files=[os.fspath(snapshot), *map(os.fspath, request.extra_values_files)],
            set_values=request.extra_sets,
        )
    except HelmFailed as exc:
        return {"target_render": ChartRender(target, succeeded=False, error=exc.stderr)}
    except GateError as exc:
        return {"target_render": ChartRender(target, succeeded=False, error=str(exc))}
    return {"target_render": ChartRender(target, succeeded=True)}
