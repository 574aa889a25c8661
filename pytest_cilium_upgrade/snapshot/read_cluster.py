"""The cluster's part of a snapshot: version, access reviews, nodes, pods, workloads,
the CNP validator's logs, and the ``.Capabilities`` the target chart is rendered for."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import Any

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.errors import ApiError, GateError, NoAnswer, NotAnApi, NotFound
from pytest_cilium_upgrade.snapshot.model import (
    AccessReview,
    ApiFailure,
    JSONDict,
    Node,
    Pod,
    Workload,
    as_selector,
)
from pytest_cilium_upgrade.snapshot.readers import ClusterReader, CollectRequest, ModelLister
from pytest_cilium_upgrade.snapshot.workers import Workers


@dataclass(frozen=True)
class Capabilities:
    """What ``helm upgrade`` reads from the cluster for a chart's ``.Capabilities``."""

    kube_version: str
    api_versions: tuple[str, ...]


def collect_cluster(
    cluster: ClusterReader | None,
    request: CollectRequest,
    error: str | None,
    pool: Workers,
    capabilities: Future[Capabilities] | None = None,
) -> dict[str, Any]:
    out = _read_cluster(cluster, request, error, pool, capabilities)
    if capabilities is not None and "api_failure" in out:  # discovery was never asked
        settle_failed(capabilities, GateError(out["api_failure"].message))
    return out


def _read_cluster(
    cluster: ClusterReader | None,
    request: CollectRequest,
    error: str | None,
    pool: Workers,
    capabilities: Future[Capabilities] | None,
) -> dict[str, Any]:
    if cluster is None:  # the adapter could not be built: the kubeconfig is at fault
        failure = ApiFailure(error or "no cluster configured", headline="kubeconfig not usable")
        return {"api_failure": failure}
    ns = request.namespace
    try:
        version = cluster.server_version()
    except NotAnApi as exc:
        server = getattr(cluster, "server", None) or "the kubeconfig's server address"
        headline = f"not a Kubernetes API server at {server}"
        return {"api_failure": ApiFailure(str(exc), status=exc.status, headline=headline)}
    except ApiError as exc:
        return {"api_failure": ApiFailure(str(exc), status=exc.status)}
    except NotFound as exc:  # the API server's own 404: it serves no /version
        return {"api_failure": ApiFailure(str(exc), status=404)}
    except NoAnswer as exc:
        return {"api_failure": ApiFailure(str(exc), no_answer=True)}
    except GateError as exc:
        return {"api_failure": ApiFailure(str(exc))}
    if capabilities is not None:  # first: the render waits for it
        discovery = pool.submit(cluster.api_versions)
        discovery.add_done_callback(lambda done: _settle(capabilities, version, done))
    # the API answers: everything else is read at once, models built as answers arrive
    if isinstance(cluster, ModelLister):  # models page by page, not all the JSON at once
        lister = cluster
        pods = pool.submit(lambda: tuple(lister.pods_as(ns, Pod.from_k8s_dict)))
        nodes = pool.submit(lambda: tuple(lister.nodes_as(Node.from_k8s_dict)))
    else:
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


def _settle(capabilities: Future[Capabilities], version: str, discovery: Future[list[str]]) -> None:
    """What the discovery read (or why it failed), for the render waiting on it."""
    try:
        api_versions = discovery.result()
    except BaseException as exc:  # handed to the render, which says why it did not run
        settle_failed(capabilities, exc)
    else:
        with contextlib.suppress(InvalidStateError):  # settled already (interrupted)
            capabilities.set_result(Capabilities(version, tuple(api_versions)))


def settle_failed(capabilities: Future[Capabilities], exc: BaseException) -> None:
    with contextlib.suppress(InvalidStateError):  # the first word on it stands
        capabilities.set_exception(exc)


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
