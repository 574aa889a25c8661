"""Collect one :class:`~pytest_cilium_upgrade.snapshot.model.ClusterSnapshot` through the adapters.

The number of reads is fixed: the version, one SelfSubjectAccessReview per required
permission, one LIST each of nodes, pods, DaemonSets and Deployments in the release
namespace (filtered in memory by label selector), one LIST of Helm's release records,
and at most two log reads of the CNP validator. When the target chart is rendered, two
more: the aggregated discovery documents of ``/api`` and ``/apis``, for the API versions
the chart sees (a server without aggregated discovery costs one more per group version,
as it does Helm). Each LIST is read in pages of a few MB (the adapter's ``kube.paging``),
so only the pages grow with the number of nodes and pods; where the reader can
(:class:`~.readers.ModelLister`), nodes and pods become models page by page, and the JSON of
the whole collection is never held at once.

The requests are independent of one another, so they run concurrently on a few
connections, beside the helm processes (``version``, ``template``), and the snapshot
is ready after the slowest of them rather than after their sum. The render alone
waits for the cluster: it is given the cluster's Kubernetes version and API versions
(``--kube-version``, ``--api-versions``), so the chart's ``kubeVersion`` constraint and
its ``.Capabilities`` branches decide as they will in ``helm upgrade``. They run on daemon
threads (:class:`~.workers.Workers`), never joined on an interruption: a Ctrl-C or SIGTERM while
requests hang cancels the queued ones and abandons those under way, so the run goes on
to its clean-up at once instead of waiting out every request's timeout.

Python's cyclic garbage collector is paused while a snapshot is read. Decoding the
pods of a large cluster makes hundreds of thousands of dicts, and every few hundred
of them start a collection that walks the long-lived objects of the process (pytest,
the kubernetes client): at 500 nodes that was a fifth of the time to verdict. The
objects made here hold no reference cycles; the pause ends with the snapshot.

The collector depends only on the narrow reader interfaces of :mod:`.readers`, so unit
tests can hand it in-memory fakes of our own adapters.
"""

from __future__ import annotations

import stat
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from pytest_cilium_upgrade.adapters.files import read_regular_text
from pytest_cilium_upgrade.errors import GateError
from pytest_cilium_upgrade.snapshot.model import ClusterSnapshot, ValuesSnapshotFile
from pytest_cilium_upgrade.snapshot.read_cluster import Capabilities, collect_cluster, settle_failed
from pytest_cilium_upgrade.snapshot.read_helm import (
    RecordReleases,
    collect_helm,
    read_release,
    release_reader,
    renders,
)
from pytest_cilium_upgrade.snapshot.readers import (
    ClusterReader,
    CollectRequest,
    HelmReader,
    ReleaseReader,
)
from pytest_cilium_upgrade.snapshot.workers import Workers, gc_paused

# What the gate and the upgrade use to read, importable from here with collect().
__all__ = [
    "CollectRequest",
    "RecordReleases",
    "ReleaseReader",
    "collect",
    "read_release",
    "read_values_snapshot",
    "release_reader",
]


def read_values_snapshot(path: Path) -> ValuesSnapshotFile:
    """The snapshot file as it is on disk; its text is parsed (and never echoed) by the checks."""
    try:
        info = path.stat()
        text = read_regular_text(path)  # a FIFO or device there is refused, not read
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
        Workers(_API_WORKERS, "cilium-api") as api,
        Workers(_HELM_WORKERS, "cilium-helm") as procs,
    ):
        # Helm's records are a cluster read: they start now, beside `helm version`
        reader: Future[ReleaseReader] | None = None
        if helm is not None and releases is not None:
            reader = Future()
            reader.set_result(releases)
        elif helm is not None:
            reader = api.submit(release_reader, helm, cluster, request)
        # the render waits for what the cluster says of itself
        capabilities: Future[Capabilities] | None = Future() if renders(request) else None
        helm_part = procs.submit(
            collect_helm, helm, reader, request, helm_error, procs, capabilities
        )
        try:
            fields.update(collect_cluster(cluster, request, cluster_error, api, capabilities))
        except BaseException:
            # interrupted: the render, waiting on a thread of its own, is not left hanging
            if capabilities is not None:
                settle_failed(capabilities, GateError("the cluster was not read"))
            raise
        fields.update(helm_part.result())
    if request.values_snapshot is not None:
        fields["values_snapshot"] = read_values_snapshot(request.values_snapshot)
    return ClusterSnapshot(**fields)
