"""The sandbox's binaries from the official release downloads, checked against published SHA-256s.

Where the release sites answer, a component is fetched as its upstream project
publishes it, at the pinned version, instead of being compiled (minutes instead of
a quarter of an hour on two cores). Every file is checked against the checksum the
project publishes beside it before anything is unpacked or made executable:

=========== ============================================================ =====================
component   file (linux, amd64 or arm64)                                  published checksum
=========== ============================================================ =====================
kubernetes  ``{kubernetes}/vX/bin/linux/ARCH/<program>``, one per program ``<program>.sha256``
            (kube-apiserver, kube-controller-manager, kube-scheduler,    (the hash alone)
            kubectl)
etcd        ``{github}/etcd-io/etcd/releases/download/vX/``               ``SHA256SUMS`` beside
            ``etcd-vX-linux-ARCH.tar.gz`` (``etcd-vX-linux-ARCH/etcd``)   it (sha256sum lines)
helm3/helm4 ``{helm}/helm-vX-linux-ARCH.tar.gz`` (``linux-ARCH/helm``)    ``<archive>.sha256sum``
kwok        ``{github}/kubernetes-sigs/kwok/releases/download/vX/``       the asset's ``digest``
            ``kwok-linux-ARCH``, ``kwokctl-linux-ARCH``                   in the releases API
=========== ============================================================ =====================

The base URLs (defaults ``https://dl.k8s.io/release``, ``https://get.helm.sh``,
``https://github.com``, ``https://api.github.com``) are read from
``$CILIUM_SANDBOX_KUBERNETES_URL``, ``$CILIUM_SANDBOX_HELM_URL``,
``$CILIUM_SANDBOX_GITHUB_URL`` and ``$CILIUM_SANDBOX_GITHUB_API_URL`` (a mirror laid
out like the release sites, or a test server). ``CILIUM_SANDBOX_DOWNLOADS=0`` turns
the downloads off. kwok publishes no checksum file (its release script uploads the
bare binaries), so its checksum is the SHA-256 GitHub computes for each uploaded
asset and serves as the asset's ``digest`` in ``GET /repos/{owner}/{repo}/releases/tags/{tag}``;
where there is none, kwok is built from source.

Nothing here decides what happens next: :class:`DownloadUnavailable` (a site that
cannot be reached, a missing file, no published checksum) and
:class:`ChecksumMismatch` (a file that is not what was published) are both
:class:`DownloadFailed`, and the builder falls back to the Go module build. A site
that cannot be reached is found out before any download starts, within
:data:`CONNECT_TIMEOUT` seconds (a failed name lookup, a refused or unanswered
connection), once per host.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import socket
import tarfile
import threading
import time
import urllib.error
import urllib.request
import urllib.response
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal
from urllib.parse import urlsplit

from cilium_sandbox.errors import SandboxError

KUBERNETES_URL_ENV: Final = "CILIUM_SANDBOX_KUBERNETES_URL"
HELM_URL_ENV: Final = "CILIUM_SANDBOX_HELM_URL"
GITHUB_URL_ENV: Final = "CILIUM_SANDBOX_GITHUB_URL"
GITHUB_API_URL_ENV: Final = "CILIUM_SANDBOX_GITHUB_API_URL"
DOWNLOADS_ENV: Final = "CILIUM_SANDBOX_DOWNLOADS"

# How long a release site may take to resolve and accept a connection before it is
# taken as unreachable and the component is built instead.
CONNECT_TIMEOUT: Final = 2.0
# How long one read of an answer may stall once connected.
READ_TIMEOUT: Final = 30.0
_CHUNK = 1 << 20

ChecksumKind = Literal["bare", "sums", "github-digest"]
Status = Callable[[str], None]
Resolver = Callable[[str, int], Sequence[tuple[str, int]]]


class DownloadFailed(SandboxError):
    """A component could not be taken from its release downloads."""


class DownloadUnavailable(DownloadFailed):
    """The release site cannot be reached, or lacks the file or its checksum."""


class ChecksumMismatch(DownloadFailed):
    """A downloaded file is not the one whose checksum was published; it was discarded."""

    def __init__(self, name: str, url: str, checksum_url: str, expected: str, actual: str) -> None:
        self.name = name
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"checksum mismatch for {name}: the published SHA-256 is {expected} "
            f"({checksum_url}), the file downloaded from {url} has {actual}; "
            "the file was discarded"
        )


@dataclass(frozen=True)
class ReleaseURLs:
    """Base URLs of the release sites."""

    kubernetes: str = "https://dl.k8s.io/release"
    helm: str = "https://get.helm.sh"
    github: str = "https://github.com"
    github_api: str = "https://api.github.com"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ReleaseURLs:
        env = os.environ if env is None else env
        base = cls()
        return cls(
            kubernetes=env.get(KUBERNETES_URL_ENV) or base.kubernetes,
            helm=env.get(HELM_URL_ENV) or base.helm,
            github=env.get(GITHUB_URL_ENV) or base.github,
            github_api=env.get(GITHUB_API_URL_ENV) or base.github_api,
        )


def downloads_enabled(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return env.get(DOWNLOADS_ENV, "1").strip().lower() not in ("0", "no", "off", "false")


def release_arch() -> str | None:
    """The release files' name for this machine's architecture; None where none is published."""
    if platform.system() != "Linux":
        return None
    return {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower()
    )


@dataclass(frozen=True)
class Checksum:
    """Where a file's published SHA-256 is, and how it is written there."""

    url: str
    kind: ChecksumKind
    name: str  # the file name it is listed under (sums, github-digest)


