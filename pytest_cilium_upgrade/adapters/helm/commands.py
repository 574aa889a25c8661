"""How each ``helm`` command is built: the exact argument list, never run here.

A :class:`HelmCommand` is the argument list (never a shell line) with its timeout and
the values that go on stdin. :class:`HelmCommands` builds the commands of the client
(:class:`~.client.Helm`, which runs them): the kubeconfig and context flags, the values
flags, and where Helm 3 and 4 differ, the flags of the client's major version. The
mutating operations are built, not run, so that a dry run can print the exact argument
list; values given as a mapping go to Helm on stdin (``-f -``), never on the command line.
"""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pytest_cilium_upgrade.adapters.helm.chart_refs import check_reuse_values, parse_version
from pytest_cilium_upgrade.adapters.helm.charts import ChartSource
from pytest_cilium_upgrade.adapters.helm.values import PROBE_RELEASE
from pytest_cilium_upgrade.redact import Redactor
from pytest_cilium_upgrade.versions import Version

DEFAULT_WAIT_TIMEOUT = 300.0
# Extra time the subprocess gets beyond Helm's own ``--timeout``, so that Helm reports
# its timeout itself instead of being killed.
WAIT_MARGIN = 60.0
# The name a chart repository given by URL is added under, to a repositories file and
# cache of the gate's own (never the user's), to list its versions.
PRIVATE_REPO = "pytest-cilium-upgrade"


@dataclass(frozen=True)
class HelmCommand:
    """One ``helm`` invocation, ready to run or to print.

    ``argv`` is exactly what runs (binary first). ``stdin`` holds values passed with
    ``-f -`` and is never shown.
    """

    argv: tuple[str, ...]
    timeout: float
    stdin: str | None = field(default=None, repr=False)

    def display(self, redactor: Redactor | None = None) -> str:
        """The command as a shell line (secrets redacted); stdin values are noted, not shown."""
        argv = [redactor.redact(a) for a in self.argv] if redactor else list(self.argv)
        text = shlex.join(argv)
        return f"{text}  # values on stdin" if self.stdin is not None else text


def duration(seconds: float) -> str:
    """A Helm ``--timeout`` value: whole seconds, rounded up."""
    if seconds <= 0:
        raise ValueError(f"timeout must be positive, not {seconds}")
    return f"{math.ceil(seconds)}s"


def values_args(
    values_files: Iterable[str | os.PathLike[str]],
    values: Mapping[str, Any] | None,
    set_values: Iterable[str],
    set_string_values: Iterable[str],
) -> tuple[list[str], str | None]:
    """Helm's values flags; a mapping goes on stdin (``--values -``), never on the command line."""
    args: list[str] = []
    for path in values_files:
        args += ["--values", os.fspath(path)]
    stdin = None
    if values is not None:
        stdin = yaml.safe_dump(dict(values), sort_keys=False)
        args += ["--values", "-"]
    for item in set_values:
        args += ["--set", item]
    for item in set_string_values:
        args += ["--set-string", item]
    return args, stdin


def capabilities_args(kube_version: str | None, api_versions: Iterable[str]) -> list[str]:
    """``--kube-version`` and one ``--api-versions`` per entry (Helm 3 and 4 take both)."""
    args: list[str] = []
    if kube_version:
        args += ["--kube-version", kube_version]
    for api_version in api_versions:
        args += ["--api-versions", api_version]
    return args


