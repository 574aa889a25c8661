"""Decoding Helm's release records (no cluster needed).

Records are built here the way Helm writes them: the release as JSON, gzipped,
base64-encoded, and (for Secrets) base64-encoded once more by the API.
"""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import pytest

from pytest_cilium_upgrade.adapters.helm import records as release_records
from pytest_cilium_upgrade.adapters.helm.records import RecordError
from pytest_cilium_upgrade.snapshot.model import HelmHistoryEntry, HelmRelease

JSONDict = dict[str, Any]


def release(name: str, revision: int, status: str, chart_version: str, **extra: Any) -> JSONDict:
    return {
        "name": name,
        "namespace": "kube-system",
        "version": revision,
        "info": {
            "first_deployed": "2026-11-01T10:00:00.000000001Z",
            "last_deployed": f"2026-11-0{revision}T10:00:00.5Z",
            "deleted": "",
            "description": f"revision {revision}",
            "status": status,
            "notes": "NOTES",
        },
        "chart": {
            "metadata": {"name": "cilium", "version": chart_version, "appVersion": chart_version},
            "templates": [{"name": "templates/ds.yaml", "data": "e30="}],
            "values": {"image": {"tag": "default"}},
        },
        "config": {"ipam": {"mode": "kubernetes"}, "revision": revision},
        "manifest": "---\n",
        **extra,
    }


def encode(data: JSONDict, *, compress: bool = True) -> str:
    raw = json.dumps(data).encode()
    return base64.b64encode(gzip.compress(raw) if compress else raw).decode()


def secret(
    data: JSONDict,
    *,
    owner: str = "helm",
    kind_type: str = "helm.sh/release.v1",
    compress: bool = True,
) -> JSONDict:
    field = base64.b64encode(encode(data, compress=compress).encode()).decode()
    return {
        "kind": "Secret",
        "type": kind_type,
        "metadata": {
            "name": f"sh.helm.release.v1.{data['name']}.v{data['version']}",
            "labels": {
                "owner": owner,
                "name": data["name"],
                "version": str(data["version"]),
                "status": data["info"]["status"],
            },
        },
        "data": {"release": field},
    }


def configmap(data: JSONDict) -> JSONDict:
    return {
        "kind": "ConfigMap",
        "metadata": {
            "name": f"{data['name']}.v{data['version']}",
            "labels": {"owner": "helm", "name": data["name"]},
        },
        "data": {"release": encode(data)},
    }


def test_selector_names_every_release_once() -> None:
    assert (
        release_records.selector(["cilium-preflight", "cilium", "cilium"])
        == "owner=helm,name in (cilium,cilium-preflight)"
    )


@pytest.mark.parametrize(
    ("driver", "kind"),
    [
        (None, "Secret"),
        ("", "Secret"),
        ("secret", "Secret"),
        ("Secrets", "Secret"),
        ("configmap", "ConfigMap"),
        ("configmaps", "ConfigMap"),
        ("sql", None),
        ("memory", None),
    ],
)
def test_storage_kind_follows_helm_driver(driver: str | None, kind: str | None) -> None:
    assert release_records.storage_kind(driver) == kind


def test_secret_and_configmap_records_decode_to_the_release() -> None:
    data = release("cilium", 1, "deployed", "1.15.18")
    assert release_records.decode(secret(data)["data"]["release"], api_base64=True) == data
    assert release_records.decode(configmap(data)["data"]["release"], api_base64=False) == data


def test_records_written_before_compression_are_read_too() -> None:
    data = release("cilium", 1, "deployed", "1.15.18")
    assert release_records.revisions([secret(data, compress=False)])["cilium"][0].release == data


@pytest.mark.parametrize(
    "encoded",
    [
        "not base64!",
        base64.b64encode(b"\x1f\x8b\x08junk").decode(),
        base64.b64encode(b"[1, 2]").decode(),
    ],
)
def test_unreadable_records_raise_naming_the_object(encoded: str) -> None:
    obj = configmap(release("cilium", 3, "deployed", "1.15.18"))
    obj["data"]["release"] = encoded
    with pytest.raises(RecordError, match=r"ConfigMap cilium\.v3: not a Helm release record"):
        release_records.revisions([obj])


