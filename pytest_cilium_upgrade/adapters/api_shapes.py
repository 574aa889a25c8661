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
"""

from __future__ import annotations

import json
from typing import Any, TypedDict

import msgspec

# ---------------------------------------------------------------- shared pieces


class Meta(TypedDict, total=False):
    name: str | None
    namespace: str | None
    labels: dict[str, str] | None
    generation: int | None
    creationTimestamp: str | None
    deletionTimestamp: str | None


class Requirement(TypedDict, total=False):
    key: str | None
    operator: str | None
    values: list[str] | None


class Selector(TypedDict, total=False):
    matchLabels: dict[str, str] | None
    matchExpressions: list[Requirement] | None


class Condition(TypedDict, total=False):
    type: str | None
    status: str | None
    reason: str | None
    message: str | None


class Taint(TypedDict, total=False):
    key: str | None
    value: str | None
    effect: str | None


class Toleration(TypedDict, total=False):
    key: str | None
    operator: str | None
    value: str | None
    effect: str | None
    tolerationSeconds: int | None


class NodeSelectorTerm(TypedDict, total=False):
    matchExpressions: list[Requirement] | None
    matchFields: list[Requirement] | None


class NodeSelector(TypedDict, total=False):
    nodeSelectorTerms: list[NodeSelectorTerm] | None


class NodeAffinity(TypedDict, total=False):
    requiredDuringSchedulingIgnoredDuringExecution: NodeSelector | None


class PodAffinityTerm(TypedDict, total=False):
    labelSelector: Selector | None
    namespaceSelector: Selector | None
    namespaces: list[str] | None
    topologyKey: str | None


class PodAffinity(TypedDict, total=False):
    requiredDuringSchedulingIgnoredDuringExecution: list[PodAffinityTerm] | None


class Affinity(TypedDict, total=False):
    nodeAffinity: NodeAffinity | None
    podAffinity: PodAffinity | None


class Container(TypedDict, total=False):
    name: str | None
    image: str | None


class PodSpec(TypedDict, total=False):
    nodeName: str | None
    nodeSelector: dict[str, str] | None
    tolerations: list[Toleration] | None
    affinity: Affinity | None
    hostNetwork: bool | None
    containers: list[Container] | None
    initContainers: list[Container] | None


# ---------------------------------------------------------------- nodes


class NodeSpec(TypedDict, total=False):
    taints: list[Taint] | None
    unschedulable: bool | None


class NodeStatus(TypedDict, total=False):
    conditions: list[Condition] | None


class Node(TypedDict, total=False):
    kind: str | None
    metadata: Meta | None
    spec: NodeSpec | None
    status: NodeStatus | None


# ---------------------------------------------------------------- pods


class ContainerStateWaiting(TypedDict, total=False):
    reason: str | None
    message: str | None


class ContainerStateTerminated(TypedDict, total=False):
    reason: str | None
    exitCode: int | None


class ContainerState(TypedDict, total=False):
    # presence matters ("running" in state), not content
    running: dict[str, Any] | None
    waiting: ContainerStateWaiting | None
    terminated: ContainerStateTerminated | None


class ContainerStatus(TypedDict, total=False):
    name: str | None
    image: str | None
    ready: bool | None
    restartCount: int | None
    state: ContainerState | None
    lastState: ContainerState | None


class PodStatus(TypedDict, total=False):
    phase: str | None
    conditions: list[Condition] | None
    containerStatuses: list[ContainerStatus] | None
    initContainerStatuses: list[ContainerStatus] | None


class Pod(TypedDict, total=False):
    kind: str | None
    metadata: Meta | None
    spec: PodSpec | None
    status: PodStatus | None


# ---------------------------------------------------------------- DaemonSets, Deployments


class TemplateMeta(TypedDict, total=False):
    labels: dict[str, str] | None


class PodTemplate(TypedDict, total=False):
    metadata: TemplateMeta | None
    spec: PodSpec | None


class WorkloadSpec(TypedDict, total=False):
    replicas: int | None
    selector: Selector | None
    template: PodTemplate | None


class WorkloadStatus(TypedDict, total=False):
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


class Workload(TypedDict, total=False):
    kind: str | None
    metadata: Meta | None
    spec: WorkloadSpec | None
    status: WorkloadStatus | None


# ---------------------------------------------------------------- lists


class NodeList(TypedDict, total=False):
    items: list[Node] | None


class PodList(TypedDict, total=False):
    items: list[Pod] | None


class WorkloadList(TypedDict, total=False):
    items: list[Workload] | None


_DECODERS: dict[type[Any], msgspec.json.Decoder[Any]] = {
    shape: msgspec.json.Decoder(shape) for shape in (NodeList, PodList, WorkloadList)
}


def decode_list(data: bytes, shape: type[Any] | None) -> dict[str, Any]:
    """A LIST response: only the fields of ``shape`` (a list shape above), or all of it."""
    if shape is not None:
        try:
            decoded: dict[str, Any] = _DECODERS[shape].decode(data)
            return decoded
        except msgspec.DecodeError:
            pass  # a field of a type no shape expected: read the whole response
    whole: dict[str, Any] = json.loads(data)
    return whole
