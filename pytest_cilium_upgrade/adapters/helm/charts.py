"""Where target charts come from: a Helm repo reference, a directory of versions, one chart.

A :class:`ChartSource` is parsed from what the user gave and tells which chart versions
it offers and which argument(s) Helm takes for one of them. Local charts are read here
(``Chart.yaml`` of a directory or a packaged ``.tgz``); the versions of a repo reference
come from ``helm search repo``, through the narrow :class:`RepoSearch` a source is bound
to, so this module knows nothing of the Helm client. :func:`check_reuse_values` says
whether ``--reuse-values`` may carry values from one chart version to another.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import os
import re
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import yaml

from pytest_cilium_upgrade import yamltext
from pytest_cilium_upgrade.errors import GateError, NotFound
from pytest_cilium_upgrade.versions import Version, VersionError

_REPO_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_TGZ_SUFFIXES = (".tgz", ".tar.gz")


class ChartSourceError(GateError, ValueError):
    """A chart source or chart version that cannot be used, with the reason."""


class RepoSearch(Protocol):
    """What a repo source needs from a helm client: the versions ``helm search repo`` lists."""

    def search_repo(self, ref: str, *, include_prereleases: bool) -> list[Version]:
        """The versions of chart ``ref``; empty when no known repository offers it."""
        ...


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
        raise ChartSourceError(f"Chart.yaml of {where} is not valid YAML: {exc}") from exc
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
        raise ChartSourceError(f"{path} is not a packaged Helm chart: {exc}") from exc
    raise ChartSourceError(f"{path} is not a packaged Helm chart: no <chart>/Chart.yaml inside")


def load_local_chart(path: Path) -> LocalChart:
    """Read name and version of the chart at ``path`` (directory or ``.tgz``)."""
    data = _parse_chart_yaml(str(path), _chart_yaml_text(path))
    raw = data.get("version")
    if raw is None:
        raise ChartSourceError(f"Chart.yaml of {path} has no version")
    try:
        version = Version.parse(str(raw))
    except VersionError as exc:
        raise ChartSourceError(
            f"Chart.yaml of {path} has version {raw!r}, which is not a semantic version"
        ) from exc
    return LocalChart(path, str(data.get("name") or ""), version)


def parse_version(text: str) -> Version:
    """A chart version as given by a user (``1.15.1`` or ``v1.15.1``)."""
    try:
        return Version.parse(text)
    except VersionError as exc:
        raise ChartSourceError(
            f"chart version {text!r} is not a semantic version (e.g. 1.16.3)"
        ) from exc


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
    helm: RepoSearch | None = field(default=None, compare=False, repr=False)

    @classmethod
    def parse(
        cls, spec: str, repo_url: str | None = None, *, helm: RepoSearch | None = None
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

    # ------------------------------------------------------------------ versions on offer
    def versions(self, *, include_prereleases: bool = False) -> list[Version]:
        """The versions on offer, lowest first; a repo source needs a bound ``helm``.

        :class:`NotFound` when no repository known to helm offers a repo source's chart.
        """
        if self.kind is not ChartSourceKind.REPO:
            versions = self.local_versions()
        elif self.helm is None:
            raise ChartSourceError(f"cannot list the versions of {self} without a helm client")
        else:
            versions = self.helm.search_repo(self.ref, include_prereleases=include_prereleases)
            if not versions:
                raise NotFound(self._not_in_repos())
        if not include_prereleases:
            versions = [v for v in versions if not v.is_prerelease]
        return sorted(set(versions))

    def local_versions(self) -> list[Version]:
        if self.kind is ChartSourceKind.REPO:
            raise ChartSourceError(
                f"the versions of {self} come from `helm search repo`; bind a helm client "
                "and use versions()"
            )
        return [c.version for c in self.local_charts()]

    def _not_in_repos(self) -> str:
        hint = (
            f"`helm repo add {self.repo_name} {self.repo_url}` failed to provide it"
            if self.repo_url
            else f"add the repo first (`helm repo add {self.repo_name} <url>`) or give its URL"
        )
        return f"no chart {self.ref} in the Helm repositories known to helm: {hint}"

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


# --------------------------------------------------------------------------- reuse-values


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
