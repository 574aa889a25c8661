"""Values: their differences, the values files' parsing, and the checks on values.

Differences name paths only: values themselves may be secret and are never kept. What
the values of an upgrade with values files and ``--set`` items are is Helm's to say
(``IntendedValues``, computed by the Helm adapter), never computed here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import yaml

from pytest_cilium_upgrade import yamltext
from pytest_cilium_upgrade.checks.params import CheckParams
from pytest_cilium_upgrade.checks.release import _release_cmd
from pytest_cilium_upgrade.checks.result import CheckResult, _fail, _pass, _skip
from pytest_cilium_upgrade.snapshot.model import ClusterSnapshot


@dataclass(frozen=True)
class ValueDifference:
    """A values key that differs; values themselves are never kept (they may be secret)."""

    path: str
    change: Literal["added", "removed", "changed"]

    def __str__(self) -> str:
        return f"{self.path} ({self.change})"


def _key_segment(key: object) -> str:
    # Escape dots the way `helm --set` does, so a path can be pasted back.
    return str(key).replace(".", "\\.")


def _join(prefix: str, key: object) -> str:
    seg = _key_segment(key)
    return f"{prefix}.{seg}" if prefix else seg


def _same_scalar(a: object, b: object) -> bool:
    # True == 1 in Python; values files distinguish them.
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return a == b


def diff_values(expected: Any, actual: Any, prefix: str = "") -> list[ValueDifference]:
    """Dotted paths (``a.b[0].c``) where ``actual`` differs from ``expected``.

    ``added`` means present only in ``actual``, ``removed`` only in ``expected``.
    A top-level ``None`` counts as an empty mapping (``helm get values`` prints
    ``null`` for a release without user values).
    """
    if not prefix:
        expected = {} if expected is None else expected
        actual = {} if actual is None else actual
    if isinstance(expected, Mapping) and isinstance(actual, Mapping):
        out: list[ValueDifference] = []
        for key in sorted(set(expected) | set(actual), key=str):
            path = _join(prefix, key)
            if key not in actual:
                out.append(ValueDifference(path, "removed"))
            elif key not in expected:
                out.append(ValueDifference(path, "added"))
            else:
                out.extend(diff_values(expected[key], actual[key], path))
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        out = []
        for i in range(max(len(expected), len(actual))):
            path = f"{prefix}[{i}]"
            if i >= len(actual):
                out.append(ValueDifference(path, "removed"))
            elif i >= len(expected):
                out.append(ValueDifference(path, "added"))
            else:
                out.extend(diff_values(expected[i], actual[i], path))
        return out
    if isinstance(expected, Mapping | list) or isinstance(actual, Mapping | list):
        return [ValueDifference(prefix or "(root)", "changed")]
    return (
        [] if _same_scalar(expected, actual) else [ValueDifference(prefix or "(root)", "changed")]
    )


@dataclass(frozen=True)
class ParsedValues:
    values: dict[str, Any] | None
    error: str = ""


def parse_values_text(text: str) -> ParsedValues:
    """Parse a values file. Errors give position and problem only, never the file's text."""
    try:
        data = yamltext.load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "?"
        return ParsedValues(None, f"YAML error at {where}: {exc.problem or 'invalid YAML'}")
    except yaml.YAMLError as exc:
        return ParsedValues(None, f"YAML error: {type(exc).__name__}")
    if data is None:
        return ParsedValues({})
    if not isinstance(data, dict):
        return ParsedValues(None, f"top level is a {type(data).__name__}, not a mapping")
    return ParsedValues(data)


def snapshot_values(snapshot: ClusterSnapshot) -> ParsedValues:
    vs = snapshot.values_snapshot
    if vs is None or not vs.exists or vs.text is None:
        return ParsedValues(None, "no values snapshot")
    return parse_values_text(vs.text)


# --------------------------------------------------------------------------- checks


