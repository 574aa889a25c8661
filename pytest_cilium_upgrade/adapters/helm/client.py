"""The Helm adapter: the only module that runs ``helm``.

Every call is an argument list (never a shell), has a timeout, passes the chosen
kubeconfig and context, and translates failures into :mod:`pytest_cilium_upgrade.errors`
with stderr redacted and truncated. Helm 3 and Helm 4 are both supported; where their
flags or JSON differ, the difference is handled here and callers see one shape:

* ``--wait`` is a boolean in Helm 3 and a strategy in Helm 4 (``--wait=watcher``,
  ``legacy`` or ``hookOnly``; omitted means ``hookOnly``);
* ``--atomic`` and ``--force`` became ``--rollback-on-failure`` and ``--force-replace``;
* ``helm list -a`` is gone in Helm 4, which lists releases in every state by default;
* ``helm status -o json`` carries no chart metadata in either version and, in Helm 4,
  the live objects of the release (Secrets included): :meth:`Helm.status` drops them
  and adds the chart from ``helm get metadata``, so
  :meth:`~pytest_cilium_upgrade.snapshot.model.HelmRelease.from_helm_status` reads both.

Mutating operations are built as :class:`HelmCommand` objects first
(``install_command``, ``upgrade_command``, ...), so a dry run can print the exact
argument list without running it. Values given as a mapping go to Helm on stdin
(``-f -``), never on the command line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import functools
import hashlib
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import yaml

from pytest_cilium_upgrade import yamltext
from pytest_cilium_upgrade.adapters.cachedir import default_cache_dir
from pytest_cilium_upgrade.errors import GateError, HelmFailed, HelmNotFound, NotFound, Timeout
from pytest_cilium_upgrade.redact import Redactor
from pytest_cilium_upgrade.versions import (
    Version,
    VersionError,
    parse_helm_client_version,
    split_chart,
)

SUPPORTED_MAJORS = (3, 4)
INSTALL_HINT = "install Helm 3 or 4 (https://helm.sh/docs/intro/install/) or pass its path"
STDERR_LIMIT = 2000
DEFAULT_TIMEOUT = 120.0
DEFAULT_WAIT_TIMEOUT = 300.0
# Extra time the subprocess gets beyond Helm's own ``--timeout``, so that Helm reports
# its timeout itself instead of being killed.
WAIT_MARGIN = 60.0
HISTORY_MAX = 256
WAIT_STRATEGIES = ("watcher", "legacy", "hookOnly")

_RELEASE_NOT_FOUND = "release: not found"
_WAIT_TIMED_OUT = ("context deadline exceeded", "timed out waiting for the condition")
_REPO_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_TGZ_SUFFIXES = (".tgz", ".tar.gz")


class ChartSourceError(GateError, ValueError):
    """A chart source or chart version that cannot be used, with the reason."""


class HelmTimeout(HelmFailed, Timeout):
    """Helm's own wait (``--wait`` / hooks) ran past ``--timeout``.

    Both a :class:`HelmFailed` (exit code and stderr) and a :class:`Timeout`.
    """


# --------------------------------------------------------------------------- chart sources


class ChartSourceKind(enum.Enum):
    REPO = "Helm repo chart"
    DIRECTORY = "chart directory"
    CHART = "local chart"


@dataclass(frozen=True)
class LocalChart:
    """One chart on disk and the version its ``Chart.yaml`` declares."""

    path: Path
    name: str
    version: Version


def _chart_yaml_text(path: Path) -> str:
    if path.is_dir():
        chart_yaml = path / "Chart.yaml"
        if not chart_yaml.is_file():
            raise ChartSourceError(f"{path} has no Chart.yaml")
        return chart_yaml.read_text(errors="replace")
    return _chart_yaml_from_archive(path)


# A directory of versions is scanned several times a run (the chart source, the render,
# the versions on offer): each text is parsed once. Keyed on the text, never on file
# times, whose resolution lets a quick rewrite look unchanged.
@functools.lru_cache(maxsize=256)
def _parse_chart_yaml(where: str, text: str) -> Mapping[str, Any]:
    try:
        data = yamltext.load(text)
    except yaml.YAMLError as exc:
        raise ChartSourceError(f"Chart.yaml of {where} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ChartSourceError(f"Chart.yaml of {where} is not a mapping")
    return MappingProxyType(data)


def _chart_yaml_from_archive(path: Path) -> str:
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                parts = member.name.strip("/").split("/")
                if len(parts) == 2 and parts[1] == "Chart.yaml" and member.isfile():
                    handle = archive.extractfile(member)
                    if handle is not None:
                        return handle.read().decode(errors="replace")
    except (tarfile.TarError, OSError) as exc:
        raise ChartSourceError(f"{path} is not a packaged Helm chart: {exc}") from None
    raise ChartSourceError(f"{path} is not a packaged Helm chart: no <chart>/Chart.yaml inside")


def load_local_chart(path: Path) -> LocalChart:
    """Read name and version of the chart at ``path`` (directory or ``.tgz``)."""
    data = _parse_chart_yaml(str(path), _chart_yaml_text(path))
    raw = data.get("version")
    if raw is None:
        raise ChartSourceError(f"Chart.yaml of {path} has no version")
    try:
        version = Version.parse(str(raw))
    except VersionError:
        raise ChartSourceError(
            f"Chart.yaml of {path} has version {raw!r}, which is not a semantic version"
        ) from None
    return LocalChart(path, str(data.get("name") or ""), version)


def parse_version(text: str) -> Version:
    """A chart version as given by a user (``1.15.1`` or ``v1.15.1``)."""
    try:
        return Version.parse(text)
    except VersionError:
        raise ChartSourceError(
            f"chart version {text!r} is not a semantic version (e.g. 1.16.3)"
        ) from None


@dataclass(frozen=True)
class ChartSource:
    """Where target charts come from.

    * ``REPO``: a Helm repo chart reference such as ``cilium/cilium``, optionally with
      the repo URL to add first; versions come from ``helm search repo``.
    * ``DIRECTORY``: a directory with one chart per version, ``<dir>/<version>/Chart.yaml``.
    * ``CHART``: a single chart directory or packaged ``.tgz`` (one version).

    ``spec`` is the text the user gave, used in messages. ``helm``, when bound, lists
    the versions of a repo source (:meth:`versions`).
    """

    kind: ChartSourceKind
    ref: str
    spec: str
    repo_url: str | None = None
    helm: Helm | None = field(default=None, compare=False, repr=False)

    @classmethod
    def parse(
        cls, spec: str, repo_url: str | None = None, *, helm: Helm | None = None
    ) -> ChartSource:
        """Tell the form of ``spec`` and validate it; an existing path wins over a repo ref."""
        source = cls._parse(spec, repo_url)
        return dataclasses.replace(source, helm=helm) if helm is not None else source

    @classmethod
    def _parse(cls, spec: str, repo_url: str | None) -> ChartSource:
        text = spec.strip()
        if not text:
            raise ChartSourceError("chart source is empty: give <repo>/<chart> or a path")
        if repo_url is not None:
            repo_url = repo_url.strip()
            if not repo_url.startswith(("https://", "http://")):
                raise ChartSourceError(
                    f"chart repo URL {repo_url!r} must start with https:// or http://"
                )
        if text.startswith("oci://"):
            raise ChartSourceError(
                f"chart source {text!r}: OCI references are not supported; "
                "use a <repo>/<chart> reference or a local chart directory"
            )
        path = Path(text).expanduser()
        if path.exists():
            if repo_url is not None:
                raise ChartSourceError(
                    f"a chart repo URL applies only to <repo>/<chart> references, "
                    f"not to the local path {text}"
                )
            return cls._local(path, text)
        if _REPO_REF.match(text) and not text.startswith("."):
            return cls(ChartSourceKind.REPO, text, text, repo_url)
        if (
            "/" in text
            or os.sep in text
            or text.startswith((".", "~"))
            or text.endswith(_TGZ_SUFFIXES)
        ):
            raise ChartSourceError(f"chart path {text} does not exist")
        raise ChartSourceError(
            f"chart source {text!r} is neither a Helm repo chart reference (<repo>/<chart>, "
            "e.g. cilium/cilium) nor an existing chart directory or .tgz"
        )

    @classmethod
    def _local(cls, path: Path, spec: str) -> ChartSource:
        resolved = path.resolve()
        if resolved.is_file():
            if not resolved.name.endswith(_TGZ_SUFFIXES):
                raise ChartSourceError(
                    f"chart path {spec} is a file but not a packaged chart (.tgz)"
                )
            load_local_chart(resolved)
            return cls(ChartSourceKind.CHART, str(resolved), spec)
        if not resolved.is_dir():
            raise ChartSourceError(f"chart path {spec} is neither a directory nor a .tgz file")
        if (resolved / "Chart.yaml").is_file():
            load_local_chart(resolved)
            return cls(ChartSourceKind.CHART, str(resolved), spec)
        source = cls(ChartSourceKind.DIRECTORY, str(resolved), spec)
        if not source.local_charts():
            problems = source.skipped()
            detail = f" ({'; '.join(problems)})" if problems else ""
            raise ChartSourceError(
                f"chart directory {spec} holds no chart versions: expected "
                f"{spec.rstrip('/')}/<version>/Chart.yaml{detail}"
            )
        return source

    # ------------------------------------------------------------------ properties
    @property
    def is_local(self) -> bool:
        return self.kind is not ChartSourceKind.REPO

    @property
    def repo_name(self) -> str | None:
        """``cilium`` for ``cilium/cilium``; None for local sources."""
        return self.ref.split("/", 1)[0] if self.kind is ChartSourceKind.REPO else None

    @property
    def chart_name(self) -> str:
        if self.kind is ChartSourceKind.REPO:
            return self.ref.split("/", 1)[1]
        if self.kind is ChartSourceKind.CHART:
            return load_local_chart(Path(self.ref)).name
        names = {c.name for c in self.local_charts()}
        return names.pop() if len(names) == 1 else ""

    def __str__(self) -> str:
        text = f"{self.kind.value} {self.spec}"
        return f"{text} ({self.repo_url})" if self.repo_url else text

    # ------------------------------------------------------------------ local versions
    def _scan(self) -> tuple[list[LocalChart], list[str]]:
        root = Path(self.ref)
        charts: list[LocalChart] = []
        skipped: list[str] = []
        for sub in sorted(p for p in root.iterdir() if p.is_dir()):
            wanted = Version.try_parse(sub.name)
            if wanted is None:
                continue
            if not (sub / "Chart.yaml").is_file():
                skipped.append(f"{sub.name}/ has no Chart.yaml")
                continue
            try:
                chart = load_local_chart(sub)
            except ChartSourceError as exc:
                skipped.append(str(exc))
                continue
            if chart.version != wanted:
                skipped.append(f"{sub.name}/Chart.yaml says version {chart.version}")
                continue
            charts.append(chart)
        charts.sort(key=lambda c: c.version)
        return charts, skipped

    def local_charts(self) -> list[LocalChart]:
        """The charts on disk, lowest version first (empty for a repo reference)."""
        if self.kind is ChartSourceKind.REPO:
            return []
        if self.kind is ChartSourceKind.CHART:
            return [load_local_chart(Path(self.ref))]
        return self._scan()[0]

    def skipped(self) -> list[str]:
        """Why version-named subdirectories of a chart directory were not taken."""
        return self._scan()[1] if self.kind is ChartSourceKind.DIRECTORY else []

    def versions(self, *, include_prereleases: bool = False) -> list[Version]:
        """The versions on offer, lowest first; a repo source needs a bound ``helm``."""
        if self.kind is ChartSourceKind.REPO and self.helm is None:
            raise ChartSourceError(f"cannot list the versions of {self} without a helm client")
        if self.helm is not None:
            return self.helm.chart_versions(self, include_prereleases=include_prereleases)
        versions = self.local_versions()
        return versions if include_prereleases else [v for v in versions if not v.is_prerelease]

    def local_versions(self) -> list[Version]:
        if self.kind is ChartSourceKind.REPO:
            raise ChartSourceError(
                f"the versions of {self} come from `helm search repo`; use Helm.chart_versions"
            )
        return [c.version for c in self.local_charts()]

    # ------------------------------------------------------------------ helm arguments
    def chart_args(self, version: str | Version) -> list[str]:
        """The chart argument(s) Helm takes for ``version`` of this source."""
        wanted = version if isinstance(version, Version) else parse_version(version)
        if self.kind is ChartSourceKind.REPO:
            return [self.ref, "--version", str(wanted)]
        charts = self.local_charts()
        for chart in charts:
            if chart.version == wanted:
                return [str(chart.path)]
        if self.kind is ChartSourceKind.CHART:
            raise ChartSourceError(
                f"chart {self.spec} is version {charts[0].version}, not {wanted}"
            )
        available = ", ".join(str(c.version) for c in charts) or "none"
        extra = [s for s in self.skipped() if s.startswith(f"{wanted}/")]
        detail = f"; {'; '.join(extra)}" if extra else ""
        raise ChartSourceError(
            f"chart directory {self.spec} has no chart for version {wanted} "
            f"(available: {available}){detail}"
        )


# --------------------------------------------------------------------------- running helm


class Runner(Protocol):
    """Runs one command; the seam tests replace."""

    def __call__(
        self,
        argv: Sequence[str],
        *,
        input_text: str | None,
        env: Mapping[str, str],
        timeout: float,
    ) -> subprocess.CompletedProcess[str]: ...


def run_subprocess(
    argv: Sequence[str],
    *,
    input_text: str | None,
    env: Mapping[str, str],
    timeout: float,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv),
        input=input_text,
        stdin=None if input_text is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=dict(env),
        timeout=timeout,
        check=False,
    )


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


@dataclass(frozen=True)
class HelmCall:
    """A record of one command that ran (argv redacted); ``exit_code`` None on timeout."""

    argv: tuple[str, ...]
    exit_code: int | None
    seconds: float


def _tail(text: str, limit: int = STDERR_LIMIT) -> str:
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


def _duration(seconds: float) -> str:
    if seconds <= 0:
        raise ValueError(f"timeout must be positive, not {seconds}")
    return f"{math.ceil(seconds)}s"


def _load_json(argv: Sequence[str], text: str) -> Any:
    try:
        return json.loads(text) if text.strip() else None
    except ValueError as exc:
        raise HelmFailed(list(argv), 0, f"output is not JSON ({exc}): {_tail(text, 200)}") from None


# --------------------------------------------------------------------------- JSON shapes


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
        "rollback_revision": int(info.get("rollback_revision") or 0),
    }
    out: dict[str, Any] = {
        "name": str(status.get("name") or ""),
        "namespace": str(status.get("namespace") or ""),
        "version": int(status.get("version") or 0),
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
        "revision": int(entry.get("revision") or 0),
        "updated": str(entry.get("updated") or ""),
        "status": str(entry.get("status") or ""),
        "chart": str(entry.get("chart") or ""),
        "app_version": str(entry.get("app_version") or ""),
        "description": str(entry.get("description") or ""),
        "rollback_revision": int(entry.get("rollback_revision") or 0),
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
        "revision": int(entry.get("revision") or 0),
        "status": str(entry.get("status") or ""),
    }


# --------------------------------------------------------------------------- the adapter


class VersionCache:
    """What a binary printed for ``version``, one file per binary under ``directory``.

    An entry is keyed on the binary's real path and its inode, size and modification
    and change times, so a binary replaced or rebuilt in place is asked again. Failing
    to read or write the cache only means asking the binary.

    Only a file that is helm itself is cached. Version managers put a dispatcher in
    its place that picks a helm per directory or environment: asdf's shim is a script,
    mise's is a link to the ``mise`` binary. The same file then answers for several
    versions, so scripts, and files whose real name is not helm's, are always asked.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @staticmethod
    def cacheable(real: str) -> bool:
        """Is the file at ``real`` (a resolved path) helm itself rather than a dispatcher?"""
        if not os.path.basename(real).startswith("helm"):
            return False
        try:
            with open(real, "rb") as handle:
                return handle.read(2) != b"#!"
        except OSError:
            return False

    def _entry(self, binary: str) -> Path | None:
        try:
            real = os.path.realpath(binary)
            info = os.stat(real)
        except OSError:
            return None
        if not self.cacheable(real):
            return None
        key = "\0".join(
            map(
                str,
                (real, info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns),
            )
        )
        return self.directory / hashlib.sha256(key.encode()).hexdigest()

    def get(self, binary: str) -> str | None:
        entry = self._entry(binary)
        if entry is None:
            return None
        try:
            return entry.read_text().strip() or None
        except OSError:
            return None

    def put(self, binary: str, version: str) -> None:
        entry = self._entry(binary)
        if entry is None:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
        except OSError:
            return
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(version + "\n")
            os.replace(tmp, entry)  # whole or not at all, when two runs write at once
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