@dataclass(frozen=True)
class Artifact:
    """One file of a release: a program itself, or an archive holding programs."""

    url: str
    checksum: Checksum
    # program name -> member path in the .tar.gz; empty when the file is ``program``
    members: Mapping[str, str] = field(default_factory=dict)
    program: str | None = None

    @property
    def name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def programs(self) -> list[str]:
        return [self.program] if self.program is not None else list(self.members)


@dataclass(frozen=True)
class ReleasePlan:
    """The files to fetch for one component."""

    component: str
    version: str
    artifacts: tuple[Artifact, ...]

    @property
    def programs(self) -> list[str]:
        return [p for a in self.artifacts for p in a.programs]


def release_plan(
    component: str,
    version: str,
    programs: Sequence[str],
    urls: ReleaseURLs,
    arch: str | None = None,
) -> ReleasePlan | None:
    """What to download for ``component`` at ``version``; None where it has no release files."""
    arch = arch or release_arch()
    if arch is None:
        return None
    os_arch = f"linux-{arch}"
    artifacts: list[Artifact] = []
    if component == "kubernetes":
        base = f"{urls.kubernetes.rstrip('/')}/{version}/bin/linux/{arch}"
        for program in programs:
            url = f"{base}/{program}"
            artifacts.append(
                Artifact(url, Checksum(f"{url}.sha256", "bare", program), program=program)
            )
    elif component == "etcd":
        base = f"{urls.github.rstrip('/')}/etcd-io/etcd/releases/download/{version}"
        stem = f"etcd-{version}-{os_arch}"
        archive = f"{stem}.tar.gz"
        artifacts.append(
            Artifact(
                f"{base}/{archive}",
                Checksum(f"{base}/SHA256SUMS", "sums", archive),
                members={p: f"{stem}/{p}" for p in programs},
            )
        )
    elif component in ("helm3", "helm4"):
        archive = f"helm-{version}-{os_arch}.tar.gz"
        url = f"{urls.helm.rstrip('/')}/{archive}"
        artifacts.append(
            Artifact(
                url,
                Checksum(f"{url}.sha256sum", "sums", archive),
                members={p: f"{os_arch}/{p}" for p in programs},
            )
        )
    elif component == "kwok":
        repo = "kubernetes-sigs/kwok"
        base = f"{urls.github.rstrip('/')}/{repo}/releases/download/{version}"
        api = f"{urls.github_api.rstrip('/')}/repos/{repo}/releases/tags/{version}"
        for program in programs:
            asset = f"{program}-{os_arch}"
            artifacts.append(
                Artifact(f"{base}/{asset}", Checksum(api, "github-digest", asset), program=program)
            )
    else:
        return None
    return ReleasePlan(component, version, tuple(artifacts))


