"""Collect one :class:`~pytest_cilium_upgrade.snapshot.model.ClusterSnapshot` through the adapters.

The number of API requests is fixed: the version, one SelfSubjectAccessReview per
required permission, one LIST each of nodes, pods, DaemonSets and Deployments in the
release namespace (filtered in memory by label selector), one LIST of Helm's release
records, and at most two log reads of the CNP validator. It does not grow with the
number of nodes or pods.

The requests are independent of one another, so they run concurrently on a few
connections, beside the helm processes (``version``, ``template``), and the snapshot
is ready after the slowest of them rather than after their sum.

Python's cyclic garbage collector is paused while a snapshot is read. Decoding the
pods of a large cluster makes hundreds of thousands of dicts, and every few hundred
of them start a collection that walks the long-lived objects of the process (pytest,
the kubernetes client): at 500 nodes that was a fifth of the time to verdict. The
objects made here hold no reference cycles; the pause ends with the snapshot.

The collector depends only on the narrow reader interfaces below, so unit tests can
hand it in-memory fakes of our own adapters.
"""

from __future__ import annotations

import contextlib
import gc
import os
import stat
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.adapters.helm import records as release_records
from pytest_cilium_upgrade.errors import ApiError, GateError, HelmFailed, NoAnswer
from pytest_cilium_upgrade.snapshot.model import (
    AccessReview,
    ChartRender,
    ClusterSnapshot,
    HelmHistoryEntry,
    HelmRelease,
    JSONDict,
    Node,
    Pod,
    ValuesSnapshotFile,
    Workload,
    as_selector,
)
from pytest_cilium_upgrade.versions import parse_helm_client_version


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
    def list_release_records(
        self, namespace: str, releases: Iterable[str], kind: str = "Secret"
    ) -> list[JSONDict]: ...


class ChartVersions(Protocol):
    def versions(self) -> list[str]: ...


class ReleaseReader(Protocol):
    """A release's state in the shapes of ``helm status``/``history``/``get values``."""

    def status(self, release: str, namespace: str) -> JSONDict | None: ...
    def history(self, release: str, namespace: str) -> list[JSONDict]: ...
    def get_values(self, release: str, namespace: str) -> JSONDict: ...


