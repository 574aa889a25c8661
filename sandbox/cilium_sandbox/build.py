"""The sandbox's upstream binaries, pinned and cached: release downloads or Go module builds.

Each component's programs land in ``<cache>/bin/<component>-<version>/`` and are
reused as long as they exist (the cache key is the version). A missing component
is taken, in this order, from

1. its official release downloads, checked against the published SHA-256
   (:mod:`cilium_sandbox.download`; a site that cannot be reached is given up within
   seconds, and ``CILIUM_SANDBOX_DOWNLOADS=0`` skips this), or
2. its upstream Go module at the pinned version, compiled inside a small wrapper
   module of our own (``<cache>/src/<component>-<version>/``); Go's own module and
   build caches (``go env GOMODCACHE GOCACHE``) make a rebuild after a version bump
   incremental.

Only what is asked for is fetched or built: the sandbox itself
(:data:`SANDBOX_COMPONENTS`, what ``cilium-sandbox up`` and the demo run) or
everything (Helm 4 too, which the test suite needs). Downloads run side by side;
builds run one at a time, heaviest first, each on every core (:func:`build_jobs` says
why, with the measurement). While anything runs, a progress line says every
:data:`PROGRESS_INTERVAL` seconds which component does what, for how long, and what
is left.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

from cilium_sandbox.download import (
    ChecksumMismatch,
    Downloader,
    DownloadFailed,
    ReleaseURLs,
    downloads_enabled,
    release_plan,
)
from cilium_sandbox.errors import SandboxError
from pytest_cilium_upgrade.adapters.cachedir import default_cache_dir

KUBERNETES_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.8.0"
HELM3_VERSION = "v3.22.0"
HELM4_VERSION = "v4.3.1"
GO_DIRECTIVE = "1.26.0"

# What the sandbox runs (``up``, the demo); Helm 4 only when asked for (the tests).
SANDBOX_COMPONENTS: Final = ("etcd", "kwok", "kubernetes", "helm3")
# Seconds between two progress lines while something is fetched or built.
PROGRESS_INTERVAL: Final = 12.0
# How many components are built at once (default 1: see build_jobs).
BUILD_JOBS_ENV: Final = "CILIUM_SANDBOX_BUILD_JOBS"
# Written beside the programs: where they came from.
PROVENANCE_FILE: Final = ".provenance"

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
    # relative cost of a cold build: the heaviest start first, with the most cores
    weight: int = 1

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
            weight=1,
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
            weight=2,
        ),
        Component(
            name="helm3",
            module="helm.sh/helm/v3",
            version=HELM3_VERSION,
            programs={"helm": "helm.sh/helm/v3/cmd/helm"},
            ldflags=[f"-X helm.sh/helm/v3/internal/version.version={HELM3_VERSION}"],
            weight=3,
        ),
        Component(
            name="helm4",
            module="helm.sh/helm/v4",
            version=HELM4_VERSION,
            programs={"helm": "helm.sh/helm/v4/cmd/helm"},
            ldflags=[f"-X helm.sh/helm/v4/internal/version.version={HELM4_VERSION}"],
            weight=3,
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
            weight=10,
        ),
    ]


def component_names() -> list[str]:
    return [c.name for c in components()]


def build_jobs(env: Mapping[str, str] | None = None) -> int:
    """Components built at once: ``$CILIUM_SANDBOX_BUILD_JOBS``, else 1.

    One at a time, heaviest first, is the faster way here: Kubernetes, Helm and kwok
    share hundreds of packages (client-go, apimachinery and their dependencies) at the
    same versions, so each later build takes them from Go's build cache, while builds
    side by side compile them twice at once. Measured on 2 cores with an empty build
    cache (etcd, kwok, Kubernetes, Helm 3): 10 min 2 s one at a time, 11 min 40 s two
    at a time (636 s and 686 s of CPU). ``go build -p`` already keeps every core busy
    within one build.
    """
    env = os.environ if env is None else env
    raw = env.get(BUILD_JOBS_ENV, "").strip()
    if raw:
        try:
            return max(1, int(raw))
        except ValueError:
            raise SandboxError(f"${BUILD_JOBS_ENV}={raw!r} is not a whole number") from None
    return 1


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

    def required(self) -> dict[str, Path]:
        """The programs ``up`` needs; Helm 4 is there only when it was asked for."""
        return {name: path for name, path in self.all().items() if name != "helm4"}


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class BuildBoard:
    """What each component is doing; prints a progress line every ``interval`` seconds."""

    def __init__(self, names: Sequence[str], progress: Progress, interval: float) -> None:
        self.names = list(names)
        self.progress = progress
        self.interval = interval
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._doing: dict[str, tuple[str, float]] = {}  # name -> (activity, since)
        self._packages: dict[str, int] = {}
        self._done: dict[str, str] = {}

    def doing(self, name: str, activity: str, *, quiet: bool = False) -> None:
        with self._lock:
            previous = self._doing.get(name)
            since = previous[1] if previous and previous[0] == activity else time.monotonic()
            self._doing[name] = (activity, since)
        if not quiet:
            self.progress(f"{name}: {activity}")

    def waiting(self, name: str) -> None:
        with self._lock:
            self._doing.pop(name, None)

    def compiled(self, name: str) -> None:
        with self._lock:
            self._packages[name] = self._packages.get(name, 0) + 1

    def done(self, name: str, how: str) -> None:
        with self._lock:
            self._doing.pop(name, None)
            self._done[name] = how

    def line(self) -> str:
        now = time.monotonic()
        with self._lock:
            parts = []
            for name in self.names:
                if name not in self._doing:
                    continue
                activity, since = self._doing[name]
                text = f"{name}: {activity} {_duration(now - since)}"
                if self._packages.get(name):
                    text += f", {self._packages[name]} packages compiled"
                parts.append(text)
            done = [f"{n} ({self._done[n]})" for n in self.names if n in self._done]
            left = [n for n in self.names if n not in self._doing and n not in self._done]
        line = f"[sandbox binaries {_duration(now - self.started)}] " + (
            " | ".join(parts) or "idle"
        )
        if done:
            line += f" | done: {', '.join(done)}"
        if left:
            line += f" | left: {', '.join(left)}"
        return line

    @contextmanager
    def ticking(self) -> Iterator[None]:
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(self.interval):
                self.progress(self.line())

        ticker = threading.Thread(target=tick, name="build progress", daemon=True)
        ticker.start()
        try:
            yield
        finally:
            stop.set()
            ticker.join()


class Builder:
    """Fetches or builds (or finds in the cache) the components asked for."""

    def __init__(
        self,
        cache_dir: Path | None = None,
        progress: Progress | None = None,
        *,
        downloads: bool | None = None,
        urls: ReleaseURLs | None = None,
        downloader: Downloader | None = None,
        jobs: int | None = None,
        interval: float = PROGRESS_INTERVAL,
    ) -> None:
        self.cache_dir = cache_dir or default_cache_dir()
        self.progress: Progress = progress or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.downloads = downloads_enabled() if downloads is None else downloads
        self.urls = urls or ReleaseURLs.from_env()
        self.downloader = downloader or Downloader()
        self.jobs = jobs
        self.interval = interval
        self._running_builds = 0
        self._count_lock = threading.Lock()

    def bin_dir(self, component: Component) -> Path:
        return self.cache_dir / "bin" / component.key

    def log_path(self, component: Component) -> Path:
        return self.cache_dir / "logs" / f"build-{component.key}.log"

    def is_built(self, component: Component) -> bool:
        return all((self.bin_dir(component) / p).is_file() for p in component.programs)

    def provenance(self, component: Component) -> str | None:
        """Where the cached programs came from (a download and its checksum, or a build)."""
        try:
            return (self.bin_dir(component) / PROVENANCE_FILE).read_text()
        except OSError:
            return None

    def ensure_sandbox(self) -> Binaries:
        """What the sandbox runs (:data:`SANDBOX_COMPONENTS`); Helm 4 is not fetched."""
        self.ensure_components(SANDBOX_COMPONENTS)
        return self.binaries()

    def ensure_all(self) -> Binaries:
        """Every component, Helm 4 included; return every program's path."""
        self.ensure_components(component_names())
        return self.binaries()

    def binaries(self) -> Binaries:
        """Where every program is (or will be) in the cache; fetches nothing."""
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
        """``component``'s program directory, fetched or built first when missing."""
        return self.ensure_components([component])[component.name]

    def ensure_components(self, wanted: Iterable[str | Component]) -> dict[str, Path]:
        """Fetch or build whatever of ``wanted`` is not cached; their program directories."""
        known = {c.name: c for c in components()}
        chosen: list[Component] = []
        for item in wanted:
            if isinstance(item, Component):
                chosen.append(item)
            elif item in known:
                chosen.append(known[item])
            else:
                raise SandboxError(f"no sandbox component {item!r}; there are {', '.join(known)}")
        missing = [c for c in chosen if not self.is_built(c)]
        if missing:
            self._provide(missing)
        return {c.name: self.bin_dir(c) for c in chosen}

    # ------------------------------------------------------------------ scheduling
    def _provide(self, missing: Sequence[Component]) -> None:
        started = time.monotonic()
        board = BuildBoard([c.name for c in missing], self.progress, self.interval)
        self.progress(
            f"sandbox binaries missing from {self.cache_dir / 'bin'}: "
            + ", ".join(c.key for c in missing)
        )
        outcomes: dict[str, str] = {}
        with board.ticking():
            to_build = list(missing)
            why_not: dict[str, str] = {}
            if self.downloads:
                to_build, why_not = self._download_all(missing, board, outcomes)
            if to_build:
                self._build_all(to_build, board, outcomes, why_not)
        summary = ", ".join(f"{c.name} ({outcomes[c.name]})" for c in missing)
        self.progress(
            f"sandbox binaries ready in {_duration(time.monotonic() - started)}: {summary}"
        )

    def _download_all(
        self, missing: Sequence[Component], board: BuildBoard, outcomes: dict[str, str]
    ) -> tuple[list[Component], dict[str, str]]:
        """Download what can be; the components left to build, and why each was not fetched."""
        why_not: dict[str, str] = {}

        def attempt(component: Component) -> bool:
            began = time.monotonic()
            try:
                self.download(component, board)
            except DownloadFailed as exc:
                why_not[component.name] = str(exc)
                board.waiting(component.name)
                source = f"{component.module}@{component.version}"
                if isinstance(exc, ChecksumMismatch):
                    self.progress(f"{component.name}: download REFUSED: {exc}")
                    self.progress(f"{component.name}: building {source} from source instead")
                else:
                    self.progress(
                        f"{component.name}: no release download ({exc}); building {source}"
                    )
                return False
            took = _duration(time.monotonic() - began)
            outcomes[component.name] = f"downloaded, {took}"
            board.done(component.name, f"downloaded, {took}")
            self.progress(f"{component.name}: downloaded and verified in {took}")
            return True

        with concurrent.futures.ThreadPoolExecutor(
            max_workers=len(missing), thread_name_prefix="download"
        ) as pool:
            fetched = list(pool.map(attempt, missing))
        return [c for c, ok in zip(missing, fetched, strict=True) if not ok], why_not

    def _build_all(
        self,
        to_build: Sequence[Component],
        board: BuildBoard,
        outcomes: dict[str, str],
        why_not: Mapping[str, str],
    ) -> None:
        go = shutil.which("go")
        if go is None:
            first = to_build[0]
            because = why_not.get(first.name)
            raise SandboxError(
                f"cannot build {first.module}@{first.version}: no Go toolchain on PATH "
                "(install Go 1.26 or newer, https://go.dev/doc/install)"
                + (f"; the release download was no way either: {because}" if because else "")
            )
        order = sorted(to_build, key=lambda c: -c.weight)
        jobs = min(self.jobs or build_jobs(), len(order))

        def one(component: Component) -> None:
            began = time.monotonic()
            lead = component is order[0]
            self.build(component, go=go, board=board, jobs=jobs, lead=lead)
            took = _duration(time.monotonic() - began)
            outcomes[component.name] = f"built, {took}"
            board.done(component.name, f"built, {took}")

        if jobs == 1:
            for component in order:
                one(component)
            return
        with concurrent.futures.ThreadPoolExecutor(
            max_workers=jobs, thread_name_prefix="go-build"
        ) as pool:
            futures = [pool.submit(one, c) for c in order]
            concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
            for future in futures:
                future.cancel()  # a failure: start nothing more; running builds finish
        for future in futures:
            if not future.cancelled() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]

    # ------------------------------------------------------------------ download
    def download(self, component: Component, board: BuildBoard | None = None) -> Path:
        """``component`` from its official release files, checksum-verified, into the cache.

        Raises :class:`~cilium_sandbox.download.DownloadFailed` (nothing is left in the cache then).
        """
        plan = release_plan(component.name, component.version, list(component.programs), self.urls)
        if plan is None:
            raise DownloadFailed("no official release files for this component and machine")
        out = self.bin_dir(component)
        staging = out.with_name(out.name + ".partial")
        if staging.exists():
            shutil.rmtree(staging)

        def status(text: str) -> None:
            if board is not None:
                board.doing(component.name, text, quiet=True)

        status("checking the release downloads")
        try:
            provenance = self.downloader.fetch(plan, staging, status)
            missing = [p for p in component.programs if not (staging / p).is_file()]
            if missing:
                raise DownloadFailed(f"the release files gave no {', '.join(missing)}")
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        (staging / PROVENANCE_FILE).write_text(
            f"{component.key}: official release files, SHA-256 verified\n"
            + "".join(f"{line}\n" for line in provenance)
        )
        self._publish(staging, out)
        return out

    # ------------------------------------------------------------------ Go build
    def build(
        self,
        component: Component,
        *,
        go: str | None = None,
        board: BuildBoard | None = None,
        jobs: int = 1,
        lead: bool = True,
    ) -> Path:
        """Compile ``component`` from its Go module into the cache.

        ``jobs``: how many builds may run at once. The ``lead`` build (the heaviest)
        takes every core (``go build -p``, ``GOMAXPROCS``); another takes its share of
        them while a build runs beside it, and every core when it starts alone.
        """
        go = go or shutil.which("go")
        if go is None:
            raise SandboxError(
                f"cannot build {component.module}@{component.version}: no Go toolchain on PATH "
                "(install Go 1.26 or newer, https://go.dev/doc/install)"
            )
        board = board or BuildBoard([component.name], self.progress, self.interval)
        out = self.bin_dir(component)
        log = self.log_path(component)
        log.parent.mkdir(parents=True, exist_ok=True)
        src = self.cache_dir / "src" / component.key
        src.mkdir(parents=True, exist_ok=True)
        staging = out.with_name(out.name + ".partial")
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        with self._count_lock:
            alone = lead or self._running_builds == 0
            self._running_builds += 1
        try:
            cores = os.cpu_count() or 1
            share = cores if alone else max(1, cores // max(1, jobs))
            env = self._go_env(None if alone else share)
            board.doing(
                component.name,
                f"building {component.module}@{component.version} "
                f"({', '.join(component.programs)}; go build -p {share}); log: {log}",
            )
            with log.open("w") as log_file:
                board.doing(component.name, "go mod tidy", quiet=True)
                self._write_wrapper(component, src, go, env, log_file)
                board.doing(component.name, "go build", quiet=True)
                for argv in self._build_commands(component, go, staging, share):
                    self._run(component, argv, src, env, log_file, board=board)
        finally:
            with self._count_lock:
                self._running_builds -= 1
        version = subprocess.run(
            [go, "env", "GOVERSION"], capture_output=True, text=True, check=False
        ).stdout.strip()
        (staging / PROVENANCE_FILE).write_text(
            f"{component.key}: built from {component.module}@{component.version} "
            f"with {version or 'go'}\n"
        )
        self._publish(staging, out)
        return out

    @staticmethod
    def _build_commands(component: Component, go: str, staging: Path, jobs: int) -> list[list[str]]:
        base = [
            go,
            "build",
            "-v",
            "-p",
            str(jobs),
            "-pgo=off",
            "-trimpath",
            "-ldflags",
            " ".join(["-s", "-w", *component.ldflags]),
        ]
        named_by_path = all(
            pkg.rsplit("/", 1)[-1] == name for name, pkg in component.programs.items()
        )
        if len(component.programs) > 1 and named_by_path:
            # one go command for all: the packages they share are loaded and compiled once
            return [[*base, "-o", f"{staging}/", *component.programs.values()]]
        return [[*base, "-o", str(staging / p), pkg] for p, pkg in component.programs.items()]

    @staticmethod
    def _publish(staging: Path, out: Path) -> None:
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)

    @staticmethod
    def _go_env(maxprocs: int | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"CGO_ENABLED": "0", "GOFLAGS": "-mod=mod", "GOWORK": "off"})
        if maxprocs is not None:
            env["GOMAXPROCS"] = str(maxprocs)
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
        board: BuildBoard | None = None,
    ) -> str:
        log_file.write(f"$ {' '.join(argv)}\n")
        log_file.flush()
        if board is None:
            proc = subprocess.run(
                argv,
                cwd=cwd,
                env=dict(env),
                stdout=subprocess.PIPE if capture else log_file,
                stderr=log_file,
                text=True,
                check=False,
            )
            code, out = proc.returncode, proc.stdout if capture else ""
        else:
            # ``go build -v`` names each package on stderr as it is compiled: counted
            # for the progress line, and copied to the log
            with subprocess.Popen(
                argv,
                cwd=cwd,
                env=dict(env),
                stdout=log_file,
                stderr=subprocess.PIPE,
                text=True,
            ) as running:
                assert running.stderr is not None
                for line in running.stderr:
                    log_file.write(line)
                    if _is_package_line(line):
                        board.compiled(component.name)
                code, out = running.wait(), ""
            log_file.flush()
        if code != 0:
            tail = _tail(self.log_path(component), 15)
            hint = ""
            if "proxy.golang.org" in tail or "dial tcp" in tail or "no such host" in tail:
                hint = " (is the Go module proxy reachable? see GOPROXY)"
            raise SandboxError(
                f"building {component.module}@{component.version} failed{hint}: "
                f"`{' '.join(argv[:3])} ...` exited {code}; "
                f"log: {self.log_path(component)}\n{tail}"
            )
        return out


def _is_package_line(line: str) -> bool:
    text = line.strip()
    return bool(text) and " " not in text and not text.startswith(("#", "$"))


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