# ---------------------------------------------------------------------- checksums


def _hex(text: str) -> str | None:
    text = text.strip().lower()
    if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
        return text
    return None


def parse_checksum(checksum: Checksum, body: bytes) -> str:
    """The SHA-256 (lowercase hex) published for ``checksum.name`` in ``body``."""
    text = body.decode("utf-8", errors="replace")
    found: str | None = None
    if checksum.kind == "bare":
        words = text.split()
        found = _hex(words[0]) if words else None
    elif checksum.kind == "sums":
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("*").rsplit("/", 1)[-1] == checksum.name:
                found = _hex(parts[0])
                break
    else:
        try:
            release = json.loads(text)
        except ValueError:
            release = None
        assets = release.get("assets") if isinstance(release, dict) else None
        for asset in assets if isinstance(assets, list) else []:
            if isinstance(asset, dict) and asset.get("name") == checksum.name:
                digest = asset.get("digest")
                if isinstance(digest, str) and digest.startswith("sha256:"):
                    found = _hex(digest.removeprefix("sha256:"))
                break
    if found is None:
        raise DownloadUnavailable(f"no SHA-256 for {checksum.name} published in {checksum.url}")
    return found


# ---------------------------------------------------------------------- the network


def _system_resolver(host: str, port: int) -> list[tuple[str, int]]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [(str(info[4][0]), int(info[4][1])) for info in infos]