class HelmCommands:
    """The commands of a ``helm`` client bound to one cluster, built for its major version."""

    binary: str
    kubeconfig: str | None
    kube_context: str | None
    timeout: float
    wait_strategy: str

    def major(self) -> int:
        """The client's major version (3 or 4), which some flags depend on."""
        raise NotImplementedError

    # ------------------------------------------------------------------ plumbing
    def _global_args(self) -> list[str]:
        args: list[str] = []
        if self.kubeconfig:
            args += ["--kubeconfig", self.kubeconfig]
        if self.kube_context:
            args += ["--kube-context", self.kube_context]
        return args

    def command(
        self,
        *args: str,
        stdin: str | None = None,
        timeout: float | None = None,
        cluster: bool = True,
    ) -> HelmCommand:
        """A :class:`HelmCommand` for ``helm <args>`` with the kubeconfig/context flags."""
        argv = [self.binary, *args]
        if cluster:
            argv += self._global_args()
        return HelmCommand(tuple(argv), timeout or self.timeout, stdin)

    @staticmethod
    def repo_url_env(directory: Path) -> dict[str, str]:
        """Helm's repositories file and cache in ``directory``: where a repository given
        by URL is added, under :data:`PRIVATE_REPO`, to list its versions. The user's
        repositories file is neither read nor changed, and the index is fetched anew."""
        return {
            "HELM_REPOSITORY_CONFIG": os.fspath(directory / "repositories.yaml"),
            "HELM_REPOSITORY_CACHE": os.fspath(directory / "repository"),
        }

    def repo_url_commands(
        self, chart: str, repo_url: str, *, include_prereleases: bool = False
    ) -> tuple[HelmCommand, HelmCommand]:
        """``helm repo add`` of ``repo_url`` as :data:`PRIVATE_REPO`, then ``helm search
        repo`` of its ``chart``; run with :meth:`repo_url_env`."""
        add = self.command("repo", "add", PRIVATE_REPO, repo_url, cluster=False)
        args = ["search", "repo", f"{PRIVATE_REPO}/{chart}", "--versions", "-o", "json"]
        if include_prereleases:
            args.append("--devel")
        return add, self.command(*args, cluster=False)

    # ------------------------------------------------------------------ values
    def _wait_args(self, wait: bool, timeout_s: float) -> list[str]:
        args: list[str] = []
        if wait:
            args.append("--wait" if self.major() == 3 else f"--wait={self.wait_strategy}")
        args += ["--timeout", duration(timeout_s)]
        return args

    def _flag(self, helm3: str, helm4: str) -> str:
        return helm3 if self.major() == 3 else helm4

    def _mutation_timeout(self, timeout_s: float) -> float:
        return max(self.timeout, timeout_s + WAIT_MARGIN)

    # ------------------------------------------------------------------ template
    def template_command(
        self,
        release: str,
        chart: ChartSource,
        version: str | Version,
        namespace: str,
        values_files: Iterable[str | os.PathLike[str]] = (),
        set_values: Iterable[str] = (),
        set_string_values: Iterable[str] = (),
        *,
        values: Mapping[str, Any] | None = None,
        kube_version: str | None = None,
        api_versions: Iterable[str] = (),
    ) -> HelmCommand:
        """``helm template``; with ``kube_version`` and ``api_versions`` (a cluster's
        ``gitVersion`` and what its discovery serves) the chart sees the
        ``.Capabilities`` that ``helm upgrade`` on that cluster would give it, where
        Helm would otherwise assume a Kubernetes version of its own (v1.20.0 in Helm 3)
        and only the API versions compiled into it."""
        vargs, stdin = values_args(values_files, values, set_values, set_string_values)
        return self.command(
            "template",
            release,
            *chart.chart_args(version),
            "--namespace",
            namespace,
            *vargs,
            *capabilities_args(kube_version, api_versions),
            stdin=stdin,
        )

    # ------------------------------------------------------------------ user-supplied values
    def user_values_command(
        self,
        probe_chart: str | os.PathLike[str],
        values_files: Iterable[str | os.PathLike[str]] = (),
        set_values: Iterable[str] = (),
    ) -> HelmCommand:
        """``helm template`` of the probe chart with the values flags of an upgrade."""
        vargs, _ = values_args(values_files, None, set_values, ())
        return self.command(
            "template", PROBE_RELEASE, os.fspath(probe_chart), *vargs, cluster=False
        )

    # ------------------------------------------------------------------ install / upgrade
    # Built, not run: the upgrade steps print them in a dry run and run them with execute.
    def install_command(
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
    ) -> HelmCommand:
        vargs, stdin = values_args(values_files, values, set_values, set_string_values)
        args = ["install", release, *chart.chart_args(version), "--namespace", namespace, *vargs]
        args += self._wait_args(wait, timeout_s)
        if atomic:
            args.append(self._flag("--atomic", "--rollback-on-failure"))
        if force:
            args.append(self._flag("--force", "--force-replace"))
        if create_namespace:
            args.append("--create-namespace")
        return self.command(*args, stdin=stdin, timeout=self._mutation_timeout(timeout_s))

    def upgrade_command(
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
    ) -> HelmCommand:
        """``current_version`` (the installed chart version) is required with ``reuse_values``."""
        target = version if isinstance(version, Version) else parse_version(version)
        if reuse_values:
            check_reuse_values(current_version, target)
            if reset_values:
                raise ValueError("reuse_values and reset_values exclude each other")
        vargs, stdin = values_args(values_files, values, set_values, set_string_values)
        args = ["upgrade", release, *chart.chart_args(target), "--namespace", namespace, *vargs]
        args += self._wait_args(wait, timeout_s)
        if reuse_values:
            args.append("--reuse-values")
        if reset_values:
            args.append("--reset-values")
        if atomic:
            args.append(self._flag("--atomic", "--rollback-on-failure"))
        if force:
            args.append(self._flag("--force", "--force-replace"))
        if install:
            args.append("--install")
        return self.command(*args, stdin=stdin, timeout=self._mutation_timeout(timeout_s))

    # ------------------------------------------------------------------ uninstall / rollback
    def uninstall_command(
        self,
        release: str,
        namespace: str,
        wait: bool = True,
        *,
        timeout_s: float = DEFAULT_WAIT_TIMEOUT,
        keep_history: bool = False,
    ) -> HelmCommand:
        args = ["uninstall", release, "--namespace", namespace, *self._wait_args(wait, timeout_s)]
        if keep_history:
            args.append("--keep-history")
        return self.command(*args, timeout=self._mutation_timeout(timeout_s))

    def rollback_command(
        self,
        release: str,
        revision: int,
        namespace: str,
        wait: bool = True,
        timeout_s: float = DEFAULT_WAIT_TIMEOUT,
        *,
        force: bool = False,
    ) -> HelmCommand:
        """``revision`` 0 means the previous revision, as in Helm."""
        if revision < 0:
            raise ValueError(f"revision must be 0 (previous) or more, not {revision}")
        args = ["rollback", release, str(revision), "--namespace", namespace]
        args += self._wait_args(wait, timeout_s)
        if force:
            args.append(self._flag("--force", "--force-replace"))
        return self.command(*args, timeout=self._mutation_timeout(timeout_s))
