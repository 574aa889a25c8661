"""The release checks: deployed, upgrade path, upgraded to the target."""

from __future__ import annotations

from typing import Any

import pytest
from checks_builders import assert_status, healthy, params, release, text_of

from pytest_cilium_upgrade.checks.release import (
    release_deployed,
    release_upgraded_to_target,
    upgrade_path_supported,
)
from pytest_cilium_upgrade.checks.result import Status
from pytest_cilium_upgrade.snapshot.model import HelmHistoryEntry, HelmRelease
from pytest_cilium_upgrade.versions import Version

# --------------------------------------------------------------------------- release


def test_release_deployed() -> None:
    result = release_deployed(healthy(), params())
    assert_status(result, Status.PASS)
    assert result.properties["revision"] == "3"


def test_release_missing() -> None:
    result = release_deployed(healthy(release=None), params())
    assert_status(result, Status.FAIL)
    assert "not found" in result.summary


def test_release_pending_upgrade_says_how_to_recover() -> None:
    history = (
        HelmHistoryEntry(1, "superseded", chart_version="1.14.19"),
        HelmHistoryEntry(2, "deployed", chart_version="1.15.1"),
        HelmHistoryEntry(3, "pending-upgrade", chart_version="1.16.0", description="Preparing"),
    )
    snap = healthy(release=release("1.16.0", "pending-upgrade", 3), release_history=history)
    result = release_deployed(snap, params())
    assert_status(result, Status.FAIL)
    assert "pending-upgrade" in result.summary
    assert "blocks an upgrade" in result.summary
    text = text_of(result)
    assert "helm rollback cilium 2 -n kube-system" in text
    assert "helm history cilium -n kube-system" in text


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        ("pending-rollback", "helm rollback cilium 2"),
        ("failed", "helm rollback cilium 2"),
        ("pending-install", "install never completed"),
        ("uninstalling", "helm status cilium -n kube-system"),
    ],
)
def test_release_not_deployed(status: str, hint: str) -> None:
    history = (
        HelmHistoryEntry(2, "superseded"),
        HelmHistoryEntry(3, status, description='Upgrade "cilium" failed: timed out'),
    )
    snap = healthy(release=release("1.15.1", status, 3), release_history=history)
    result = release_deployed(snap, params())
    assert_status(result, Status.FAIL)
    assert hint in text_of(result)


# --------------------------------------------------------------------------- upgrade path


@pytest.mark.parametrize(
    ("current", "target", "kw", "status", "needle"),
    [
        ("1.15.1", None, {}, Status.SKIP, "no target"),
        ("1.15.1", "1.15.7", {}, Status.PASS, "patch upgrade"),
        ("1.15.7", "1.16.3", {}, Status.PASS, "from the latest 1.15 patch"),
        ("1.15.1", "1.16.3", {}, Status.FAIL, "upgrade to 1.15.7 (latest 1.15 patch)"),
        ("1.14.19", "1.16.3", {}, Status.FAIL, "skips 1 minor"),
        ("1.15.7", "1.15.1", {}, Status.FAIL, "downgrade"),
        ("1.15.7", "1.15.1", {"allow_downgrade": True}, Status.WARN, "explicitly allowed"),
        ("1.16.3", "1.15.7", {"allow_downgrade": True}, Status.WARN, "downgrade"),
        ("1.17.0", "1.15.7", {"allow_downgrade": True}, Status.FAIL, "more than one minor"),
        ("1.15.1", "1.15.1", {}, Status.PASS, "already at"),
        ("1.15.1", "1.15.99", {}, Status.FAIL, "not available"),
    ],
)
def test_upgrade_path(
    current: str, target: str | None, kw: dict[str, Any], status: Status, needle: str
) -> None:
    result = upgrade_path_supported(
        healthy(current), params(target=None if target is None else Version.parse(target), **kw)
    )
    assert_status(result, status)
    assert needle in text_of(result)


def test_upgrade_path_suggests_the_steps() -> None:
    result = upgrade_path_supported(healthy("1.14.19"), params(target=Version(1, 16, 3)))
    assert "upgrade through 1.14.19 -> 1.15.7 -> 1.16.3" in result.details
    first = upgrade_path_supported(healthy("1.15.1"), params(target=Version(1, 16, 3)))
    assert any("helm upgrade cilium cilium/cilium --version 1.15.7" in d for d in first.details)


def test_upgrade_path_major() -> None:
    snap = healthy("1.17.0", available_chart_versions=("1.17.0", "2.0.0"))
    result = upgrade_path_supported(snap, params(target=Version(2, 0, 0)))
    assert_status(result, Status.FAIL)
    assert "major" in result.summary


def test_upgrade_path_without_chart_list_warns_on_minor_hop() -> None:
    snap = healthy("1.15.1", available_chart_versions=())
    result = upgrade_path_supported(snap, params(target=Version(1, 16, 0)))
    assert_status(result, Status.WARN)


def test_upgrade_path_current_from_agent_image() -> None:
    snap = healthy("1.15.7", release=None)
    result = upgrade_path_supported(snap, params(target=Version(1, 16, 0)))
    assert_status(result, Status.PASS)
    assert "agent image" in result.details[0]
    unknown = healthy(release=None, workloads=())
    assert_status(upgrade_path_supported(unknown, params(target=Version(1, 16, 0))), Status.FAIL)


# --------------------------------------------------------------------------- post: release


def test_release_upgraded() -> None:
    snap = healthy("1.16.3", release=release("1.16.3", revision=4))
    p = params(target=Version(1, 16, 3), recorded_revision=3)
    assert_status(release_upgraded_to_target(snap, p), Status.PASS)


@pytest.mark.parametrize(
    ("rel", "needle"),
    [
        (release("1.15.1", revision=4), "chart version 1.15.1, expected 1.16.3"),
        (release("1.16.3", revision=5), "revision 5, expected 4"),
        (release("1.16.3", "failed", 4), "status failed"),
        (None, "not found"),
    ],
)
def test_release_not_upgraded(rel: HelmRelease | None, needle: str) -> None:
    snap = healthy("1.16.3", release=rel)
    result = release_upgraded_to_target(snap, params(target=Version(1, 16, 3), recorded_revision=3))
    assert_status(result, Status.FAIL)
    assert needle in text_of(result)