class Downloader:
    """Fetches release plans; reachability is probed once per host, with a short deadline."""

    def __init__(
        self,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        resolver: Resolver = _system_resolver,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.resolver = resolver
        self._probed: dict[tuple[str, int], str | None] = {}
        self._host_locks: dict[tuple[str, int], threading.Lock] = {}
        self._lock = threading.Lock()
        self._opener = urllib.request.build_opener()

    # ------------------------------------------------------------------ reachability
    def unreachable(self, url: str) -> str | None:
        """Why ``url``'s host (or the proxy for it) cannot be reached; None when it answers."""
        parts = urlsplit(url)
        scheme = parts.scheme or "http"
        host = parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        proxies = urllib.request.getproxies()
        proxy = proxies.get(scheme)
        if proxy and not urllib.request.proxy_bypass(host):
            proxy_parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
            host = proxy_parts.hostname or host
            port = proxy_parts.port or (443 if proxy_parts.scheme == "https" else 80)
        key = (host, port)
        with self._lock:
            host_lock = self._host_locks.setdefault(key, threading.Lock())
        with host_lock:  # components fetched side by side share one probe of a host
            if key not in self._probed:
                self._probed[key] = self._probe(host, port)
            return self._probed[key]

    def _probe(self, host: str, port: int) -> str | None:
        deadline = time.monotonic() + self.connect_timeout
        result: list[Sequence[tuple[str, int]] | BaseException] = []

        def lookup() -> None:
            try:
                result.append(self.resolver(host, port))
            except BaseException as exc:  # handed to the waiting thread
                result.append(exc)

        worker = threading.Thread(target=lookup, name=f"resolve {host}", daemon=True)
        worker.start()
        worker.join(self.connect_timeout)
        if not result:
            return f"looking up {host} took longer than {self.connect_timeout:g}s"
        found = result[0]
        if isinstance(found, BaseException):
            return f"cannot look up {host}: {found}"
        errors: list[str] = []
        for address in found:
            left = deadline - time.monotonic()
            if left <= 0:
                errors.append(f"no answer within {self.connect_timeout:g}s")
                break
            try:
                with socket.create_connection(address, timeout=left):
                    return None
            except OSError as exc:
                errors.append(f"{address[0]}:{address[1]}: {exc}")
        return f"cannot connect to {host}:{port}: {'; '.join(errors) or 'no address'}"

    # ------------------------------------------------------------------ fetching
    def _open(self, url: str) -> urllib.response.addinfourl:
        try:
            response: urllib.response.addinfourl = self._opener.open(
                url, timeout=max(self.read_timeout, self.connect_timeout)
            )
        except urllib.error.HTTPError as exc:
            raise DownloadUnavailable(f"{url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DownloadUnavailable(f"{url}: {reason}") from None
        return response

    def read_small(self, url: str, limit: int = 4 << 20) -> bytes:
        with self._open(url) as response:
            body: bytes = response.read(limit + 1)
        if len(body) > limit:
            raise DownloadUnavailable(f"{url}: more than {limit} bytes for a checksum")
        return body

    def fetch_verified(
        self, artifact: Artifact, dest: Path, status: Status = lambda _: None
    ) -> str:
        """Download ``artifact`` to ``dest``; its SHA-256 must be the published one."""
        expected = parse_checksum(artifact.checksum, self.read_small(artifact.checksum.url))
        digest = hashlib.sha256()
        got = 0
        last = 0.0
        try:
            with self._open(artifact.url) as response, dest.open("wb") as out:
                total = int(response.headers.get("Content-Length") or 0)
                while chunk := response.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    got += len(chunk)
                    now = time.monotonic()
                    if now - last >= 1.0:
                        last = now
                        size = f"{got >> 20}/{total >> 20} MiB" if total else f"{got >> 20} MiB"
                        status(f"downloading {artifact.name} ({size})")
        except OSError as exc:  # a connection that broke off, a full disk
            dest.unlink(missing_ok=True)
            raise DownloadUnavailable(f"{artifact.url}: {exc}") from None
        actual = digest.hexdigest()
        if actual != expected:
            dest.unlink(missing_ok=True)
            raise ChecksumMismatch(
                artifact.name, artifact.url, artifact.checksum.url, expected, actual
            )
        return actual

    def fetch(self, plan: ReleasePlan, out_dir: Path, status: Status = lambda _: None) -> list[str]:
        """Every program of ``plan`` into ``out_dir`` (executable); lines of provenance.

        Raises :class:`DownloadFailed`; ``out_dir`` then may hold part of the programs.
        """
        for artifact in plan.artifacts:
            reason = self.unreachable(artifact.url)
            if reason is not None:
                raise DownloadUnavailable(reason)
        out_dir.mkdir(parents=True, exist_ok=True)
        provenance: list[str] = []
        for artifact in plan.artifacts:
            status(f"downloading {artifact.name}")
            download = out_dir / f".{artifact.name}.download"
            sha = self.fetch_verified(artifact, download, status)
            try:
                if artifact.program is not None:
                    download.rename(out_dir / artifact.program)
                    (out_dir / artifact.program).chmod(0o755)
                else:
                    _extract(download, artifact.members, out_dir)
            finally:
                download.unlink(missing_ok=True)
            provenance.append(f"{artifact.url} sha256:{sha} ({artifact.checksum.url})")
        return provenance


def _extract(archive: Path, members: Mapping[str, str], out_dir: Path) -> None:
    """Copy each ``members`` entry (program -> path in the archive) out as an executable."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for program, member in members.items():
                try:
                    info = tar.getmember(member)
                except KeyError:
                    raise DownloadUnavailable(f"{archive.name[1:]} has no {member}") from None
                source = tar.extractfile(info) if info.isfile() else None
                if source is None:
                    raise DownloadUnavailable(f"{member} in {archive.name[1:]} is not a file")
                target = out_dir / program
                with source, target.open("wb") as out:
                    shutil.copyfileobj(source, out)
                target.chmod(0o755)
    except (tarfile.TarError, OSError) as exc:
        raise DownloadUnavailable(f"cannot unpack {archive.name[1:]}: {exc}") from None
