"""The saved values checked against the target chart: paths it no longer defines.

Helm does not refuse a value the chart does not read: the release silently takes the
chart's default in its place. ``tunnel: disabled`` (native routing) under the 1.15.0
chart, which no longer reads ``tunnel``, turns the cluster to the VXLAN overlay, and
the chart renders without a word. So the paths of the user's values are compared with
what the target chart defines:

* the keys of its ``values.yaml``, including those it documents only in comments
  (``# devices: ""``: Cilium's chart reads values it leaves unset by default);
* the keys its ``values.schema.json`` declares (``properties``, ``patternProperties``).

A key either of them knows is defined. Nothing below a free-form value is looked at:
a map or list that is empty in the chart's defaults (``podAnnotations: {}``,
``extraEnv: []``), any list, a value whose default is a scalar or null, an object the
schema leaves open (no ``properties``, or ``additionalProperties``), and the keys the
chart hands to Kubernetes as they are (:data:`~pytest_cilium_upgrade.defaults.FREE_FORM_VALUE_KEYS`,
e.g. ``nodeSelector``, and every ``*annotations`` / ``*labels``).

Findings name paths and keys only: values may be secret and are never read out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import yaml

from pytest_cilium_upgrade import defaults, yamltext
from pytest_cilium_upgrade.checks.params import CheckParams
from pytest_cilium_upgrade.checks.result import CheckResult, _fail, _pass, _skip, _warn
from pytest_cilium_upgrade.checks.values import snapshot_values
from pytest_cilium_upgrade.snapshot.model import ChartValues, ClusterSnapshot
from pytest_cilium_upgrade.versions import Version

# --------------------------------------------------------------------------- keys in comments

# ``# key: value`` or ``#key:`` (a key the chart documents but leaves unset); the value
# must not be a URL (``# ref: https://...`` is prose).
_COMMENTED_KEY = re.compile(r"^#( *)([a-z][A-Za-z0-9_-]*):(?:\s+(?!https?://)|$)")
_COMMENTED_ITEM = re.compile(r"^#( *)- ")
_KEY_LINE = re.compile(r"""^(?:"([^"]+)"|'([^']+)'|([^\s#'"{\[][^:#]*?)):(?:\s|$)""")
_BLOCK_SCALAR = re.compile(r":\s*[|>][-+0-9]*\s*(?:#.*)?$")
# helm-docs' schema annotations: ``# @schema`` ... ``# @schema`` around ``# type: ...``
_SCHEMA_FENCE = "# @schema"


def documented_keys(values_yaml: str) -> dict[str, Any]:
    """The keys ``values_yaml`` names only in comments, as a tree (``{}``: a leaf).

    Indentation places a commented key as YAML would place it uncommented: under the
    key above it that is less indented. A commented key right below a nested block (no
    blank line between) may belong to that block although its ``#`` stands further
    left (``ipMasqAgent:`` / ``  enabled: false`` / ``# config:``): it counts there
    too. Keys inside list items, block scalars and helm-docs' ``@schema`` blocks are
    skipped.
    """
    doc = _Comments()
    block_indent: int | None = None
    in_schema = False
    for raw in values_yaml.splitlines():
        body = raw.lstrip(" ")
        if not body:
            doc.last_block = None
            continue
        indent = len(raw) - len(body)
        if block_indent is not None:
            if indent > block_indent:
                continue
            block_indent = None
        if body.startswith(_SCHEMA_FENCE):
            in_schema = not in_schema
            continue
        if in_schema:
            continue
        if body.startswith("#"):
            doc.comment(body, indent)
            continue
        doc.pop_to(indent)
        if body.startswith("-"):
            doc.push(indent, None, real=True)
            continue
        match = _KEY_LINE.match(body)
        if match is None:
            continue
        doc.push(indent, next(g for g in match.groups() if g is not None).strip(), real=True)
        if _BLOCK_SCALAR.search(body):
            block_indent = indent
    return doc.tree


class _Comments:
    """The state of :func:`documented_keys`: where each line stands, the keys found."""

    def __init__(self) -> None:
        self.tree: dict[str, Any] = {}
        self.stack: list[tuple[int, str | None]] = []  # (indent, key); None: a list item
        # the indent and parents of the last key line, while no blank line followed it
        self.last_block: tuple[int, list[str | None]] | None = None

    def pop_to(self, indent: int) -> None:
        while self.stack and self.stack[-1][0] >= indent:
            self.stack.pop()

    def push(self, indent: int, key: str | None, *, real: bool = False) -> None:
        if real:
            self.last_block = (indent, [k for _, k in self.stack])
        self.stack.append((indent, key))

    def comment(self, body: str, indent: int) -> None:
        item = _COMMENTED_ITEM.match(body)
        match = _COMMENTED_KEY.match(body)
        found = item or match
        if found is None:
            return
        # ``# key:`` sits where ``key:`` would; each space beyond the first indents it
        where = indent + max(len(found.group(1)) - 1, 0)
        self.pop_to(where)
        if item is not None or match is None:
            self.push(where, None)
            return
        key = match.group(2)
        self._add([k for _, k in self.stack], key)
        if self.last_block is not None and self.last_block[0] > where:
            self._add(self.last_block[1], key)
        self.push(where, key)

    def _add(self, parents: list[str | None], key: str) -> None:
        node = self.tree
        for parent in parents:
            if parent is None:
                return  # inside a list item: not a value path
            node = node.setdefault(parent, {})
        node.setdefault(key, {})


# --------------------------------------------------------------------------- the schema

_MAX_REF_DEPTH: Final = 32


class _Open:
    """A schema verdict: any key is accepted here (or the value takes no keys at all)."""


OPEN: Final = _Open()


@dataclass(frozen=True)
class _SchemaObject:
    """The keys a schema declares for an object: its ``properties`` and ``patternProperties``."""

    properties: tuple[Mapping[str, Any], ...]
    patterns: tuple[tuple[str, Any], ...]

    def child(self, key: str, root: Mapping[str, Any]) -> _Open | _SchemaObject | None:
        """What the schema says of ``key``: not declared (None), open, or an object."""
        found = [props[key] for props in self.properties if key in props]
        for pattern, schema in self.patterns:
            try:
                if re.search(pattern, key):
                    found.append(schema)
            except re.error:
                found.append(True)  # a pattern Python cannot read: take it as matching
        if not found:
            return None
        return _object_view(found, root)


def _alternatives(node: Any, root: Mapping[str, Any], depth: int = 0) -> Iterator[Any]:
    """``node`` and every schema it combines (``anyOf``/``oneOf``/``allOf``, local ``$ref``)."""
    if depth > _MAX_REF_DEPTH or not isinstance(node, Mapping):
        yield node
        return
    ref = node.get("$ref")
    if isinstance(ref, str):
        yield from _alternatives(_resolve(ref, root), root, depth + 1)
    combined = False
    for keyword in ("anyOf", "oneOf", "allOf"):
        members = node.get(keyword)
        if isinstance(members, list):
            combined = True
            for member in members:
                yield from _alternatives(member, root, depth + 1)
    own = {"type", "properties", "patternProperties", "additionalProperties"} & set(node)
    if own or not (combined or isinstance(ref, str)):
        yield node


def _resolve(ref: str, root: Mapping[str, Any]) -> Any:
    """A local JSON pointer (``#/definitions/x``); anything else accepts everything."""
    if not ref.startswith("#"):
        return True
    node: Any = root
    for part in ref.lstrip("#").strip("/").split("/"):
        if not part:
            continue
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or part not in node:
            return True
        node = node[part]
    return node


def _object_view(nodes: Sequence[Any], root: Mapping[str, Any]) -> _Open | _SchemaObject:
    """What schemas ``nodes`` (any may apply) say of an object's keys."""
    properties: list[Mapping[str, Any]] = []
    patterns: list[tuple[str, Any]] = []
    closed = False
    for node in (alt for n in nodes for alt in _alternatives(n, root)):
        if node is False:
            continue
        if not isinstance(node, Mapping):
            return OPEN  # true, or not a schema we can read
        types = node.get("type")
        type_list = [types] if isinstance(types, str) else types
        if isinstance(type_list, list) and "object" not in type_list:
            continue  # a scalar or array here: it takes no keys
        extra = node.get("additionalProperties")
        if extra is not None and extra is not False:
            return OPEN
        props = node.get("properties")
        pattern_props = node.get("patternProperties")
        if isinstance(props, Mapping) or isinstance(pattern_props, Mapping):
            closed = True
            if isinstance(props, Mapping):
                properties.append(props)
            if isinstance(pattern_props, Mapping):
                patterns.extend((str(p), s) for p, s in pattern_props.items())
        elif extra is False:
            closed = True
        else:
            return OPEN  # an object with no declared keys: a free-form map
    if not closed:
        return OPEN  # nothing here takes keys: the value is a scalar or list
    return _SchemaObject(tuple(properties), tuple(patterns))


# --------------------------------------------------------------------------- the chart


class ChartValuesUnreadable(ValueError):
    """The chart's ``values.yaml`` or ``values.schema.json`` does not parse."""


@dataclass(frozen=True)
class ChartDefinition:
    """Which value paths a chart defines: its defaults, keys in comments, its schema."""

    defaults: Mapping[str, Any]
    documented: Mapping[str, Any]
    schema: Mapping[str, Any] | None = None

    @classmethod
    def parse(cls, values_yaml: str | None, schema_json: str | None) -> ChartDefinition:
        """:class:`ChartValuesUnreadable` (position only, never text) when a file is invalid."""
        data: Any = {}
        if values_yaml is not None:
            try:
                data = yamltext.load(values_yaml)
            except yaml.MarkedYAMLError as exc:
                mark = exc.problem_mark
                where = f" at line {mark.line + 1}" if mark is not None else ""
                raise ChartValuesUnreadable(f"values.yaml is not valid YAML{where}") from None
            except yaml.YAMLError:
                raise ChartValuesUnreadable("values.yaml is not valid YAML") from None
            if data is None:
                data = {}
            if not isinstance(data, Mapping):
                raise ChartValuesUnreadable("values.yaml is not a mapping")
        schema: Any = None
        if schema_json is not None:
            try:
                schema = json.loads(schema_json)
            except ValueError as exc:
                raise ChartValuesUnreadable(
                    f"values.schema.json is not valid JSON ({type(exc).__name__})"
                ) from None
            if not isinstance(schema, Mapping):
                schema = None if schema is True else {"not": schema}
        documented = documented_keys(values_yaml) if values_yaml is not None else {}
        return cls(data, documented, schema)

    def undefined(self, values: Mapping[str, Any]) -> list[UndefinedValue]:
        """Every path of ``values`` this chart does not define, in the order of ``values``."""
        schema_view: _SchemaObject | None = None
        if self.schema is not None:
            view = _object_view([self.schema], self.schema)
            if isinstance(view, _Open):
                return []  # the schema takes any key at all
            schema_view = view
        out: list[UndefinedValue] = []
        self._walk(values, self.defaults, self.documented, schema_view, (), out)
        return out

    def _walk(
        self,
        values: Mapping[str, Any],
        chart: Mapping[str, Any] | None,
        documented: Mapping[str, Any] | None,
        schema: _SchemaObject | None,
        parents: tuple[str, ...],
        out: list[UndefinedValue],
    ) -> None:
        root = self.schema or {}
        for key, value in values.items():
            name = str(key)
            if value is None:
                continue  # null removes a default; it sets nothing
            in_chart = chart is not None and key in chart
            default = chart.get(key) if chart is not None else None
            in_docs = documented is not None and name in documented
            declared = schema.child(name, root) if schema is not None else None
            if not (in_chart or in_docs or declared is not None):
                out.append(UndefinedValue(parents, name))
                continue
            if not isinstance(value, Mapping) or _free_form(name):
                continue
            chart_child = default if isinstance(default, Mapping) and default else None
            if in_chart and chart_child is None:
                continue  # empty map, list, scalar or null by default: free-form
            if isinstance(declared, _Open):
                continue
            docs_child = documented.get(name) if documented is not None else None
            if not in_chart and declared is None and not docs_child:
                continue  # documented as a leaf: nothing known below it
            self._walk(value, chart_child, docs_child, declared, (*parents, name), out)


def _free_form(key: str) -> bool:
    lowered = key.lower()
    return key in defaults.FREE_FORM_VALUE_KEYS or lowered.endswith(
        defaults.FREE_FORM_VALUE_SUFFIXES
    )


def _segment(key: str) -> str:
    # dots escaped as `helm --set` takes them, so a path can be pasted back
    return key.replace(".", "\\.")


@dataclass(frozen=True)
class UndefinedValue:
    """A value path the chart does not define: the keys leading to it, and its own key."""

    parents: tuple[str, ...]
    key: str

    @property
    def path(self) -> str:
        return ".".join(_segment(k) for k in (*self.parents, self.key))

    @property
    def parent(self) -> str:
        return ".".join(_segment(k) for k in self.parents)

    def describe(self, chart_version: str) -> str:
        if not self.parents:
            return f"{self.path}: chart {chart_version} defines no top-level key {self.key!r}"
        return (
            f"{self.path}: chart {chart_version} defines {self.parent}"
            f" but no key {self.key!r} in it"
        )


# --------------------------------------------------------------------------- the check


def upgrade_notes_url(chart_version: str) -> str | None:
    version = Version.try_parse(chart_version)
    if version is None:
        return None
    return defaults.UPGRADE_NOTES_URL.format(minor=version.minor_str())


def _undefined(
    definition: ChartDefinition, snapshot_path: str, saved: Mapping[str, Any], params: CheckParams
) -> tuple[dict[str, tuple[UndefinedValue, str]], list[str]]:
    """The paths the chart does not define, each with where it is set; notes on what
    could not be judged.

    With values files or ``--set`` items, what is judged is what the upgrade passes:
    Helm's merge of the snapshot with them (``params.intended``). A path the snapshot
    sets too is the snapshot's; the others come from the overrides.
    """
    from_snapshot = {item.path: item for item in definition.undefined(saved)}
    intended = params.intended
    found = {
        path: (item, f"values snapshot {snapshot_path}") for path, item in from_snapshot.items()
    }
    notes: list[str] = []
    if intended is None or not intended.overrides:
        return found, notes
    if intended.values is None:
        notes.append(
            "the upgrade's values files and --set items were not checked: Helm did not merge"
            f" them ({intended.error or 'no error message'})"
        )
        return found, notes
    found = {}
    for item in definition.undefined(intended.values):
        where = (
            f"values snapshot {snapshot_path}"
            if item.path in from_snapshot
            else "values files or --set items of the upgrade"
        )
        found[item.path] = (item, where)
    return found, notes


def saved_values_known_to_target_chart(
    snapshot: ClusterSnapshot, params: CheckParams
) -> CheckResult:
    """Every value path set for the release is one the target chart still defines."""
    chart: ChartValues | None = snapshot.target_chart_values
    if chart is None:
        return _skip(
            "the target chart's values were not read (needs --cilium-target-version and a"
            " chart whose versions could be listed)"
        )
    version = chart.chart_version
    if chart.error:
        return _skip(f"the values of chart {version} could not be read: {chart.error}")
    if chart.values_yaml is None and chart.schema_json is None:
        return _skip(f"chart {version} has neither values.yaml nor values.schema.json")
    parsed = snapshot_values(snapshot)
    if parsed.values is None or snapshot.values_snapshot is None:
        return _skip(f"values snapshot unusable: {parsed.error} (see values_snapshot_matches_live)")
    try:
        definition = ChartDefinition.parse(chart.values_yaml, chart.schema_json)
    except ChartValuesUnreadable as exc:
        return _skip(f"chart {version}: {exc}")
    found, notes = _undefined(definition, snapshot.values_snapshot.path, parsed.values, params)
    files = " and ".join(
        name
        for name, text in (
            ("values.yaml", chart.values_yaml),
            ("values.schema.json", chart.schema_json),
        )
        if text is not None
    )
    if not found:
        return _pass(
            f"every value set for the release is defined by chart {version} ({files})", notes
        )
    paths = sorted(found)
    shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
    summary = f"{len(paths)} value(s) set for the release not defined by chart {version}: {shown}"
    details = [
        f"{item.describe(version)} (set in the {where})"
        for item, where in (found[p] for p in paths)
    ]
    details.append(
        f"chart {version} defines none of these ({files}): unless its templates read them"
        " anyway, the upgrade drops them in silence and the chart's defaults take their place"
    )
    url = upgrade_notes_url(version)
    where = f" ({url})" if url else ""
    details.append(
        f"read the upgrade notes{where} for what replaced them, then remove or rename them"
        " in the values before upgrading"
    )
    details += notes
    props = {"undefined_values": ",".join(paths)}
    if params.values_check == "strict":
        return _fail(summary + " [strict values check]", details, **props)
    return _warn(summary, details, **props)