class Helm:
    """A ``helm`` client of major version 3 or 4, bound to one cluster."""

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
        if major is not None and major not in SUPPORTED_MAJORS:
            raise ValueError(f"helm major version must be 3 or 4, not {major}")
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

    def execute(self, command: HelmCommand) -> subprocess.CompletedProcess[str]:
        """Run ``command``; raise :class:`HelmFailed` (or :class:`HelmTimeout`) on failure."""
        proc = self._run(command)
        if proc.returncode != 0:
            raise self._failure(command, proc)
        return proc

    def _run(self, command: HelmCommand) -> subprocess.CompletedProcess[str]:
        shown = tuple(self._redacted_argv(command.argv))
        started = time.monotonic()
        try:
            proc = self._runner(
                command.argv, input_text=command.stdin, env=self.env, timeout=command.timeout
            )
        except subprocess.TimeoutExpired:
            self.calls.append(HelmCall(shown, None, time.monotonic() - started))
            raise Timeout(
                f"`{' '.join(shown[:3])} ...` did not finish within {command.timeout:g}s"
            ) from None
        except OSError as exc:
            self.calls.append(HelmCall(shown, None, time.monotonic() - started))
            raise HelmNotFound(f"cannot run helm at {self.binary}: {exc}; {INSTALL_HINT}") from None
        self.calls.append(HelmCall(shown, proc.returncode, time.monotonic() - started))
        return proc

    def _stderr(self, proc: subprocess.CompletedProcess[str]) -> str:
        return _tail(self.redactor.redact(proc.stderr or proc.stdout or ""))

    def _failure(self, command: HelmCommand, proc: subprocess.CompletedProcess[str]) -> HelmFailed:
        stderr = self._stderr(proc)
        argv = self._redacted_argv(command.argv)
        if any(marker in stderr for marker in _WAIT_TIMED_OUT):
            return HelmTimeout(argv, proc.returncode, stderr)
        return HelmFailed(argv, proc.returncode, stderr)

    def _read(
        self, command: HelmCommand, *, release: str | None = None, namespace: str = ""
    ) -> str:
        """Run a read command; ``release: not found`` becomes :class:`NotFound`."""
        proc = self._run(command)
        if proc.returncode == 0:
            return proc.stdout
        if release is not None and _RELEASE_NOT_FOUND in (proc.stderr or ""):
            raise NotFound(f"Helm release {release} not found in namespace {namespace}")
        raise self._failure(command, proc)

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
        """3 or 4; anything else is :class:`HelmNotFound`."""
        if self._major is None:
            self._major = major_of(self.version(), self.binary)
        return self._major

    # ------------------------------------------------------------------ reads
    def status(self, release: str, namespace: str) -> dict[str, Any] | None:
        """The release's status in one shape for Helm 3 and 4, or None if it does not exist.

        Feeds :meth:`~pytest_cilium_upgrade.snapshot.model.HelmRelease.from_helm_status`.
        """
        command = self.command("status", release, "--namespace", namespace, "-o", "json")
        try:
            raw = _load_json(
                command.argv, self._read(command, release=release, namespace=namespace)
            )
            metadata = self._metadata(release, namespace)
        except NotFound:
            return None
        normalized = normalize_status(raw if isinstance(raw, Mapping) else {}, metadata)
        normalized["info"]["description"] = self.redactor.redact(normalized["info"]["description"])
        return normalized

    def _metadata(self, release: str, namespace: str) -> dict[str, Any] | None:
        command = self.command("get", "metadata", release, "--namespace", namespace, "-o", "json")
        try:
            out = self._read(command, release=release, namespace=namespace)
        except HelmFailed as exc:
            if "unknown command" not in exc.stderr:
                raise
            # Helm before 3.13 has no `get metadata`: take the chart from the history.
            history = self.history(release, namespace, max_revisions=1)
            if not history:
                return None
            return metadata_from_history(release, namespace, history[-1])
        data = _load_json(command.argv, out)
        return dict(data) if isinstance(data, Mapping) else None

    def history(
        self, release: str, namespace: str, *, max_revisions: int = HISTORY_MAX
    ) -> list[dict[str, Any]]:
        """The release's revisions, oldest first; :class:`NotFound` if it does not exist.

        Each entry feeds ``HelmHistoryEntry.from_helm_history_entry`` of the model.
        """
        command = self.command(
            "history",
            release,
            "--namespace",
            namespace,
            "-o",
            "json",
            "--max",
            str(max_revisions),
        )
        data = _load_json(command.argv, self._read(command, release=release, namespace=namespace))
        entries = [normalize_history_entry(e) for e in data or [] if isinstance(e, Mapping)]
        for entry in entries:
            entry["description"] = self.redactor.redact(entry["description"])
        return sorted(entries, key=lambda e: int(e["revision"]))

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
        data = _load_json(command.argv, self._read(command))
        return [dict(e) for e in data or [] if isinstance(e, Mapping)]

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
        data = _load_json(command.argv, self._read(command, release=release, namespace=namespace))
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise HelmFailed(self._redacted_argv(command.argv), 0, "values are not a mapping")
        return data

    # ------------------------------------------------------------------ charts
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

    def chart_versions(
        self, source: ChartSource, *, include_prereleases: bool = False
    ) -> list[Version]:
        """The chart versions ``source`` offers, lowest first."""
        if source.is_local:
            versions = source.local_versions()
        else:
            args = ["search", "repo", source.ref, "--versions", "-o", "json"]
            if include_prereleases:
                args.append("--devel")
            command = self.command(*args, cluster=False)
            proc = self._run(command)
            if proc.returncode != 0:
                if "no repositories" in (proc.stderr or ""):
                    raise NotFound(self._no_chart_message(source))
                raise self._failure(command, proc)
            data = _load_json(command.argv, proc.stdout) or []
            versions = [
                v
                for e in data
                if isinstance(e, Mapping) and e.get("name") == source.ref
                for v in [Version.try_parse(str(e.get("version") or ""))]
                if v is not None
            ]
            if not versions:
                raise NotFound(self._no_chart_message(source))
        if not include_prereleases:
            versions = [v for v in versions if not v.is_prerelease]
        return sorted(set(versions))

    def _no_chart_message(self, source: ChartSource) -> str:
        hint = (
            f"`helm repo add {source.repo_name} {source.repo_url}` failed to provide it"
            if source.repo_url
            else f"add the repo first (`helm repo add {source.repo_name} <url>`) or give its URL"
        )
        return f"no chart {source.ref} in the Helm repositories known to helm: {hint}"

    # ------------------------------------------------------------------ values
    @staticmethod
    def _values_args(
        values_files: Iterable[str | os.PathLike[str]],
        values: Mapping[str, Any] | None,
        set_values: Iterable[str],
        set_string_values: Iterable[str],
    ) -> tuple[list[str], str | None]:
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

    def _wait_args(self, wait: bool, timeout_s: float) -> list[str]:
        args: list[str] = []
        if wait:
            args.append("--wait" if self.major() == 3 else f"--wait={self.wait_strategy}")
        args += ["--timeout", _duration(timeout_s)]
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
        vargs, stdin = self._values_args(values_files, values, set_values, set_string_values)
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
        vargs, stdin = self._values_args(values_files, values, set_values, set_string_values)
        args = ["install", release, *chart.chart_args(version), "--namespace", namespace, *vargs]
        args += self._wait_args(wait, timeout_s)
        if atomic:
            args.append(self._flag("--atomic", "--rollback-on-failure"))
        if force:
            args.append(self._flag("--force", "--force-replace"))
        if create_namespace:
            args.append("--create-namespace")
        return self.command(*args, stdin=stdin, timeout=self._mutation_timeout(timeout_s))

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
        vargs, stdin = self._values_args(values_files, values, set_values, set_string_values)
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
        return self._mutate(command, release, namespace)

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
        return self._mutate(command, release, namespace)

    def _mutate(self, command: HelmCommand, release: str, namespace: str) -> str:
        proc = self._run(command)
        if proc.returncode == 0:
            return self.redactor.redact(proc.stdout)
        if _RELEASE_NOT_FOUND in (proc.stderr or ""):
            raise NotFound(f"Helm release {release} not found in namespace {namespace}")
        raise self._failure(command, proc)


