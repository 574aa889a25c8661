from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from cilium_sandbox.build import (
    BUILD_JOBS_ENV,
    SANDBOX_COMPONENTS,
    Builder,
    Component,
    _is_package_line,
    _staging_modules,
    build_jobs,
    components,
)
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
        Builder(cache_dir=tmp_path, progress=lambda _: None, downloads=False).ensure(TINY)
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
    builder = Builder(cache_dir=tmp_path / "cache", progress=lambda _: None, downloads=False)
    etcd = next(c for c in components() if c.name == "etcd")
    with pytest.raises(SandboxError) as info:
        builder.ensure(etcd)
    message = str(info.value)
    assert "go.etcd.io/etcd/server/v3" in message
    assert "is the Go module proxy reachable?" in message
    assert str(builder.log_path(etcd)) in message
    assert builder.log_path(etcd).is_file()
    assert not builder.bin_dir(etcd).exists()


# ---------------------------------------------------------------------- what, and how many at once


def _fake_go_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    go_dir = tmp_path / "fake-go"
    go_dir.mkdir()
    (go_dir / "go").write_text("#!/bin/sh\nexit 1\n")
    (go_dir / "go").chmod(0o755)
    monkeypatch.setenv("PATH", f"{go_dir}{os.pathsep}{os.environ['PATH']}")


def _write_programs(builder: Builder, component: Component) -> Path:
    out = builder.bin_dir(component)
    out.mkdir(parents=True, exist_ok=True)
    for program in component.programs:
        (out / program).write_text("#!/bin/sh\n")
    return out


def test_the_sandbox_needs_no_helm_4(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_go_on_path(tmp_path, monkeypatch)
    built: list[str] = []

    def build(builder: Builder, component: Component, **_: Any) -> Path:
        built.append(component.name)
        return _write_programs(builder, component)

    monkeypatch.setattr(Builder, "build", build)
    builder = Builder(cache_dir=tmp_path / "cache", progress=lambda _: None, downloads=False)
    binaries = builder.ensure_sandbox()
    assert sorted(built) == sorted(SANDBOX_COMPONENTS)
    assert "helm4" not in built
    assert set(binaries.required()) == set(binaries.all()) - {"helm4"}
    assert all(path.is_file() for path in binaries.required().values())
    assert not binaries.helm4.exists()
    builder.ensure_all()
    assert built[-1] == "helm4"


def test_components_are_built_side_by_side_heaviest_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With two jobs, kubernetes and helm3 build at the same time (each waits for the other)."""
    _fake_go_on_path(tmp_path, monkeypatch)
    started = {name: threading.Event() for name in ("kubernetes", "helm3")}
    order: list[str] = []
    jobs_seen: dict[str, int] = {}
    leads: dict[str, bool] = {}

    def build(builder: Builder, component: Component, **kwargs: Any) -> Path:
        order.append(component.name)
        jobs_seen[component.name] = kwargs["jobs"]
        leads[component.name] = kwargs["lead"]
        started[component.name].set()
        other = "helm3" if component.name == "kubernetes" else "kubernetes"
        assert started[other].wait(10), f"{other} did not start while {component.name} built"
        return _write_programs(builder, component)

    monkeypatch.setattr(Builder, "build", build)
    builder = Builder(
        cache_dir=tmp_path / "cache", progress=lambda _: None, downloads=False, jobs=2
    )
    builder.ensure_components(["helm3", "kubernetes"])
    assert order[0] == "kubernetes"
    assert jobs_seen == {"kubernetes": 2, "helm3": 2}
    assert leads == {"kubernetes": True, "helm3": False}  # every core to the heaviest


def test_one_job_builds_one_component_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_go_on_path(tmp_path, monkeypatch)
    running = threading.Semaphore(1)
    order: list[str] = []

    def build(builder: Builder, component: Component, **_: Any) -> Path:
        assert running.acquire(blocking=False), "two builds at once"
        try:
            order.append(component.name)
            return _write_programs(builder, component)
        finally:
            running.release()

    monkeypatch.setattr(Builder, "build", build)
    monkeypatch.delenv(BUILD_JOBS_ENV, raising=False)
    Builder(cache_dir=tmp_path / "cache", progress=lambda _: None, downloads=False).ensure_all()
    assert order == ["kubernetes", "helm3", "helm4", "kwok", "etcd"]


def test_a_failed_build_fails_the_set_up_and_starts_nothing_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_go_on_path(tmp_path, monkeypatch)
    built: list[str] = []

    def build(builder: Builder, component: Component, **_: Any) -> Path:
        built.append(component.name)
        if component.name == "kubernetes":
            raise SandboxError("building k8s.io/kubernetes@v1.36.3 failed")
        return _write_programs(builder, component)

    monkeypatch.setattr(Builder, "build", build)
    builder = Builder(
        cache_dir=tmp_path / "cache", progress=lambda _: None, downloads=False, jobs=1
    )
    with pytest.raises(SandboxError, match=r"k8s\.io/kubernetes@v1\.36\.3 failed"):
        builder.ensure_all()
    assert built == ["kubernetes"]


def test_builds_run_one_at_a_time_unless_asked_otherwise() -> None:
    assert build_jobs({}) == 1
    assert build_jobs({BUILD_JOBS_ENV: "3"}) == 3
    assert build_jobs({BUILD_JOBS_ENV: "0"}) == 1
    with pytest.raises(SandboxError, match="CILIUM_SANDBOX_BUILD_JOBS"):
        build_jobs({BUILD_JOBS_ENV: "many"})


def test_programs_of_one_module_are_built_by_one_go_command(tmp_path: Path) -> None:
    kube, etcd = (next(c for c in components() if c.name == n) for n in ("kubernetes", "etcd"))
    (command,) = Builder._build_commands(kube, "go", tmp_path, 2)
    assert command[:5] == ["go", "build", "-v", "-p", "2"]
    assert command[command.index("-o") + 1] == f"{tmp_path}/"
    assert command[-4:] == list(kube.programs.values())
    # etcd's main package is the module root (``.../v3``): its program is named explicitly
    (command,) = Builder._build_commands(etcd, "go", tmp_path, 1)
    assert command[command.index("-o") + 1] == str(tmp_path / "etcd")


def test_compiled_packages_are_told_from_other_output() -> None:
    assert _is_package_line("k8s.io/api/core/v1\n")
    assert _is_package_line("sigs.k8s.io/kwok/cmd/kwok\n")
    assert not _is_package_line("# k8s.io/kubernetes/cmd/kubectl\n")
    assert not _is_package_line("go: downloading k8s.io/api v0.36.3\n")
    assert not _is_package_line("\n")
