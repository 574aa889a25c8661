"""CheckResult: which verdicts block the upgrade."""

from __future__ import annotations

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.checks.result import CheckResult, Status
from pytest_cilium_upgrade.snapshot.model import LabelSelector


def test_result_ok_and_redacted() -> None:
    result = CheckResult(Status.WARN, "s", ["d"])
    assert result.ok
    assert not CheckResult(Status.FAIL, "s").ok
    assert LabelSelector.parse(defaults.AGENT_SELECTOR).matches({"k8s-app": "cilium"})
