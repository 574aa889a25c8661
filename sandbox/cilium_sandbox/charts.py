"""The real upstream Cilium chart archives the tests install, and where they come from.

Sources, in order, for each version (``cilium-X.tgz``):

1. the directory named by ``$CILIUM_CHARTS_DIR``;
2. ``../shared/charts/cilium/`` beside the repository root (the directory holding
   ``kind-config.yaml``), as CI lays it out;
3. ``<cache>/charts/``, filled by ``helm pull cilium/cilium --version X`` from the
   official repository (https://helm.cilium.io/, or ``$CILIUM_CHARTS_REPO``) on a
   machine with internet.

Where no source has a version, :class:`ChartsMissing` names every version needed and
every place looked. Nothing here writes into the repository: pulled archives go to the
cache only, and no chart is ever made up in place of a missing one.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import threading
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from cilium_sandbox.build import Builder
from cilium_sandbox.errors import SandboxError
from pytest_cilium_upgrade.adapters.cachedir import default_cache_dir
from pytest_cilium_upgrade.versions import Version

# The archives of ../shared/charts/cilium/: the first release and the newest patch of
# each minor 1.12-1.19, and 1.20.0.
REAL_CHART_VERSIONS: tuple[str, ...] = (
    "1.12.0",
    "1.12.19",
    "1.13.0",
    "1.13.18",
    "1.14.0",
    "1.14.19",
    "1.15.0",
    "1.15.19",
    "1.16.0",
    "1.16.19",
    "1.17.0",
    "1.17.18",
    "1.18.0",
    "1.18.12",
    "1.19.0",
    "1.19.6",
    "1.20.0",
)

CHARTS_DIR_ENV = "CILIUM_CHARTS_DIR"
UPSTREAM_REPO_URL = "https://helm.cilium.io/"
# Another repository to pull from instead (a mirror of the official one).
CHARTS_REPO_ENV = "CILIUM_CHARTS_REPO"
CHART_NAME = "cilium"
# How long the official repository may take to accept a connection before the pull
# path is given up: a machine without internet fails in this time, not in minutes.
CONNECT_TIMEOUT = 3.0
# How long each helm command of the pull path may run (the index alone is megabytes).
HELM_TIMEOUT = 120.0


class ChartsMissing(SandboxError):
    """Some real chart versions are in none of the sources."""

    def __init__(self, missing: Sequence[str], places: Sequence[str]) -> None:
        self.missing = tuple(missing)
        self.places = tuple(places)
        lines = [
            f"real Cilium charts missing: {', '.join(self.missing)} "
            f"(archives {archive_name('X')} of the official repository {UPSTREAM_REPO_URL})",
            "looked in:",
            *(f"  - {place}" for place in self.places),
            f"put the archives in a directory and point ${CHARTS_DIR_ENV} at it, or run where "
            f"{UPSTREAM_REPO_URL} is reachable to fill the cache",
        ]
        super().__init__("\n".join(lines))


class ChartPullFailed(SandboxError):
    """The official repository could not give the versions asked for."""


# ---------------------------------------------------------------------- versions


def archive_name(version: str) -> str:
    return f"{CHART_NAME}-{version}.tgz"


def _sorted(versions: Iterable[str]) -> list[str]:
    return sorted(set(versions), key=Version.parse)


def minors(versions: Iterable[str] = REAL_CHART_VERSIONS) -> list[str]:
    """The ``MAJOR.MINOR`` lines present, oldest first (``["1.12", ..., "1.20"]``)."""
    lines = {Version.parse(v).minor_line for v in versions}
    return [f"{major}.{minor}" for major, minor in sorted(lines)]


def _of_minor(minor: str, versions: Iterable[str]) -> list[str]:
    major_text, _, minor_text = minor.partition(".")
    wanted = (int(major_text), int(minor_text))
    found = [v for v in _sorted(versions) if Version.parse(v).minor_line == wanted]
    if not found:
        raise KeyError(f"no real chart of minor {minor}")
    return found


def newest_patch(minor: str, versions: Iterable[str] = REAL_CHART_VERSIONS) -> str:
    """The newest release of ``minor`` (``"1.19"`` -> ``"1.19.6"``)."""
    return _of_minor(minor, versions)[-1]


def first_release(minor: str, versions: Iterable[str] = REAL_CHART_VERSIONS) -> str:
    """The first release of ``minor`` at hand (``"1.19"`` -> ``"1.19.0"``)."""
    return _of_minor(minor, versions)[0]


def previous_minor(minor: str, versions: Iterable[str] = REAL_CHART_VERSIONS) -> str:
    """The minor line before ``minor`` among ``versions`` (``"1.20"`` -> ``"1.19"``)."""
    lines = minors(versions)
    index = lines.index(minor)
    if index == 0:
        raise KeyError(f"no real chart of a minor before {minor}")
    return lines[index - 1]


def latest(versions: Iterable[str] = REAL_CHART_VERSIONS) -> str:
    """The newest version of all."""
    return _sorted(versions)[-1]


def chart_version(archive: Path) -> str:
    """The ``version`` in an archive's ``Chart.yaml`` (raises SandboxError if unreadable)."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if member.name.count("/") == 1 and member.name.endswith("/Chart.yaml"):
                    extracted = tar.extractfile(member)
                    if extracted is None:
                        break
                    meta = yaml.safe_load(extracted.read())
                    version = meta.get("version") if isinstance(meta, dict) else None
                    if isinstance(version, str):
                        return version
                    break
    except (OSError, tarfile.TarError, yaml.YAMLError) as exc:
        raise SandboxError(f"{archive} is not a readable chart archive: {exc}") from exc
    raise SandboxError(f"{archive} has no Chart.yaml with a version")