def values_snapshot_matches_live(snapshot: ClusterSnapshot, params: CheckParams) -> CheckResult:
    """The values snapshot exists, parses, is private (0600) and equals ``helm get values``."""
    vs = snapshot.values_snapshot
    get_values = f"helm get values {_release_cmd(params, snapshot)} -o yaml"
    if vs is None:
        return _fail(
            "no values snapshot taken",
            [f"save one: {get_values} > values.yaml; chmod 600 values.yaml"],
        )
    if vs.write_error:
        return _fail(
            f"--cilium-write-snapshot did not write {vs.path}: {vs.write_error}",
            [f"save one: {get_values} > {vs.path}"] if not vs.exists else [],
        )
    if not vs.exists:
        return _fail(
            f"values snapshot {vs.path} does not exist", [f"save one: {get_values} > {vs.path}"]
        )
    if vs.read_error or vs.text is None:
        return _fail(f"values snapshot {vs.path} cannot be read", [vs.read_error or "no content"])
    problems: list[str] = []
    if vs.mode is None:
        problems.append("file mode unknown")
    elif vs.mode & 0o077 or not vs.mode & 0o400:
        problems.append(
            f"mode {vs.mode & 0o777:04o}: the snapshot may hold secrets and must be readable"
            f" by its owner only (chmod 600 {vs.path})"
        )
    parsed = parse_values_text(vs.text)
    if parsed.values is None:
        problems.append(f"does not parse: {parsed.error}")
    elif snapshot.live_values is None:
        problems.append(f"live values of release {params.release} were not collected")
    else:
        diffs = diff_values(snapshot.live_values, parsed.values)
        if diffs:
            problems.append(
                f"{len(diffs)} key(s) differ from the live values (snapshot vs `helm get values`):"
            )
            problems.extend(f"  {d}" for d in diffs)
    if problems:
        return _fail(f"values snapshot {vs.path} not usable", problems)
    count = len(parsed.values or {})
    return _pass(
        f"values snapshot {vs.path} is private and equals the live values ({count} top-level keys)"
    )


def _render_error_lines(text: str) -> list[str]:
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.lstrip().lower().startswith("error")]
    chosen = errors or lines
    return chosen[:20]


def target_chart_renders_with_snapshot(
    snapshot: ClusterSnapshot, params: CheckParams
) -> CheckResult:
    """The target chart renders with the snapshot values; removed values fail here."""
    render = snapshot.target_render
    if render is None:
        return _skip("target chart was not rendered")
    if snapshot.chart_error and not render.succeeded:
        return _skip(f"{snapshot.chart_error} (see upgrade_path_supported)")
    if not render.rendered:
        # rendered without the cluster's version, Helm 3 would assume Kubernetes v1.20.0
        message = f"chart {render.chart_version} {render.error}"
        if snapshot.api_failure is not None:
            return _skip(f"{message}; see cluster_reachable_and_access_allowed")
        return _fail(message, ["the chart is rendered as `helm upgrade` would, or not at all"])
    cluster = f" for Kubernetes {render.kube_version}" if render.kube_version else ""
    if render.succeeded:
        return _pass(
            f"chart {render.chart_version} renders with the values snapshot{cluster}"
            f" and the cluster's {render.api_versions} API versions"
        )
    lines = _render_error_lines(render.error) or ["(helm printed no error message)"]
    headline = lines[0].strip()
    if headline.lower().startswith("error:"):
        headline = headline[len("error:") :].strip()
    return _fail(
        f"chart {render.chart_version} does not render with the values snapshot{cluster}:"
        f" {headline}",
        [
            *lines,
            "remove or rename the values the new chart rejects (see the upgrade notes of"
            f" {render.chart_version}); do not use --reuse-values across minors",
        ],
    )


def values_preserved(snapshot: ClusterSnapshot, params: CheckParams) -> CheckResult:
    """Live values equal the snapshot with the upgrade's own values, as Helm merges them."""
    parsed = snapshot_values(snapshot)
    if parsed.values is None:
        return _fail(f"values snapshot unusable: {parsed.error}")
    if snapshot.live_values is None:
        return _fail(f"live values of release {params.release} were not collected")
    intended = params.intended
    expected: Mapping[str, Any] = parsed.values
    against = "the snapshot"
    if intended is not None and intended.overrides:
        origin = f" ({intended.origin})" if intended.origin else ""
        against = f"the snapshot with {intended.overrides} override(s){origin}"
        if intended.values is None:
            return _fail(
                f"cannot tell the values intended: Helm did not merge {against}",
                [intended.error or "(helm printed no error message)"],
            )
        expected = intended.values
    diffs = diff_values(expected, snapshot.live_values)
    if diffs:
        return _fail(
            f"{len(diffs)} value key(s) differ from {against}",
            [f"{d} (expected vs live)" for d in diffs],  # paths only: values may be secret
        )
    return _pass(f"live values equal {against}, as Helm merges them")
