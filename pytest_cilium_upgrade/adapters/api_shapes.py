"""The parts of Kubernetes list responses that the model reads, as types to decode into.

A pod as the API server sends it is mostly ``managedFields``, volumes, environment
and probes; :mod:`pytest_cilium_upgrade.snapshot.model` reads a few dozen fields of it. Decoding
a LIST with :func:`decode_list` and one of the shapes below builds only those fields
(msgspec skips the rest while parsing), which makes decoding the pods of a 500-node
cluster several times faster than ``json.loads``. The result is still plain dicts, so
the model reads them exactly as it reads a whole object.

Each shape must name every field the model's ``from_k8s_dict`` reads; the unit test
``test_api_shapes`` decodes fully populated objects both ways and compares the models.
Every field is optional (``total=False``) and every leaf admits ``None``; a response
that still does not fit (a type the server never sends) is decoded whole instead.

A shape is named after the API type it stands for with a ``Shape`` suffix
(``PodShape``), apart from the model's class of the same object; the list shapes
that :func:`decode_list` takes are named as the API's lists are (``PodList``).
"""

from __future__ import annotations

import json
from typing import Any, TypedDict

import msgspec

from pytest_cilium_upgrade.snapshot.model.jsondata import JSONDict

# ---------------------------------------------------------------- shared pieces


class MetaShape(TypedDict, total=False):
    name: str | None
    namespace: str | None
    labels: dict[str, str] | None
    generation: int | None
    creationTimestamp: str | None
    deletionTimestamp: str | None


class RequirementShape(TypedDict, total=False):
    key: str | None
    operator: str | None
    values: list[str] | None


class SelectorShape(TypedDict, total=False):
    matchLabels: dict[str, str] | None
    matchExpressions: list[RequirementShape] | None


class ConditionShape(TypedDict, total=False):
    type: str | None
    status: str | None
    reason: str | None
    message: str | None


class TaintShape(TypedDict, total=False):
    key: str | None
    value: str | None
    effect: str | None


class TolerationShape(TypedDict, total=False):
    key: str | None
    operator: str | None
    value: str | None
    effect: str | None
    tolerationSeconds: int | None


class NodeSelectorTermShape(TypedDict, total=False):
    matchExpressions: list[RequirementShape] | None
    matchFields: list[RequirementShape] | None


class NodeSelectorShape(TypedDict, total=False):
    nodeSelectorTerms: list[NodeSelectorTermShape] | None


class NodeAffinityShape(TypedDict, total=False):
    requiredDuringSchedulingIgnoredDuringExecution: NodeSelectorShape | None


class PodAffinityTermShape(TypedDict, total=False):
    labelSelector: SelectorShape | None
    namespaceSelector: SelectorShape | None
    namespaces: list[str] | None
    topologyKey: str | None


class PodAffinityShape(TypedDict, total=False):
    requiredDuringSchedulingIgnoredDuringExecution: list[PodAffinityTermShape] | None


class AffinityShape(TypedDict, total=False):
    nodeAffinity: NodeAffinityShape | None
    podAffinity: PodAffinityShape | None


class ContainerShape(TypedDict, total=False):
    name: str | None
    image: str | None


class PodSpecShape(TypedDict, total=False):
    nodeName: str | None
    nodeSelector: dict[str, str] | None
    tolerations: list[TolerationShape] | None
    affinity: AffinityShape | None
    hostNetwork: bool | None
    containers: list[ContainerShape] | None
    initContainers: list[ContainerShape] | None


# ---------------------------------------------------------------- nodes


class NodeSpecShape(TypedDict, total=False):
    taints: list[TaintShape] | None
    unschedulable: bool | None


class NodeStatusShape(TypedDict, total=False):
    conditions: list[ConditionShape] | None


class NodeShape(TypedDict, total=False):
    kind: str | None
    metadata: MetaShape | None
    spec: NodeSpecShape | None
    status: NodeStatusShape | None


# ---------------------------------------------------------------- pods


class ContainerStateWaitingShape(TypedDict, total=False):
    reason: str | None
    message: str | None


class ContainerStateTerminatedShape(TypedDict, total=False):
    reason: str | None
    exitCode: int | None


