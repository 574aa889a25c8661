"""Helm value semantics and the checks on values."""

from __future__ import annotations

import pytest
from checks_builders import SECRET_KEY, VALUES, assert_status, healthy, params, text_of, values_file

from pytest_cilium_upgrade.checks.registry import get_check, run_check
from pytest_cilium_upgrade.checks.result import Status
from pytest_cilium_upgrade.checks.values import (
    ValueDifference,
    deep_merge,
    diff_values,
    nest_dotted,
    parse_values_text,
    target_chart_renders_with_snapshot,
    values_preserved,
    values_snapshot_matches_live,
)
from pytest_cilium_upgrade.redact import REDACTED
from pytest_cilium_upgrade.snapshot.model import ChartRender, ValuesSnapshotFile

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
    live = deep_merge(
        VALUES, {"hubble": {"tls": {"server": {"key": "bGl2ZS1zZWNyZXQta2V5LTAxMjM0NTY3ODk="}}}}
    )
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


def test_render_failure_is_redacted() -> None:
    message = f"Error: values don't meet the specifications: hubble.tls.server.key={SECRET_KEY}"
    snap = healthy(target_render=ChartRender("1.16.3", False, message))
    result = run_check(get_check("pre", "target_chart_renders_with_snapshot"), snap, params())
    assert_status(result, Status.FAIL)
    assert SECRET_KEY not in text_of(result)
    assert REDACTED in text_of(result)


# --------------------------------------------------------------------------- post: values


def test_values_preserved_with_overrides() -> None:
    overrides = {"hubble": {"relay": {"enabled": False}}, "upgradeCompatibility": "1.14"}
    live = deep_merge(VALUES, overrides)
    snap = healthy(live_values=live)
    assert_status(values_preserved(snap, params(intended_overrides=overrides)), Status.PASS)
    result = values_preserved(snap, params())
    assert_status(result, Status.FAIL)
    assert "hubble.relay.enabled (changed) (expected vs live)" in result.details
    assert "upgradeCompatibility (added) (expected vs live)" in result.details


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


def test_deep_merge_and_nest_dotted() -> None:
    assert deep_merge({"a": {"b": 1, "c": [1]}}, {"a": {"c": [2], "d": 3}}) == {
        "a": {"b": 1, "c": [2], "d": 3}
    }
    assert nest_dotted({"hubble.relay.enabled": True, "hubble.ui.enabled": False}) == {
        "hubble": {"relay": {"enabled": True}, "ui": {"enabled": False}}
    }
    assert nest_dotted({"podAnnotations.example\\.com/x": "1"}) == {
        "podAnnotations": {"example.com/x": "1"}
    }


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
