"""The checks on values, and the differences they report (by path, never by value)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from checks_builders import SECRET_KEY, VALUES, assert_status, healthy, params, text_of, values_file

from pytest_cilium_upgrade.checks.params import IntendedValues
from pytest_cilium_upgrade.checks.registry import get_check, run_check
from pytest_cilium_upgrade.checks.result import Status
from pytest_cilium_upgrade.checks.values import (
    ValueDifference,
    diff_values,
    parse_values_text,
    target_chart_renders_with_snapshot,
    values_preserved,
    values_snapshot_matches_live,
)
from pytest_cilium_upgrade.redact import REDACTED
from pytest_cilium_upgrade.snapshot.model import ApiFailure, ChartRender, ValuesSnapshotFile

# --------------------------------------------------------------------------- values snapshot


def test_values_snapshot_matches() -> None:
    assert_status(values_snapshot_matches_live(healthy(), params()), Status.PASS)


def test_values_snapshot_readonly_mode_is_fine() -> None:
    snap = healthy(values_snapshot=values_file(mode=0o400))
    assert_status(values_snapshot_matches_live(snap, params()), Status.PASS)


@pytest.mark.parametrize(
    ("vs", "needle"),
    [
        (None, "no values snapshot taken"),
        (ValuesSnapshotFile("/x.yaml", False), "does not exist"),
        (ValuesSnapshotFile("/x.yaml", True, 0o600, None, "Permission denied"), "cannot be read"),
        (values_file(mode=0o644), "mode 0644"),
        (values_file("a: [1,\n  b: {\n"), "does not parse: YAML error at line"),
        (values_file("- just\n- a list\n"), "not a mapping"),
    ],
)
def test_values_snapshot_problems(vs: ValuesSnapshotFile | None, needle: str) -> None:
    result = values_snapshot_matches_live(healthy(values_snapshot=vs), params())
    assert_status(result, Status.FAIL)
    assert needle in text_of(result)


def test_values_snapshot_differs_by_path_without_values() -> None:
    live = copy.deepcopy(VALUES)
    live["hubble"]["tls"]["server"]["key"] = "bGl2ZS1zZWNyZXQta2V5LTAxMjM0NTY3ODk="
    live["ipam"] = {"mode": "kubernetes"}
    result = run_check(
        get_check("pre", "values_snapshot_matches_live"),
        healthy(live_values=live),
        params(),
    )
    assert_status(result, Status.FAIL)
    text = text_of(result)
    assert "hubble.tls.server.key (changed)" in text
    assert "ipam (removed)" in text  # present live, missing from the snapshot
    assert SECRET_KEY not in text
    assert "bGl2ZS1zZWNyZXQta2V5LTAxMjM0NTY3ODk=" not in text


def test_values_snapshot_live_not_collected() -> None:
    result = values_snapshot_matches_live(healthy(live_values=None), params())
    assert_status(result, Status.FAIL)


def test_values_parse_error_does_not_echo_content() -> None:
    text = f"hubble:\n  key: {SECRET_KEY}\n  bad: [unclosed\n"
    result = values_snapshot_matches_live(healthy(values_snapshot=values_file(text)), params())
    assert_status(result, Status.FAIL)
    assert SECRET_KEY not in text_of(result)


# --------------------------------------------------------------------------- render


def test_render_skipped_passed_failed() -> None:
    assert_status(target_chart_renders_with_snapshot(healthy(), params()), Status.SKIP)
    ok = healthy(target_render=ChartRender("1.16.3", True))
    assert_status(target_chart_renders_with_snapshot(ok, params()), Status.PASS)
    for_cluster = ChartRender("1.20.0", True, kube_version="v1.36.3", api_versions=212)
    result = target_chart_renders_with_snapshot(healthy(target_render=for_cluster), params())
    assert_status(result, Status.PASS)
    assert result.summary == (
        "chart 1.20.0 renders with the values snapshot for Kubernetes v1.36.3"
        " and the cluster's 212 API versions"
    )
    message = (
        "Error: execution error at (cilium/templates/validate.yaml:5:5): tunnel was deprecated"
        " in v1.14 and has been removed in v1.15. For details please refer to"
        " https://docs.cilium.io/en/v1.15/operations/upgrade/#helm-options\n"
    )
    bad = healthy(target_render=ChartRender("1.15.1", False, message))
    result = target_chart_renders_with_snapshot(bad, params())
    assert_status(result, Status.FAIL)
    assert "tunnel was deprecated in v1.14 and has been removed in v1.15" in result.summary
    assert result.details[0].startswith("Error: execution error")


def test_a_chart_not_rendered_for_the_cluster_is_not_judged_as_rendered() -> None:
    not_read = ChartRender(
        "1.20.0",
        False,
        "not rendered: the cluster's Kubernetes version and API versions could not be read"
        " (the Kubernetes API did not answer get /apis within 5s)",
        rendered=False,
    )
    # the API answers but its discovery did not: the chart's own check was not made
    result = target_chart_renders_with_snapshot(healthy(target_render=not_read), params())
    assert_status(result, Status.FAIL)
    assert "did not answer get /apis" in result.summary
    # the API is unreachable: the cluster check fails, this one says why it cannot judge
    gone = healthy(
        target_render=not_read, api_failure=ApiFailure("cannot reach the Kubernetes API")
    )
    result = target_chart_renders_with_snapshot(gone, params())
    assert_status(result, Status.SKIP)
    assert "see cluster_reachable_and_access_allowed" in result.summary


def test_render_failure_is_redacted() -> None:
    message = f"Error: values don't meet the specifications: hubble.tls.server.key={SECRET_KEY}"
    snap = healthy(target_render=ChartRender("1.16.3", False, message))
    result = run_check(get_check("pre", "target_chart_renders_with_snapshot"), snap, params())
    assert_status(result, Status.FAIL)
    assert SECRET_KEY not in text_of(result)
    assert REDACTED in text_of(result)


# --------------------------------------------------------------------------- post: values


def _with_overrides() -> dict[str, Any]:
    """VALUES after `-f snapshot --set hubble.relay.enabled=false,upgradeCompatibility=1.14`."""
    live: dict[str, Any] = copy.deepcopy(VALUES)
    live["hubble"]["relay"]["enabled"] = False
    live["upgradeCompatibility"] = "1.14"
    return live


def test_values_preserved_against_what_helm_merged() -> None:
    live = _with_overrides()
    snap = healthy(live_values=live)
    # what Helm computed from the snapshot and the overrides is what is expected
    intended = IntendedValues(copy.deepcopy(live), overrides=1, origin="recorded by pre")
    result = values_preserved(snap, params(intended=intended))
    assert_status(result, Status.PASS)
    assert result.summary == (
        "live values equal the snapshot with 1 override(s) (recorded by pre), as Helm merges them"
    )
    # without the overrides, the upgrade's changes are differences from the snapshot
    result = values_preserved(snap, params())
    assert_status(result, Status.FAIL)
    assert "hubble.relay.enabled (changed) (expected vs live)" in result.details
    assert "upgradeCompatibility (added) (expected vs live)" in result.details
    assert result.summary.endswith("differ from the snapshot")


def test_an_override_the_upgrade_lost_is_a_difference() -> None:
    # the user's upgrade forgot `-f extra.yaml`: the live values are the snapshot's
    intended = IntendedValues(_with_overrides(), overrides=1)
    result = values_preserved(healthy(), params(intended=intended))
    assert_status(result, Status.FAIL)
    assert result.summary == "2 value key(s) differ from the snapshot with 1 override(s)"
    assert "upgradeCompatibility (removed) (expected vs live)" in result.details


def test_values_helm_could_not_merge_fail_with_helms_error_only() -> None:
    error = 'Error: failed parsing --set data: key "a" has no value'
    intended = IntendedValues(None, overrides=2, error=error)
    result = run_check(get_check("post", "values_preserved"), healthy(), params(intended=intended))
    assert_status(result, Status.FAIL)
    assert result.summary == (
        "cannot tell the values intended: Helm did not merge the snapshot with 2 override(s)"
    )
    assert list(result.details) == [error]


def test_intended_values_are_secret() -> None:
    secret = "aW50ZW5kZWQtc2VjcmV0LWtleS0wMTIzNDU2Nzg5"  # noqa: S105 - fixture
    intended = IntendedValues({"hubble": {"tls": {"server": {"key": secret}}}}, overrides=1)
    assert secret not in repr(params(intended=intended))
    live = {"message": f"see {secret}"}
    result = run_check(
        get_check("post", "values_preserved"),
        healthy(live_values=live),
        params(intended=intended),
    )
    assert secret not in text_of(result)


def test_values_lost_secret_not_printed() -> None:
    live = {
        "hubble": {"relay": {"enabled": True}, "tls": {"server": {}}},
        "kubeProxyReplacement": True,
    }
    result = run_check(get_check("post", "values_preserved"), healthy(live_values=live), params())
    assert_status(result, Status.FAIL)
    assert "hubble.tls.server.key (removed) (expected vs live)" in result.details
    assert SECRET_KEY not in text_of(result)


def test_values_preserved_needs_inputs() -> None:
    assert_status(values_preserved(healthy(values_snapshot=None), params()), Status.FAIL)
    assert_status(values_preserved(healthy(live_values=None), params()), Status.FAIL)


# --------------------------------------------------------------------------- values helpers


def test_diff_values() -> None:
    expected = {"a": {"b": 1, "c": [1, 2]}, "d": True, "e.f": "x", "g": None}
    actual = {"a": {"b": 2, "c": [1]}, "d": 1, "e.f": "x", "h": {}}
    assert diff_values(expected, actual) == [
        ValueDifference("a.b", "changed"),
        ValueDifference("a.c[1]", "removed"),
        ValueDifference("d", "changed"),
        ValueDifference("g", "removed"),
        ValueDifference("h", "added"),
    ]
    assert diff_values({"e.f": "x"}, {"e.f": "y"}) == [ValueDifference("e\\.f", "changed")]
    assert diff_values(None, {}) == []
    assert diff_values({"a": [{"x": 1}]}, {"a": [{"x": 2}]}) == [
        ValueDifference("a[0].x", "changed")
    ]
    assert diff_values({"a": {"b": 1}}, {"a": "flat"}) == [ValueDifference("a", "changed")]


def test_parse_values_text() -> None:
    assert parse_values_text("null\n").values == {}
    assert parse_values_text("").values == {}
    assert parse_values_text("a: 1").values == {"a": 1}
    bad = parse_values_text("a: b: c")
    assert bad.values is None
    assert bad.error.startswith("YAML error at line 1")


# --------------------------------------------------------------------------- snapshot write


def test_a_snapshot_the_gate_failed_to_write_says_why() -> None:
    vs = ValuesSnapshotFile(
        path="/ci/values.yaml",
        exists=False,
        write_error="API error 429 Too Many Requests: slow down",
    )
    result = values_snapshot_matches_live(healthy(values_snapshot=vs), params())
    assert_status(result, Status.FAIL)
    assert result.summary == (
        "--cilium-write-snapshot did not write /ci/values.yaml: "
        "API error 429 Too Many Requests: slow down"
    )
