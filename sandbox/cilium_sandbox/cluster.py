"""Bring the sandbox up and down: kwokctl's binary runtime with our own binaries, loopback only.

Layout of a sandbox work directory (nothing is written outside it and the cache)::

    <workdir>/kwokctl.yaml      the KwokctlConfiguration we pass with -c
    <workdir>/kubeconfig        admin kubeconfig of the sandbox (the user's is never touched)
    <workdir>/kwok/             KWOK_WORKDIR: kwokctl's cluster state, pids and component logs
    <workdir>/logs/             pod log files served through the API (kwok Logs objects)
    <workdir>/bin/              kubectl and helm on the sandbox's PATH
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from cilium_sandbox.build import KUBERNETES_VERSION, Binaries
from cilium_sandbox.errors import SandboxError
from cilium_sandbox.faults import (
    FAULT_CONDITION,
    FAULT_LABEL,
    ContainerLogs,
    PodFault,
)
from cilium_sandbox.topology import Topology
from cilium_sandbox.watchdog import reap

LOOPBACK = "127.0.0.1"
CLUSTER_NAME = "sandbox"
# CRDs served so that stages and pod logs can be changed while the sandbox runs
ENABLED_CRDS = ("Stage", "Logs", "ClusterLogs")
APISERVER = "kube-apiserver"
# Components that hold a leader-election lease and exit when they cannot renew it for
# 10 s (their default renew deadline), e.g. while the API server is away. On a real
# control-plane node they are static pods that the kubelet starts again; kwokctl's
# binary runtime starts each process once, so the sandbox restarts them itself.
LEADER_ELECTED = ("kube-controller-manager", "kube-scheduler")
# The simulated kubelets. After an outage of the API server each of its watches (Stages,
# Logs, ClusterLogs, pods, nodes) comes back on client-go's reflector back-off, 0.8 s
# doubling to [30, 60) s while the API server is away, reset only after 2 minutes without
# failure; a kwok started again lists and watches everything at once.
KWOK = "kwok-controller"
# --kube-api-qps/--kube-api-burst of kube-controller-manager and kube-scheduler
CONTROLLER_CLIENT_LIMITS = [
    {"key": "kube-api-qps", "value": "300"},
    {"key": "kube-api-burst", "value": "600"},
]
CANARY_LABEL = "sandbox.pytest-cilium-upgrade.io/canary"
Progress = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(port: int, *, reuse: bool = False) -> bool:
    """Whether ``port`` on loopback cannot be bound; with ``reuse``, as a server that sets
    SO_REUSEADDR binds (every Go server does): connections in TIME_WAIT do not count."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if reuse:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return True
    return False


@dataclass(frozen=True)
class Component:
    """One control-plane process as kwokctl started it (from its ``kwok.yaml``)."""

    name: str
    binary: str
    args: tuple[str, ...]
    workdir: str
    env: tuple[tuple[str, str], ...] = ()

    def flag(self, name: str) -> str | None:
        prefix = f"--{name}="
        return next((a[len(prefix) :] for a in self.args if a.startswith(prefix)), None)

    def with_flag(self, name: str, value: str) -> Component:
        prefix = f"--{name}="
        args = tuple(f"{prefix}{value}" if a.startswith(prefix) else a for a in self.args)
        return replace(self, args=args)


@dataclass(frozen=True)
class Listener:
    pid: int
    process: str
    address: str
    port: int


