from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cilium_sandbox.build import Builder, Component, _staging_modules, components
from cilium_sandbox.errors import SandboxError

TINY = Component(
    name="tiny",
    module="example.invalid/tiny",
    version="v1.0.0",
    programs={"tiny": "example.invalid/tiny/cmd/tiny"},
)


def test_every_sandbox_program_is_pinned_and_located_in_the_cache(tmp_path: Path) -> None:
    builder = Builder(cache_dir=tmp_path)
    binaries = builder.binaries()
    programs = binaries.all()
    assert set(programs) == {
        "etcd",
        "kwok",
        "kwokctl",
        "kube_apiserver",
        "kube_controller_manager",
        "kube_scheduler",
        "kubectl",
        "helm3",
        "helm4",
    }
    for path in programs.values():
        assert path.is_relative_to(tmp_path / "bin")
    for component in components():
        assert component.version.startswith("v")
        assert component.key in str(builder.bin_dir(component))


def test_staging_replaces_are_read_from_the_upstream_go_mod(tmp_path: Path) -> None:
    go_mod = tmp_path / "go.mod"
    go_mod.write_text(
        "module k8s.io/kubernetes\n\nreplace (\n"
        "\tk8s.io/api => ./staging/src/k8s.io/api\n"
        "\tk8s.io/client-go => ./staging/src/k8s.io/client-go\n"
        "\texample.com/x => example.com/y v1.2.3\n"
        ")\n"
        "replace k8s.io/kubectl => ./staging/src/k8s.io/kubectl\n"
    )
    assert _staging_modules(go_mod) == ["k8s.io/api", "k8s.io/client-go", "k8s.io/kubectl"]


def test_cached_binaries_are_not_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    builder = Builder(cache_dir=tmp_path, progress=lambda _: None)
    out = builder.bin_dir(TINY)
    out.mkdir(parents=True)
    (out / "tiny").write_text("#!/bin/sh\n")
    monkeypatch.setenv("PATH", str(tmp_path / "no-go-here"))
    assert builder.ensure(TINY) == out


def test_missing_go_toolchain_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-go-here"))
    with pytest.raises(SandboxError, match=r"no Go toolchain on PATH") as info:
        Builder(cache_dir=tmp_path, progress=lambda _: None).ensure(TINY)
    assert "example.invalid/tiny@v1.0.0" in str(info.value)


@pytest.mark.skipif(shutil.which("go") is None, reason="needs the go command")
def test_unreachable_module_proxy_names_the_component_and_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy on a closed loopback port: the download fails at once, nothing leaves the host.
    monkeypatch.setenv("GOPROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("GOSUMDB", "off")
    monkeypatch.setenv("GOTOOLCHAIN", "local")
    monkeypatch.setenv("GOMODCACHE", str(tmp_path / "modcache"))
    builder = Builder(cache_dir=tmp_path / "cache", progress=lambda _: None)
    etcd = next(c for c in components() if c.name == "etcd")
    with pytest.raises(SandboxError) as info:
        builder.ensure(etcd)
    message = str(info.value)
    assert "go.etcd.io/etcd/server/v3" in message
    assert "is the Go module proxy reachable?" in message
    assert str(builder.log_path(etcd)) in message
    assert builder.log_path(etcd).is_file()
    assert not builder.bin_dir(etcd).exists()
