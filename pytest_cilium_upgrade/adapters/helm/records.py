"""Helm's release records, read from the API instead of from ``helm`` processes.

Helm 3 and Helm 4 keep each revision of a release as one object in the release
namespace: a Secret of type ``helm.sh/release.v1`` (the default ``secret`` driver) or a
ConfigMap (``HELM_DRIVER=configmap``), labelled ``owner=helm``, ``name=<release>``,
``status=<status>`` and ``version=<revision>``. Its ``release`` field is the release as
JSON, gzipped and base64-encoded (Secrets add the API's own base64 on top).

One LIST of those objects answers what ``helm status``, ``helm get metadata``,
``helm history`` and ``helm get values`` would each answer with a process of their own
that reads the same objects. This module only decodes; :mod:`kube` does the LIST. The
shapes it returns are those of :func:`helm.normalize_status` and
:func:`helm.normalize_history_entry`, so the model is built the same way either way.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_cilium_upgrade.adapters.helm.normalize import number
from pytest_cilium_upgrade.errors import GateError
from pytest_cilium_upgrade.snapshot.model.jsondata import JSONDict

GZIP_MAGIC = b"\x1f\x8b\x08"
RECORD_TYPE = "helm.sh/release.v1"  # the type of the Secrets holding records
OWNER_LABEL = "owner"
OWNER = "helm"

# HELM_DRIVER values whose records live in the API, and the kind that holds them
DRIVER_KINDS = {
    "": "Secret",
    "secret": "Secret",
    "secrets": "Secret",
    "configmap": "ConfigMap",
    "configmaps": "ConfigMap",
}


class RecordError(GateError):
    """A release record that Helm would not be able to read either."""


def storage_kind(driver: str | None) -> str | None:
    """The kind holding the records for ``$HELM_DRIVER``; None for sql/memory drivers."""
    return DRIVER_KINDS.get((driver or "").strip().lower())


def selector(releases: Iterable[str]) -> str:
    """The label selector of every revision of ``releases``."""
    names = ",".join(sorted(set(releases)))
    return f"{OWNER_LABEL}={OWNER},name in ({names})"


def decode(encoded: str | bytes, *, api_base64: bool) -> JSONDict:
    """The release JSON of one record's ``release`` field.

    ``api_base64`` is True for Secrets, whose data the API returns base64-encoded.
    Records written before Helm compressed them are plain JSON after base64.
    """
    try:
        raw = base64.b64decode(encoded, validate=True)
        if api_base64:
            raw = base64.b64decode(raw, validate=True)
        if raw[:3] == GZIP_MAGIC:
            raw = gzip.decompress(raw)
        data = json.loads(raw)
    except (binascii.Error, OSError, EOFError, zlib.error, ValueError) as exc:
        raise RecordError(f"not a Helm release record: {exc}") from None
    if not isinstance(data, dict):
        raise RecordError("not a Helm release record: the release is not a JSON object")
    return data


@dataclass(frozen=True)
class Revision:
    """One decoded revision of a release."""

    name: str
    revision: int
    release: JSONDict = field(repr=False)

    @property
    def info(self) -> Mapping[str, Any]:
        info = self.release.get("info")
        return info if isinstance(info, Mapping) else {}

    @property
    def chart_metadata(self) -> Mapping[str, Any]:
        chart = self.release.get("chart")
        meta = chart.get("metadata") if isinstance(chart, Mapping) else None
        return meta if isinstance(meta, Mapping) else {}


def revisions(objects: Iterable[Mapping[str, Any]]) -> dict[str, list[Revision]]:
    """Every release's revisions, oldest first, from the listed Secrets or ConfigMaps.

    Objects that are not Helm's own (another owner, another Secret type) are left out,
    as Helm leaves them out.
    """
    found: dict[str, list[Revision]] = {}
    for obj in objects:
        meta = obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        if labels.get(OWNER_LABEL) != OWNER:
            continue
        is_secret = obj.get("kind") == "Secret"
        if is_secret and obj.get("type") != RECORD_TYPE:
            continue
        encoded = (obj.get("data") or {}).get("release")
        if not encoded:
            continue
        try:
            release = decode(encoded, api_base64=is_secret)
        except RecordError as exc:
            raise RecordError(f"{obj.get('kind')} {meta.get('name')}: {exc}") from None
        name = str(release.get("name") or labels.get("name") or "")
        try:
            revision = number(release.get("version") or labels.get("version"), "version")
        except ValueError as exc:
            raise RecordError(
                f"{obj.get('kind')} {meta.get('name')}: not a Helm release record: its {exc}"
            ) from None
        found.setdefault(name, []).append(Revision(name, revision, release))
    for entries in found.values():
        entries.sort(key=lambda r: r.revision)
    return found


def status(history: list[Revision]) -> JSONDict | None:
    """What ``helm status -o json`` shows: the latest revision, chart metadata included."""
    if not history:
        return None
    latest = history[-1].release
    return {
        key: latest[key]
        for key in ("name", "namespace", "version", "info", "chart", "apply_method")
        if key in latest
    }


def history_entry(revision: Revision) -> JSONDict:
    """One entry of ``helm history -o json``."""
    meta = revision.chart_metadata
    info = revision.info
    chart = f"{meta.get('name') or ''}-{meta.get('version') or ''}" if meta else "MISSING"
    return {
        "revision": revision.revision,
        "updated": info.get("last_deployed") or "",
        "status": info.get("status") or "",
        "chart": chart,
        "app_version": meta.get("appVersion") or "",
        "description": info.get("description") or "",
        "rollback_revision": info.get("rollback_revision") or 0,
    }


def values(history: list[Revision]) -> JSONDict:
    """What ``helm get values -o json`` shows: the latest revision's user-supplied values."""
    if not history:
        return {}
    config = history[-1].release.get("config")
    return dict(config) if isinstance(config, Mapping) else {}