class ContainerStateShape(TypedDict, total=False):
    # presence matters ("running" in state), not content
    running: dict[str, Any] | None
    waiting: ContainerStateWaitingShape | None
    terminated: ContainerStateTerminatedShape | None


class ContainerStatusShape(TypedDict, total=False):
    name: str | None
    image: str | None
    ready: bool | None
    restartCount: int | None
    state: ContainerStateShape | None
    lastState: ContainerStateShape | None


class PodStatusShape(TypedDict, total=False):
    phase: str | None
    conditions: list[ConditionShape] | None
    containerStatuses: list[ContainerStatusShape] | None
    initContainerStatuses: list[ContainerStatusShape] | None


class PodShape(TypedDict, total=False):
    kind: str | None
    metadata: MetaShape | None
    spec: PodSpecShape | None
    status: PodStatusShape | None


# ---------------------------------------------------------------- DaemonSets, Deployments


class TemplateMetaShape(TypedDict, total=False):
    labels: dict[str, str] | None


class PodTemplateShape(TypedDict, total=False):
    metadata: TemplateMetaShape | None
    spec: PodSpecShape | None


class WorkloadSpecShape(TypedDict, total=False):
    replicas: int | None
    selector: SelectorShape | None
    template: PodTemplateShape | None


class WorkloadStatusShape(TypedDict, total=False):
    observedGeneration: int | None
    # DaemonSet
    desiredNumberScheduled: int | None
    currentNumberScheduled: int | None
    numberReady: int | None
    updatedNumberScheduled: int | None
    numberAvailable: int | None
    # Deployment
    replicas: int | None
    readyReplicas: int | None
    updatedReplicas: int | None
    availableReplicas: int | None


class WorkloadShape(TypedDict, total=False):
    kind: str | None
    metadata: MetaShape | None
    spec: WorkloadSpecShape | None
    status: WorkloadStatusShape | None


# ---------------------------------------------------------------- lists

# the list's own metadata: where the next page starts (``continue`` is a keyword)
ListMetaShape = TypedDict(
    "ListMetaShape",
    {"continue": str | None, "resourceVersion": str | None, "remainingItemCount": int | None},
    total=False,
)


class NodeList(TypedDict, total=False):
    metadata: ListMetaShape | None
    items: list[NodeShape] | None


class PodList(TypedDict, total=False):
    metadata: ListMetaShape | None
    items: list[PodShape] | None


class WorkloadList(TypedDict, total=False):
    metadata: ListMetaShape | None
    items: list[WorkloadShape] | None


_DECODERS: dict[type[Any], msgspec.json.Decoder[Any]] = {
    shape: msgspec.json.Decoder(shape) for shape in (NodeList, PodList, WorkloadList)
}


class _RawList(TypedDict, total=False):
    metadata: ListMetaShape | None
    items: list[msgspec.Raw] | None  # each item's JSON, found but not decoded


_HEAD = msgspec.json.Decoder(_RawList)


def list_head(data: bytes) -> tuple[str | None, int, int]:
    """A LIST response's ``continue`` token, how many items it holds and the size of the
    largest in bytes, without decoding the items (a few ms for megabytes).

    Raises ValueError for a body that is not JSON.
    """
    try:
        page = _HEAD.decode(data)
    except msgspec.DecodeError:
        whole = json.loads(data)  # a field of a type no shape expected, or no JSON at all
        if not isinstance(whole, dict):
            return None, 0, 0
        meta = whole.get("metadata")
        token = meta.get("continue") if isinstance(meta, dict) else None
        items = whole.get("items")
        return (str(token) if token else None), len(items) if isinstance(items, list) else 0, 0
    items = page.get("items") or []
    token = (page.get("metadata") or {}).get("continue")
    return token or None, len(items), max(map(len, items), default=0)


def decode_list(data: bytes, shape: type[Any] | None) -> JSONDict:
    """A LIST response: only the fields of ``shape`` (a list shape above), or all of it."""
    if shape is not None:
        try:
            decoded: JSONDict = _DECODERS[shape].decode(data)
            return decoded
        except msgspec.DecodeError:
            pass  # a field of a type no shape expected: read the whole response
    whole: JSONDict = json.loads(data)
    return whole
