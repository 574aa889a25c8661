"""The snapshot of cluster and Helm state that the checks read.

:class:`ClusterSnapshot` gathers what one phase's checks read. Its parts are defined
in the modules of this package, and imported from here: :mod:`.selectors` (label
selectors, affinity terms), :mod:`.objects` (nodes, pods, workloads), :mod:`.release`
(Helm's release, history, render and the values file) and :mod:`.jsondata` (the JSON
they are built from).

Every type is a frozen dataclass built from plain data. The ``from_k8s_dict``
constructors take the JSON form of Kubernetes objects (camelCase keys, as
``kubectl get -o json`` prints them or ``ApiClient().sanitize_for_serialization``
returns them); the ``from_helm_*`` constructors take Helm's ``-o json`` output.
Missing fields fall back to Kubernetes' defaults, so rendered manifests (no
status) and partial fixtures load too.

The dataclasses hold mappings, so they compare by value but are not hashable.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.snapshot.model.jsondata import (
    JSONDict,
    as_bool,
    as_list,
    as_map,
    as_str,
)
from pytest_cilium_upgrade.snapshot.model.objects import (
    ContainerSpec,
    ContainerStatus,
    Node,
    Pod,
    PodSpecSummary,
    Taint,
    Toleration,
    Workload,
)
from pytest_cilium_upgrade.snapshot.model.release import (
    ChartRender,
    ChartValues,
    HelmHistoryEntry,
    HelmRelease,
    ValuesSnapshotFile,
)
from pytest_cilium_upgrade.snapshot.model.selectors import (
    LabelSelector,
    LabelSelectorRequirement,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    PodAffinityTerm,
    as_selector,
)

__all__ = [
    "AccessReview",
    "ChartRender",
    "ChartValues",
    "ClusterSnapshot",
    "ContainerSpec",
    "ContainerStatus",
    "HelmHistoryEntry",
    "HelmRelease",
    "JSONDict",
    "LabelSelector",
    "LabelSelectorRequirement",
    "Node",
    "NodeSelectorRequirement",
    "NodeSelectorTerm",
    "Pod",
    "PodAffinityTerm",
    "PodSpecSummary",
    "Taint",
    "Toleration",
    "ValuesSnapshotFile",
    "Workload",
    "as_selector",
]

# --------------------------------------------------------------------------- RBAC


@dataclass(frozen=True)
class AccessReview:
    """The answer to one SelfSubjectAccessReview."""

    verb: str
    resource: str
    group: str = ""
    subresource: str = ""
    namespace: str = ""
    allowed: bool = False
    reason: str = ""

    @classmethod
    def from_k8s_dict(cls, data: JSONDict) -> AccessReview:
        attrs = as_map(as_map(data.get("spec")).get("resourceAttributes"))
        status = as_map(data.get("status"))
        return cls(
            verb=as_str(attrs.get("verb")),
            resource=as_str(attrs.get("resource")),
            group=as_str(attrs.get("group")),
            subresource=as_str(attrs.get("subresource")),
            namespace=as_str(attrs.get("namespace")),
            allowed=as_bool(status.get("allowed")),
            reason=as_str(status.get("reason")),
        )

    def answers(self, req: defaults.AccessRequirement) -> bool:
        return (self.verb, self.resource, self.group, self.subresource) == (
            req.verb,
            req.resource,
            req.group,
            req.subresource,
        )


# --------------------------------------------------------------------------- snapshot


@dataclass(frozen=True)
class ApiFailure:
    """Why the cluster could not be read at all (its first request failed)."""

    message: str
    # the HTTP status when the API server answered, but with an error (429, 5xx, ...)
    status: int | None = None
    # the API server was reached but did not answer within the request timeout
    no_answer: bool = False
    # what went wrong in a few words, where it is not the API server being away or
    # refusing: "kubeconfig not usable", "not a Kubernetes API server at <address>"
    headline: str | None = None


@dataclass(frozen=True)
class ClusterSnapshot:
    """Everything one phase's checks read, collected once.

    ``api_failure`` / ``helm_error`` record that the cluster or the helm client could
    not be reached at all; the checks that need them are then skipped.
    ``release_error`` records that the release state (Helm's records) could not be
    read although helm works.
    """

    namespace: str = defaults.DEFAULT_NAMESPACE
    api_failure: ApiFailure | None = None
    server_version: str | None = None
    access_reviews: tuple[AccessReview, ...] = ()
    helm_version: str | None = None
    helm_error: str | None = None
    release_error: str | None = None
    # the target chart's versions could not be listed (a repository not added, say)
    chart_error: str | None = None
    release: HelmRelease | None = None
    release_history: tuple[HelmHistoryEntry, ...] = ()
    preflight_release: HelmRelease | None = None
    available_chart_versions: tuple[str, ...] = ()
    nodes: tuple[Node, ...] = ()
    workloads: tuple[Workload, ...] = ()
    pods: tuple[Pod, ...] = ()
    validator_log: str | None = None
    validator_previous_log: str | None = None
    values_snapshot: ValuesSnapshotFile | None = None
    live_values: Mapping[str, Any] | None = None
    target_render: ChartRender | None = None
    # the target chart's values.yaml and values.schema.json
    target_chart_values: ChartValues | None = None
    # reads that failed although the API answered (e.g. a forbidden LIST)
    read_errors: tuple[str, ...] = ()

    @classmethod
    def from_k8s_objects(cls, objects: Iterable[JSONDict], **fields: Any) -> ClusterSnapshot:
        """Sort Node, Pod, DaemonSet, Deployment (and ``List`` wrappers) into a snapshot.

        Other kinds are ignored; ``fields`` fill the remaining attributes.
        """
        nodes: list[Node] = list(fields.pop("nodes", ()))
        workloads: list[Workload] = list(fields.pop("workloads", ()))
        pods: list[Pod] = list(fields.pop("pods", ()))
        for obj in _flatten(objects):
            kind = as_str(obj.get("kind"))
            if kind == "Node":
                nodes.append(Node.from_k8s_dict(obj))
            elif kind == "Pod":
                pods.append(Pod.from_k8s_dict(obj))
            elif kind in ("DaemonSet", "Deployment"):
                workloads.append(Workload.from_k8s_dict(obj))
        return cls(nodes=tuple(nodes), workloads=tuple(workloads), pods=tuple(pods), **fields)

    def node(self, name: str) -> Node | None:
        for node in self.nodes:
            if node.name == name:
                return node
        return None

    def workload(self, kind: str, name: str) -> Workload | None:
        for wl in self.workloads:
            if wl.kind == kind and wl.name == name:
                return wl
        return None

    def pods_matching(
        self, selector: str | LabelSelector, namespace: str | None = None
    ) -> tuple[Pod, ...]:
        """Pods whose labels match ``selector`` (in ``namespace``; default the snapshot's)."""
        ns = self.namespace if namespace is None else namespace
        key = (selector, ns) if isinstance(selector, str) else None
        if key is not None and key in self._pods_matching:
            return self._pods_matching[key]
        sel = as_selector(selector)
        found = tuple(
            p for p in self.pods if (not ns or p.namespace == ns) and sel.matches(p.labels)
        )
        if key is not None:
            self._pods_matching[key] = found
        return found

    @functools.cached_property
    def _pods_matching(self) -> dict[tuple[str, str], tuple[Pod, ...]]:
        """The answers of :meth:`pods_matching` by selector: several checks ask alike."""
        return {}

    def component_pods(self, component: defaults.Component) -> tuple[Pod, ...]:
        return self.pods_matching(component.selector)

    def component_workload(self, component: defaults.Component) -> Workload | None:
        return self.workload(component.kind, component.name)


def _flatten(objects: Iterable[JSONDict]) -> Iterable[JSONDict]:
    for obj in objects:
        if not isinstance(obj, Mapping):
            continue
        if as_str(obj.get("kind")).endswith("List") or ("items" in obj and "kind" not in obj):
            kind = as_str(obj.get("kind")).removesuffix("List")
            for item in as_list(obj.get("items")):
                item_map = as_map(item)
                if "kind" not in item_map and kind:
                    item_map = {**item_map, "kind": kind}
                yield item_map
        else:
            yield obj
