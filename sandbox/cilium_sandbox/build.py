"""Build the sandbox's upstream binaries from the Go module proxy, pinned and cached.

Every component is compiled from its upstream module at a pinned version inside a
small wrapper module of our own (``<cache>/src/<component>-<version>/``). Finished
binaries land in ``<cache>/bin/<component>-<version>/`` and are reused as long as
they exist; Go's own module and build caches (``go env GOMODCACHE GOCACHE``) make a
rebuild after a version bump incremental.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from cilium_sandbox.errors import SandboxError
from pytest_cilium_upgrade.adapters.cachedir import default_cache_dir

KUBERNETES_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.8.0"
HELM3_VERSION = "v3.22.0"
HELM4_VERSION = "v4.3.1"
GO_DIRECTIVE = "1.26.0"

Progress = Callable[[str], None]


def _kubernetes_ldflags(version: str) -> list[str]:
    major, minor = version.lstrip("v").split(".")[:2]
    flags: list[str] = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    return flags


@dataclass(frozen=True)
class Component:
    """One upstream module and the programs built from it."""

    name: str
    module: str
    version: str
    # program name -> import path of its main package
    programs: Mapping[str, str]
    ldflags: Sequence[str] = ()
    # replace the module's ``./staging`` directives by tagged versions (k8s.io/kubernetes)
    staging_tag: str | None = None
    version_args: Mapping[str, Sequence[str]] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.name}-{self.version}"


def components() -> list[Component]:
    """The pinned components, in build order (smallest first)."""
    kube_minor = KUBERNETES_VERSION.lstrip("v").split(".")[1]
    return [
        Component(
            name="etcd",
            module="go.etcd.io/etcd/server/v3",
            version=ETCD_VERSION,
            programs={"etcd": "go.etcd.io/etcd/server/v3"},
        ),
        Component(
            name="kwok",
            module="sigs.k8s.io/kwok",
            version=KWOK_VERSION,
            programs={
                "kwok": "sigs.k8s.io/kwok/cmd/kwok",
                "kwokctl": "sigs.k8s.io/kwok/cmd/kwokctl",
            },
            ldflags=[
                f"-X sigs.k8s.io/kwok/pkg/consts.Version={KWOK_VERSION.lstrip('v')}",
                f"-X sigs.k8s.io/kwok/pkg/consts.KubeVersion={KUBERNETES_VERSION.lstrip('v')}",
            ],
        ),
        Component(
            name="helm3",
            module="helm.sh/helm/v3",
            version=HELM3_VERSION,
            programs={"helm": "helm.sh/helm/v3/cmd/helm"},
            ldflags=[f"-X helm.sh/helm/v3/internal/version.version={HELM3_VERSION}"],
        ),
        Component(
            name="helm4",
            module="helm.sh/helm/v4",
            version=HELM4_VERSION,
            programs={"helm": "helm.sh/helm/v4/cmd/helm"},
            ldflags=[f"-X helm.sh/helm/v4/internal/version.version={HELM4_VERSION}"],
        ),
        Component(
            name="kubernetes",
            module="k8s.io/kubernetes",
            version=KUBERNETES_VERSION,
            programs={
                name: f"k8s.io/kubernetes/cmd/{name}"
                for name in (
                    "kube-apiserver",
                    "kube-controller-manager",
                    "kube-scheduler",
                    "kubectl",
                )
            },
            ldflags=_kubernetes_ldflags(KUBERNETES_VERSION),
            staging_tag=f"v0.{kube_minor}.{KUBERNETES_VERSION.split('.')[2]}",
        ),
    ]


@dataclass(frozen=True)
class Binaries:
    """Paths of every program the sandbox runs."""

    etcd: Path
    kwok: Path
    kwokctl: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    helm3: Path
    helm4: Path

    def all(self) -> dict[str, Path]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


class Builder:
    """Builds (or finds in the cache) every component."""

    def __init__(self, cache_dir: Path | None = None, progress: Progress | None = None) -> None:
        self.cache_dir = cache_dir or default_cache_dir()
        self.progress: Progress = progress or (lambda msg: print(msg, file=sys.stderr, flush=True))

    def bin_dir(self, component: Component) -> Path:
        return self.cache_dir / "bin" / component.key

    def log_path(self, component: Component) -> Path:
        return self.cache_dir / "logs" / f"build-{component.key}.log"

    def is_built(self, component: Component) -> bool:
        return all((self.bin_dir(component) / p).is_file() for p in component.programs)

    def ensure_all(self) -> Binaries:
        """Build whatever is not cached yet; return every program's path."""
        for comp in components():
            self.ensure(comp)
        return self.binaries()

    def binaries(self) -> Binaries:
        """Where every program is (or will be) in the cache; builds nothing."""
        comps = {c.name: c for c in components()}

        def path(comp: str, program: str) -> Path:
            return self.bin_dir(comps[comp]) / program

        return Binaries(
            etcd=path("etcd", "etcd"),
            kwok=path("kwok", "kwok"),
            kwokctl=path("kwok", "kwokctl"),
            kube_apiserver=path("kubernetes", "kube-apiserver"),
            kube_controller_manager=path("kubernetes", "kube-controller-manager"),
            kube_scheduler=path("kubernetes", "kube-scheduler"),
            kubectl=path("kubernetes", "kubectl"),
            helm3=path("helm3", "helm"),
            helm4=path("helm4", "helm"),
        )

    def ensure(self, component: Component) -> Path:
        out = self.bin_dir(component)
        if self.is_built(component):
            return out
        go = shutil.which("go")
        if go is None:
            raise SandboxError(
                f"cannot build {component.module}@{component.version}: no Go toolchain on PATH "
                "(install Go 1.26 or newer, https://go.dev/doc/install)"
            )
        log = self.log_path(component)
        log.parent.mkdir(parents=True, exist_ok=True)
        src = self.cache_dir / "src" / component.key
        src.mkdir(parents=True, exist_ok=True)
        staging = out.with_name(out.name + ".partial")
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        started = time.monotonic()
        self.progress(
            f"building {component.module}@{component.version} "
            f"({', '.join(component.programs)}); log: {log}"
        )
        with log.open("w") as log_file:
            env = self._go_env()
            self._write_wrapper(component, src, go, env, log_file)
            for program, package in component.programs.items():
                self._run(
                    component,
                    [
                        go,
                        "build",
                        "-pgo=off",
                        "-trimpath",
                        "-ldflags",
                        " ".join(["-s", "-w", *component.ldflags]),
                        "-o",
                        str(staging / program),
                        package,
                    ],
                    src,
                    env,
                    log_file,
                )
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
        self.progress(f"built {component.key} in {time.monotonic() - started:.0f}s -> {out}")
        return out

    @staticmethod
    def _go_env() -> dict[str, str]:
        env = dict(os.environ)
        env.update({"CGO_ENABLED": "0", "GOFLAGS": "-mod=mod", "GOWORK": "off"})
        return env

    def _write_wrapper(
        self,
        component: Component,
        src: Path,
        go: str,
        env: Mapping[str, str],
        log_file: IO[str],
    ) -> None:
        lines = [
            f"module sandbox.invalid/{component.name}",
            "",
            f"go {GO_DIRECTIVE}",
            "",
            f"require {component.module} {component.version}",
        ]
        if component.staging_tag is not None:
            upstream_mod = self._upstream_go_mod(component, src, go, env, log_file)
            staged = _staging_modules(upstream_mod)
            if not staged:
                raise SandboxError(
                    f"{component.module}@{component.version}: no ./staging replace "
                    f"directives found in its go.mod ({upstream_mod})"
                )
            lines += ["", "replace ("]
            lines += [f"\t{mod} => {mod} {component.staging_tag}" for mod in staged]
            lines += [")"]
        (src / "go.mod").write_text("\n".join(lines) + "\n")
        imports = "\n".join(f'\t_ "{pkg}"' for pkg in sorted(set(component.programs.values())))
        (src / "tools.go").write_text(
            "//go:build tools\n\n// Package tools pins the programs built from this module.\n"
            f"package tools\n\nimport (\n{imports}\n)\n"
        )
        self._run(component, [go, "mod", "tidy"], src, env, log_file)

    def _upstream_go_mod(
        self, component: Component, src: Path, go: str, env: Mapping[str, str], log_file: IO[str]
    ) -> Path:
        out = self._run(
            component,
            [go, "mod", "download", "-json", f"{component.module}@{component.version}"],
            src,
            env,
            log_file,
            capture=True,
        )
        info = json.loads(out)
        return Path(info["GoMod"])

    def _run(
        self,
        component: Component,
        argv: list[str],
        cwd: Path,
        env: Mapping[str, str],
        log_file: IO[str],
        *,
        capture: bool = False,
    ) -> str:
        log_file.write(f"$ {' '.join(argv)}\n")
        log_file.flush()
        proc = subprocess.run(
            argv,
            cwd=cwd,
            env=dict(env),
            stdout=subprocess.PIPE if capture else log_file,
            stderr=log_file,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            tail = _tail(self.log_path(component), 15)
            hint = ""
            if "proxy.golang.org" in tail or "dial tcp" in tail or "no such host" in tail:
                hint = " (is the Go module proxy reachable? see GOPROXY)"
            raise SandboxError(
                f"building {component.module}@{component.version} failed{hint}: "
                f"`{' '.join(argv[:3])} ...` exited {proc.returncode}; "
                f"log: {self.log_path(component)}\n{tail}"
            )
        return proc.stdout if capture else ""


def _staging_modules(go_mod: Path) -> list[str]:
    modules = []
    for line in go_mod.read_text().splitlines():
        parts = line.split()
        if "=>" in parts and parts[-1].startswith("./staging/"):
            modules.append(parts[0] if parts[0] != "replace" else parts[1])
    return sorted(set(modules))


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