class HelmReader(ReleaseReader, Protocol):
    def version(self) -> str: ...
    def template(
        self,
        release: str,
        chart: Any,
        version: str,
        namespace: str,
        values_files: Sequence[str] = (),
        set_values: Sequence[str] = (),
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
    # the kind holding Helm's release records ("Secret" or "ConfigMap"), read with one
    # LIST through the cluster reader; None asks helm (e.g. for HELM_DRIVER=sql)
    release_records: str | None = None


class RecordReleases:
    """Release status, history and values from one LIST of Helm's release records.

    Answers as :class:`ReleaseReader` in the shapes helm prints, for every release
    named at construction; the LIST runs once.
    """

    def __init__(
        self, lister: ClusterReader, namespace: str, releases: Sequence[str], kind: str
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


# Concurrent reads. API requests share a few connections: each new one costs a TLS
# handshake, which on a small cluster takes longer than the reads it would overlap.
# Helm's processes wait on threads of their own.
_API_WORKERS = 3
_HELM_WORKERS = 8


def collect(
    cluster: ClusterReader | None,
    helm: HelmReader | None,
    request: CollectRequest,
    *,
    cluster_error: str | None = None,
    helm_error: str | None = None,
    releases: ReleaseReader | None = None,
) -> ClusterSnapshot:
    """Read everything the checks need; failures become fields, never exceptions.

    ``cluster_error`` / ``helm_error`` say why an adapter could not even be built
    (e.g. a malformed kubeconfig, no helm binary). ``releases`` is Helm's release state
    read already (by :func:`release_reader`, for the values snapshot written just
    before): the snapshot judges what was written, and the records are not listed twice.
    """
    fields: dict[str, Any] = {"namespace": request.namespace}
    with (
        gc_paused(),
        ThreadPoolExecutor(_API_WORKERS, thread_name_prefix="cilium-api") as api,
        ThreadPoolExecutor(_HELM_WORKERS, thread_name_prefix="cilium-helm") as procs,
    ):
        # Helm's records are a cluster read: they start now, beside `helm version`
        reader: Future[ReleaseReader] | None = None
        if helm is not None and releases is not None:
            reader = Future()
            reader.set_result(releases)
        elif helm is not None:
            reader = api.submit(release_reader, helm, cluster, request)
        helm_part = procs.submit(_collect_helm, helm, reader, request, helm_error, procs)
        fields.update(_collect_cluster(cluster, request, cluster_error, api))
        fields.update(helm_part.result())
    if request.values_snapshot is not None:
        fields["values_snapshot"] = read_values_snapshot(request.values_snapshot)
    return ClusterSnapshot(**fields)


_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_resume = False


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside; nested and concurrent uses end together."""
    global _gc_pauses, _gc_resume
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_resume = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_resume:
                gc.enable()


def _collect_cluster(
    cluster: ClusterReader | None,
    request: CollectRequest,
    error: str | None,
    pool: ThreadPoolExecutor,
) -> dict[str, Any]:
    if cluster is None:
        return {"api_error": error or "no cluster configured"}
    ns = request.namespace
    try:
        version = cluster.server_version()
    except ApiError as exc:
        return {"api_error": str(exc), "api_status": exc.status}
    except NoAnswer as exc:
        return {"api_error": str(exc), "api_no_answer": True}
    except GateError as exc:
        return {"api_error": str(exc)}
    # the API answers: everything else is read at once, models built as answers arrive
    pods = pool.submit(lambda: tuple(Pod.from_k8s_dict(p) for p in cluster.list_pods(ns)))
    nodes = pool.submit(lambda: tuple(Node.from_k8s_dict(n) for n in cluster.list_nodes()))
    daemonsets = pool.submit(
        lambda: [Workload.from_k8s_dict(w, kind="DaemonSet") for w in cluster.list_daemonsets(ns)]
    )
    deployments = pool.submit(
        lambda: [Workload.from_k8s_dict(w, kind="Deployment") for w in cluster.list_deployments(ns)]
    )
    reviews = [pool.submit(cluster.access_reviews, ns, (req,)) for req in request.requirements]

    read_errors: list[str] = []

    def result(what: str, future: Future[Any], empty: Any) -> Any:
        try:
            return future.result()
        except GateError as exc:
            read_errors.append(f"{what}: {exc}")
            return empty

    answers: list[JSONDict] = []
    for future in reviews:
        answer = result("access review", future, None)
        if answer is None:
            answers = []  # judged as a whole: one failure, one error
            break
        answers += answer
    out: dict[str, Any] = {
        "server_version": version,
        "access_reviews": tuple(AccessReview.from_k8s_dict(r) for r in answers),
        "nodes": result("nodes", nodes, ()),
    }
    pod_models: tuple[Pod, ...] = result("pods", pods, ())
    # the validator's log is read only once its pod is known
    logs = _validator_logs(cluster, ns, pod_models) if pod_models else {}
    out["pods"] = pod_models
    out["workloads"] = (
        *result("daemonsets", daemonsets, []),
        *result("deployments", deployments, []),
    )
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
    helm: HelmReader | None,
    reader: Future[ReleaseReader] | None,
    request: CollectRequest,
    error: str | None,
    pool: ThreadPoolExecutor,
) -> dict[str, Any]:
    if helm is None or reader is None:
        return {"helm_error": error or "no helm client configured"}
    chart = request.chart
    # Rendering and listing chart versions are local (they change nothing and read no
    # release), so they start with `helm version` rather than after it; their results
    # are used only once the client proves to be Helm 3 or 4.
    render = versions = None
    if chart is not None:
        render = pool.submit(_render, helm, request)
        versions = pool.submit(chart.versions)
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
        except GateError as exc:
            out["helm_error"] = f"cannot list chart versions of {chart}: {exc}"
            return out
        out.update(render.result())
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


def _release_state(
    reader: ReleaseReader, request: CollectRequest, pool: ThreadPoolExecutor
) -> dict[str, Any]:
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


def _render(helm: HelmReader, request: CollectRequest) -> dict[str, Any]:
    """Render the target chart with the snapshot values (the chart's own validation)."""
    target = request.target_version
    snapshot = request.values_snapshot
    if target is None or snapshot is None or not snapshot.is_file():
        return {}
    try:
        helm.template(
            request.release,
            request.chart,
            target,
            request.namespace,
            values_files=[os.fspath(snapshot), *map(os.fspath, request.extra_values_files)],
            set_values=request.extra_sets,
        )
    except HelmFailed as exc:
        return {"target_render": ChartRender(target, succeeded=False, error=exc.stderr)}
    except GateError as exc:
        return {"target_render": ChartRender(target, succeeded=False, error=str(exc))}
    return {"target_render": ChartRender(target, succeeded=True)}
