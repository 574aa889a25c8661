"""The narrow interfaces the snapshot is read through, and what to read.

:func:`~pytest_cilium_upgrade.snapshot.read.collect` depends only on these reader
Protocols, so unit tests can hand it in-memory fakes of our own adapters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.adapters.helm.charts import ChartSource
from pytest_cilium_upgrade.snapshot.model import JSONDict

T = TypeVar("T")


class RecordLister(Protocol):
    def list_release_records(
        self, namespace: str, releases: Iterable[str], kind: str = "Secret"
    ) -> list[JSONDict]: ...


class ClusterReader(RecordLister, Protocol):
    def server_version(self) -> str: ...
    def api_versions(self) -> list[str]: ...
    def access_reviews(
        self, namespace: str, requirements: Iterable[defaults.AccessRequirement]
    ) -> list[JSONDict]: ...
    def list_nodes(self) -> list[JSONDict]: ...
    def list_pods(self, namespace: str, selector: str | None = None) -> list[JSONDict]: ...
    def list_daemonsets(self, namespace: str) -> list[JSONDict]: ...
    def list_deployments(self, namespace: str) -> list[JSONDict]: ...
    def pod_log(
        self, namespace: str, pod: str, container: str, *, previous: bool = False
    ) -> str | None: ...


@runtime_checkable
class ModelLister(Protocol):
    """A reader that turns each page of the nodes' and pods' LISTs into models as it
    arrives (the Kubernetes adapter)."""

    def nodes_as(self, into: Callable[[JSONDict], T]) -> list[T]: ...
    def pods_as(
        self, namespace: str, into: Callable[[JSONDict], T], selector: str | None = None
    ) -> list[T]: ...


class ChartVersions(Protocol):
    def versions(self) -> list[str]: ...


class ReleaseReader(Protocol):
    """A release's state in the shapes of ``helm status``/``history``/``get values``."""

    def status(self, release: str, namespace: str) -> JSONDict | None: ...
    def history(self, release: str, namespace: str) -> list[JSONDict]: ...
    def get_values(self, release: str, namespace: str) -> JSONDict: ...


class HelmReader(ReleaseReader, Protocol):
    def version(self) -> str: ...
    def template(
        self,
        release: str,
        chart: ChartSource,
        version: str,
        namespace: str,
        values_files: Sequence[str] = (),
        set_values: Sequence[str] = (),
        *,
        kube_version: str | None = None,
        api_versions: Sequence[str] = (),
    ) -> str: ...


@dataclass(frozen=True)
class CollectRequest:
    """What to collect: the release, where its snapshot is, what to render."""

    namespace: str = defaults.DEFAULT_NAMESPACE
    release: str = defaults.DEFAULT_RELEASE
    preflight_release: str = defaults.DEFAULT_PREFLIGHT_RELEASE
    values_snapshot: Path | None = None
    target_version: str | None = None
    chart: ChartSource | None = None  # rendered with the snapshot when given
    # what the upgrade will add on top of the snapshot, rendered with it
    extra_values_files: tuple[Path, ...] = ()
    extra_sets: tuple[str, ...] = ()
    requirements: tuple[defaults.AccessRequirement, ...] = defaults.REQUIRED_ACCESS
    # the kind holding Helm's release records ("Secret" or "ConfigMap"), read with one
    # LIST through the cluster reader; None asks helm (e.g. for HELM_DRIVER=sql)
    release_records: str | None = None
