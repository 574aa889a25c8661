"""The registry of checks by phase, and :func:`run_check`.

:func:`run_check` runs one check with its prerequisites (SKIP when the cluster or
helm it needs is unreachable) and redacts every message with the secrets found in
the values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pytest_cilium_upgrade.checks.access import (
    _api_failure,
    cluster_reachable_and_access_allowed,
    helm_client_supported,
)
from pytest_cilium_upgrade.checks.chart_values import saved_values_known_to_target_chart
from pytest_cilium_upgrade.checks.params import CheckParams
from pytest_cilium_upgrade.checks.preflight import (
    preflight_covers_agent_nodes,
    preflight_deployment_ready,
    preflight_removed,
    preflight_runs_target_image,
)
from pytest_cilium_upgrade.checks.release import (
    release_deployed,
    release_upgraded_to_target,
    upgrade_path_supported,
)
from pytest_cilium_upgrade.checks.result import CheckResult, _skip
from pytest_cilium_upgrade.checks.validator_log import cnp_validation_passed
from pytest_cilium_upgrade.checks.values import (
    snapshot_values,
    target_chart_renders_with_snapshot,
    values_preserved,
    values_snapshot_matches_live,
)
from pytest_cilium_upgrade.checks.workloads import (
    agent_daemonset_healthy,
    agent_restarts_within_limit,
    agents_run_target_version,
    components_on_one_version,
    operator_healthy,
    operator_runs_target_version,
)
from pytest_cilium_upgrade.phases import Phase
from pytest_cilium_upgrade.redact import Redactor
from pytest_cilium_upgrade.snapshot.model import ClusterSnapshot

CheckFunction = Callable[[ClusterSnapshot, CheckParams], CheckResult]


@dataclass(frozen=True)
class CheckSpec:
    """One registered check. ``needs_cluster`` / ``needs_helm`` make it SKIP when unreachable."""

    phase: Phase
    check_id: str
    func: CheckFunction
    needs_cluster: bool = True
    needs_helm: bool = False

    @property
    def description(self) -> str:
        doc = (self.func.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else self.check_id

    @property
    def node_id(self) -> str:
        return f"{self.phase}::{self.check_id}"


def _spec(
    phase: Phase, func: CheckFunction, *, cluster: bool = True, helm: bool = False
) -> CheckSpec:
    return CheckSpec(phase, func.__name__, func, cluster, helm)


CHECKS: tuple[CheckSpec, ...] = (
    _spec("pre", cluster_reachable_and_access_allowed, cluster=False),
    _spec("pre", helm_client_supported, cluster=False),
    _spec("pre", release_deployed, helm=True),
    _spec("pre", agent_daemonset_healthy),
    _spec("pre", operator_healthy),
    _spec("pre", components_on_one_version),
    _spec("pre", upgrade_path_supported, helm=True),
    _spec("pre", values_snapshot_matches_live, helm=True),
    _spec("pre", target_chart_renders_with_snapshot, cluster=False, helm=True),
    _spec("pre", saved_values_known_to_target_chart, cluster=False, helm=True),
    _spec("pre", preflight_covers_agent_nodes),
    _spec("pre", preflight_runs_target_image),
    _spec("pre", preflight_deployment_ready),
    _spec("pre", cnp_validation_passed),
    _spec("post", release_upgraded_to_target, helm=True),
    _spec("post", agents_run_target_version),
    _spec("post", operator_runs_target_version),
    _spec("post", components_on_one_version),
    _spec("post", values_preserved, helm=True),
    _spec("post", preflight_removed, helm=True),
    _spec("post", agent_restarts_within_limit),
)

# the checks that fail, rather than skip, when the release state cannot be read
_REPORT_RELEASE_ERROR: tuple[CheckFunction, ...] = (release_deployed, release_upgraded_to_target)


def checks_for_phase(phase: Phase) -> tuple[CheckSpec, ...]:
    return tuple(c for c in CHECKS if c.phase == phase)


def get_check(phase: Phase, check_id: str) -> CheckSpec:
    for spec in CHECKS:
        if spec.phase == phase and spec.check_id == check_id:
            return spec
    raise KeyError(f"{phase}::{check_id}")


def redactor_for(snapshot: ClusterSnapshot, params: CheckParams) -> Redactor:
    """A redactor for every secret in the snapshot file, the live values and the overrides."""
    intended = params.intended.values if params.intended is not None else None
    return Redactor.from_values(snapshot_values(snapshot).values, snapshot.live_values, intended)


def run_check(
    spec: CheckSpec,
    snapshot: ClusterSnapshot,
    params: CheckParams,
    redactor: Redactor | None = None,
) -> CheckResult:
    """Run one check: SKIP if what it needs is unreachable, and redact its messages."""
    if spec.needs_cluster and snapshot.api_failure is not None:
        summary = snapshot.api_failure.headline or _api_failure(snapshot.api_failure).summary
        result = _skip(f"{summary} (see cluster_reachable_and_access_allowed)")
    elif spec.needs_cluster and snapshot.read_errors:
        result = _skip(
            f"cluster only partly readable ({snapshot.read_errors[0]}); "
            "see cluster_reachable_and_access_allowed"
        )
    elif spec.needs_helm and snapshot.helm_error:
        result = _skip("helm client unusable (see helm_client_supported)")
    elif spec.needs_helm and snapshot.release_error and spec.func not in _REPORT_RELEASE_ERROR:
        result = _skip("release state unreadable (see the release check)")
    else:
        result = spec.func(snapshot, params)
    return result.redacted(redactor or redactor_for(snapshot, params))
