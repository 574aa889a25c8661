"""Where target charts come from: a Helm repo reference, a repository URL, an OCI
reference, a directory of versions, one chart.

A :class:`ChartSource` is parsed from what the user gave and tells which chart versions
it offers and which argument(s) Helm takes for one of them. Local charts are read by
:mod:`.chart_files` (``Chart.yaml`` of a directory or a packaged ``.tgz``), a repository
URL and a version are checked by :mod:`.chart_refs`; the versions of a repo reference
come from ``helm search repo``, through the narrow :class:`RepoSearch` a source is bound
to, so this module knows nothing of the Helm client.

The remote kinds, as Helm 3 and 4 take them:

* ``cilium/cilium``: a repository added to the user's helm; its versions are those of
  helm's local index of it, which ``helm repo update`` refreshes.
* a chart name in a repository given by URL (``--cilium-chart-repo``): every command
  names the repository itself (``helm upgrade R cilium --repo URL --version X``), so
  the index is fetched fresh and the user's repositories file is neither read for it
  nor changed; its versions are listed from a repositories file of the gate's own.
* ``oci://registry/path/cilium``: Helm fetches the version asked for; it has no way to
  list the versions of an OCI repository, so none are listed.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.adapters.helm.chart_files import (
    TGZ_SUFFIXES,
    LocalChart,
    load_local_chart,
    read_chart_files,
)
from pytest_cilium_upgrade.adapters.helm.chart_refs import (
    ChartSourceError,
    check_repo_url,
    parse_version,
)
from pytest_cilium_upgrade.errors import NotFound
from pytest_cilium_upgrade.versions import Version

_REPO_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_CHART_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
OCI_PREFIX = "oci://"


class RepoSearch(Protocol):
    """What a remote source needs from a helm client: the versions ``helm search repo``
    lists, and one version's archive (``helm pull``).

    With ``repo_url``, ``ref`` is a chart name in the repository at that URL, which the
    client must not add to the user's repositories.
    """

    def search_repo(
        self, ref: str, *, include_prereleases: bool, repo_url: str | None = None
    ) -> list[Version]:
        """The versions of chart ``ref``; empty when no known repository offers it."""
        ...

    def pull(
        self, ref: str, version: Version, destination: Path, *, repo_url: str | None = None
    ) -> Path:
        """Download chart ``ref`` at ``version`` into ``destination``; the archive written."""
        ...


class ChartSourceKind(enum.Enum):
    REPO = "Helm repo chart"
    REPO_URL = "chart"  # shown as "chart cilium of the repository URL"
    OCI = "OCI chart"
    DIRECTORY = "chart directory"
    CHART = "local chart"


_REMOTE = (ChartSourceKind.REPO, ChartSourceKind.REPO_URL, ChartSourceKind.OCI)


@dataclass(frozen=True)
class ChartSource:
    """Where target charts come from.

    * ``REPO``: a Helm repo chart reference such as ``cilium/cilium`` of a repository
      added to helm; versions come from ``helm search repo`` (helm's local index).
    * ``REPO_URL``: chart ``ref`` (``cilium``) of the repository at ``repo_url``, named
      on every helm command (``--repo URL``); never added to the user's repositories.
    * ``OCI``: an ``oci://`` reference; Helm lists no versions of it.
    * ``DIRECTORY``: a directory with one chart per version, ``<dir>/<version>/Chart.yaml``.
    * ``CHART``: a single chart directory or packaged ``.tgz`` (one version).

    ``spec`` is the text the user gave, used in messages. ``helm``, when bound, lists
    the versions of a repository source (:meth:`versions`) and pulls remote charts.
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
        """Tell the form of ``spec`` and validate it; an existing path wins over a repo ref.

        With ``repo_url`` (``--cilium-chart-repo``), ``spec`` names the chart in that
        repository: ``cilium``, or ``<repo>/cilium`` whose ``<repo>`` is not used.
        """
        source = cls._parse(spec, repo_url)
        return dataclasses.replace(source, helm=helm) if helm is not None else source

    @classmethod
    def _parse(cls, spec: str, repo_url: str | None) -> ChartSource:
        text = spec.strip()
        if not text:
            raise ChartSourceError("chart source is empty: give <repo>/<chart> or a path")
        if repo_url is not None:
            return cls._in_repository(text, check_repo_url(repo_url))
        if text.startswith(OCI_PREFIX):
            return cls._oci(text)
        path = Path(text).expanduser()
        if path.exists():
            return cls._local(path, text)
        if _REPO_REF.match(text) and not text.startswith("."):
            return cls(ChartSourceKind.REPO, text, text)
        if (
            "/" in text
            or os.sep in text
            or text.startswith((".", "~"))
            or text.endswith(TGZ_SUFFIXES)
        ):
            raise ChartSourceError(f"chart path {text} does not exist")
        raise ChartSourceError(
            f"chart source {text!r} is neither a Helm repo chart reference (<repo>/<chart>, "
            "e.g. cilium/cilium) nor an existing chart directory or .tgz"
        )

    @classmethod
    def _in_repository(cls, text: str, url: str) -> ChartSource:
        """Chart ``text`` (``cilium`` or ``<repo>/cilium``) of the repository at ``url``."""
        if text.startswith(OCI_PREFIX) or os.path.isabs(text) or Path(text).expanduser().exists():
            what = "the OCI chart" if text.startswith(OCI_PREFIX) else "the local chart"
            raise ChartSourceError(
                f"a chart repository URL ({url}) applies to a chart name such as cilium or"
                f" cilium/cilium, not to {what} {text}: give one or the other"
            )
        if _REPO_REF.match(text):
            return cls(ChartSourceKind.REPO_URL, text.split("/", 1)[1], text, url)
        if _CHART_NAME.match(text):
            return cls(ChartSourceKind.REPO_URL, text, text, url)
        raise ChartSourceError(
            f"chart {text!r} is no chart name (cilium, or cilium/cilium) to take from the"
            f" chart repository {url}"
        )

    @classmethod
    def _oci(cls, text: str) -> ChartSource:
        """``oci://registry[:port]/path/chart``: no tag or digest, the version is separate."""
        rest = text[len(OCI_PREFIX) :].rstrip("/")
        host, _, path = rest.partition("/")
        if not host or "" in path.split("/") or any(ch.isspace() for ch in text):
            raise ChartSourceError(
                f"chart source {text!r} is not an OCI chart reference such as"
                " oci://registry.example.com/charts/cilium"
            )
        if "@" in rest or ":" in path.rsplit("/", 1)[-1]:
            raise ChartSourceError(
                f"OCI chart reference {text!r} has a tag or digest: give the reference"
                " without it and the version with --cilium-target-version"
            )
        return cls(ChartSourceKind.OCI, f"{OCI_PREFIX}{rest}", text)

    @classmethod
    def _local(cls, path: Path, spec: str) -> ChartSource:
        resolved = path.resolve()
        if resolved.is_file():
            if not resolved.name.endswith(TGZ_SUFFIXES):
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
        return self.kind not in _REMOTE

    @property
    def repo_name(self) -> str | None:
        """``cilium`` for ``cilium/cilium``, a repository added to helm whose local index
        lists the versions; None for every other source (a repository given by URL is
        never added, its index never stale)."""
        return self.ref.split("/", 1)[0] if self.kind is ChartSourceKind.REPO else None

    @property
    def chart_name(self) -> str:
        if self.kind in (ChartSourceKind.REPO, ChartSourceKind.OCI):
            return self.ref.rsplit("/", 1)[1]
        if self.kind is ChartSourceKind.REPO_URL:
            return self.ref
        if self.kind is ChartSourceKind.CHART:
            return load_local_chart(Path(self.ref)).name
        names = {c.name for c in self.local_charts()}
        return names.pop() if len(names) == 1 else ""

    def __str__(self) -> str:
        if self.kind is ChartSourceKind.REPO_URL:
            return f"chart {self.ref} of the repository {self.repo_url}"
        return f"{self.kind.value} {self.spec}"

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
        """The charts on disk, lowest version first (empty for a remote chart)."""
        if not self.is_local:
            return []
        if self.kind is ChartSourceKind.CHART:
            return [load_local_chart(Path(self.ref))]
        return self._scan()[0]

    def skipped(self) -> list[str]:
        """Why version-named subdirectories of a chart directory were not taken."""
        return self._scan()[1] if self.kind is ChartSourceKind.DIRECTORY else []

    # ------------------------------------------------------------------ versions on offer
    def versions(self, *, include_prereleases: bool = False) -> list[Version]:
        """The versions on offer, lowest first; a repository source needs a bound ``helm``.

        :class:`NotFound` when no repository known to helm offers a repo source's chart,
        or the repository at a source's URL offers no such chart. An OCI chart lists
        none: Helm cannot list the versions of an OCI repository (it fetches the one
        asked for, which the render of the target proves).
        """
        if self.kind is ChartSourceKind.OCI:
            return []
        if self.is_local:
            versions = self.local_versions()
        elif self.helm is None:
            raise ChartSourceError(f"cannot list the versions of {self} without a helm client")
        elif self.kind is ChartSourceKind.REPO_URL:
            versions = self.helm.search_repo(
                self.ref, include_prereleases=include_prereleases, repo_url=self.repo_url
            )
            if not versions:
                raise NotFound(f"the chart repository {self.repo_url} offers no chart {self.ref}")
        else:
            versions = self.helm.search_repo(self.ref, include_prereleases=include_prereleases)
            if not versions:
                raise NotFound(self._not_in_repos())
        if not include_prereleases:
            versions = [v for v in versions if not v.is_prerelease]
        return sorted(set(versions))

    def local_versions(self) -> list[Version]:
        if self.kind is ChartSourceKind.OCI:
            raise ChartSourceError(f"helm lists no versions of the {self}")
        if not self.is_local:
            raise ChartSourceError(
                f"the versions of {self} come from `helm search repo`; bind a helm client "
                "and use versions()"
            )
        return [c.version for c in self.local_charts()]

    def _not_in_repos(self) -> str:
        repo = self.repo_name
        known = repo == defaults.CHART_REF.split("/")[0]
        url = defaults.CHART_REPO_URL if known else "<url>"
        hint = (
            f"the repository {repo} is not added (or offers no chart {self.chart_name});"
            f" add it with `helm repo add {repo} {url}`, or give its URL with"
            " --cilium-chart-repo, or a chart directory"
        )
        return f"no chart {self.ref} in the Helm repositories known to helm: {hint}"

    # ------------------------------------------------------------------ files of a version
    def chart_files(self, version: str | Version, names: Sequence[str]) -> dict[str, str | None]:
        """The top-level files ``names`` of ``version`` of this chart (None: it has no such file).

        A local chart is read where it is; a remote chart is pulled by the bound helm
        into a temporary directory first. :class:`ChartSourceError` when the chart
        cannot be read, a :class:`GateError` of the helm client when it cannot be pulled.
        """
        wanted = version if isinstance(version, Version) else parse_version(version)
        if self.is_local:
            return read_chart_files(Path(self.chart_args(wanted)[0]), names)
        if self.helm is None:
            raise ChartSourceError(f"cannot pull {self} without a helm client")
        with tempfile.TemporaryDirectory(prefix="cilium-chart-") as tmp:
            if self.repo_url is None:
                archive = self.helm.pull(self.ref, wanted, Path(tmp))
            else:
                archive = self.helm.pull(self.ref, wanted, Path(tmp), repo_url=self.repo_url)
            return read_chart_files(archive, names)

    # ------------------------------------------------------------------ helm arguments
    def chart_args(self, version: str | Version) -> list[str]:
        """The chart argument(s) Helm takes for ``version`` of this source (the same for
        ``helm template``, ``install``, ``upgrade``, ``pull`` and ``show``)."""
        wanted = version if isinstance(version, Version) else parse_version(version)
        if self.kind is ChartSourceKind.REPO_URL:
            assert self.repo_url is not None
            return [self.ref, "--repo", self.repo_url, "--version", str(wanted)]
        if self.kind in (ChartSourceKind.REPO, ChartSourceKind.OCI):
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
