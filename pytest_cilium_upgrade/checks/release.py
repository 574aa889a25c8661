"""Checks of the Helm release: deployed, on a supported upgrade path, upgraded to the target.

A release stuck in a pending or failed state gets recovery hints built from its history.
"""

from __future__ import annotations

from collections.abc import Sequence

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.checks.params import CheckParams
from pytest_cilium_upgrade.checks.result import CheckResult, _fail, _pass, _skip, _warn
from pytest_cilium_upgrade.snapshot.model import ClusterSnapshot, HelmHistoryEntry
from pytest_cilium_upgrade.versions import (
    Hop,
    Version,
    hop,
    image_version,
    latest_patch,
    parse_all,
)


def _release_cmd(params: CheckParams, snapshot: ClusterSnapshot) -> str:
    return f"{params.release} -n {snapshot.namespace}"


def _last_good_revision(
    history: Sequence[HelmHistoryEntry], before: int
) -> HelmHistoryEntry | None:
    good = [
        h
        for h in history
        if h.revision < before
        and h.status in (defaults.HELM_STATUS_DEPLOYED, defaults.HELM_STATUS_SUPERSEDED)
    ]
    return max(good, key=lambda h: h.revision) if good else None


def _release_unreadable(snapshot: ClusterSnapshot) -> CheckResult:
    error = snapshot.release_error or ""
    if "not a Helm release record" in error:
        advice = (
            "a record Helm did not write, or one changed since: Helm cannot read it either"
            " (`helm history` fails on it); remove or repair that object"
        )
    else:
        advice = (
            "the checks read it from Helm's release records: the identity needs get/list on"
            " them (Secrets, or ConfigMaps with HELM_DRIVER=configmap) in the release namespace"
        )
    return _fail("release state unreadable", [error, advice])


def _release_recovery(
    snapshot: ClusterSnapshot, params: CheckParams, status: str, revision: int
) -> list[str]:
    rel = _release_cmd(params, snapshot)
    good = _last_good_revision(snapshot.release_history, revision)
    rev = str(good.revision) if good else "<REVISION>"
    current = next((h for h in snapshot.release_history if h.revision == revision), None)
    out: list[str] = []
    if current is not None and current.description:
        out.append(f"revision {revision}: {current.description}")
    if status in (defaults.HELM_STATUS_PENDING_UPGRADE, defaults.HELM_STATUS_PENDING_ROLLBACK):
        out.append(
            f"an interrupted helm operation left the release {status}; Helm refuses another"
            " upgrade until it is resolved"
        )
        out.append(
            f"recover: `helm history {rel}`, then `helm rollback {params.release} {rev}"
            f" -n {snapshot.namespace}` (the last deployed revision), then run the gate again"
        )
    elif status == defaults.HELM_STATUS_PENDING_INSTALL:
        out.append(
            "the first install never completed; there is no deployed revision to roll back to"
        )
        out.append(
            f"recover: inspect `helm history {rel}` and the cluster, then finish the install"
            " (re-run it) before upgrading"
        )
    elif status == defaults.HELM_STATUS_FAILED:
        out.append("the last helm operation on the release failed")
        out.append(
            f"recover: `helm rollback {params.release} {rev} -n {snapshot.namespace}`"
            " (the last deployed revision) or fix the cause and redeploy the current version"
        )
    else:
        out.append(f"inspect `helm history {rel}` and `helm status {rel}`")
    return out


def release_deployed(snapshot: ClusterSnapshot, params: CheckParams) -> CheckResult:
    """The Cilium release exists and is ``deployed`` (not pending or failed)."""
    if snapshot.release_error:
        return _release_unreadable(snapshot)
    rel = snapshot.release
    if rel is None:
        return _fail(
            f"release {params.release} not found in namespace {snapshot.namespace}",
            [f"`helm list -n {snapshot.namespace}` shows the installed releases"],
        )
    if rel.status != defaults.HELM_STATUS_DEPLOYED:
        return _fail(
            f"release {rel.name} is {rel.status} (revision {rel.revision}), not deployed:"
            " it blocks an upgrade",
            _release_recovery(snapshot, params, rel.status, rel.revision),
            revision=str(rel.revision),
        )
    return _pass(
        f"release {rel.name} deployed: chart {rel.chart_name}-{rel.chart_version},"
        f" revision {rel.revision}",
        revision=str(rel.revision),
        chart_version=rel.chart_version,
    )


