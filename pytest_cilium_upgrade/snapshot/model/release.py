"""Helm's side of the snapshot: the release, its history, the render, the values file.

``from_helm_*`` constructors take Helm's ``-o json`` output (Helm 3; Helm 4 keeps
these fields).
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.snapshot.model.jsondata import JSONDict, as_int, as_map, as_str
from pytest_cilium_upgrade.versions import split_chart


@dataclass(frozen=True)
class HelmRelease:
    name: str
    namespace: str
    revision: int
    status: str
    chart_name: str = defaults.CHART_NAME
    chart_version: str = ""
    app_version: str = ""
    updated: str = ""

    @classmethod
    def from_helm_list_entry(cls, data: JSONDict) -> HelmRelease:
        """From one entry of ``helm list -o json`` (chart column ``cilium-1.16.3``)."""
        chart_name, chart_version = split_chart(as_str(data.get("chart")))
        return cls(
            name=as_str(data.get("name")),
            namespace=as_str(data.get("namespace")),
            revision=as_int(data.get("revision")),
            status=as_str(data.get("status")),
            chart_name=chart_name,
            chart_version=chart_version,
            app_version=as_str(data.get("app_version")),
            updated=as_str(data.get("updated")),
        )

    @classmethod
    def from_helm_status(cls, data: JSONDict) -> HelmRelease:
        """From ``helm status -o json`` (Helm 3; Helm 4 keeps these fields)."""
        info = as_map(data.get("info"))
        meta = as_map(as_map(data.get("chart")).get("metadata"))
        return cls(
            name=as_str(data.get("name")),
            namespace=as_str(data.get("namespace")),
            revision=as_int(data.get("version")),
            status=as_str(info.get("status")),
            chart_name=as_str(meta.get("name"), defaults.CHART_NAME),
            chart_version=as_str(meta.get("version")),
            app_version=as_str(meta.get("appVersion")),
            updated=as_str(info.get("last_deployed")),
        )


@dataclass(frozen=True)
class HelmHistoryEntry:
    revision: int
    status: str
    chart_name: str = defaults.CHART_NAME
    chart_version: str = ""
    app_version: str = ""
    description: str = ""
    updated: str = ""

    @classmethod
    def from_helm_history_entry(cls, data: JSONDict) -> HelmHistoryEntry:
        """From one entry of ``helm history -o json``."""
        chart_name, chart_version = split_chart(as_str(data.get("chart")))
        return cls(
            revision=as_int(data.get("revision")),
            status=as_str(data.get("status")),
            chart_name=chart_name,
            chart_version=chart_version,
            app_version=as_str(data.get("app_version")),
            description=as_str(data.get("description")),
            updated=as_str(data.get("updated")),
        )


@dataclass(frozen=True)
class ChartRender:
    """The outcome of rendering a chart version with the values snapshot.

    Rendered for the cluster's Kubernetes version and with its API versions (how many:
    ``api_versions``), as ``helm upgrade`` renders it; ``rendered`` is False when those
    could not be read and the chart was therefore not rendered (``error`` says why).
    """

    chart_version: str
    succeeded: bool
    error: str = ""
    kube_version: str = ""
    api_versions: int = 0
    rendered: bool = True


@dataclass(frozen=True)
class ChartValues:
    """What the target chart says of its values: its ``values.yaml`` and ``values.schema.json``.

    The texts as the chart holds them (None: the chart has no such file); ``error``
    says why they could not be read. Parsed by the checks.
    """

    chart_version: str
    values_yaml: str | None = None
    schema_json: str | None = None
    error: str = ""


@dataclass(frozen=True)
class ValuesSnapshotFile:
    """The saved ``helm get values`` file as read from disk (text is parsed by the checks)."""

    path: str
    exists: bool
    mode: int | None = None
    text: str | None = None
    read_error: str = ""
    # why --cilium-write-snapshot did not write it in this run
    write_error: str = ""