class Sandbox:
    """One sandbox cluster living in ``workdir``."""

    def __init__(
        self,
        workdir: Path,
        binaries: Binaries,
        topology: Topology,
        *,
        apiserver_port: int | None = None,
        progress: Progress = _stderr,
    ) -> None:
        self.workdir = workdir.resolve()
        self.binaries = binaries
        self.topology = topology
        self.apiserver_port = apiserver_port
        self.progress = progress
        self.kubeconfig = self.workdir / "kubeconfig"
        self.kwok_workdir = self.workdir / "kwok"
        self.logs_dir = self.workdir / "logs"
        self.bin_dir = self.workdir / "bin"
        # components this process (re)started; a thread per child reaps it when it exits
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    # ------------------------------------------------------------------ paths and env
    @property
    def cluster_dir(self) -> Path:
        return self.kwok_workdir / "clusters" / CLUSTER_NAME

    @property
    def component_logs_dir(self) -> Path:
        return self.cluster_dir / "logs"

    def env(self) -> dict[str, str]:
        """Environment for commands run against the sandbox: our PATH and kubeconfig."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("KWOK_", "KUBECONFIG", "HELM_"))
        }
        env["PATH"] = os.pathsep.join([str(self.bin_dir), env.get("PATH", "")])
        env["KWOK_WORKDIR"] = str(self.kwok_workdir)
        env["KUBECONFIG"] = str(self.kubeconfig)
        # Helm keeps its cache, config and data beside the sandbox, not in $HOME.
        for var, sub in (
            ("HELM_CACHE_HOME", "cache"),
            ("HELM_CONFIG_HOME", "config"),
            ("HELM_DATA_HOME", "data"),
        ):
            env[var] = str(self.workdir / "helm" / sub)
        return env

    # ------------------------------------------------------------------ commands
    def run(
        self,
        argv: Sequence[str],
        *,
        input_text: str | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            list(argv),
            env=self.env(),
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            detail = proc.stderr.strip()[-2000:]
            raise SandboxError(f"`{' '.join(argv[:4])} ...` exited {proc.returncode}: {detail}")
        return proc

    def kubectl(self, *args: str, input_text: str | None = None, check: bool = True) -> str:
        return self.run(
            [str(self.binaries.kubectl), *args], input_text=input_text, check=check
        ).stdout

    def apply(self, objects: Sequence[Mapping[str, Any]]) -> None:
        self.kubectl(
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            "-",
            input_text=yaml.safe_dump_all(list(objects)),
        )

    def helm(self, major: int, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        if major not in (3, 4):
            raise SandboxError(f"helm major version must be 3 or 4, not {major}")
        binary = self.binaries.helm3 if major == 3 else self.binaries.helm4
        return self.run([str(binary), *args], check=check, timeout=300)

    # ------------------------------------------------------------------ up / down
    def kwokctl_config(self, port: int) -> dict[str, Any]:
        return {
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "kind": "KwokctlConfiguration",
            "options": {
                "runtime": "binary",
                "bindAddress": LOOPBACK,
                "kubeApiserverPort": port,
                "kubeVersion": KUBERNETES_VERSION,
                "enableCRDs": list(ENABLED_CRDS),
                "quietPull": True,
            },
            "componentsPatches": [
                {
                    "name": "kube-apiserver",
                    "extraArgs": [
                        {"key": "advertise-address", "value": LOOPBACK},
                        {"key": "endpoint-reconciler-type", "value": "none"},
                    ],
                },
                # The controllers' own client rate limits (20 and 50 requests a second by
                # default) would take minutes to fill DaemonSets of thousands of pods, one
                # create and one bind per pod; kwok's client has none.
                *(
                    {"name": name, "extraArgs": CONTROLLER_CLIENT_LIMITS}
                    for name in ("kube-controller-manager", "kube-scheduler")
                ),
            ],
        }

    def _prepare_workdir(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for d in (self.logs_dir, self.bin_dir):
            d.mkdir(exist_ok=True)
        links = {
            "kubectl": self.binaries.kubectl,
            "helm": self.binaries.helm3,
            "helm3": self.binaries.helm3,
            "helm4": self.binaries.helm4,
        }
        for name, target in links.items():
            link = self.bin_dir / name
            if link.is_symlink() or link.exists():
                link.unlink()
            if target.is_file():  # Helm 4 only where it was fetched
                link.symlink_to(target)

    def up(self, timeout: float = 180) -> None:
        """Start the control plane, install our stages and nodes, wait for all nodes Ready."""
        started = time.monotonic()
        for name, path in self.binaries.required().items():
            if not path.is_file():
                raise SandboxError(f"sandbox binary {name} missing at {path}; build it first")
        if self.is_running():
            self.progress(f"a sandbox is already running in {self.workdir}; taking it down first")
            self.down()
        self._prepare_workdir()
        port = self.apiserver_port or free_port()
        if port_in_use(port):
            raise SandboxError(
                f"cannot start the sandbox: port {port} on {LOOPBACK} (kube-apiserver) is in use"
            )
        config_path = self.workdir / "kwokctl.yaml"
        config_path.write_text(yaml.safe_dump(self.kwokctl_config(port), sort_keys=False))
        b = self.binaries
        argv = [
            str(b.kwokctl),
            "create",
            "cluster",
            "--name",
            CLUSTER_NAME,
            "--config",
            str(config_path),
            "--kubeconfig",
            "",
            "--etcd-binary",
            str(b.etcd),
            "--kube-apiserver-binary",
            str(b.kube_apiserver),
            "--kube-controller-manager-binary",
            str(b.kube_controller_manager),
            "--kube-scheduler-binary",
            str(b.kube_scheduler),
            "--kwok-controller-binary",
            str(b.kwok),
            "--wait",
            f"{int(timeout)}s",
        ]
        self.progress(f"starting the sandbox control plane in {self.workdir} (apiserver :{port})")
        try:
            self._create_cluster(argv, deadline=started + timeout)
            kubeconfig = self.run(
                [str(b.kwokctl), "get", "kubeconfig", "--name", CLUSTER_NAME]
            ).stdout
            self.kubeconfig.write_text(kubeconfig)
            self.kubeconfig.chmod(0o600)
            self._check_components_alive()
            self.apply(list(yaml.safe_load_all(_data("stages.yaml"))))
            self.apply([node.manifest() for node in self.topology.nodes])
            self.wait_nodes_ready(timeout=max(30.0, timeout - (time.monotonic() - started)))
        except BaseException:
            self.progress("sandbox start-up failed; stopping what was started")
            with contextlib.suppress(Exception):
                self.down()
            raise
        self.progress(
            f"sandbox up in {time.monotonic() - started:.1f}s: "
            f"{len(self.topology.nodes)} nodes Ready; KUBECONFIG={self.kubeconfig}"
        )

    def wait_nodes_ready(self, timeout: float) -> None:
        """Watch the nodes until each is Ready and carries exactly its topology taints.

        A new node first gets ``node.kubernetes.io/not-ready`` from the node lifecycle
        controller; tests must not see that transient taint, so Ready is not enough.
        """
        from kubernetes import client, config, watch

        want = {n.name: sorted(str(t) for t in n.taints) for n in self.topology.nodes}
        api = config.new_client_from_config(config_file=str(self.kubeconfig))
        core = client.CoreV1Api(api)
        pending = set(want)
        last: dict[str, str] = {}
        stream = watch.Watch()
        try:
            for event in stream.stream(core.list_node, timeout_seconds=max(1, int(timeout))):
                node = event["object"]
                name = node.metadata.name
                if name not in want:
                    continue
                ready = any(
                    c.type == "Ready" and c.status == "True" for c in node.status.conditions or []
                )
                taints = sorted(
                    f"{t.key}{'=' + t.value if t.value else ''}:{t.effect}"
                    for t in node.spec.taints or []
                )
                if ready and taints == want[name]:
                    pending.discard(name)
                else:
                    pending.add(name)
                    last[name] = f"ready={ready} taints={taints}"
                if not pending:
                    return
        finally:
            stream.stop()
            api.close()
        detail = "; ".join(f"{n}: {last.get(n, 'not seen')}" for n in sorted(pending))
        raise SandboxError(
            f"sandbox nodes not Ready with their taints within {timeout:.0f}s ({detail}); "
            f"kwok-controller log: {self.component_logs_dir / 'kwok-controller.log'}"
        )

    def _create_cluster(self, argv: Sequence[str], deadline: float) -> None:
        """Run ``kwokctl create cluster``, failing fast when a component dies.

        kwokctl keeps waiting for the apiserver even when etcd has exited, so we
        supervise it: a component whose pid file names a dead process, or the
        deadline passing, ends the start-up with a message naming the culprit.
        """
        log = self.workdir / "kwokctl-create.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                list(argv),
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            while True:
                try:
                    returncode = proc.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    pass
                dead = [name for name, pid in self.pids().items() if not _alive(pid)]
                if dead:
                    raise SandboxError(
                        self._startup_failure(f"component {', '.join(dead)} exited during start-up")
                    )
                if time.monotonic() > deadline:
                    raise SandboxError(
                        self._startup_failure(
                            "start-up deadline passed before the control plane was ready"
                        )
                    )
            if returncode != 0:
                raise SandboxError(self._startup_failure(f"kwokctl exited {returncode}"))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def _startup_failure(self, reason: str) -> str:
        """Say which component failed and where its log is, from kwokctl's JSON log."""
        log = self.workdir / "kwokctl-create.log"
        output = log.read_text(errors="replace") if log.is_file() else ""
        errors = []
        for line in output.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                if line.strip():
                    errors.append(line.strip())
                continue
            if isinstance(entry, dict) and entry.get("level") in ("ERROR", "WARN"):
                errors.append(" ".join(str(entry[k]) for k in ("msg", "err") if k in entry))
        lines = [f"the sandbox did not start: {reason}"]
        lines += [f"  {e.strip()[-600:]}" for e in errors[-5:]] or ["  (no error logged)"]
        for component_log in sorted(self.component_logs_dir.glob("*.log")):
            tail = component_log.read_text(errors="replace").strip().splitlines()[-3:]
            if tail:
                lines.append(f"  {component_log.stem} log {component_log}, last lines:")
                lines += [f"    {t[-300:]}" for t in tail]
        lines.append(f"  kwokctl log: {log}")
        return "\n".join(lines)

    def _check_components_alive(self) -> None:
        dead = [name for name, pid in self.pids().items() if not _alive(pid)]
        if dead:
            logs = ", ".join(str(self.component_logs_dir / f"{n}.log") for n in dead)
            raise SandboxError(
                f"sandbox component(s) died during start-up: {', '.join(dead)}; see {logs}"
            )

    def pids(self) -> dict[str, int]:
        """Component name -> pid, from kwokctl's pid files."""
        pids: dict[str, int] = {}
        for pid_file in sorted((self.cluster_dir / "pids").glob("*.pid")):
            with contextlib.suppress(ValueError, OSError):
                pids[pid_file.stem] = int(pid_file.read_text().strip())
        return pids

    def is_running(self) -> bool:
        return any(_alive(pid) for pid in self.pids().values())

    def down(self, timeout: float = 60) -> None:
        """Stop every component and remove kwokctl's state; the work dir stays for its logs."""
        if self.cluster_dir.exists() and self.binaries.kwokctl.is_file():
            self.run(
                [
                    str(self.binaries.kwokctl),
                    "delete",
                    "cluster",
                    "--name",
                    CLUSTER_NAME,
                    "--kubeconfig",
                    "",
                ],
                check=False,
                timeout=timeout,
            )
        # Whatever kwokctl left behind (e.g. after its own crash) is ended here.
        for pid in self.pids().values():
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        reap(self.kwok_workdir)
        self._children.clear()  # each is reaped by its own thread
        if self.cluster_dir.exists():
            shutil.rmtree(self.cluster_dir, ignore_errors=True)
        self.kubeconfig.unlink(missing_ok=True)

    # ------------------------------------------------------------------ API server outages
    def components(self) -> dict[str, Component]:
        """How kwokctl started each component (binary, arguments, work dir, environment)."""
        path = self.cluster_dir / "kwok.yaml"
        try:
            docs = list(yaml.safe_load_all(path.read_text()))
        except (OSError, yaml.YAMLError) as exc:
            raise SandboxError(f"cannot read the sandbox's components from {path}: {exc}") from None
        found: dict[str, Component] = {}
        for doc in docs:
            if not isinstance(doc, dict) or doc.get("kind") != "KwokctlConfiguration":
                continue
            for entry in doc.get("components") or []:
                name = str(entry["name"])
                found[name] = Component(
                    name=name,
                    binary=str(entry["binary"]),
                    args=tuple(str(a) for a in entry.get("args") or ()),
                    workdir=str(entry.get("workDir") or self.cluster_dir),
                    env=tuple(
                        (str(e["name"]), str(e.get("value", ""))) for e in entry.get("envs") or ()
                    ),
                )
        return found

    def apiserver_running(self) -> bool:
        pid = self.pids().get(APISERVER)
        return pid is not None and _alive(pid)

    def stop_apiserver(self, grace_s: float = 0.0) -> None:
        """Stop kube-apiserver; etcd, the controllers, the scheduler and kwok keep running.

        With ``grace_s`` 0 the process is killed, as in a crash: its connections are
        reset at once. Otherwise it is stopped as the kubelet stops a pod: SIGTERM, and
        SIGKILL once ``grace_s`` has passed (on SIGTERM kube-apiserver stops accepting
        connections at once but keeps open watches for up to 60 s).
        """
        pid = self.pids().get(APISERVER)
        if pid is None or not _alive(pid):
            raise SandboxError("cannot stop kube-apiserver: it is not running")
        self.progress(f"stopping kube-apiserver (pid {pid})")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM if grace_s > 0 else signal.SIGKILL)
        if grace_s > 0 and not _wait_dead(pid, grace_s):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if not _wait_dead(pid, 10):
            raise SandboxError(f"kube-apiserver (pid {pid}) did not exit after SIGKILL")

    def start_apiserver(
        self, timeout: float = 180, *, wait_kwok: bool = True, restart_kwok: bool = False
    ) -> None:
        """Start kube-apiserver again, with its arguments and port, and wait for the cluster.

        Returns once the API server is ready, kube-controller-manager and
        kube-scheduler lead again (those that exited because they could not renew their
        leader lease meanwhile are started again with their own arguments, as the
        kubelet restarts a static pod) and, with ``wait_kwok``, kwok applies new stages.

        kwok, the simulated kubelets, reconnects by itself and renews the node leases,
        but each of its watches comes back on its own schedule: client-go backs off
        from 0.8 s to [30, 60) s while the API server refuses connections, and resets
        only after 2 minutes without failures. A stage created before kwok watches
        Stages again (a fault, a heal) misses the pods it was meant for, so a canary
        stage and pod show when it does. Its Logs and ClusterLogs watches are not
        waited for: right after an outage, new pod logs may not be served yet.

        With ``restart_kwok`` kwok is started again too (:meth:`restart_kwok`), as a
        kubelet restarted with its node: its watches are all back at once, new pod logs
        are served, and the sandbox is as it was before the outage for later tests.
        """
        started = time.monotonic()
        deadline = started + timeout
        if self.apiserver_running():
            raise SandboxError("cannot start kube-apiserver: it is already running")
        component = self._component(APISERVER)
        port = int(component.flag("secure-port") or 0)
        while port and port_in_use(port, reuse=True):
            if time.monotonic() > started + 10:
                raise SandboxError(
                    f"cannot start kube-apiserver again: port {port} on {LOOPBACK} is in use"
                )
            time.sleep(0.2)
        pid = self._launch(component)
        self._wait_apiserver_ready(pid, deadline)
        ready_at, ready = datetime.now(UTC), time.monotonic() - started
        self._lead_again(ready_at, deadline)
        leading = time.monotonic() - started
        kwok = ""
        if restart_kwok:
            self.restart_kwok(max(1.0, deadline - time.monotonic()))
            kwok = f", kwok started again after {time.monotonic() - started:.1f}s"
        elif wait_kwok:
            self._wait_kwok_stages(deadline)
            kwok = f", kwok applying new stages after {time.monotonic() - started:.1f}s"
        self.progress(
            f"kube-apiserver (pid {pid}) back on :{port}: ready after {ready:.1f}s, "
            f"the controllers leading after {leading:.1f}s{kwok}"
        )

    def restart_apiserver(
        self,
        downtime_s: float,
        *,
        grace_s: float = 0.0,
        timeout: float = 180,
        restart_kwok: bool = False,
    ) -> None:
        """:meth:`stop_apiserver`, ``downtime_s`` without it, then :meth:`start_apiserver`."""
        self.stop_apiserver(grace_s)
        time.sleep(downtime_s)
        self.start_apiserver(timeout, restart_kwok=restart_kwok)

    def restart_kwok(self, timeout: float = 60) -> None:
        """Stop kwok-controller and start it again with its own arguments; returns once it
        applies a stage created now to a pod.

        Its state is all in the API (stages, node leases, pod statuses): a kwok started
        again lists it, renews the node leases and watches every kind at once, where the
        one that lived through an API server outage waits out client-go's back-off
        watch by watch.
        """
        deadline = time.monotonic() + timeout
        pid = self.pids().get(KWOK)
        if pid is not None and _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if not _wait_dead(pid, 10):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                _wait_dead(pid, 10)
        self._launch(self._component(KWOK))
        self._wait_kwok_stages(deadline)

    def _component(self, name: str) -> Component:
        component = self.components().get(name)
        if component is None:
            raise SandboxError(f"kwokctl's configuration names no component {name}")
        return component

    def _launch(self, component: Component) -> int:
        """Start ``component`` as kwokctl does: own session, output appended to its log."""
        log_path = self.component_logs_dir / f"{component.name}.log"
        env = {**self.env(), **dict(component.env)}
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [component.binary, *component.args],
                cwd=component.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        (self.cluster_dir / "pids" / f"{component.name}.pid").write_text(f"{proc.pid}\n")
        self._children[component.name] = proc
        threading.Thread(target=proc.wait, name=f"reap {component.name}", daemon=True).start()
        return proc.pid

    def _wait_apiserver_ready(self, pid: int, deadline: float) -> None:
        log = self.component_logs_dir / f"{APISERVER}.log"
        answer = ""
        while True:
            if not _alive(pid):
                raise SandboxError(
                    f"kube-apiserver (pid {pid}) exited while starting again; "
                    f"last lines of {log}:\n{_tail(log)}"
                )
            proc = self.run(
                [str(self.binaries.kubectl), "get", "--raw", "/readyz", "--request-timeout=2s"],
                check=False,
                timeout=15,
            )
            answer = (proc.stdout.strip() or proc.stderr.strip())[-300:]
            if proc.returncode == 0 and answer == "ok":
                return
            if time.monotonic() > deadline:
                raise SandboxError(
                    f"kube-apiserver did not become ready again ({answer}); see {log}"
                )
            time.sleep(0.25)

    def _lead_again(self, ready_at: datetime, deadline: float) -> None:
        """Wait until each leader-elected component has renewed its lease since ``ready_at``,
        starting again those that exited (at most every few seconds, as a kubelet backs off).
        """
        pending = set(LEADER_ELECTED)
        next_start: dict[str, float] = {}
        starts: dict[str, int] = {}
        while True:
            pids = self.pids()
            for name in sorted(pending):
                pid = pids.get(name)
                if pid is not None and _alive(pid):
                    continue
                if time.monotonic() < next_start.get(name, 0.0):
                    continue
                starts[name] = starts.get(name, 0) + 1
                self.progress(
                    f"{name} has exited (as it does when it cannot renew its leader "
                    f"lease for 10 s); starting it again, as the kubelet would"
                )
                self._launch(self._with_free_port(self._component(name)))
                next_start[name] = time.monotonic() + 2.0 * 2 ** (starts[name] - 1)
            renewed = self._lease_renewals()
            pending -= {n for n in pending if (renewed.get(n) or ready_at) > ready_at}
            if not pending:
                return
            if time.monotonic() > deadline:
                logs = ", ".join(str(self.component_logs_dir / f"{n}.log") for n in sorted(pending))
                raise SandboxError(
                    f"{', '.join(sorted(pending))} did not take their leader lease again after "
                    f"the API server came back (started {starts or 'no'} times); see {logs}"
                )
            time.sleep(1.0)

    def _wait_kwok_stages(self, deadline: float) -> None:
        """Until kwok applies a stage created now to a pod: a canary of each, then removed."""
        if not self.topology.nodes:
            return
        token = f"canary-{os.getpid()}-{int(time.time() * 1000)}"
        label = {CANARY_LABEL: token}
        stage = {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "Stage",
            "metadata": {"name": f"sandbox-{token}", "labels": label},
            "spec": {
                "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
                "selector": {
                    "matchLabels": label,
                    "matchExpressions": [
                        {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"}
                    ],
                },
                "weight": 20000,
                "next": {
                    "statusTemplate": f"conditions:\n- {{type: SandboxCanary, "
                    f'status: "True", message: {token}}}\n'
                },
            },
        }
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"sandbox-{token}", "namespace": "default", "labels": label},
            "spec": {
                "nodeName": self.topology.nodes[0].name,
                "tolerations": [{"operator": "Exists"}],
                "containers": [{"name": "canary", "image": "sandbox/canary"}],
            },
        }
        self.apply([stage, pod])
        try:
            touches = 0
            while True:
                time.sleep(1.0)
                touches += 1  # kwok weighs stages on pod events: make one, see the last one's
                seen = self.kubectl(
                    "annotate",
                    "pod",
                    "-n",
                    "default",
                    f"sandbox-{token}",
                    "--overwrite",
                    f"{CANARY_LABEL}-touch={touches}",
                    "-o",
                    "jsonpath={.status.conditions[?(@.type=='SandboxCanary')].message}",
                ).strip()
                if seen == token:
                    return
                if time.monotonic() > deadline:
                    raise SandboxError(
                        "kwok-controller did not apply a new stage after the API server came "
                        f"back; see {self.component_logs_dir / 'kwok-controller.log'}"
                    )
        finally:
            self.kubectl(
                "delete",
                "pod",
                "-n",
                "default",
                f"sandbox-{token}",
                "--wait=false",
                "--ignore-not-found",
                check=False,
            )
            self.kubectl(
                "delete",
                "stages.kwok.x-k8s.io",
                f"sandbox-{token}",
                "--ignore-not-found",
                check=False,
            )

    def _with_free_port(self, component: Component) -> Component:
        """The component, moved to a free port if another process took its own meanwhile."""
        port = component.flag("secure-port")
        if port is None or not port.isdigit() or not port_in_use(int(port), reuse=True):
            return component
        other = free_port()
        self.progress(f"port {port} of {component.name} was taken meanwhile; using {other}")
        return component.with_flag("secure-port", str(other))

    def _lease_renewals(self) -> dict[str, datetime]:
        """Leader lease name -> its last renewal, from kube-system."""
        proc = self.run(
            [
                str(self.binaries.kubectl),
                "get",
                "leases",
                "-n",
                "kube-system",
                "-o",
                "json",
                "--request-timeout=5s",
            ],
            check=False,
            timeout=15,
        )
        if proc.returncode != 0:
            return {}
        renewals: dict[str, datetime] = {}
        for item in json.loads(proc.stdout).get("items") or []:
            renew = (item.get("spec") or {}).get("renewTime")
            with contextlib.suppress(TypeError, ValueError):
                renewals[item["metadata"]["name"]] = datetime.fromisoformat(
                    str(renew).replace("Z", "+00:00")
                )
        return renewals

    # ------------------------------------------------------------------ inspection
    def listeners(self) -> list[Listener]:
        """Every TCP listening socket held by a sandbox process (from /proc, no tools)."""
        pids = {pid: name for name, pid in self.pids().items() if _alive(pid)}
        inodes: dict[str, int] = {}
        for pid in pids:
            fd_dir = Path(f"/proc/{pid}/fd")
            with contextlib.suppress(OSError):
                for fd in fd_dir.iterdir():
                    with contextlib.suppress(OSError):
                        target = os.readlink(fd)
                        if target.startswith("socket:["):
                            inodes[target[8:-1]] = pid
        found: list[Listener] = []
        for table, family in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 6)):
            with contextlib.suppress(OSError):
                for line in Path(table).read_text().splitlines()[1:]:
                    fields = line.split()
                    local, state, inode = fields[1], fields[3], fields[9]
                    if state != "0A" or inode not in inodes:  # 0A = LISTEN
                        continue
                    addr_hex, port_hex = local.split(":")
                    pid = inodes[inode]
                    found.append(
                        Listener(pid, pids[pid], _decode_addr(addr_hex, family), int(port_hex, 16))
                    )
        return found

    # ------------------------------------------------------------------ faults and logs
    def add_fault(self, fault: PodFault) -> str:
        """Make the pods that ``fault`` selects fail; returns the Stage's name.

        kwok applies stages on pod events, so pods that already exist are touched
        (annotated) to have the new stage considered for them too.
        """
        self.apply([fault.stage()])
        self._touch_pods(fault, fault.name())
        return fault.name()

    def heal_fault(self, fault: PodFault, timeout: float = 60) -> str:
        """End ``fault``: its stage goes, and the pods it took over become ready (as when
        the image becomes pullable or the readiness probe passes); returns the heal stage.

        kwok sees stages and pods through separate watches, so the pods are touched
        again until none is held by the fault any more.
        """
        self.kubectl("delete", "stages.kwok.x-k8s.io", fault.name(), "--ignore-not-found")
        self.apply([fault.heal_stage()])
        deadline = time.monotonic() + timeout
        touches = 0
        while True:
            touches += 1
            self._touch_pods(fault, f"{fault.heal_name()}-{touches}")
            time.sleep(0.5)
            held = self._held_by(fault)
            if not held:
                return fault.heal_name()
            if time.monotonic() > deadline:
                raise SandboxError(
                    f"pods still held by {fault.name()} {timeout:g}s after "
                    f"healing it: {', '.join(held)}"
                )

    def _held_by(self, fault: PodFault) -> list[str]:
        """The pods whose SandboxFault condition names ``fault``."""
        scope = ["-n", fault.namespace] if fault.namespace else ["--all-namespaces"]
        selector = ",".join(f"{k}={v}" for k, v in fault.labels.items())
        pods = json.loads(
            self.kubectl(
                "get", "pods", *scope, *(["-l", selector] if selector else []), "-o", "json"
            )
        )
        return [
            f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
            for pod in pods.get("items") or []
            if any(
                c.get("type") == FAULT_CONDITION
                and c.get("status") == "True"
                and c.get("message") == fault.marker()
                for c in (pod.get("status") or {}).get("conditions") or []
            )
        ]

    def _touch_pods(self, fault: PodFault, value: str) -> None:
        """Annotate the pods ``fault`` may select, so that kwok weighs its stages again."""
        scope = ["-n", fault.namespace] if fault.namespace else ["--all-namespaces"]
        selector = ",".join(f"{k}={v}" for k, v in fault.labels.items())
        proc = self.run(
            [
                str(self.binaries.kubectl),
                "annotate",
                "pods",
                *scope,
                *(["-l", selector] if selector else ["--all"]),
                "--overwrite",
                f"{FAULT_LABEL}-applied={value}",
            ],
            check=False,
        )
        # a pod deleted between kubectl's list and its annotation (a rollout) is no error
        errors = [
            line for line in proc.stderr.splitlines() if line.strip() and "(NotFound)" not in line
        ]
        if proc.returncode != 0 and errors:
            raise SandboxError(
                f"cannot annotate the pods of {fault.name()}: " + "; ".join(errors)[-2000:]
            )

    def set_logs(self, logs: ContainerLogs) -> str:
        """Serve ``logs`` for a container of the chosen pods; returns the ClusterLogs name."""
        self.apply([logs.write(self.logs_dir)])
        return logs.name()

    def clear_faults(self) -> None:
        """Remove every fault stage and log source (pods already failed stay as they are)."""
        self.kubectl(
            "delete",
            "stages.kwok.x-k8s.io,clusterlogs.kwok.x-k8s.io",
            "-l",
            f"{FAULT_LABEL}=true",
            "--ignore-not-found",
            "--wait=false",
        )

    def server_version(self) -> str:
        info = json.loads(self.kubectl("version", "-o", "json"))
        version: str = info["serverVersion"]["gitVersion"]
        return version


