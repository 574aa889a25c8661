"""The Helm client: every ``helm`` the product runs goes through it.

Every call is an argument list (never a shell), has a timeout, passes the chosen
kubeconfig and context, and translates failures into :mod:`pytest_cilium_upgrade.errors`
once, here, with stderr redacted and truncated. The supported Helm majors are
:data:`~pytest_cilium_upgrade.defaults.HELM_SUPPORTED_MAJORS` (3 and 4); where their
flags or JSON differ, the difference is handled here and callers see one shape:

* ``--wait`` is a boolean in Helm 3 and a strategy in Helm 4 (``--wait=watcher``,
  ``legacy`` or ``hookOnly``; omitted means ``hookOnly``);
* ``--atomic`` and ``--force`` became ``--rollback-on-failure`` and ``--force-replace``;
* ``helm status -o json`` carries no chart metadata in either version and, in Helm 4,
  the live objects of the release: :meth:`Helm.status` drops them and adds the chart
  from ``helm get metadata`` (see :mod:`.normalize`).

Mutating operations are built as :class:`HelmCommand` objects first
(``install_command``, ``upgrade_command``, ...), so a dry run can print the exact
argument list without running it; :meth:`Helm.execute` runs one (through the
:class:`~.runner.Runner`). Values given as a mapping go to Helm on stdin (``-f -``),
never on the command line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pytest_cilium_upgrade.adapters.cachedir import default_cache_dir
from pytest_cilium_upgrade.adapters.helm.charts import (
    ChartSource,
    check_reuse_values,
    parse_version,
)
from pytest_cilium_upgrade.adapters.helm.normalize import (
    load_json,
    metadata_from_history,
    normalize_history_entry,
    normalize_status,
    tail,
)
from pytest_cilium_upgrade.adapters.helm.runner import (
    HelmCall,
    HelmCommand,
    Runner,
    duration,
    run_subprocess,
    values_args,
)
from pytest_cilium_upgrade.adapters.helm.versioncache import VersionCache
from pytest_cilium_upgrade.defaults import HELM_SUPPORTED_MAJORS
from pytest_cilium_upgrade.errors import HelmFailed, HelmNotFound, NotFound, Timeout
from pytest_cilium_upgrade.redact import Redactor
from pytest_cilium_upgrade.versions import Version, parse_helm_client_version

_ANY_MAJOR = " or ".join(str(m) for m in HELM_SUPPORTED_MAJORS)  # "3 or 4"
_EVERY_MAJOR = " and ".join(f"Helm {m}" for m in HELM_SUPPORTED_MAJORS)  # "Helm 3 and Helm 4"
INSTALL_HINT = f"install Helm {_ANY_MAJOR} (https://helm.sh/docs/intro/install/) or pass its path"
DEFAULT_TIMEOUT = 120.0
DEFAULT_WAIT_TIMEOUT = 300.0
# Extra time the subprocess gets beyond Helm's own ``--timeout``, so that Helm reports
# its timeout itself instead of being killed.
WAIT_MARGIN = 60.0
HISTORY_MAX = 256
WAIT_STRATEGIES = ("watcher", "legacy", "hookOnly")

_RELEASE_NOT_FOUND = "release: not found"
_WAIT_TIMED_OUT = ("context deadline exceeded", "timed out waiting for the condition")


class HelmTimeout(HelmFailed, Timeout):
    """Helm's own wait (``--wait`` / hooks) ran past ``--timeout``.

    Both a :class:`HelmFailed` (exit code and stderr) and a :class:`Timeout`.
    """


class Helm:
    """A ``helm`` client of a supported major version, bound to one cluster."""

    def __init__(
        self,
        binary: str = "helm",
        *,
        kubeconfig: str | os.PathLike[str] | None = None,
        kube_context: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        redactor: Redactor | None = None,
        runner: Runner | None = None,
        major: int | None = None,
        wait_strategy: str = "watcher",
    ) -> None:
        self.env: dict[str, str] = dict(os.environ if env is None else env)
        found = shutil.which(binary, path=self.env.get("PATH"))
        if found is None:
            raise HelmNotFound(f"helm binary {binary!r} not found; {INSTALL_HINT}")
        if timeout <= 0:
            raise ValueError(f"helm timeout must be positive, not {timeout}")
        if major is not None and major not in HELM_SUPPORTED_MAJORS:
            raise ValueError(f"helm major version must be {_ANY_MAJOR}, not {major}")
        if wait_strategy not in WAIT_STRATEGIES:
            raise ValueError(
                f"Helm 4 wait strategy must be one of {', '.join(WAIT_STRATEGIES)}, "
                f"not {wait_strategy!r}"
            )
        self.binary = found
        self.kubeconfig = os.fspath(kubeconfig) if kubeconfig is not None else None
        self.kube_context = kube_context
        self.timeout = timeout
        self.redactor = redactor or Redactor()
        self.wait_strategy = wait_strategy
        self.calls: list[HelmCall] = []
        self._runner: Runner = runner or run_subprocess
        self._major = major
        self._version: str | None = None
        # what `helm version` said is kept per binary file, for the real runner only
        self._versions: VersionCache | None = None
        if runner is None:
            self._versions = VersionCache(default_cache_dir() / "helm-version")

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

    def _redacted_argv(self, argv: Sequence[str]) -> list[str]:
        return [self.redactor.redact(a) for a in argv]

    def execute(
        self, command: HelmCommand, *, release: str | None = None, namespace: str = ""
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command``; raise :class:`HelmFailed` (or :class:`HelmTimeout`) on failure.

        With ``release`` given, Helm's ``release: not found`` becomes :class:`NotFound`.
        """
        proc = self._run(command)
        if proc.returncode == 0:
            return proc
        if release is not None and _RELEASE_NOT_FOUND in (proc.stderr or ""):
            raise NotFound(f"Helm release {release} not found in namespace {namespace}")
        raise self._failure(command, proc)

    def _run(self, command: HelmCommand) -> subprocess.CompletedProcess[str]:
        shown = tuple(self._redacted_argv(command.argv))
        started = time.monotonic()
        try:
            proc = self._runner(
                command.argv, input_text=command.stdin, env=self.env, timeout=command.timeout
            )
        except subprocess.TimeoutExpired:
            self.calls.append(HelmCall(shown, None, time.monotonic() - started))
            # not chained: the expired call keeps the raw argv (--set values) and output
            raise Timeout(
                f"`{' '.join(shown[:3])} ...` did not finish within {command.timeout:g}s"
            ) from None
        except OSError as exc:
            self.calls.append(HelmCall(shown, None, time.monotonic() - started))
            raise HelmNotFound(f"cannot run helm at {self.binary}: {exc}; {INSTALL_HINT}") from exc
        self.calls.append(HelmCall(shown, proc.returncode, time.monotonic() - started))
        return proc

    def _stderr(self, proc: subprocess.CompletedProcess[str]) -> str:
        return tail(self.redactor.redact(proc.stderr or proc.stdout or ""))

    def _failure(self, command: HelmCommand, proc: subprocess.CompletedProcess[str]) -> HelmFailed:
        stderr = self._stderr(proc)
        argv = self._redacted_argv(command.argv)
        if any(marker in stderr for marker in _WAIT_TIMED_OUT):
            return HelmTimeout(argv, proc.returncode, stderr)
        return HelmFailed(argv, proc.returncode, stderr)

    # ------------------------------------------------------------------ version
    def version(self) -> str:
        """The raw ``helm version --short`` output, e.g. ``v3.22.0+g1a2b3c4``.

        Kept between runs for the same binary file (path, inode, size, times): a helm
        process costs about as much as reading a small cluster.
        """
        if self._version is None and self._versions is not None:
            self._version = self._versions.get(self.binary)
        if self._version is None:
            command = self.command("version", "--short", cluster=False)
            proc = self._run(command)
            text = (proc.stdout or "").strip()
            if proc.returncode != 0 and parse_helm_client_version(text) is None:
                raise HelmNotFound(
                    f"`{self.binary} version --short` exited {proc.returncode}: "
                    f"{self._stderr(proc)}; {INSTALL_HINT}"
                )
            self._version = text
            if proc.returncode == 0 and self._versions is not None:
                self._versions.put(self.binary, text)
        return self._version

    def major(self) -> int:
        """A supported major (3 or 4); anything else is :class:`HelmNotFound`."""
        if self._major is None:
            self._major = major_of(self.version(), self.binary)
        return self._major

    # ------------------------------------------------------------------ reads
    def _json(self, command: HelmCommand, release: str | None = None, namespace: str = "") -> Any:
        """Run a ``-o json`` command and parse its output; see :meth:`execute`."""
        return load_json(
            command.argv, self.execute(command, release=release, namespace=namespace).stdout
        )

    def status(self, release: str, namespace: str) -> dict[str, Any] | None:
        """The release's status in one shape for Helm 3 and 4, or None if it does not exist.

        Feeds :meth:`~pytest_cilium_upgrade.snapshot.model.HelmRelease.from_helm_status`.
        """
        command = self.command("status", release, "--namespace", namespace, "-o", "json")
        try:
            raw = self._json(command, release, namespace)
            metadata = self._metadata(release, namespace)
        except NotFound:
            return None
        normalized = normalize_status(raw if isinstance(raw, Mapping) else {}, metadata)
        normalized["info"]["description"] = self.redactor.redact(normalized["info"]["description"])
        return normalized

    def _metadata(self, release: str, namespace: str) -> dict[str, Any] | None:
        command = self.command("get", "metadata", release, "--namespace", namespace, "-o", "json")
        try:
            out = self.execute(command, release=release, namespace=namespace).stdout
        except HelmFailed as exc:
            if "unknown command" not in exc.stderr:
                raise
            # Helm before 3.13 has no `get metadata`: take the chart from the history.
            history = self.history(release, namespace, max_revisions=1)
            if not history:
                return None
            return metadata_from_history(release, namespace, history[-1])
        data = load_json(command.argv, out)
        return dict(data) if isinstance(data, Mapping) else None

    def history(
        self, release: str, namespace: str, *, max_revisions: int = HISTORY_MAX
    ) -> list[dict[str, Any]]:
        """The release's revisions, oldest first; :class:`NotFound` if it does not exist.

        Each entry feeds ``HelmHistoryEntry.from_helm_history_entry`` of the model.
        """
        command = self.command(
            "history", release, "--namespace", namespace, "-o", "json", "--max", str(max_revisions)
        )
        data = self._json(command, release, namespace)
        entries = [normalize_history_entry(e) for e in data or [] if isinstance(e, Mapping)]
        for entry in entries:
            entry["description"] = self.redactor.redact(entry["description"])
        return sorted(entries, key=lambda e: int(e["revision"]))

    def get_values(
        self,
        release: str,
        namespace: str,
        revision: int | None = None,
        all_values: bool = False,
    ) -> dict[str, Any]:
        """The user-supplied values (or all computed values); ``{}`` when there are none."""
        args = ["get", "values", release, "--namespace", namespace, "-o", "json"]
        if revision is not None:
            if revision < 1:
                raise ValueError(f"revision must be 1 or more, not {revision}")
            args += ["--revision", str(revision)]
        if all_values:
            args.append("--all")
        command = self.command(*args)
        data = self._json(command, release, namespace)
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise HelmFailed(self._redacted_argv(command.argv), 0, "values are not a mapping")
        return data

    # ------------------------------------------------------------------ charts
    def search_repo(self, ref: str, *, include_prereleases: bool = False) -> list[Version]:
        """The versions of chart ``ref`` (``<repo>/<chart>``) in the repos helm knows.

        Empty when no repository offers it, or none is configured; this is the
        :class:`~.charts.RepoSearch` a :class:`~.charts.ChartSource` is bound to.
        """
        args = ["search", "repo", ref, "--versions", "-o", "json"]
        if include_prereleases:
            args.append("--devel")
        command = self.command(*args, cluster=False)
        proc = self._run(command)
        if proc.returncode != 0:
            if "no repositories" in (proc.stderr or ""):
                return []
            raise self._failure(command, proc)
        data = load_json(command.argv, proc.stdout) or []
        return [
            v
            for e in data
            if isinstance(e, Mapping) and e.get("name") == ref
            for v in [Version.try_parse(str(e.get("version") or ""))]
            if v is not None
        ]

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
    ) -> HelmCommand:
        vargs, stdin = values_args(values_files, values, set_values, set_string_values)
        return self.command(
            "template",
            release,
            *chart.chart_args(version),
            "--namespace",
            namespace,
            *vargs,
            stdin=stdin,
        )

    def template(
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
    ) -> str:
        """The rendered manifest; a chart that refuses the values raises :class:`HelmFailed`
        whose ``stderr`` carries the chart's own message."""
        command = self.template_command(
            release,
            chart,
            version,
            namespace,
            values_files,
            set_values,
            set_string_values,
            values=values,
        )
        return self.execute(command).stdout

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

    def uninstall(
        self,
        release: str,
        namespace: str,
        wait: bool = True,
        *,
        timeout_s: float = DEFAULT_WAIT_TIMEOUT,
        keep_history: bool = False,
    ) -> str:
        """Uninstall ``release``; :class:`NotFound` if it does not exist.

        Returns Helm's output (``release "<name>" uninstalled``).
        """
        command = self.uninstall_command(
            release, namespace, wait, timeout_s=timeout_s, keep_history=keep_history
        )
        return self.redactor.redact(
            self.execute(command, release=release, namespace=namespace).stdout
        )

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


# --------------------------------------------------------------------------- pure helpers


def major_of(version_text: str, binary: str = "helm") -> int:
    """The major version in ``helm version --short`` output; only supported ones are accepted."""
    parsed = parse_helm_client_version(version_text)
    if parsed is None:
        raise HelmNotFound(
            f"cannot tell the Helm version of {binary} from {version_text.strip()!r}; "
            f"only {_EVERY_MAJOR} are supported"
        )
    if parsed.major not in HELM_SUPPORTED_MAJORS:
        raise HelmNotFound(
            f"{binary} is Helm {parsed}; only {_EVERY_MAJOR} are supported ({INSTALL_HINT})"
        )
    return parsed.major
