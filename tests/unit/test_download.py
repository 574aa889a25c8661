"""The release-download path of the sandbox build, against release sites served on 127.0.0.1.

The loopback server is laid out like the official sites (dl.k8s.io, get.helm.sh, the
GitHub release downloads and releases API) and serves small shell scripts in place of
the programs, with their checksum files as each project publishes them.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import stat
import subprocess
import tarfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cilium_sandbox.build import (
    PROVENANCE_FILE,
    SANDBOX_COMPONENTS,
    BuildBoard,
    Builder,
    Component,
    components,
)
from cilium_sandbox.download import (
    DOWNLOADS_ENV,
    GITHUB_API_URL_ENV,
    GITHUB_URL_ENV,
    HELM_URL_ENV,
    KUBERNETES_URL_ENV,
    Checksum,
    ChecksumMismatch,
    Downloader,
    DownloadUnavailable,
    ReleaseURLs,
    downloads_enabled,
    parse_checksum,
    release_arch,
    release_plan,
)
from cilium_sandbox.errors import SandboxError

ARCH = release_arch()
pytestmark = pytest.mark.skipif(ARCH is None, reason="no release files for this machine")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _script(program: str, version: str) -> bytes:
    return f"#!/bin/sh\necho '{program} {version} (release file)'\n".encode()


def _tarball(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@dataclass
class ReleaseSites:
    """The release sites on one loopback server: files on disk, requests recorded."""

    root: Path
    url: str = ""
    requests: list[str] = field(default_factory=list)

    @property
    def urls(self) -> ReleaseURLs:
        return ReleaseURLs(
            kubernetes=f"{self.url}/k8s/release",
            helm=f"{self.url}/helm",
            github=f"{self.url}/github",
            github_api=f"{self.url}/api",
        )

    def path(self, relative: str) -> Path:
        return self.root / relative

    def write(self, relative: str, data: bytes) -> None:
        target = self.path(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def publish_all(self) -> None:
        """Every component's release files, as its project publishes them."""
        arch = ARCH
        for comp in components():
            v = comp.version
            if comp.name == "kubernetes":
                for program in comp.programs:
                    data = _script(program, v)
                    base = f"k8s/release/{v}/bin/linux/{arch}/{program}"
                    self.write(base, data)
                    self.write(f"{base}.sha256", _sha(data).encode())
            elif comp.name == "etcd":
                stem = f"etcd-{v}-linux-{arch}"
                archive = _tarball(
                    {f"{stem}/etcd": _script("etcd", v), f"{stem}/etcdctl": b"#!/bin/sh\n"}
                )
                base = f"github/etcd-io/etcd/releases/download/{v}"
                self.write(f"{base}/{stem}.tar.gz", archive)
                sums = f"{'0' * 64}  etcd-{v}-darwin-arm64.zip\n{_sha(archive)}  {stem}.tar.gz\n"
                self.write(f"{base}/SHA256SUMS", sums.encode())
            elif comp.name in ("helm3", "helm4"):
                name = f"helm-{v}-linux-{arch}.tar.gz"
                archive = _tarball(
                    {f"linux-{arch}/helm": _script("helm", v), f"linux-{arch}/LICENSE": b"x"}
                )
                self.write(f"helm/{name}", archive)
                self.write(f"helm/{name}.sha256sum", f"{_sha(archive)}  {name}\n".encode())
            elif comp.name == "kwok":
                base = f"github/kubernetes-sigs/kwok/releases/download/{v}"
                assets: list[dict[str, Any]] = []
                for program in comp.programs:
                    data = _script(program, v)
                    self.write(f"{base}/{program}-linux-{arch}", data)
                    assets.append(
                        {"name": f"{program}-linux-{arch}", "digest": f"sha256:{_sha(data)}"}
                    )
                assets.append({"name": "kwok.yaml", "digest": None})
                self.write(
                    f"api/repos/kubernetes-sigs/kwok/releases/tags/{v}",
                    json.dumps({"tag_name": v, "assets": assets}).encode(),
                )