def test_revisions_are_grouped_sorted_and_only_helms_own() -> None:
    objects = [
        secret(release("cilium", 3, "deployed", "1.16.15")),
        secret(release("cilium", 1, "superseded", "1.15.18")),
        secret(release("cilium-preflight", 1, "deployed", "1.16.15")),
        secret(release("cilium", 2, "superseded", "1.15.19")),
        secret(release("cilium", 9, "deployed", "9.9.9"), owner="someone-else"),
        secret(release("cilium", 8, "deployed", "8.8.8"), kind_type="Opaque"),
        {
            "kind": "Secret",
            "type": "helm.sh/release.v1",
            "metadata": {"name": "empty", "labels": {"owner": "helm"}},
            "data": {},
        },
    ]
    found = release_records.revisions(objects)
    assert sorted(found) == ["cilium", "cilium-preflight"]
    assert [r.revision for r in found["cilium"]] == [1, 2, 3]


def test_status_is_the_latest_revision_whatever_its_state() -> None:
    history = release_records.revisions(
        [
            secret(release("cilium", 1, "superseded", "1.15.18")),
            secret(release("cilium", 2, "deployed", "1.15.19")),
            secret(release("cilium", 3, "pending-upgrade", "1.16.15", apply_method="ssa")),
        ]
    )["cilium"]
    status = release_records.status(history)
    assert status is not None
    assert "config" not in status
    assert "manifest" not in status
    assert status["apply_method"] == "ssa"
    model = HelmRelease.from_helm_status(status)
    assert (model.name, model.namespace, model.revision, model.status) == (
        "cilium",
        "kube-system",
        3,
        "pending-upgrade",
    )
    assert (model.chart_name, model.chart_version, model.app_version) == (
        "cilium",
        "1.16.15",
        "1.16.15",
    )
    assert model.updated == "2026-11-03T10:00:00.5Z"
    assert release_records.status([]) is None


def test_history_entries_have_helm_history_fields() -> None:
    rolled = release("cilium", 3, "deployed", "1.15.18")
    rolled["info"]["rollback_revision"] = 1
    rolled["info"]["description"] = "Rollback to 1"
    history = release_records.revisions(
        [
            secret(release("cilium", 1, "superseded", "1.15.18")),
            secret(release("cilium", 2, "failed", "1.16.15")),
            secret(rolled),
        ]
    )["cilium"]
    entries = [release_records.history_entry(r) for r in history]
    assert entries[2] == {
        "revision": 3,
        "updated": "2026-11-03T10:00:00.5Z",
        "status": "deployed",
        "chart": "cilium-1.15.18",
        "app_version": "1.15.18",
        "description": "Rollback to 1",
        "rollback_revision": 1,
    }
    models = [HelmHistoryEntry.from_helm_history_entry(e) for e in entries]
    assert [(m.revision, m.status, m.chart_version) for m in models] == [
        (1, "superseded", "1.15.18"),
        (2, "failed", "1.16.15"),
        (3, "deployed", "1.15.18"),
    ]


def test_a_record_without_chart_shows_missing_like_helm() -> None:
    data = release("cilium", 1, "deployed", "1.15.18")
    del data["chart"]
    [revision] = release_records.revisions([secret(data)])["cilium"]
    assert release_records.history_entry(revision)["chart"] == "MISSING"


def test_values_are_the_latest_revisions_user_values() -> None:
    history = release_records.revisions(
        [
            secret(release("cilium", 2, "deployed", "1.15.19")),
            secret(release("cilium", 1, "superseded", "1.15.18")),
        ]
    )["cilium"]
    assert release_records.values(history) == {"ipam": {"mode": "kubernetes"}, "revision": 2}
    no_config = release("cilium", 1, "deployed", "1.15.18")
    del no_config["config"]
    assert release_records.values(release_records.revisions([secret(no_config)])["cilium"]) == {}
    assert release_records.values([]) == {}