def _decode_addr(hex_addr: str, family: int) -> str:
    raw = bytes.fromhex(hex_addr)
    if family == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    # /proc stores IPv6 as four little-endian 32-bit words
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)


def _wait_dead(pid: int, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``pid`` to exit; True when it has."""
    end = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "  (no log)"
    return "\n".join(f"  {line[-300:]}" for line in text.strip().splitlines()[-lines:])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _data(name: str) -> str:
    return resources.files("cilium_sandbox").joinpath("data", name).read_text()


@contextlib.contextmanager
def running(sandbox: Sandbox, timeout: float = 180) -> Iterator[Sandbox]:
    sandbox.up(timeout=timeout)
    try:
        yield sandbox
    finally:
        sandbox.down()


@contextlib.contextmanager
def guarded(sandbox: Sandbox, timeout: float = 180) -> Iterator[Sandbox]:
    """Like :func:`running`, plus a watchdog that stops the sandbox if this process dies."""
    sandbox.kwok_workdir.mkdir(parents=True, exist_ok=True)
    watchdog = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cilium_sandbox.watchdog",
            str(os.getpid()),
            str(sandbox.kwok_workdir),
        ],
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        with running(sandbox, timeout=timeout):
            yield sandbox
    finally:
        watchdog.terminate()
        watchdog.wait(timeout=10)