# --------------------------------------------------------------------------- pure helpers


def major_of(version_text: str, binary: str = "helm") -> int:
    """The major version in ``helm version --short`` output; only 3 and 4 are accepted."""
    parsed = parse_helm_client_version(version_text)
    if parsed is None:
        raise HelmNotFound(
            f"cannot tell the Helm version of {binary} from {version_text.strip()!r}; "
            f"only Helm 3 and Helm 4 are supported"
        )
    if parsed.major not in SUPPORTED_MAJORS:
        raise HelmNotFound(
            f"{binary} is Helm {parsed}; only Helm 3 and Helm 4 are supported ({INSTALL_HINT})"
        )
    return parsed.major


def check_reuse_values(current: str | Version | None, target: str | Version) -> None:
    """Refuse ``--reuse-values`` unless the chart stays on the same minor version.

    ``--reuse-values`` keeps the old chart's defaults and drops every new default of
    the target chart, which breaks rendering across minors (cilium/cilium#18115,
    #33841). Save the values with ``helm get values`` and pass them with ``-f`` instead.
    """
    target_v = target if isinstance(target, Version) else parse_version(target)
    if current is None or (isinstance(current, str) and not current.strip()):
        raise ValueError(
            "reuse_values needs the installed chart version to check that the minor "
            "version does not change; pass current_version"
        )
    current_v = current if isinstance(current, Version) else Version.try_parse(current)
    if current_v is None:
        raise ValueError(
            f"reuse_values refused: the installed chart version {current!r} is not a "
            "semantic version, so a minor version change cannot be ruled out"
        )
    if current_v.minor_line != target_v.minor_line:
        raise ValueError(
            f"reuse_values refused for {current_v} -> {target_v}: --reuse-values across "
            "minor versions keeps the old chart's values and drops every new default of "
            f"the {target_v.minor_str()} chart, which breaks rendering (cilium/cilium#18115, "
            "#33841). Save the values with `helm get values <release> -o yaml`, review "
            "them for removed or renamed keys, and pass them as a values file instead"
        )
