"""The upgrade gate's checks: pure functions from a snapshot to a verdict.

Each check takes a :class:`~pytest_cilium_upgrade.snapshot.model.ClusterSnapshot` and
:class:`CheckParams` and returns a :class:`CheckResult`. None does I/O. The
:data:`CHECKS` registry lists them by phase; :func:`run_check` runs one with its
prerequisites and redacts every message with the secrets found in the values.

This package re-exports what other packages and contributed checks use; the checks
themselves live in one module per concern.
"""

from __future__ import annotations

from pytest_cilium_upgrade.checks.params import CheckParams, IntendedValues
from pytest_cilium_upgrade.checks.registry import (
    CHECKS,
    CheckFunction,
    CheckSpec,
    checks_for_phase,
    get_check,
    redactor_for,
    run_check,
)
from pytest_cilium_upgrade.checks.release import release_deployed
from pytest_cilium_upgrade.checks.result import CheckResult, Status
from pytest_cilium_upgrade.phases import CHECK_PHASES, Phase

__all__ = [
    "CHECKS",
    "CHECK_PHASES",
    "CheckFunction",
    "CheckParams",
    "CheckResult",
    "CheckSpec",
    "IntendedValues",
    "Phase",
    "Status",
    "checks_for_phase",
    "get_check",
    "redactor_for",
    "release_deployed",
    "run_check",
]