def _current_version(snapshot: ClusterSnapshot, params: CheckParams) -> tuple[Version | None, str]:
    if snapshot.release is not None:
        ver = Version.try_parse(snapshot.release.chart_version)
        if ver is not None:
            return ver, f"chart version of release {snapshot.release.name}"
    wl = snapshot.workload("DaemonSet", params.agent_daemonset)
    if wl is not None:
        img = wl.container_image(defaults.AGENT_CONTAINER)
        ver = image_version(img) if img else None
        if ver is not None:
            return ver, "agent image"
    return None, ""


def upgrade_path_supported(snapshot: ClusterSnapshot, params: CheckParams) -> CheckResult:
    """Target is the same or next minor, from the latest patch, and not a downgrade."""
    target = params.target
    if target is None:
        return _skip("no target version given")
    if snapshot.chart_error:
        return _fail(f"target chart not found: {snapshot.chart_error}")
    current, source = _current_version(snapshot, params)
    if current is None:
        return _fail("current Cilium version unknown (no release chart version, no agent image)")
    available = parse_all(snapshot.available_chart_versions)
    details = [f"current {current} ({source}), target {target}"]
    if available and target not in available:
        listed = sorted(v for v in available if v.minor_line == target.minor_line)
        details.append(
            "available " + target.minor_str() + ": " + (", ".join(map(str, listed)) or "none")
        )
        details.append(
            "a version published since helm's local index of a repository was updated is"
            " not listed: update it (`helm repo update`)"
        )
        return _fail(
            f"target chart version {target} is not available in the chart repository", details
        )
    kind = hop(current, target)
    rel = params.release
    ns = snapshot.namespace
    if kind is Hop.SAME:
        return _pass(f"already at {target}: the upgrade changes no version", details)
    if kind is Hop.PATCH:
        return _pass(f"patch upgrade {current} -> {target}", details)
    if kind is Hop.NEXT_MINOR:
        newest = latest_patch(available, current.major, current.minor)
        if newest is None:
            return _warn(
                f"minor upgrade {current} -> {target}; cannot confirm {current} is the latest"
                f" {current.minor_str()} patch (no chart versions listed)",
                details,
            )
        if current < newest:
            return _fail(
                f"upgrade to {newest} (latest {current.minor_str()} patch) before moving to"
                f" {target.minor_str()}",
                [
                    *details,
                    f"first: helm upgrade {rel} {defaults.CHART_REF} --version {newest} -n {ns}"
                    " -f <values snapshot>",
                ],
            )
        return _pass(
            f"minor upgrade {current} -> {target} from the latest {current.minor_str()} patch",
            details,
        )
    if kind is Hop.SKIPS_MINORS:
        steps = []
        for minor in range(current.minor + 1, target.minor):
            step = latest_patch(available, current.major, minor)
            steps.append(str(step) if step else f"{current.major}.{minor}.x")
        return _fail(
            f"{current} -> {target} skips {len(steps)} minor version(s); only consecutive minors"
            " are supported",
            [*details, "upgrade through " + " -> ".join([str(current), *steps, str(target)])],
        )
    if kind is Hop.MAJOR:
        return _fail(
            f"{current} -> {target} changes the major version: not a supported path", details
        )
    if kind is Hop.DOWNGRADE_SKIPS_MINORS:
        return _fail(f"downgrade {current} -> {target} crosses more than one minor", details)
    if not params.allow_downgrade:
        return _fail(
            f"{current} -> {target} is a downgrade; allow it explicitly to proceed",
            details,
        )
    return _warn(f"downgrade {current} -> {target} (explicitly allowed)", details)


def release_upgraded_to_target(snapshot: ClusterSnapshot, params: CheckParams) -> CheckResult:
    """The release is ``deployed`` at the target chart, one revision after the recorded one."""
    if snapshot.release_error:
        return _release_unreadable(snapshot)
    rel = snapshot.release
    if rel is None:
        return _fail(f"release {params.release} not found in namespace {snapshot.namespace}")
    problems: list[str] = []
    if rel.status != defaults.HELM_STATUS_DEPLOYED:
        problems.append(f"status {rel.status}, expected deployed")
        problems.extend(_release_recovery(snapshot, params, rel.status, rel.revision))
    target = params.target
    if target is not None and Version.try_parse(rel.chart_version) != target:
        problems.append(f"chart version {rel.chart_version}, expected {target}")
    if params.recorded_revision is not None and rel.revision != params.recorded_revision + 1:
        problems.append(
            f"revision {rel.revision}, expected {params.recorded_revision + 1}"
            f" (one after the recorded pre-upgrade revision {params.recorded_revision})"
        )
    if problems:
        return _fail(f"release {rel.name} not upgraded as intended", problems)
    details = [] if params.recorded_revision is not None else ["no pre-upgrade revision recorded"]
    return _pass(
        f"release {rel.name} deployed at chart {rel.chart_version}, revision {rel.revision}",
        details,
    )
