"""Node topology from a kind cluster configuration, named, labelled and tainted as kind does.

kind names nodes ``<cluster>-control-plane``, ``<cluster>-control-plane2``, ...,
``<cluster>-worker``, ``<cluster>-worker2``, ...; control-plane nodes carry the
``node-role.kubernetes.io/control-plane`` label and, on clusters with more than one
node, the ``node-role.kubernetes.io/control-plane:NoSchedule`` taint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cilium_sandbox.errors import SandboxError

CONTROL_PLANE_ROLE_LABEL = "node-role.kubernetes.io/control-plane"
KIND_DEFAULT_NAME = "kind"
_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


@dataclass(frozen=True)
class Taint:
    key: str
    effect: str
    value: str = ""

    @classmethod
    def parse(cls, text: str, source: str = "taint") -> Taint:
        """Parse ``key[=value]:Effect`` as ``kubectl taint`` writes it."""
        key_value, sep, effect = text.rpartition(":")
        if not sep or not key_value or effect not in _EFFECTS:
            raise SandboxError(
                f"{source}: {text!r} is not a taint; expected key[=value]:Effect "
                f"with Effect one of {', '.join(_EFFECTS)}"
            )
        key, _, value = key_value.partition("=")
        return cls(key=key, value=value, effect=effect)

    def to_k8s(self) -> dict[str, str]:
        taint = {"key": self.key, "effect": self.effect}
        if self.value:
            taint["value"] = self.value
        return taint

    def __str__(self) -> str:
        value = f"={self.value}" if self.value else ""
        return f"{self.key}{value}:{self.effect}"


@dataclass(frozen=True)
class NodeSpec:
    name: str
    role: str  # "control-plane" or "worker"
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()

    def manifest(self) -> dict[str, Any]:
        """The Node object to create (kwok takes it over and keeps it Ready)."""
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": dict(self.labels),
                "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
            },
            "spec": {"taints": [t.to_k8s() for t in self.taints]},
        }


@dataclass(frozen=True)
class Topology:
    cluster_name: str
    nodes: tuple[NodeSpec, ...]

    @property
    def control_plane(self) -> list[NodeSpec]:
        return [n for n in self.nodes if n.role == "control-plane"]

    @property
    def workers(self) -> list[NodeSpec]:
        return [n for n in self.nodes if n.role == "worker"]


def _numbered(prefix: str, index: int) -> str:
    return prefix if index == 0 else f"{prefix}{index + 1}"


def load_kind_config(path: Path) -> tuple[str, list[tuple[str, dict[str, str]]]]:
    """Read a kind config: its cluster name and each node's role and extra labels."""
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SandboxError(f"cannot read topology file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise SandboxError(f"topology file {path} is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("kind") != "Cluster":
        raise SandboxError(f"topology file {path}: expected a kind `kind: Cluster` document")
    name = doc.get("name", KIND_DEFAULT_NAME)
    if not isinstance(name, str) or not name:
        raise SandboxError(f"topology file {path}: `name` must be a non-empty string")
    raw_nodes = doc.get("nodes") or [{"role": "control-plane"}]
    if not isinstance(raw_nodes, list):
        raise SandboxError(f"topology file {path}: `nodes` must be a list")
    nodes: list[tuple[str, dict[str, str]]] = []
    for i, node in enumerate(raw_nodes):
        where = f"topology file {path}: nodes[{i}]"
        if not isinstance(node, dict):
            raise SandboxError(f"{where} must be a mapping with a `role`")
        role = node.get("role", "control-plane")
        if role not in ("control-plane", "worker"):
            raise SandboxError(f"{where}.role is {role!r}; expected control-plane or worker")
        labels = node.get("labels") or {}
        if not isinstance(labels, dict):
            raise SandboxError(f"{where}.labels must be a mapping")
        nodes.append((role, {str(k): str(v) for k, v in labels.items()}))
    if not any(role == "control-plane" for role, _ in nodes):
        raise SandboxError(f"topology file {path}: needs at least one control-plane node")
    return name, nodes


def build_topology(
    kind_config: Path,
    *,
    control_planes: int | None = None,
    workers: int | None = None,
    extra_taints: Sequence[tuple[str, Taint]] = (),
) -> Topology:
    """Nodes as kind would create them from ``kind_config``.

    ``control_planes`` / ``workers`` override how many nodes of each role there are
    (nodes declared in the file keep their labels; added ones get kind's defaults).
    ``extra_taints`` pairs a node name (or ``control-plane`` / ``worker`` for every
    node of that role) with a taint to add.
    """
    cluster, declared = load_kind_config(kind_config)
    for role, wanted, minimum in (("control-plane", control_planes, 1), ("worker", workers, 0)):
        if wanted is None:
            continue
        if wanted < minimum:
            raise SandboxError(f"number of {role} nodes must be at least {minimum}, not {wanted}")
        mine = [n for n in declared if n[0] == role]
        others = [n for n in declared if n[0] != role]
        mine = (mine + [(role, {})] * wanted)[:wanted]
        declared = mine + others if role == "control-plane" else others + mine
    multi_node = len(declared) > 1
    counters = {"control-plane": 0, "worker": 0}
    specs: list[NodeSpec] = []
    for role, extra_labels in declared:
        name = _numbered(f"{cluster}-{role}", counters[role])
        counters[role] += 1
        labels = {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": "amd64",
            "type": "kwok",
        }
        taints: list[Taint] = []
        if role == "control-plane":
            labels[CONTROL_PLANE_ROLE_LABEL] = ""
            labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
            if multi_node:
                taints.append(Taint(CONTROL_PLANE_ROLE_LABEL, "NoSchedule"))
        labels.update(extra_labels)
        specs.append(NodeSpec(name=name, role=role, labels=labels, taints=tuple(taints)))
    names = {s.name for s in specs}
    for target, taint in extra_taints:
        if target not in names and target not in counters:
            raise SandboxError(
                f"extra taint {taint} names node {target!r}, which is not in the topology "
                f"({', '.join(sorted(names))})"
            )
    final = []
    for spec in specs:
        added = tuple(t for target, t in extra_taints if target in (spec.name, spec.role))
        final.append(
            NodeSpec(spec.name, spec.role, spec.labels, spec.taints + added) if added else spec
        )
    return Topology(cluster_name=cluster, nodes=tuple(final))
