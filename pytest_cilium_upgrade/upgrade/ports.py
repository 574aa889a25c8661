"""What the performed upgrade asks of the Kubernetes and Helm adapters.

The steps depend on these Protocols, not on the adapters' classes, so a unit test can
hand them fakes of our own adapters; the session hands them ``adapters.kube.Kube``
and ``adapters.helm.Helm``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from pytest_cilium_upgrade.adapters.helm.charts import ChartSource
from pytest_cilium_upgrade.adapters.helm.commands import HelmCommand
from pytest_cilium_upgrade.snapshot.readers import RecordLister, ReleaseReader
from pytest_cilium_upgrade.upgrade.lock import LeaseClient
from pytest_cilium_upgrade.upgrade.waits import WorkloadWatcher
from pytest_cilium_upgrade.versions import Version

__all__ = ["ChartSource", "FlowCluster", "FlowHelm"]


class FlowCluster(WorkloadWatcher, LeaseClient, RecordLister, Protocol):
    """The cluster: workloads watched, the upgrade Lease, Helm's release records."""


class FlowHelm(ReleaseReader, Protocol):
    """The helm client: the commands of each step, run; a release's state read."""

    timeout: float

    def install_command(
        self,
        release: str,
        chart: ChartSource,
        version: str | Version,
        namespace: str,
        *,
        values: Mapping[str, Any] | None = ...,
        set_values: Iterable[str] = ...,
        wait: bool = ...,
    ) -> HelmCommand: ...

    def upgrade_command(
        self,
        release: str,
        chart: ChartSource,
        version: str | Version,
        namespace: str,
        *,
        values_files: Iterable[str | os.PathLike[str]] = ...,
        set_values: Iterable[str] = ...,
        wait: bool = ...,
        current_version: str | Version | None = ...,
    ) -> HelmCommand: ...

    def uninstall_command(
        self, release: str, namespace: str, wait: bool = ..., *, timeout_s: float = ...
    ) -> HelmCommand: ...

    def rollback_command(
        self, release: str, revision: int, namespace: str, wait: bool = ...
    ) -> HelmCommand: ...

    def execute(
        self, command: HelmCommand, *, release: str | None = ..., namespace: str = ...
    ) -> object: ...  # the steps read nothing of helm's output

    def uninstall(self, release: str, namespace: str, wait: bool = ...) -> str: ...
