"""Helm 3's and Helm 4's JSON output in one shape, read by the model."""

from __future__ import annotations

from typing import Any

import pytest
from helm_fakes import SECRET

from pytest_cilium_upgrade.adapters.helm.normalize import (
    normalize_history_entry,
    normalize_status,
)
from pytest_cilium_upgrade.snapshot.model import HelmHistoryEntry, HelmRelease

# --------------------------------------------------------------------------- JSON shapes

# `helm status -o json` as Helm 3.22 and Helm 4.3 print it (chart stripped by both).
STATUS_V3: dict[str, Any] = {
    "name": "cilium",
    "info": {
        "first_deployed": "2026-01-01T00:00:00.1Z",
        "last_deployed": "2026-01-02T00:00:00.2Z",
        "deleted": "",
        "description": "Upgrade complete",
        "status": "deployed",
    },
    "config": {"hubble": {"tls": {"server": {"key": SECRET}}}},
    "manifest": "---\n# Source: cilium/templates/cilium-configmap.yaml\n",
    "version": 2,
    "namespace": "kube-system",
}
STATUS_V4: dict[str, Any] = {
    "name": "cilium",
    "info": {
        "first_deployed": "2026-01-01T00:00:00.1Z",
        "last_deployed": "2026-01-02T00:00:00.2Z",
        "description": "Rollback to 1",
        "status": "deployed",
        "rollback_revision": 1,
        "resources": {"v1/Secret": [{"kind": "Secret", "data": {"tls.key": SECRET}}]},
    },
    "config": {"hubble": {"tls": {"server": {"key": SECRET}}}},
    "manifest": "---\n",
    "version": 3,
    "namespace": "kube-system",
    "apply_method": "ssa",
}
METADATA: dict[str, Any] = {
    "name": "cilium",
    "chart": "cilium",
    "version": "1.16.3",
    "appVersion": "1.16.3",
    "namespace": "kube-system",
    "revision": 3,
    "status": "deployed",
    "deployedAt": "2026-01-02T00:00:00Z",
}


@pytest.mark.parametrize("raw", [STATUS_V3, STATUS_V4], ids=["helm3", "helm4"])
def test_status_of_both_helms_feeds_the_model(raw: dict[str, Any]) -> None:
    status = normalize_status(raw, METADATA)
    assert SECRET not in repr(status)
    assert set(status) == {"name", "namespace", "version", "info", "chart", "apply_method"}
    assert set(status["info"]) == {
        "first_deployed",
        "last_deployed",
        "deleted",
        "description",
        "status",
        "rollback_revision",
    }
    release = HelmRelease.from_helm_status(status)
    assert release == HelmRelease(
        name="cilium",
        namespace="kube-system",
        revision=raw["version"],
        status="deployed",
        chart_name="cilium",
        chart_version="1.16.3",
        app_version="1.16.3",
        updated="2026-01-02T00:00:00.2Z",
    )


def test_status_keeps_a_chart_helm_printed_and_helm_4_details() -> None:
    with_chart = {**STATUS_V3, "chart": {"metadata": {"name": "c", "version": "1.0.0"}}}
    assert normalize_status(with_chart, METADATA)["chart"]["metadata"]["version"] == "1.0.0"
    v4 = normalize_status(STATUS_V4, None)
    assert "chart" not in v4
    assert (v4["apply_method"], v4["info"]["rollback_revision"]) == ("ssa", 1)
    assert normalize_status({}, None)["version"] == 0


def test_history_entries_of_both_helms() -> None:
    v3 = {
        "revision": 1,
        "updated": "2026-01-01T00:00:00Z",
        "status": "superseded",
        "chart": "cilium-1.15.1",
        "app_version": "1.15.1",
        "description": "Install complete",
    }
    v4 = {
        "revision": 3,
        "status": "deployed",
        "chart": "cilium-1.15.1",
        "app_version": "1.15.1",
        "description": "Rollback to 1",
        "rollback_revision": 1,
    }
    assert normalize_history_entry(v3) == {**v3, "rollback_revision": 0}
    assert normalize_history_entry(v4) == {**v4, "updated": ""}
    entry = HelmHistoryEntry.from_helm_history_entry(normalize_history_entry(v4))
    assert (entry.revision, entry.chart_name, entry.chart_version, entry.status) == (
        3,
        "cilium",
        "1.15.1",
        "deployed",
    )
