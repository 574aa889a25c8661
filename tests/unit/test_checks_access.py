"""The checks of what the gate needs: the API server, access, the helm client."""

from __future__ import annotations

from dataclasses import replace

import pytest
from checks_builders import assert_status, healthy, params, text_of

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.checks.access import (
    cluster_reachable_and_access_allowed,
    helm_client_supported,
)
from pytest_cilium_upgrade.checks.registry import checks_for_phase, run_check
from pytest_cilium_upgrade.checks.result import Status
from pytest_cilium_upgrade.snapshot.model import ApiFailure

# --------------------------------------------------------------------------- access


def test_access_allowed() -> None:
    assert_status(cluster_reachable_and_access_allowed(healthy(), params()), Status.PASS)


def test_access_cluster_unreachable() -> None:
    snap = healthy(api_failure=ApiFailure("dial tcp 127.0.0.1:6443: connect: connection refused"))
    result = cluster_reachable_and_access_allowed(snap, params())
    assert_status(result, Status.FAIL)
    assert "connection refused" in text_of(result)


def test_access_denied_names_verb_and_resource() -> None:
    reviews = tuple(
        replace(r, allowed=not (r.resource == "pods" and r.subresource == "log"), reason="RBAC")
        for r in healthy().access_reviews
    )
    result = cluster_reachable_and_access_allowed(healthy(access_reviews=reviews), params())
    assert_status(result, Status.FAIL)
    assert "cannot get pods/log in namespace kube-system" in result.summary


def test_access_denied_cluster_scoped_and_grouped() -> None:
    reviews = tuple(
        replace(r, allowed=r.resource not in ("nodes", "daemonsets"))
        for r in healthy().access_reviews
    )
    result = cluster_reachable_and_access_allowed(healthy(access_reviews=reviews), params())
    assert_status(result, Status.FAIL)
    assert "forbidden: list nodes (cluster-wide)" in result.details
    assert "forbidden: list daemonsets.apps in namespace kube-system" in result.details


def test_access_not_reviewed_warns() -> None:
    result = cluster_reachable_and_access_allowed(healthy(access_reviews=()), params())
    assert_status(result, Status.WARN)
    assert len(result.details) == len(defaults.REQUIRED_ACCESS)


def test_a_partial_read_fails_the_cluster_check_and_skips_the_rest() -> None:
    # every other cluster check is skipped pointing here: this one must not pass
    error = (
        "nodes: the Kubernetes API at https://127.0.0.1:6443 did not answer list nodes within 2s"
    )
    snap = healthy(read_errors=(error, "validator log: boom"))
    result = cluster_reachable_and_access_allowed(snap, params())
    assert_status(result, Status.FAIL)
    assert result.summary.endswith(f"but not all of it could be read: {error}")
    assert result.details[:2] == [error, "validator log: boom"]
    assert "--cilium-request-timeout" in result.details[-1]
    for spec in checks_for_phase("pre"):
        if spec.func is cluster_reachable_and_access_allowed:
            assert_status(run_check(spec, snap, params()), Status.FAIL)
        elif spec.needs_cluster:
            assert_status(run_check(spec, snap, params()), Status.SKIP)


# --------------------------------------------------------------------------- helm client


@pytest.mark.parametrize(
    ("version", "status"),
    [
        ("v3.15.2+g1a500d5", Status.PASS),
        ("v4.0.1+gabcdef0", Status.PASS),
        ("v2.17.0+ga690bad", Status.FAIL),
        ("v5.0.0", Status.FAIL),
        ("nonsense", Status.FAIL),
        (None, Status.FAIL),
    ],
)
def test_helm_client(version: str | None, status: Status) -> None:
    result = helm_client_supported(healthy(helm_version=version), params())
    assert_status(result, status)


def test_helm_client_missing() -> None:
    snap = healthy(helm_version=None, helm_error="executable 'helm' not found in PATH")
    result = helm_client_supported(snap, params())
    assert_status(result, Status.FAIL)
    assert "not found" in text_of(result)


# --------------------------------------------------------------------------- API failures


@pytest.mark.parametrize(
    ("status", "summary", "hint"),
    [
        (429, "API server is throttling the gate (429 Too Many Requests)", "FlowSchema"),
        (503, "API server failing (503)", "check its health"),
        (400, "API server refused the first request (400)", "API error"),
        (None, "cluster unreachable", "check the kubeconfig/context"),
    ],
)
def test_api_failures_say_what_the_server_did(status: int | None, summary: str, hint: str) -> None:
    snap = healthy(
        api_failure=ApiFailure("API error ... (gave up after 4 attempts)", status=status)
    )
    result = cluster_reachable_and_access_allowed(snap, params())
    assert_status(result, Status.FAIL)
    assert result.summary == summary
    assert hint in text_of(result)


@pytest.mark.parametrize(
    ("error", "no_answer", "summary", "hint"),
    [
        (
            "the Kubernetes API at https://10.0.0.1:6443 did not answer get version within 2s",
            True,
            "API server did not answer within the request timeout",
            "--cilium-request-timeout",
        ),
        (
            "could not connect to the Kubernetes API at https://10.0.0.1:6443 within 2s",
            False,
            "cluster unreachable",
            "check the kubeconfig/context",
        ),
        (
            "cannot reach the Kubernetes API at https://10.0.0.1:6443: Connection refused",
            False,
            "cluster unreachable",
            "check the kubeconfig/context",
        ),
    ],
)
def test_an_api_server_too_slow_to_answer_is_not_called_unreachable(
    error: str, no_answer: bool, summary: str, hint: str
) -> None:
    snap = healthy(api_failure=ApiFailure(error, no_answer=no_answer))
    result = cluster_reachable_and_access_allowed(snap, params())
    assert_status(result, Status.FAIL)
    assert result.summary == summary
    assert error in text_of(result)
    assert hint in text_of(result)
