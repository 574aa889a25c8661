"""The cnp-validator log parser and the CNP validation check."""

from __future__ import annotations

import pytest
from checks_builders import assert_status, healthy, params

from pytest_cilium_upgrade.checks.result import Status
from pytest_cilium_upgrade.checks.validator_log import (
    cnp_validation_passed,
    parse_log_fields,
    parse_validator_log,
)
from pytest_cilium_upgrade.snapshot.model import ClusterSnapshot

LOGRUS_OK = """\
level=info msg="Setting up kubernetes client"
level=info msg="Establishing connection to apiserver" host="https://10.96.0.1:443" subsys=k8s
level=info msg="Connected to apiserver" subsys=k8s
level=info msg="Validation OK!" name=default/allow-dns type=CiliumNetworkPolicy
level=info msg="Validation OK!" name=deny-world type=CiliumClusterwideNetworkPolicy
level=info msg="All CCNPs and CNPs valid!"
"""
SLOG_OK = (
    'time=2025-01-01T10:00:00Z level=INFO source=/go/x.go:1 msg="Validation OK!"'
    " type=CiliumNetworkPolicy name=default/web\n"
    'time=2025-01-01T10:00:00Z level=INFO msg="All CCNPs and CNPs valid!"\n'
)
OLD_OK = """\
level=info msg="Validating CiliumNetworkPolicy 'default/cidr-rule': OK!
level=info msg="Validating CiliumNetworkPolicy 'default/cnp-update': OK!
level=info msg="All CCNPs and CNPs valid!"
"""
INVALID = "\n".join(
    [
        'level=info msg="Validation OK!" name=default/ok type=CiliumNetworkPolicy',
        'level=error msg="Unexpected validation error"'
        ' error="spec.egress[0].toPorts: Invalid value: \\"object\\": port is required"'
        " name=default/broken type=CiliumNetworkPolicy",
        'level=error msg="Unexpected validation error" error="spec: Required value"'
        " name=bad-ccnp type=CiliumClusterwideNetworkPolicy",
        'level=fatal msg="failed to start: Found invalid CiliumNetworkPolicy"',
    ]
)
OLD_INVALID = "\n".join(
    [
        "level=error msg=\"Validating CiliumNetworkPolicy 'team/legacy':"
        ' unexpected validation error: spec.ingress: Invalid value"',
        'level=fatal msg="failed to start: Found invalid CiliumNetworkPolicy"',
    ]
)
NOT_CONFIGURED = (
    'level=fatal msg="failed to start: Kubernetes client not configured. Please provide'
    ' configuration via --k8s-api-server or --k8s-kubeconfig-path"\n'
)
EXCLUDED = "\n".join(
    [
        'level=warn msg="Policy selector references a label excluded from the security identity;'
        ' it will not match endpoints unless --label-prefix-file overrides"'
        " type=CiliumNetworkPolicy name=default/zonal labels=topology.kubernetes.io/zone",
        'level=warn msg="All CCNPs and CNPs are valid,'
        ' but some policies reference identity-excluded labels!"',
    ]
)
IN_PROGRESS = 'level=info msg="Validation OK!" name=default/a type=CiliumNetworkPolicy\n'


def with_logs(current: str | None, previous: str | None = None) -> ClusterSnapshot:
    return healthy(validator_log=current, validator_previous_log=previous)


@pytest.mark.parametrize("log", [LOGRUS_OK, SLOG_OK, OLD_OK])
def test_cnp_valid(log: str) -> None:
    result = cnp_validation_passed(with_logs(log), params())
    assert_status(result, Status.PASS)
    assert "All CCNPs and CNPs valid!" in result.summary


def test_cnp_invalid_in_previous_log_lists_each_policy() -> None:
    result = cnp_validation_passed(with_logs("", INVALID), params())
    assert_status(result, Status.FAIL)
    assert "previous container's log" in result.summary
    assert "2 invalid policies" in result.summary
    assert (
        "invalid CiliumNetworkPolicy default/broken:"
        ' spec.egress[0].toPorts: Invalid value: "object": port is required'
    ) in result.details
    assert "invalid CiliumClusterwideNetworkPolicy bad-ccnp: spec: Required value" in result.details
    assert "Found invalid CiliumNetworkPolicy" in result.details
    assert result.properties["invalid_policies"] == "2"


def test_cnp_invalid_old_format() -> None:
    result = cnp_validation_passed(with_logs(OLD_INVALID), params())
    assert_status(result, Status.FAIL)
    assert "invalid CiliumNetworkPolicy team/legacy: spec.ingress: Invalid value" in result.details


def test_cnp_client_not_configured() -> None:
    result = cnp_validation_passed(with_logs(NOT_CONFIGURED), params())
    assert_status(result, Status.FAIL)
    assert any("Kubernetes client not configured" in d for d in result.details)
    assert any("k8sServiceHost" in d for d in result.details)


def test_cnp_identity_excluded_variant_warns() -> None:
    result = cnp_validation_passed(with_logs(EXCLUDED), params())
    assert_status(result, Status.WARN)
    assert result.details == [
        "CiliumNetworkPolicy default/zonal: selects on label topology.kubernetes.io/zone"
        " excluded from identities"
    ]


def test_cnp_previous_verdict_used_while_current_runs() -> None:
    result = cnp_validation_passed(with_logs(IN_PROGRESS, LOGRUS_OK), params())
    assert_status(result, Status.PASS)
    assert "previous container's log" in result.summary


def test_cnp_no_verdict_and_no_log() -> None:
    assert_status(cnp_validation_passed(with_logs(IN_PROGRESS), params()), Status.FAIL)
    assert_status(cnp_validation_passed(with_logs(None), params()), Status.FAIL)


def test_cnp_api_error_is_a_failure() -> None:
    log = 'level=fatal msg="failed to start: context deadline exceeded"\n'
    result = cnp_validation_passed(with_logs(log), params())
    assert_status(result, Status.FAIL)
    assert "failed to start: context deadline exceeded" in result.details


def test_parse_validator_log_counts() -> None:
    report = parse_validator_log(LOGRUS_OK)
    assert report.all_valid
    assert report.validated_ok == 2
    assert report.succeeded
    assert not report.failed
    json_log = '{"level":"info","msg":"All CCNPs and CNPs valid!"}\n'
    assert parse_validator_log(json_log).all_valid


def test_parse_log_fields() -> None:
    fields = parse_log_fields('level=error msg="a \\"quoted\\" word" name=ns/x empty=')
    assert fields == {"level": "error", "msg": 'a "quoted" word', "name": "ns/x", "empty": ""}
    assert parse_log_fields('{"msg": "m", "n": 1}') == {"msg": "m", "n": "1"}