# ---------------------------------------------------------------------- places


def find_repo_root(start: Path) -> Path | None:
    """The nearest directory at or above ``start`` that holds ``kind-config.yaml``."""
    start = start.resolve()
    for candidate in (start, *start.parents):
        if (candidate / "kind-config.yaml").is_file():
            return candidate
    return None


def shared_charts_dir(repo_root: Path) -> Path:
    """``../shared/charts/cilium/`` relative to the repository root."""
    return repo_root.resolve().parent / "shared" / "charts" / CHART_NAME


def charts_cache_dir(cache_dir: Path | None = None) -> Path:
    return (cache_dir or default_cache_dir()) / "charts"


# ---------------------------------------------------------------------- pulling

# Fetches ``versions`` into ``destination`` as ``cilium-X.tgz``; raises ChartPullFailed.
Puller = Callable[[Sequence[str], Path], None]


def _first_hop(url: str) -> tuple[str, int]:
    """Where a client connects to fetch ``url``: its host, or the proxy the environment names."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        via = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        return via.hostname or "", via.port or 80
    return host, port


def _reachable(url: str, timeout: float) -> str | None:
    """None when ``url`` (or its proxy) accepts a TCP connection within ``timeout``, else why not.

    Name resolution has no timeout of its own, so the whole probe runs in a thread that
    is abandoned (as a daemon) when the time is up.
    """
    host, port = _first_hop(url)
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                outcome.append(None)
        except OSError as exc:
            outcome.append(f"cannot connect to {host}:{port}: {exc}")

    thread = threading.Thread(target=probe, name="chart-repo-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        return f"no connection to {host}:{port} within {timeout:g}s"
    return outcome[0]


@dataclass
class HelmPuller:
    """``helm pull cilium/cilium --version X`` from a repository, with Helm's state isolated.

    Helm's repositories file, repository cache, config and cache homes all live under
    ``home`` (by default inside the charts cache), so the user's own repositories are
    neither read nor changed.
    """

    helm: Path
    home: Path
    repo_url: str = UPSTREAM_REPO_URL
    connect_timeout: float = CONNECT_TIMEOUT
    helm_timeout: float = HELM_TIMEOUT

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HELM_")}
        env.update(
            {
                "HELM_REPOSITORY_CONFIG": str(self.home / "repositories.yaml"),
                "HELM_REPOSITORY_CACHE": str(self.home / "repository"),
                "HELM_CONFIG_HOME": str(self.home / "config"),
                "HELM_CACHE_HOME": str(self.home / "cache"),
                "HELM_DATA_HOME": str(self.home / "data"),
            }
        )
        return env

    def _helm(self, *args: str) -> None:
        argv = [str(self.helm), *args]
        try:
            proc = subprocess.run(
                argv,
                env=self.env(),
                capture_output=True,
                text=True,
                timeout=self.helm_timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ChartPullFailed(
                f"`helm {' '.join(args[:2])}` took more than {self.helm_timeout:g}s"
            ) from None
        except OSError as exc:
            raise ChartPullFailed(f"cannot run {self.helm}: {exc}") from exc
        if proc.returncode != 0:
            detail = proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
            raise ChartPullFailed(f"`helm {' '.join(args[:2])}` failed: {detail[0]}")

    def __call__(self, versions: Sequence[str], destination: Path) -> None:
        if not versions:
            return
        why = _reachable(self.repo_url, self.connect_timeout)
        if why is not None:
            raise ChartPullFailed(why)
        if not self.helm.is_file():
            raise ChartPullFailed(f"no helm binary at {self.helm}")
        self.home.mkdir(parents=True, exist_ok=True)
        destination.mkdir(parents=True, exist_ok=True)
        self._helm("repo", "add", CHART_NAME, self.repo_url, "--force-update")
        for version in versions:
            # Into a scratch directory first: the cache only ever holds whole archives.
            with tempfile.TemporaryDirectory(dir=destination, prefix=".pull-") as scratch:
                self._helm(
                    "pull",
                    f"{CHART_NAME}/{CHART_NAME}",
                    "--version",
                    version,
                    "--destination",
                    scratch,
                )
                pulled = Path(scratch) / archive_name(version)
                if not pulled.is_file():
                    raise ChartPullFailed(f"helm pull left no {pulled.name}")
                pulled.replace(destination / archive_name(version))


def default_helm() -> Path | None:
    """The sandbox's Helm 3 if built, else a ``helm`` on PATH."""
    built = Builder().binaries().helm3
    if built.is_file():
        return built
    found = shutil.which("helm")
    return Path(found) if found else None


