"""Selectors: label selectors, node selector terms and pod affinity terms.

A label selector picks pods (and namespaces) by their labels; node selector terms and
pod affinity terms are the required parts of a pod's affinity, which decide the nodes
it may be placed on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pytest_cilium_upgrade.snapshot.model.jsondata import (
    JSONDict,
    as_labels,
    as_list,
    as_map,
    as_str,
)

# --------------------------------------------------------------------------- label selectors


@dataclass(frozen=True)
class LabelSelectorRequirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()

    @classmethod
    def from_k8s_dict(cls, data: JSONDict) -> LabelSelectorRequirement:
        return cls(
            as_str(data.get("key")),
            as_str(data.get("operator")),
            tuple(as_str(v) for v in as_list(data.get("values"))),
        )

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "In":
            return present and labels[self.key] in self.values
        if self.operator == "NotIn":
            return not present or labels[self.key] not in self.values
        if self.operator == "Exists":
            return present
        if self.operator == "DoesNotExist":
            return not present
        return False

    def __str__(self) -> str:
        if self.operator == "In":
            return f"{self.key} in ({','.join(self.values)})"
        if self.operator == "NotIn":
            return f"{self.key} notin ({','.join(self.values)})"
        if self.operator == "Exists":
            return self.key
        if self.operator == "DoesNotExist":
            return f"!{self.key}"
        return f"{self.key} {self.operator} ({','.join(self.values)})"


@dataclass(frozen=True)
class LabelSelector:
    """A ``metav1.LabelSelector``. An empty selector matches every object."""

    match_labels: Mapping[str, str] = field(default_factory=dict)
    match_expressions: tuple[LabelSelectorRequirement, ...] = ()

    @classmethod
    def from_k8s_dict(cls, data: JSONDict) -> LabelSelector:
        return cls(
            as_labels(data.get("matchLabels")),
            tuple(
                LabelSelectorRequirement.from_k8s_dict(as_map(e))
                for e in as_list(data.get("matchExpressions"))
            ),
        )

    @classmethod
    def parse(cls, text: str) -> LabelSelector:
        """Parse the string form used by ``kubectl -l`` and the API's ``labelSelector``.

        Supports ``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``, ``k in (a,b)``, ``k notin (a,b)``.
        """
        labels: dict[str, str] = {}
        exprs: list[LabelSelectorRequirement] = []
        for raw in _split_selector(text):
            part = raw.strip()
            if not part:
                continue
            lowered = part.replace("\t", " ")
            if " notin " in lowered or " in " in lowered:
                op = "NotIn" if " notin " in lowered else "In"
                key, _, rest = lowered.partition(" notin " if op == "NotIn" else " in ")
                values = tuple(v.strip() for v in rest.strip().strip("()").split(",") if v.strip())
                exprs.append(LabelSelectorRequirement(key.strip(), op, values))
            elif "!=" in part:
                key, _, value = part.partition("!=")
                exprs.append(LabelSelectorRequirement(key.strip(), "NotIn", (value.strip(),)))
            elif "=" in part:
                key, _, value = part.partition("==") if "==" in part else part.partition("=")
                labels[key.strip()] = value.strip()
            elif part.startswith("!"):
                exprs.append(LabelSelectorRequirement(part[1:].strip(), "DoesNotExist"))
            else:
                exprs.append(LabelSelectorRequirement(part, "Exists"))
        return cls(labels, tuple(exprs))

    def matches(self, labels: Mapping[str, str]) -> bool:
        for key, value in self.match_labels.items():
            if labels.get(key) != value:
                return False
        return all(expr.matches(labels) for expr in self.match_expressions)

    @property
    def empty(self) -> bool:
        return not self.match_labels and not self.match_expressions

    def __str__(self) -> str:
        parts = [f"{k}={v}" for k, v in sorted(self.match_labels.items())]
        parts.extend(str(e) for e in self.match_expressions)
        return ",".join(parts)


def _split_selector(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def as_selector(selector: str | LabelSelector) -> LabelSelector:
    return selector if isinstance(selector, LabelSelector) else LabelSelector.parse(selector)


# --------------------------------------------------------------------------- affinity terms


@dataclass(frozen=True)
class NodeSelectorRequirement:
    """One ``matchExpressions``/``matchFields`` entry (In, NotIn, Exists, DoesNotExist, Gt, Lt)."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    @classmethod
    def from_k8s_dict(cls, data: JSONDict) -> NodeSelectorRequirement:
        return cls(
            as_str(data.get("key")),
            as_str(data.get("operator")),
            tuple(as_str(v) for v in as_list(data.get("values"))),
        )

    def __str__(self) -> str:
        if self.operator in ("Exists", "DoesNotExist"):
            return f"{self.key} {self.operator}"
        return f"{self.key} {self.operator} [{', '.join(self.values)}]"


@dataclass(frozen=True)
class NodeSelectorTerm:
    """Requirements ANDed together; the terms of a node affinity are ORed."""

    match_expressions: tuple[NodeSelectorRequirement, ...] = ()
    match_fields: tuple[NodeSelectorRequirement, ...] = ()

    @classmethod
    def from_k8s_dict(cls, data: JSONDict) -> NodeSelectorTerm:
        return cls(
            tuple(
                NodeSelectorRequirement.from_k8s_dict(as_map(e))
                for e in as_list(data.get("matchExpressions"))
            ),
            tuple(
                NodeSelectorRequirement.from_k8s_dict(as_map(e))
                for e in as_list(data.get("matchFields"))
            ),
        )

    def __str__(self) -> str:
        parts = [str(e) for e in self.match_expressions]
        parts.extend(f"field {e}" for e in self.match_fields)
        return " and ".join(parts) if parts else "(empty term)"


@dataclass(frozen=True)
class PodAffinityTerm:
    """A required pod (anti-)affinity term.

    ``label_selector`` None selects no pod. With neither ``namespaces`` nor
    ``namespace_selector`` the term applies to the incoming pod's own namespace;
    an empty ``namespace_selector`` selects every namespace.
    """

    label_selector: LabelSelector | None
    topology_key: str
    namespaces: tuple[str, ...] = ()
    namespace_selector: LabelSelector | None = None

    @classmethod
    def from_k8s_dict(cls, data: JSONDict) -> PodAffinityTerm:
        sel = data.get("labelSelector")
        ns_sel = data.get("namespaceSelector")
        return cls(
            LabelSelector.from_k8s_dict(as_map(sel)) if isinstance(sel, Mapping) else None,
            as_str(data.get("topologyKey")),
            tuple(as_str(n) for n in as_list(data.get("namespaces"))),
            LabelSelector.from_k8s_dict(as_map(ns_sel)) if isinstance(ns_sel, Mapping) else None,
        )

    def __str__(self) -> str:
        sel = "nothing" if self.label_selector is None else str(self.label_selector) or "all pods"
        return f"pods matching {sel} on the same {self.topology_key}"
