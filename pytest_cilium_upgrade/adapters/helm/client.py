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

Mutating operations are built as :class:`~.commands.HelmCommand` objects first
(``install_command``, ``upgrade_command``, ... in :mod:`.commands`), so a dry run can
print the exact argument list without running it; :meth:`Helm.execute` runs one
(through the :class:`~.runner.Runner`). Values given as a mapping go to Helm on stdin (``-f -``),
never on the command line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_cilium_upgrade.adapters.cachedir import default_cache_dir
from pytest_cilium_upgrade.adapters.helm.charts import ChartSource
from pytest_cilium_upgrade.adapters.helm.commands import (
    DEFAULT_WAIT_TIMEOUT,
    PRIVATE_REPO,
    HelmCommand,
    HelmCommands,
)
from pytest_cilium_upgrade.adapters.helm.normalize import (
    load_json,
    metadata_from_history,
    normalize_history_entry,
    normalize_status,
    tail,
)
from pytest_cilium_upgrade.adapters.helm.runner import HelmCall, Runner, run_subprocess
from pytest_cilium_upgrade.adapters.helm.values import (
    PROBE_CHART_YAML,
    PROBE_TEMPLATE,
    probe_values,
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
HISTORY_MAX = 256
WAIT_STRATEGIES = ("watcher", "legacy", "hookOnly")
_RELEASE_NOT_FOUND = "release: not found"
_WAIT_TIMED_OUT = ("context deadline exceeded", "timed out waiting for the condition")


class HelmTimeout(HelmFailed, Timeout):
    """Helm's own wait (``--wait`` / hooks) ran past ``--timeout``.

    Both a :class:`HelmFailed` (exit code and stderr) and a :class:`Timeout`.
    """


class Helm(HelmCommands):
    """A ``helm`` client of a supported major version, bound to one cluster.

    Builds its commands as :class:`~.commands.HelmCommands`; runs them here.
    """

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

    def _run(
        self, command: HelmCommand, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` with the client's environment, ``env`` added to it."""
        shown = tuple(self._redacted_argv(command.argv))
        started = time.monotonic()
        run_env = self.env if env is None else {**self.env, **env}
        try:
            proc = self._runner(
                command.argv, input_text=command.stdin, env=run_env, timeout=command.timeout
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

    def _unreadable(self, command: HelmCommand, what: str, exc: ValueError) -> HelmFailed:
        """Output of ``command`` that is not ``what`` in Helm's shape: one line, no document."""
        return HelmFailed(
            self._redacted_argv(command.argv), 0, f"printed {what} that cannot be read: {exc}"
        )

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
        try:
            normalized = normalize_status(raw if isinstance(raw, Mapping) else {}, metadata)
        except ValueError as exc:  # not Helm's shape (another storage driver, a plugin)
            raise self._unreadable(command, "a release status", exc) from None
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
        try:
            entries = [normalize_history_entry(e) for e in data or [] if isinstance(e, Mapping)]
        except ValueError as exc:
            raise self._unreadable(command, "a release history", exc) from None
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
    def search_repo(
        self, ref: str, *, include_prereleases: bool = False, repo_url: str | None = None
    ) -> list[Version]:
        """The versions of chart ``ref`` (``<repo>/<chart>``) in the repos helm knows.

        Empty when no repository offers it, or none is configured; this is the
        :class:`~.charts.RepoSearch` a :class:`~.charts.ChartSource` is bound to.
        With ``repo_url``, ``ref`` is a chart name in the repository at that URL: see
        :meth:`repo_url_env`.
        """
        if repo_url is not None:
            return self._search_repo_url(ref, repo_url, include_prereleases)
        args = ["search", "repo", ref, "--versions", "-o", "json"]
        if include_prereleases:
            args.append("--devel")
        command = self.command(*args, cluster=False)
        proc = self._run(command)
        if proc.returncode != 0:
            if "no repositories" in (proc.stderr or ""):
                return []
            raise self._failure(command, proc)
        return self._found_versions(command, proc.stdout, ref)

    def _search_repo_url(
        self, chart: str, repo_url: str, include_prereleases: bool
    ) -> list[Version]:
        add, search = self.repo_url_commands(
            chart, repo_url, include_prereleases=include_prereleases
        )
        with tempfile.TemporaryDirectory(prefix="cilium-chart-repo-") as tmp:
            env = self.repo_url_env(Path(tmp))
            for command in (add, search):
                proc = self._run(command, env)
                if proc.returncode != 0:
                    raise self._failure(command, proc)
        return self._found_versions(search, proc.stdout, f"{PRIVATE_REPO}/{chart}")

    @staticmethod
    def _found_versions(command: HelmCommand, stdout: str, ref: str) -> list[Version]:
        """The versions of ``ref`` in ``helm search repo -o json`` output."""
        data = load_json(command.argv, stdout) or []
        return [
            v
            for e in data
            if isinstance(e, Mapping) and e.get("name") == ref
            for v in [Version.try_parse(str(e.get("version") or ""))]
            if v is not None
        ]

    def pull(
        self,
        ref: str,
        version: str | Version,
        destination: Path,
        *,
        repo_url: str | None = None,
    ) -> Path:
        """``helm pull REF --version X --destination DIR``: the chart archive it wrote.

        The :class:`~.charts.RepoSearch` way to a repo chart's own files (``helm show``
        has no subcommand for ``values.schema.json`` in Helm 3 or 4). ``REF`` may be an
        ``oci://`` reference; with ``repo_url`` it is a chart name in that repository
        (``--repo URL``).
        """
        command = self.command(
            "pull",
            ref,
            *(["--repo", repo_url] if repo_url is not None else []),
            "--version",
            str(version),
            "--destination",
            os.fspath(destination),
            cluster=False,
        )
        self.execute(command)
        archives = sorted(destination.glob("*.tgz"))
        if len(archives) != 1:
            raise HelmFailed(
                self._redacted_argv(command.argv),
                0,
                f"helm pull wrote {len(archives)} chart archives, not one, to {destination}",
            )
        return archives[0]

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
        kube_version: str | None = None,
        api_versions: Iterable[str] = (),
    ) -> str:
        """The rendered manifest; a chart that refuses the values raises :class:`HelmFailed`
        whose ``stderr`` carries the chart's own message. See :meth:`template_command`."""
        command = self.template_command(
            release,
            chart,
            version,
            namespace,
            values_files,
            set_values,
            set_string_values,
            values=values,
            kube_version=kube_version,
            api_versions=api_versions,
        )
        return self.execute(command).stdout

    def user_values(
        self,
        values_files: Iterable[str | os.PathLike[str]] = (),
        set_values: Iterable[str] = (),
    ) -> dict[str, Any]:
        """The user-supplied values of ``helm upgrade -f FILE... --set ITEM...``, as Helm
        computes them: what ``helm get values`` prints after such an upgrade.

        Helm itself merges the files and parses the ``--set`` items (``a=1,b=2``, list
        indices, escaped dots, ``{a,b}`` lists, typed scalars, ``null``): it renders a
        probe chart without defaults, written to a private temporary directory, whose one
        template prints ``.Values`` as JSON. The result may hold secrets: it is returned,
        never logged; a failure carries Helm's error, never the values.
        """
        with tempfile.TemporaryDirectory(prefix="cilium-values-probe-") as tmp:
            chart = Path(tmp) / "probe"
            (chart / "templates").mkdir(parents=True)
            (chart / "Chart.yaml").write_text(PROBE_CHART_YAML)
            (chart / "templates" / "values.yaml").write_text(PROBE_TEMPLATE)
            command = self.user_values_command(chart, values_files, set_values)
            stdout = self.execute(command).stdout
        return probe_values(stdout, self._redacted_argv(command.argv))

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