# ---------------------------------------------------------------------- resolving


@dataclass
class ChartSources:
    """Where real chart archives are looked for, in order."""

    env_dir: Path | None = None
    shared_dir: Path | None = None
    cache_dir: Path = field(default_factory=charts_cache_dir)
    pull: Puller | None = None
    repo_url: str = UPSTREAM_REPO_URL

    @classmethod
    def default(
        cls,
        repo_root: Path | None,
        *,
        cache_dir: Path | None = None,
        pull: Puller | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> ChartSources:
        """The standard sources for a checkout at ``repo_root``.

        ``pull`` defaults to a :class:`HelmPuller` from the official repository with the
        sandbox's Helm (none when no helm binary exists: that place is then reported so),
        or from ``$CILIUM_CHARTS_REPO`` when set.
        """
        env = os.environ if environ is None else environ
        env_value = env.get(CHARTS_DIR_ENV, "").strip()
        repo_url = env.get(CHARTS_REPO_ENV, "").strip() or UPSTREAM_REPO_URL
        charts_cache = charts_cache_dir(cache_dir)
        if pull is None:
            helm = default_helm()
            if helm is not None:
                pull = HelmPuller(helm=helm, home=charts_cache / ".helm", repo_url=repo_url)
        return cls(
            env_dir=Path(env_value).expanduser() if env_value else None,
            shared_dir=shared_charts_dir(repo_root) if repo_root is not None else None,
            cache_dir=charts_cache,
            pull=pull,
            repo_url=repo_url,
        )

    def resolve(self, versions: Iterable[str] = REAL_CHART_VERSIONS) -> dict[str, Path]:
        """Every version's archive, oldest first; ChartsMissing names what is not found."""
        wanted = _sorted(versions)
        found: dict[str, Path] = {}
        places: list[str] = []

        def look(directory: Path | None, label: str) -> None:
            if directory is None:
                places.append(f"{label}: not set")
                return
            if not directory.is_dir():
                places.append(f"{label}: {directory} (no such directory)")
                return
            hits = [v for v in wanted if v not in found and (directory / archive_name(v)).is_file()]
            for version in hits:
                found[version] = directory / archive_name(version)
            places.append(f"{label}: {directory} ({len(hits)} found there)")

        look(self.env_dir, f"${CHARTS_DIR_ENV}")
        look(self.shared_dir, "../shared/charts/cilium beside the repository")
        look(self.cache_dir, "the cache")
        missing = [v for v in wanted if v not in found]
        if missing:
            label = f"helm pull from {self.repo_url} into the cache"
            if self.pull is None:
                places.append(f"{label}: no helm binary to pull with")
            else:
                try:
                    self.pull(missing, self.cache_dir)
                except SandboxError as exc:
                    places.append(f"{label}: {exc}")
                else:
                    places.append(f"{label}: done")
                # What a pull that failed part-way did fetch counts too.
                for version in missing:
                    path = self.cache_dir / archive_name(version)
                    if path.is_file():
                        found[version] = path
            missing = [v for v in wanted if v not in found]
        if missing:
            raise ChartsMissing(missing, places)
        for version, path in found.items():
            inside = chart_version(path)
            if inside != version:
                raise SandboxError(f"{path} holds chart version {inside}, not {version}")
        return {v: found[v] for v in wanted}


def resolve_charts(
    versions: Iterable[str] = REAL_CHART_VERSIONS,
    *,
    repo_root: Path | None = None,
    cache_dir: Path | None = None,
    pull: Puller | None = None,
) -> dict[str, Path]:
    """The archives of ``versions`` from the standard sources (see the module docstring).

    ``repo_root`` defaults to the nearest directory above the working directory that
    holds ``kind-config.yaml``.
    """
    root = repo_root if repo_root is not None else find_repo_root(Path.cwd())
    sources = ChartSources.default(root, cache_dir=cache_dir, pull=pull)
    return sources.resolve(versions)


# ---------------------------------------------------------------------- on the sandbox

# Replicas of the operator Deployment in every chart of REAL_CHART_VERSIONS. Each
# replica needs a node of its own: a required podAntiAffinity on the hostname, and
# host ports (the operator runs with hostNetwork).
OPERATOR_REPLICAS = 2


def sandbox_values(version: str, *, nodes: int) -> dict[str, str]:
    """The values the real chart ``version`` needs to become ready on a sandbox of ``nodes``.

    As ``--set`` pairs (empty: the chart's defaults do). The answer, checked by installing
    every version of REAL_CHART_VERSIONS (agent release, then the next version's
    pre-flight release) with ``helm install --wait``:

    * On a sandbox of two nodes or more, nothing. Every chart 1.12.0 to 1.20.0 installs
      with its defaults and all it renders becomes ready: the agent DaemonSet and, from
      1.16, ``cilium-envoy`` on every node, the operator 2/2, the ``hubble-peer``
      Service, Secrets, RBAC and (from 1.17) the ``cilium-secrets`` Namespace. kwok marks
      each pod Running and Ready; no image is pulled and no container runs.
    * On a single node, ``operator.replicas=1``: the second replica stays Pending (see
      OPERATOR_REPLICAS). ``helm install --wait`` still returns (the Deployment allows
      50% unavailable) but the operator is 1/2, so the gate's health checks would fail.

    Not needed, so not set: ``kubeProxyReplacement`` and ``k8sServiceHost``/``Port``. A
    kind cluster made from ``kind-config.yaml`` has no kube-proxy and needs them for the
    agent to reach the API server; in the sandbox no agent runs, so they change nothing
    about readiness. Tests about them set them.

    The charts also create cluster-scoped objects (ClusterRoles and ClusterRoleBindings
    ``cilium``, ``cilium-operator``, ``cilium-pre-flight``; from 1.17 the Namespace
    ``cilium-secrets``) that Helm refuses to take over from a release in another
    namespace: one agent release at a time per sandbox, uninstalled before the next.

    Only versions of REAL_CHART_VERSIONS were checked; others raise SandboxError.
    """
    if version not in REAL_CHART_VERSIONS:
        raise SandboxError(
            f"no sandbox values checked for Cilium chart {version} "
            f"(checked: {', '.join(REAL_CHART_VERSIONS)})"
        )
    if nodes < 1:
        raise SandboxError(f"a sandbox has at least one node, not {nodes}")
    values: dict[str, str] = {}
    if nodes < OPERATOR_REPLICAS:
        values["operator.replicas"] = str(nodes)
    return values


def set_args(values: Mapping[str, str]) -> list[str]:
    """``["--set", "key=value", ...]`` for Helm."""
    return [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]


@dataclass(frozen=True)
class ChartImages:
    """The images a chart renders with its default values, exactly as in the pod specs.

    Faults of the sandbox select pods by image, and the real charts pin their images by
    digest (``quay.io/cilium/cilium:v1.20.0@sha256:...``).
    """

    agent: str  # the agent DaemonSet's, and the pre-flight's
    operator: str  # the generic operator's
    envoy: str | None  # the cilium-envoy DaemonSet's (on by default from 1.16)


def _image_ref(image: Mapping[str, object], *, suffix: str = "", digest_key: str = "digest") -> str:
    repository = f"{image['repository']}{suffix}"
    reference = f"{repository}:{image['tag']}"
    digest = image.get(digest_key)
    if image.get("useDigest") and digest:
        reference += f"@{digest}"
    return reference


def _envoy_on(values: Mapping[str, object], envoy: Mapping[str, object]) -> bool:
    """Whether the defaults render the ``cilium-envoy`` DaemonSet.

    1.14 and 1.15 carry its values with ``enabled: false``; from 1.16 ``enabled`` is null,
    which the templates read as on (for ``upgradeCompatibility`` unset or >= 1.16).
    """
    return (
        "image" in envoy and envoy.get("enabled") is not False and bool(values.get("l7Proxy", True))
    )


def chart_images(archive: Path) -> ChartImages:
    """The default images of the chart in ``archive`` (read from its ``values.yaml``)."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            member = next(
                (m for m in tar if m.name.count("/") == 1 and m.name.endswith("/values.yaml")),
                None,
            )
            extracted = tar.extractfile(member) if member is not None else None
            if extracted is None:
                raise SandboxError(f"{archive} has no values.yaml")
            values = yaml.safe_load(extracted.read())
    except (OSError, tarfile.TarError, yaml.YAMLError) as exc:
        raise SandboxError(f"{archive} is not a readable chart archive: {exc}") from exc
    try:
        operator = values["operator"]["image"]
        envoy = values.get("envoy") or {}
        return ChartImages(
            agent=_image_ref(values["image"]),
            operator=_image_ref(
                operator,
                suffix=f"-generic{operator.get('suffix') or ''}",
                digest_key="genericDigest",
            ),
            envoy=_image_ref(envoy["image"]) if _envoy_on(values, envoy) else None,
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise SandboxError(f"{archive}: unexpected image values ({exc!r})") from exc


def unpack_charts(archives: Mapping[str, Path], destination: Path) -> Path:
    """Each archive unpacked, unchanged, into ``destination/<version>/``; returns ``destination``.

    That is the layout ``--cilium-chart DIR`` takes (one chart directory per version).
    The archives stay where they are; ``destination`` is the caller's (a temporary
    directory), never the repository.
    """
    destination.mkdir(parents=True, exist_ok=True)
    for version, archive in archives.items():
        target = destination / version
        if (target / "Chart.yaml").is_file():
            continue
        inside = chart_version(archive)
        if inside != version:
            raise SandboxError(f"{archive} holds chart version {inside}, not {version}")
        with tempfile.TemporaryDirectory(dir=destination, prefix=".unpack-") as scratch:
            try:
                with tarfile.open(archive, "r:gz") as tar:
                    tar.extractall(scratch, filter="data")
            except (OSError, tarfile.TarError) as exc:
                raise SandboxError(f"cannot unpack {archive}: {exc}") from exc
            tops = [p for p in Path(scratch).iterdir() if (p / "Chart.yaml").is_file()]
            if len(tops) != 1:
                raise SandboxError(f"{archive} does not hold exactly one chart")
            tops[0].rename(target)
    return destination