@pytest.fixture
def sites(tmp_path: Path) -> Iterator[ReleaseSites]:
    root = tmp_path / "sites"
    root.mkdir()
    found = ReleaseSites(root)

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self) -> None:
            found.requests.append(self.path)
            super().do_GET()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    found.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def no_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PATH with the shell tools but no ``go``."""
    bin_dir = tmp_path / "path-without-go"
    bin_dir.mkdir()
    for tool in ("sh",):
        found = next(
            (
                Path(d) / tool
                for d in os.environ["PATH"].split(os.pathsep)
                if (Path(d) / tool).is_file()
            ),
            None,
        )
        if found is not None:
            (bin_dir / tool).symlink_to(found)
    monkeypatch.setenv("PATH", str(bin_dir))


@dataclass
class FakeGoBuilds:
    """Stands in for the Go build: records the components and writes programs."""

    built: list[str] = field(default_factory=list)

    def __call__(self, builder: Builder, component: Component, **_: Any) -> Path:
        self.built.append(component.name)
        out = builder.bin_dir(component)
        out.mkdir(parents=True, exist_ok=True)
        for program in component.programs:
            (out / program).write_text(f"#!/bin/sh\necho '{program} (built)'\n")
            (out / program).chmod(0o755)
        (out / PROVENANCE_FILE).write_text(f"{component.key}: built\n")
        return out


@pytest.fixture
def fake_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeGoBuilds:
    go_dir = tmp_path / "fake-go"
    go_dir.mkdir()
    (go_dir / "go").write_text("#!/bin/sh\nexit 1\n")
    (go_dir / "go").chmod(0o755)
    monkeypatch.setenv("PATH", f"{go_dir}{os.pathsep}{os.environ['PATH']}")
    fake = FakeGoBuilds()

    def build(builder: Builder, component: Component, **kwargs: Any) -> Path:
        return fake(builder, component, **kwargs)

    monkeypatch.setattr(Builder, "build", build)
    return fake


def _builder(tmp_path: Path, urls: ReleaseURLs, messages: list[str], **kwargs: Any) -> Builder:
    return Builder(
        cache_dir=tmp_path / "cache",
        progress=messages.append,
        downloads=True,
        urls=urls,
        **kwargs,
    )


def _run(path: Path) -> str:
    return subprocess.run([str(path)], capture_output=True, text=True, check=True).stdout


# ---------------------------------------------------------------------- the download path


def test_every_component_is_downloaded_and_verified_without_a_go_toolchain(
    tmp_path: Path, sites: ReleaseSites, no_go: None
) -> None:
    sites.publish_all()
    messages: list[str] = []
    builder = _builder(tmp_path, sites.urls, messages)
    binaries = builder.ensure_all()
    for name, path in binaries.all().items():
        assert path.is_file(), name
        assert path.stat().st_mode & stat.S_IXUSR, name
        assert "(release file)" in _run(path)
    assert "kube-apiserver v1.36.3" in _run(binaries.kube_apiserver)
    assert "helm v4.3.1" in _run(binaries.helm4)
    for comp in components():
        provenance = builder.provenance(comp)
        assert provenance is not None
        assert "SHA-256 verified" in provenance
        assert "sha256:" in provenance
        assert not builder.bin_dir(comp).with_name(comp.key + ".partial").exists()
        # nothing but the programs and the provenance is left (no archives)
        assert {p.name for p in builder.bin_dir(comp).iterdir()} == {
            *comp.programs,
            PROVENANCE_FILE,
        }
    assert sum("downloaded and verified" in m for m in messages) == len(components())
    assert "sandbox binaries ready in" in messages[-1]


def test_the_checksums_are_those_the_projects_publish(
    tmp_path: Path, sites: ReleaseSites, no_go: None
) -> None:
    sites.publish_all()
    builder = _builder(tmp_path, sites.urls, [])
    builder.ensure_all()
    kubectl = sites.path(f"k8s/release/v1.36.3/bin/linux/{ARCH}/kubectl").read_bytes()
    kube = {c.name: c for c in components()}["kubernetes"]
    assert f"sha256:{_sha(kubectl)}" in (builder.provenance(kube) or "")
    requested = set(sites.requests)
    assert f"/k8s/release/v1.36.3/bin/linux/{ARCH}/kubectl.sha256" in requested
    assert "/github/etcd-io/etcd/releases/download/v3.6.16/SHA256SUMS" in requested
    assert f"/helm/helm-v3.22.0-linux-{ARCH}.tar.gz.sha256sum" in requested
    assert "/api/repos/kubernetes-sigs/kwok/releases/tags/v0.8.0" in requested


def test_only_what_the_sandbox_runs_is_fetched_for_it(
    tmp_path: Path, sites: ReleaseSites, no_go: None
) -> None:
    sites.publish_all()
    builder = _builder(tmp_path, sites.urls, [])
    binaries = builder.ensure_sandbox()
    assert all(path.is_file() for path in binaries.required().values())
    assert not binaries.helm4.exists()
    assert not any("v4.3.1" in r for r in sites.requests)
    assert set(SANDBOX_COMPONENTS) == {"etcd", "kwok", "kubernetes", "helm3"}


def test_a_wrong_checksum_is_refused_naming_the_file_and_both_hashes_then_built(
    tmp_path: Path, sites: ReleaseSites, fake_go: FakeGoBuilds
) -> None:
    sites.publish_all()
    published = "f" * 64
    sites.write(f"k8s/release/v1.36.3/bin/linux/{ARCH}/kube-scheduler.sha256", published.encode())
    actual = _sha(sites.path(f"k8s/release/v1.36.3/bin/linux/{ARCH}/kube-scheduler").read_bytes())
    messages: list[str] = []
    builder = _builder(tmp_path, sites.urls, messages)
    binaries = builder.ensure_all()

    refused = [m for m in messages if "REFUSED" in m]
    assert len(refused) == 1
    assert "kube-scheduler" in refused[0]
    assert published in refused[0]
    assert actual in refused[0]
    assert "discarded" in refused[0]
    # the whole component is built from source instead; the others stay downloaded
    assert fake_go.built == ["kubernetes"]
    assert "(built)" in _run(binaries.kube_scheduler)
    assert "(built)" in _run(binaries.kube_apiserver)
    assert "(release file)" in _run(binaries.etcd)
    kube = {c.name: c for c in components()}["kubernetes"]
    assert builder.provenance(kube) == "kubernetes-v1.36.3: built\n"
    assert not builder.bin_dir(kube).with_name(kube.key + ".partial").exists()


def test_a_wrong_checksum_without_go_fails_with_both_reasons(
    tmp_path: Path, sites: ReleaseSites, no_go: None
) -> None:
    sites.publish_all()
    name = f"helm-v3.22.0-linux-{ARCH}.tar.gz"
    sites.write(f"helm/{name}.sha256sum", f"{'0' * 64}  {name}\n".encode())
    builder = _builder(tmp_path, sites.urls, [])
    with pytest.raises(SandboxError) as info:
        builder.ensure_components(["helm3"])
    message = str(info.value)
    assert "no Go toolchain on PATH" in message
    assert f"checksum mismatch for {name}" in message
    assert "0" * 64 in message
    assert not builder.bin_dir({c.name: c for c in components()}["helm3"]).exists()


def test_a_checksum_mismatch_names_the_file_and_both_hashes() -> None:
    error = ChecksumMismatch(
        "kubectl", "http://x/kubectl", "http://x/kubectl.sha256", "a" * 64, "b" * 64
    )
    text = str(error)
    assert "kubectl" in text
    assert "a" * 64 in text
    assert "b" * 64 in text
    assert "http://x/kubectl.sha256" in text


def test_a_release_site_that_refuses_connections_is_given_up_and_everything_built(
    tmp_path: Path, fake_go: FakeGoBuilds
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    urls = ReleaseURLs(base, base, base, base)
    looked_up: list[str] = []

    def resolver(host: str, port: int) -> Sequence[tuple[str, int]]:
        looked_up.append(host)
        return [(host, port)]

    messages: list[str] = []
    builder = _builder(tmp_path, urls, messages, downloader=Downloader(resolver=resolver))
    builder.ensure_all()
    assert sorted(fake_go.built) == sorted(c.name for c in components())
    unreachable = [m for m in messages if "no release download" in m]
    assert len(unreachable) == len(components())
    assert all(f"cannot connect to 127.0.0.1:{port}" in m for m in unreachable)
    assert looked_up == ["127.0.0.1"]  # one probe per host, whatever the components


def test_a_failed_name_lookup_makes_the_site_unreachable() -> None:
    def resolver(host: str, port: int) -> Sequence[tuple[str, int]]:
        raise socket.gaierror(-2, "Name or service not known")

    reason = Downloader(resolver=resolver).unreachable("https://dl.k8s.io/release/v1/x")
    assert reason is not None
    assert "cannot look up dl.k8s.io" in reason
    assert "Name or service not known" in reason


def test_a_lookup_that_hangs_is_given_up_after_the_connect_timeout() -> None:
    release = threading.Event()

    def resolver(host: str, port: int) -> Sequence[tuple[str, int]]:
        release.wait(30)
        return []

    try:
        reason = Downloader(connect_timeout=0.2, resolver=resolver).unreachable(
            "https://get.helm.sh/helm.tar.gz"
        )
    finally:
        release.set()
    assert reason == "looking up get.helm.sh took longer than 0.2s"


def test_the_proxy_is_probed_when_one_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    for name in ("https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{port}")
    looked_up: list[str] = []

    def resolver(host: str, port: int) -> Sequence[tuple[str, int]]:
        looked_up.append(host)
        return [(host, port)]

    reason = Downloader(resolver=resolver).unreachable("https://dl.k8s.io/release/v1/x")
    assert looked_up == ["127.0.0.1"]
    assert reason is not None
    assert f"127.0.0.1:{port}" in reason


def test_a_missing_checksum_file_falls_back_before_the_file_is_fetched(
    tmp_path: Path, sites: ReleaseSites, fake_go: FakeGoBuilds
) -> None:
    sites.publish_all()
    sites.path("github/etcd-io/etcd/releases/download/v3.6.16/SHA256SUMS").unlink()
    messages: list[str] = []
    _builder(tmp_path, sites.urls, messages).ensure_components(["etcd", "helm3"])
    assert fake_go.built == ["etcd"]
    assert any("etcd: no release download" in m and "HTTP 404" in m for m in messages)
    assert not any(r.endswith(".tar.gz") and "etcd" in r for r in sites.requests)


def test_kwok_without_a_published_digest_is_built(
    tmp_path: Path, sites: ReleaseSites, fake_go: FakeGoBuilds
) -> None:
    sites.publish_all()
    api = sites.path("api/repos/kubernetes-sigs/kwok/releases/tags/v0.8.0")
    release = json.loads(api.read_text())
    for asset in release["assets"]:
        asset.pop("digest")
    api.write_text(json.dumps(release))
    messages: list[str] = []
    _builder(tmp_path, sites.urls, messages).ensure_components(["kwok"])
    assert fake_go.built == ["kwok"]
    assert any(f"no SHA-256 for kwok-linux-{ARCH} published" in m for m in messages)


def test_an_archive_without_the_program_is_not_used(
    tmp_path: Path, sites: ReleaseSites, fake_go: FakeGoBuilds
) -> None:
    sites.publish_all()
    name = f"helm-v3.22.0-linux-{ARCH}.tar.gz"
    archive = _tarball({f"linux-{ARCH}/README.md": b"no helm here"})
    sites.write(f"helm/{name}", archive)
    sites.write(f"helm/{name}.sha256sum", f"{_sha(archive)}  {name}\n".encode())
    messages: list[str] = []
    builder = _builder(tmp_path, sites.urls, messages)
    builder.ensure_components(["helm3"])
    assert fake_go.built == ["helm3"]
    assert any(f"has no linux-{ARCH}/helm" in m for m in messages)


def test_downloads_can_be_turned_off(
    tmp_path: Path, sites: ReleaseSites, fake_go: FakeGoBuilds, monkeypatch: pytest.MonkeyPatch
) -> None:
    sites.publish_all()
    monkeypatch.setenv(DOWNLOADS_ENV, "0")
    assert not downloads_enabled()
    builder = Builder(cache_dir=tmp_path / "cache", progress=lambda _: None, urls=sites.urls)
    builder.ensure_components(["etcd"])
    assert fake_go.built == ["etcd"]
    assert sites.requests == []


def test_cached_components_reach_no_network(tmp_path: Path) -> None:
    def resolver(host: str, port: int) -> Sequence[tuple[str, int]]:
        raise AssertionError(f"looked up {host}")

    builder = Builder(
        cache_dir=tmp_path, progress=lambda _: None, downloader=Downloader(resolver=resolver)
    )
    for comp in components():
        out = builder.bin_dir(comp)
        out.mkdir(parents=True)
        for program in comp.programs:
            (out / program).write_text("#!/bin/sh\n")
    builder.ensure_all()


# ---------------------------------------------------------------------- the layout


def test_the_release_urls_follow_the_official_layout() -> None:
    urls = ReleaseURLs()
    kube = release_plan("kubernetes", "v1.36.3", ["kubectl"], urls, arch="amd64")
    assert kube is not None
    (artifact,) = kube.artifacts
    assert artifact.url == "https://dl.k8s.io/release/v1.36.3/bin/linux/amd64/kubectl"
    assert artifact.checksum == Checksum(f"{artifact.url}.sha256", "bare", "kubectl")
    helm = release_plan("helm4", "v4.3.1", ["helm"], urls, arch="arm64")
    assert helm is not None
    assert helm.artifacts[0].url == "https://get.helm.sh/helm-v4.3.1-linux-arm64.tar.gz"
    assert helm.artifacts[0].checksum.url.endswith("helm-v4.3.1-linux-arm64.tar.gz.sha256sum")
    assert helm.artifacts[0].members == {"helm": "linux-arm64/helm"}
    etcd = release_plan("etcd", "v3.6.16", ["etcd"], urls, arch="amd64")
    assert etcd is not None
    assert etcd.artifacts[0].url == (
        "https://github.com/etcd-io/etcd/releases/download/v3.6.16/etcd-v3.6.16-linux-amd64.tar.gz"
    )
    assert etcd.artifacts[0].checksum.url.endswith("/v3.6.16/SHA256SUMS")
    assert etcd.artifacts[0].members == {"etcd": "etcd-v3.6.16-linux-amd64/etcd"}
    kwok = release_plan("kwok", "v0.8.0", ["kwok", "kwokctl"], urls, arch="amd64")
    assert kwok is not None
    assert [a.url for a in kwok.artifacts] == [
        "https://github.com/kubernetes-sigs/kwok/releases/download/v0.8.0/kwok-linux-amd64",
        "https://github.com/kubernetes-sigs/kwok/releases/download/v0.8.0/kwokctl-linux-amd64",
    ]
    assert kwok.artifacts[0].checksum == Checksum(
        "https://api.github.com/repos/kubernetes-sigs/kwok/releases/tags/v0.8.0",
        "github-digest",
        "kwok-linux-amd64",
    )
    assert release_plan("tiny", "v1.0.0", ["tiny"], urls, arch="amd64") is None


def test_the_base_urls_come_from_the_environment() -> None:
    urls = ReleaseURLs.from_env(
        {
            KUBERNETES_URL_ENV: "http://127.0.0.1:1/k",
            HELM_URL_ENV: "http://127.0.0.1:1/h",
            GITHUB_URL_ENV: "http://127.0.0.1:1/g",
            GITHUB_API_URL_ENV: "http://127.0.0.1:1/a",
        }
    )
    assert urls == ReleaseURLs(
        "http://127.0.0.1:1/k",
        "http://127.0.0.1:1/h",
        "http://127.0.0.1:1/g",
        "http://127.0.0.1:1/a",
    )
    assert ReleaseURLs.from_env({}) == ReleaseURLs()


@pytest.mark.parametrize(
    ("kind", "body", "name"),
    [
        ("bare", b"%s\n", "kubectl"),
        (
            "sums",
            b"0000  other.tar.gz\n%s  helm-v3-linux-amd64.tar.gz\n",
            "helm-v3-linux-amd64.tar.gz",
        ),
        ("sums", b"%s *./release/etcd.tar.gz\n", "etcd.tar.gz"),
        ("github-digest", b'{"assets": [{"name": "kwok", "digest": "sha256:%s"}]}', "kwok"),
    ],
)
def test_published_checksums_are_read_in_each_projects_format(
    kind: Any, body: bytes, name: str
) -> None:
    digest = _sha(b"x")
    assert (
        parse_checksum(Checksum("http://x", kind, name), body % digest.upper().encode()) == digest
    )


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("bare", b"not a hash\n"),
        ("bare", b""),
        ("sums", b"%s  another-file.tar.gz\n" % (b"a" * 64)),
        ("github-digest", b"<html>rate limited</html>"),
        ("github-digest", b'{"assets": [{"name": "kwok", "digest": "sha512:abc"}]}'),
    ],
)
def test_a_checksum_that_cannot_be_read_is_no_checksum(kind: Any, body: bytes) -> None:
    with pytest.raises(DownloadUnavailable, match="no SHA-256 for kwok published in http://x"):
        parse_checksum(Checksum("http://x", kind, "kwok"), body)


def test_the_progress_board_says_what_runs_what_is_done_and_what_is_left() -> None:
    board = BuildBoard(["kubernetes", "helm3", "etcd"], lambda _: None, interval=60)
    board.doing("kubernetes", "go build", quiet=True)
    board.compiled("kubernetes")
    board.compiled("kubernetes")
    board.done("etcd", "downloaded, 3s")
    line = board.line()
    assert line.startswith("[sandbox binaries 0s] kubernetes: go build 0s, 2 packages compiled")
    assert "done: etcd (downloaded, 3s)" in line
    assert line.endswith("left: helm3")


def test_a_progress_line_is_printed_while_a_build_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    go_dir = tmp_path / "fake-go"
    go_dir.mkdir()
    (go_dir / "go").write_text("#!/bin/sh\nexit 1\n")
    (go_dir / "go").chmod(0o755)
    monkeypatch.setenv("PATH", f"{go_dir}{os.pathsep}{os.environ['PATH']}")
    ticked = threading.Event()
    lines: list[str] = []

    def progress(line: str) -> None:
        lines.append(line)
        if line.startswith("[sandbox binaries"):
            ticked.set()

    def slow_build(builder: Builder, component: Component, **kwargs: Any) -> Path:
        kwargs["board"].doing(component.name, "go build", quiet=True)
        assert ticked.wait(10), "no progress line while the build ran"
        return FakeGoBuilds()(builder, component)

    monkeypatch.setattr(Builder, "build", slow_build)
    builder = Builder(
        cache_dir=tmp_path / "cache", progress=progress, downloads=False, interval=0.05
    )
    builder.ensure_components(["etcd"])
    tick = next(line for line in lines if line.startswith("[sandbox binaries"))
    assert "etcd: go build" in tick


def test_a_downloaded_component_is_cached_under_its_version(
    tmp_path: Path, sites: ReleaseSites, no_go: None
) -> None:
    sites.publish_all()
    builder = _builder(tmp_path, sites.urls, [])
    etcd = {c.name: c for c in components()}["etcd"]
    assert builder.ensure(etcd) == tmp_path / "cache" / "bin" / "etcd-v3.6.16"
    sites.requests.clear()
    assert builder.ensure(etcd) == tmp_path / "cache" / "bin" / "etcd-v3.6.16"
    assert sites.requests == []
