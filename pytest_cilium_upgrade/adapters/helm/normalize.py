"""Helm's JSON output turned into one shape for Helm 3 and Helm 4.

``helm status -o json`` carries no chart metadata in either version and, in Helm 4, the
live objects of the release (Secrets included): :func:`normalize_status` drops them and
takes the chart from ``helm get metadata``, so
:meth:`~pytest_cilium_upgrade.snapshot.model.HelmRelease.from_helm_status` reads both.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_cilium_upgrade.errors import HelmFailed
from pytest_cilium_upgrade.versions import split_chart

STDERR_LIMIT = 2000


def tail(text: str, limit: int = STDERR_LIMIT) -> str:
    """The end of ``text``, stripped, at most ``limit`` characters (``...`` when cut)."""
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


def load_json(argv: Sequence[str], text: str) -> Any:
    """Helm's ``-o json`` output of ``argv``; None when empty, :class:`HelmFailed` if not JSON."""
    try:
        return json.loads(text) if text.strip() else None
    except ValueError as exc:
        message = f"output is not JSON ({exc}): {tail(text, 200)}"
        # not chained: the decode error keeps the whole document, which may be the values
        raise HelmFailed(list(argv), 0, message) from None


def number(value: Any, field: str) -> int:
    """A number Helm printed (an integer, or its digits; 0 when absent).

    :class:`ValueError` naming ``field`` for anything else: output of another shape than
    Helm's (a storage driver or a plugin that writes other types) is refused here, with
    one line, rather than failing somewhere later.
    """
    if value is None or value == "":
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().removeprefix("-").isdigit():
        return int(value.strip())
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:39] + "…"
    raise ValueError(f"{field} is {shown}, not a number")


def normalize_status(
    status: Mapping[str, Any], metadata: Mapping[str, Any] | None
) -> dict[str, Any]:
    """One shape for ``helm status -o json`` of Helm 3 and 4, with chart metadata added.

    Both versions strip the chart from ``status`` output; ``metadata`` is the output of
    ``helm get metadata -o json`` (``chart``, ``version``, ``appVersion``). The release's
    values (``config``), manifest, hooks, notes and Helm 4's live ``info.resources``
    (which include Secrets) are dropped.
    """
    raw_info = status.get("info")
    info: Mapping[str, Any] = raw_info if isinstance(raw_info, Mapping) else {}
    out_info = {
        "first_deployed": str(info.get("first_deployed") or ""),
        "last_deployed": str(info.get("last_deployed") or ""),
        "deleted": str(info.get("deleted") or ""),
        "description": str(info.get("description") or ""),
        "status": str(info.get("status") or ""),
        "rollback_revision": number(info.get("rollback_revision"), "info.rollback_revision"),
    }
    out: dict[str, Any] = {
        "name": str(status.get("name") or ""),
        "namespace": str(status.get("namespace") or ""),
        "version": number(status.get("version"), "version"),
        "info": out_info,
    }
    chart_meta: dict[str, str] = {}
    chart = status.get("chart")
    if isinstance(chart, Mapping) and isinstance(chart.get("metadata"), Mapping):
        meta = chart["metadata"]
        chart_meta = {
            "name": str(meta.get("name") or ""),
            "version": str(meta.get("version") or ""),
            "appVersion": str(meta.get("appVersion") or ""),
        }
    elif metadata:
        chart_meta = {
            "name": str(metadata.get("chart") or ""),
            "version": str(metadata.get("version") or ""),
            "appVersion": str(metadata.get("appVersion") or ""),
        }
    if chart_meta:
        out["chart"] = {"metadata": chart_meta}
    # Helm 4 records server-side ("ssa") or client-side ("csa") apply; Helm 3 does not.
    method = status.get("apply_method") or (metadata or {}).get("applyMethod")
    out["apply_method"] = str(method or "")
    return out


def normalize_history_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """One shape for an entry of ``helm history -o json`` of Helm 3 and 4.

    Helm 4 omits ``updated`` when unset and adds ``rollback_revision`` to rollbacks.
    """
    return {
        "revision": number(entry.get("revision"), "revision"),
        "updated": str(entry.get("updated") or ""),
        "status": str(entry.get("status") or ""),
        "chart": str(entry.get("chart") or ""),
        "app_version": str(entry.get("app_version") or ""),
        "description": str(entry.get("description") or ""),
        "rollback_revision": number(entry.get("rollback_revision"), "rollback_revision"),
    }


def metadata_from_history(release: str, namespace: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    """``helm get metadata`` fields rebuilt from the latest history entry (Helm < 3.13)."""
    name, version = split_chart(str(entry.get("chart") or ""))
    return {
        "name": release,
        "namespace": namespace,
        "chart": name,
        "version": version,
        "appVersion": str(entry.get("app_version") or ""),
        "revision": number(entry.get("revision"), "revision"),
        "status": str(entry.get("status") or ""),
    }
