"""Helm verbs the tests need and the product does not: install, upgrade, rollback, list, repo add.

:class:`HelmDriver` is the product's :class:`~pytest_cilium_upgrade.adapters.helm.client.Helm`
with these verbs added on top of its public command builders, so a test sets a release
up through the same argument lists, runner, redaction and error translation the gate
uses (``NotFound`` for a missing release, ``HelmTimeout`` for Helm's own wait).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from pytest_cilium_upgrade.adapters.helm.charts import ChartSource, ChartSourceKind
from pytest_cilium_upgrade.adapters.helm.client import HISTORY_MAX, Helm
from pytest_cilium_upgrade.adapters.helm.commands import DEFAULT_WAIT_TIMEOUT, HelmCommand
from pytest_cilium_upgrade.adapters.helm.normalize import load_json
from pytest_cilium_upgrade.errors import NotFound
from pytest_cilium_upgrade.versions import Version


class HelmDriver(Helm):
    """A :class:`Helm` that also installs, upgrades, rolls back, lists and adds repos."""

    def install(
        self,
        release: str,
        chart: ChartSource,
        version: str | Version,
        namespace: str,
        *,
        values_files: Iterable[str | os.PathLike[str]] = (),
        values: Mapping[str, Any] | None = None,
        set_values: Iterable[str] = (),
        set_string_values: Iterable[str] = (),
        wait: bool = True,
        timeout_s: float = DEFAULT_WAIT_TIMEOUT,
        atomic: bool = False,
        force: bool = False,
        create_namespace: bool = False,
    ) -> str:
        """Install ``version`` of ``chart`` as ``release``; returns Helm's (redacted) output."""
        command = self.install_command(
            release,
            chart,
            version,
            namespace,
            values_files=values_files,
            values=values,
            set_values=set_values,
            set_string_values=set_string_values,
            wait=wait,
            timeout_s=timeout_s,
            atomic=atomic,
            force=force,
            create_namespace=create_namespace,
        )
        return self.redactor.redact(self.execute(command).stdout)

    def upgrade(
        self,
        release: str,
        chart: ChartSource,
        version: str | Version,
        namespace: str,
        *,
        values_files: Iterable[str | os.PathLike[str]] = (),
        values: Mapping[str, Any] | None = None,
        set_values: Iterable[str] = (),
        set_string_values: Iterable[str] = (),
        wait: bool = True,
        timeout_s: float = DEFAULT_WAIT_TIMEOUT,
        reuse_values: bool = False,
        reset_values: bool = False,
        current_version: str | Version | None = None,
        atomic: bool = False,
        force: bool = False,
        install: bool = False,
    ) -> str:
        """Upgrade ``release`` to ``version`` of ``chart``; returns Helm's (redacted) output.

        With ``reuse_values`` the installed chart version is read from the release when
        ``current_version`` is not given, and a change of minor version is refused.
        """
        if reuse_values and current_version is None:
            status = self.status(release, namespace)
            if status is None:
                raise NotFound(f"Helm release {release} not found in namespace {namespace}")
            current_version = str(status.get("chart", {}).get("metadata", {}).get("version", ""))
        command = self.upgrade_command(
            release,
            chart,
            version,
            namespace,
            values_files=values_files,
            values=values,
            set_values=set_values,
            set_string_values=set_string_values,
            wait=wait,
            timeout_s=timeout_s,
            reuse_values=reuse_values,
            reset_values=reset_values,
            current_version=current_version,
            atomic=atomic,
            force=force,
            install=install,
        )
        return self.redactor.redact(self.execute(command).stdout)

    def rollback(
        self,
        release: str,
        revision: int,
        namespace: str,
        wait: bool = True,
        timeout_s: float = DEFAULT_WAIT_TIMEOUT,
        *,
        force: bool = False,
    ) -> str:
        """Roll ``release`` back to ``revision``; :class:`NotFound` if it does not exist."""
        command = self.rollback_command(release, revision, namespace, wait, timeout_s, force=force)
        proc = self.execute(command, release=release, namespace=namespace)
        return self.redactor.redact(proc.stdout)

    def list_releases_command(self, namespace: str, all_states: bool = True) -> HelmCommand:
        args = ["list", "--namespace", namespace, "-o", "json", "--max", str(HISTORY_MAX)]
        if all_states:
            # Helm 4 dropped --all: without a state filter it lists every state.
            if self.major() == 3:
                args.append("--all")
        else:
            args += ["--deployed", "--failed"]
        return self.command(*args)

    def list_releases(self, namespace: str, all_states: bool = True) -> list[dict[str, Any]]:
        """Releases in ``namespace`` (each in ``helm list -o json`` form), also pending/failed."""
        command = self.list_releases_command(namespace, all_states)
        data = load_json(command.argv, self.execute(command).stdout)
        return [dict(e) for e in data or [] if isinstance(e, Mapping)]

    def repo_add_command(self, source: ChartSource) -> HelmCommand | None:
        """``helm repo add <name> <url> --force-update`` for a repo source with a URL."""
        if source.kind is not ChartSourceKind.REPO or not source.repo_url:
            return None
        assert source.repo_name is not None
        return self.command(
            "repo", "add", source.repo_name, source.repo_url, "--force-update", cluster=False
        )

    def prepare(self, source: ChartSource) -> None:
        """Make ``source`` usable: add (and refresh) its Helm repo when a URL is given."""
        command = self.repo_add_command(source)
        if command is not None:
            self.execute(command)
