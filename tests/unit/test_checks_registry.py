"""The registry and run_check: phases, prerequisites, skips and redaction."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from checks_builders import assert_status, healthy, params, text_of

from pytest_cilium_upgrade.checks.registry import CHECKS, checks_for_phase, get_check, run_check
from pytest_cilium_upgrade.checks.result import CheckResult, Status
from pytest_cilium_upgrade.snapshot.model import ApiFailure
from pytest_cilium_upgrade.versions import Version


def test_registry_is_complete_and_unique() -> None:
    pre = [c.check_id for c in checks_for_phase("pre")]
    post = [c.check_id for c in checks_for_phase("post")]
    assert pre == [
        "cluster_reachable_and_access_allowed",
        "helm_client_supported",
        "release_deployed",
        "agent_daemonset_healthy",
        "operator_healthy",
        "components_on_one_version",
        "upgrade_path_supported",
        "values_snapshot_matches_live",
        "target_chart_renders_with_snapshot",
        "saved_values_known_to_target_chart",
        "preflight_covers_agent_nodes",
        "preflight_runs_target_image",
        "preflight_deployment_ready",
        "cnp_validation_passed",
    ]
    assert post == [
        "release_upgraded_to_target",
        "agents_run_target_version",
        "operator_runs_target_version",
        "components_on_one_version",
        "values_preserved",
        "preflight_removed",
        "agent_restarts_within_limit",
    ]
    assert len({c.node_id for c in CHECKS}) == len(CHECKS)
    for spec in CHECKS:
        assert spec.description
        assert not spec.description.endswith(" ")
        module = spec.func.__module__
        assert module.startswith("pytest_cilium_upgrade.checks.")
        assert spec.func is getattr(importlib.import_module(module), spec.check_id)
    with pytest.raises(KeyError):
        get_check("pre", "nope")


def test_run_check_skips_without_cluster_or_helm() -> None:
    down = healthy(api_failure=ApiFailure("connection refused"))
    agent = get_check("pre", "agent_daemonset_healthy")
    assert_status(run_check(agent, down, params()), Status.SKIP)
    access = get_check("pre", "cluster_reachable_and_access_allowed")
    assert_status(run_check(access, down, params()), Status.FAIL)
    no_helm = healthy(helm_error="helm: not found")
    assert_status(run_check(get_check("pre", "release_deployed"), no_helm, params()), Status.SKIP)
    assert_status(
        run_check(get_check("pre", "helm_client_supported"), no_helm, params()), Status.FAIL
    )


def test_every_check_runs_on_a_healthy_snapshot() -> None:
    snap = healthy()
    for spec in CHECKS:
        result = run_check(spec, snap, params(target=Version(1, 15, 1)))
        assert isinstance(result, CheckResult)
        assert result.summary
        assert "\n" not in result.summary


def test_an_unreadable_release_state_fails_the_release_checks_and_skips_the_rest() -> None:
    error = "cannot read Helm's release records (Secrets in namespace kube-system): forbidden"
    snap = healthy(release_error=error, release=None)
    for check_id, phase in (("release_deployed", "pre"), ("release_upgraded_to_target", "post")):
        result = run_check(get_check(phase, check_id), snap, params())  # type: ignore[arg-type]
        assert_status(result, Status.FAIL)
        assert result.summary == "release state unreadable"
        assert error in text_of(result)
    skipped = run_check(get_check("pre", "upgrade_path_supported"), snap, params())
    assert_status(skipped, Status.SKIP)
    assert "release state unreadable" in skipped.summary
    helm = run_check(get_check("pre", "helm_client_supported"), snap, params())
    assert_status(helm, Status.PASS)  # helm itself is fine


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"status": 429}, "API server is throttling the gate (429 Too Many Requests)"),
        ({"no_answer": True}, "API server did not answer within the request timeout"),
        ({}, "cluster unreachable"),
    ],
)
def test_checks_skipped_for_the_api_say_what_the_server_did(
    fields: dict[str, Any], reason: str
) -> None:
    snap = healthy(api_failure=ApiFailure("some error", **fields))
    result = run_check(get_check("pre", "agent_daemonset_healthy"), snap, params())
    assert_status(result, Status.SKIP)
    assert result.summary == f"{reason} (see cluster_reachable_and_access_allowed)"
