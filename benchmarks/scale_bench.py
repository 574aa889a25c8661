"""How the pre checks scale with the number of nodes, on the sandbox: up to 5,000 nodes.

    .venv/bin/python benchmarks/scale_bench.py --nodes 500 1000 2000 5000 --runs 3

For each size: a fresh sandbox (1 control-plane node, N-1 workers), the real Cilium
chart 1.15.19 and the pre-flight release of 1.16.19 (agent and pre-flight DaemonSets on
every node: two pods a node in ``kube-system``), then

1. the API requests of one pre snapshot (``Kube.requests``: every request, and the LIST
   pages among them) and the largest response body the gate's client received; the
   requests of the helm processes it runs, from the apiserver's
   ``apiserver_request_total``;
2. time to verdict in-process: ``collect()`` + every pre check, with fresh clients as a
   gate run has, and its parts (cluster reads alone; the checks on a snapshot);
3. the pre phase as a real ``pytest --cilium-upgrade`` subprocess: wall time, start-up
   (``--collect-only``) and peak memory (its own peak RSS, and ``/usr/bin/time -v``'s
   maximum, which also covers the helm processes it waited for);
4. for reference, the same five LISTs unpaginated and raw (one response each, bytes
   only, and with ``json.loads``): what one LIST of everything costs;
5. notice latency: one pre-flight pod is deleted while a pod watch and
   ``Kube.watch_workload`` run in threads; the delay is from the replacement pod's Ready
   event (pod watch) to ``watch_workload`` yielding a healthy DaemonSet;
6. a rollout of the pre-flight DaemonSet, every pod replaced at once, waited for by the
   performed upgrade's own ``RolloutWait``: the status updates its watch received, their
   rate, the progress lines written, and how long after a bare watch saw the DaemonSet
   healthy the wait returned.

Once, before the sizes: the event rate the watch sustains. A loopback server (another
process) streams status updates of the pre-flight DaemonSet, as the API server sends
them, as fast as it can; ``Kube.watch_workload`` alone, then ``RolloutWait``, read them.

Prints figures; asserts nothing. Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from cilium_sandbox.build import Builder
from cilium_sandbox.charts import resolve_charts, sandbox_values, set_args
from cilium_sandbox.cluster import CONTROLLER_CLIENT_LIMITS, Sandbox, guarded
from cilium_sandbox.faults import ContainerLogs
from cilium_sandbox.topology import build_topology
from kubernetes import client, config, watch

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.adapters.helm.charts import ChartSource
from pytest_cilium_upgrade.adapters.helm.client import Helm
from pytest_cilium_upgrade.adapters.kube import Kube
from pytest_cilium_upgrade.adapters.kube import paging as kube_paging
from pytest_cilium_upgrade.checks import CheckParams, Status, checks_for_phase, run_check
from pytest_cilium_upgrade.redact import Redactor
from pytest_cilium_upgrade.snapshot.model import JSONDict, Workload
from pytest_cilium_upgrade.snapshot.read import CollectRequest, collect
from pytest_cilium_upgrade.upgrade.waits import PROGRESS_EVERY_S, RolloutWait
from pytest_cilium_upgrade.versions import Version

ROOT = Path(__file__).resolve().parents[1]
NS = "kube-system"
CURRENT = "1.15.19"
TARGET = "1.16.19"
PREFLIGHT_DS = "cilium-pre-flight-check"
PREFLIGHT_SELECTOR = "k8s-app=cilium-pre-flight-check"
RECORDS_SELECTOR = "owner=helm,name in (cilium,cilium-preflight)"
VALID = f'level=info msg="{defaults.CNP_ALL_VALID}" subsys=preflight'
# Run in the pytest subprocess: pytest itself, then its own peak RSS (no children).
PYTEST_WRAPPER = (
    "import resource, sys, pytest\n"
    "rc = pytest.main(sys.argv[1:])\n"
    "print(f'SELF_MAXRSS_KB={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}',"
    " file=sys.stderr)\n"
    "sys.exit(int(rc))\n"
)
# at 5,000 nodes, in-process
TARGETS = {"verdict_s": 3.0, "memory_mb": 250.0, "response_mb": 5.0, "notice_s": 1.0}
TARGET_NODES = 5000
MB = 1_000_000
SYNTHETIC_EVENTS = 20_000


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


@dataclass
class RolloutResult:
    pods: int
    seconds: float  # from the patch to the wait's return
    events: int  # status updates the wait's watch received
    peak_rate: int  # most of them in one second
    lines: int  # progress lines written
    lag_s: float | None  # the wait returned this long after a bare watch saw it healthy


@dataclass
class SizeResult:
    nodes: int
    up_s: float = 0.0
    install_s: float = 0.0
    pods: int = 0
    requests: int = 0
    requests_by_op: dict[str, int] = field(default_factory=dict)
    pages_by_op: dict[str, int] = field(default_factory=dict)
    largest_response: int = 0
    largest_response_of: str = ""
    helm_calls: int = 0
    helm_calls_s: list[float] = field(default_factory=list)
    helm_critical_s: list[float] = field(default_factory=list)
    helm_requests_by_op: dict[str, int] = field(default_factory=dict)
    apiserver_gate_by_op: dict[str, int] = field(default_factory=dict)
    verdicts: dict[str, int] = field(default_factory=dict)
    gate_outcome: str = ""
    gate_wall: list[float] = field(default_factory=list)
    gate_startup: list[float] = field(default_factory=list)
    inproc: list[float] = field(default_factory=list)
    inproc_checks: list[float] = field(default_factory=list)
    cluster_reads: list[float] = field(default_factory=list)
    raw_lists: list[float] = field(default_factory=list)
    raw_decoded: list[float] = field(default_factory=list)
    raw_bytes: int = 0
    raw_largest: int = 0
    notice: list[float] = field(default_factory=list)
    notice_ltt: list[float] = field(default_factory=list)
    rss_self_mb: list[float] = field(default_factory=list)
    rss_tree_mb: list[float] = field(default_factory=list)
    rollout: RolloutResult | None = None
    load: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- set-up


def wait_healthy(kube: Kube, kind: str, name: str, timeout_s: float) -> None:
    for obj in kube.watch_workload(kind, NS, name, timeout_s):
        workload = Workload.from_k8s_dict(obj, kind=kind)
        if workload.desired > 0 and workload.healthy:
            return
    raise RuntimeError(f"{kind} {name} not healthy within {timeout_s:.0f}s")


def install(box: Sandbox, kube: Kube, archives: dict[str, Path], timeout_s: float) -> None:
    """Cilium CURRENT and the TARGET pre-flight, waited for by watching (not helm --wait)."""
    nodes = len(box.topology.nodes)
    box.helm(
        3, "install", "cilium", str(archives[CURRENT]), "-n", NS,
        *set_args(sandbox_values(CURRENT, nodes=nodes)),
    )  # fmt: skip
    wait_healthy(kube, "DaemonSet", "cilium", timeout_s)
    wait_healthy(kube, "Deployment", "cilium-operator", timeout_s)
    box.set_logs(ContainerLogs(NS, defaults.CNP_VALIDATOR_CONTAINER, current=[VALID]))
    preflight = [arg for value in defaults.PREFLIGHT_SET_VALUES for arg in ("--set", value)]
    box.helm(
        3, "install", "cilium-preflight", str(archives[TARGET]), "-n", NS,
        *set_args(sandbox_values(TARGET, nodes=nodes)), *preflight,
    )  # fmt: skip
    wait_healthy(kube, "DaemonSet", PREFLIGHT_DS, timeout_s)
    wait_healthy(kube, "Deployment", PREFLIGHT_DS, timeout_s)


# ---------------------------------------------------------------------------- measurements


def apiserver_requests(box: Sandbox) -> dict[str, float]:
    """apiserver_request_total by verb and resource (every client, leases left out)."""
    counts: dict[str, float] = {}
    for line in box.kubectl("get", "--raw", "/metrics").splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        if labels.get("resource") == "leases":  # kwok's and the controllers' heartbeats
            continue
        key = " ".join(
            x for x in (labels.get("verb"), labels.get("resource"), labels.get("subresource")) if x
        )
        counts[key] = counts.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, int]:
    return {k: int(v - before.get(k, 0.0)) for k, v in after.items() if v - before.get(k, 0.0)}


def record_bodies(kube: Kube) -> list[tuple[str, int]]:
    """Every response body ``kube`` receives from now on: (path, bytes)."""
    bodies: list[tuple[str, int]] = []
    send = kube._send

    def recorded(method: str, path: str, *args: Any, **kwargs: Any) -> bytes:
        body = send(method, path, *args, **kwargs)
        bodies.append((path, len(body)))
        return body

    kube._send = recorded  # type: ignore[method-assign]
    return bodies


def snapshot_requests(
    box: Sandbox, kube: Kube, helm: Helm, request: CollectRequest, res: SizeResult
) -> None:
    """Requests and pages of one pre snapshot, its largest response, and helm's requests."""
    bodies = record_bodies(kube)
    base = apiserver_requests(box)
    snapshot = collect(kube, helm, request)
    counted = delta(apiserver_requests(box), base)
    res.helm_calls = len(helm.calls)
    res.requests_by_op = dict(kube.requests.counts)
    res.pages_by_op = dict(kube.requests.pages)
    res.requests = kube.requests.total
    path, size = max(bodies, key=lambda b: b[1])
    res.largest_response, res.largest_response_of = size, path
    # what the apiserver saw beyond our client's own secrets LISTs is helm's
    helm_secrets = int(counted.get("LIST secrets", 0)) - res.requests_by_op.get("list secrets", 0)
    res.helm_requests_by_op = {"LIST secrets": helm_secrets} if helm_secrets else {}
    params = CheckParams(target=Version.parse(TARGET))
    for spec in checks_for_phase("pre"):
        status = run_check(spec, snapshot, params).status
        res.verdicts[status.value] = res.verdicts.get(status.value, 0) + 1
        if status in (Status.FAIL, Status.SKIP):
            res.notes.append(f"in-process {spec.check_id}: {status.value}")
    res.pods = len(snapshot.pods)


@dataclass(frozen=True)
class Target:
    """Where the cluster is; every timed run builds its own clients, as a gate run does."""

    kubeconfig: Path
    helm_binary: Path
    helm_env: dict[str, str]
    values_snapshot: Path
    chart: Path

    def clients(self) -> tuple[Kube, Helm, CollectRequest]:
        kube = Kube(str(self.kubeconfig), request_timeout=60)
        helm = Helm(binary=str(self.helm_binary), kubeconfig=self.kubeconfig, env=self.helm_env)
        request = CollectRequest(
            namespace=NS,
            values_snapshot=self.values_snapshot,
            target_version=TARGET,
            chart=ChartSource.parse(str(self.chart), helm=helm),
            release_records="Secret",
        )
        return kube, helm, request


def inproc_run(target: Target, res: SizeResult) -> None:
    """collect() + every pre check in-process (fresh clients, as in a gate run), and parts."""
    params = CheckParams(target=Version.parse(TARGET))
    specs = checks_for_phase("pre")
    helms: list[Helm] = []

    def full() -> None:
        kube, helm, request = target.clients()
        helms.append(helm)
        with kube:
            snapshot = collect(kube, helm, request)
            for spec in specs:
                run_check(spec, snapshot, params)

    def cluster_reads() -> None:
        kube, _, request = target.clients()
        with kube:
            collect(kube, None, request)

    res.inproc.append(timed(full)[0])
    calls = helms[-1].calls
    res.helm_calls_s.append(sum(c.seconds for c in calls))
    # version and the render run at once: the verdict waits for the longer one
    res.helm_critical_s.append(
        max((c.seconds for c in calls if c.argv[1] in ("version", "template")), default=0.0)
    )
    res.cluster_reads.append(timed(cluster_reads)[0])
    kube, helm, request = target.clients()
    with kube:
        snapshot = collect(kube, helm, request)
    res.inproc_checks.append(
        timed(lambda: [run_check(spec, snapshot, params) for spec in specs])[0]
    )


def raw_lists(target: Target, res: SizeResult) -> None:
    """The same five LISTs unpaginated and raw (fresh client, no retries, no model), one
    after another: as bytes, and decoded with json.loads."""

    def run(decode: bool) -> list[int]:
        api = config.new_client_from_config(config_file=str(target.kubeconfig))
        try:
            core: Any = client.CoreV1Api(api)
            apps: Any = client.AppsV1Api(api)
            sizes = []
            for response in (
                core.list_node(_preload_content=False),
                core.list_namespaced_pod(NS, _preload_content=False),
                apps.list_namespaced_daemon_set(NS, _preload_content=False),
                apps.list_namespaced_deployment(NS, _preload_content=False),
                core.list_namespaced_secret(
                    NS, label_selector=RECORDS_SELECTOR, _preload_content=False
                ),
            ):
                data = response.data
                sizes.append(len(data))
                if decode:
                    json.loads(data)
                del data
            return sizes
        finally:
            api.close()

    elapsed, sizes = timed(lambda: run(False))
    res.raw_lists.append(elapsed)
    res.raw_bytes, res.raw_largest = sum(sizes), max(sizes)
    res.raw_decoded.append(timed(lambda: run(True))[0])


def gate_command(box: Sandbox, workdir: Path, chart: Path, *extra: str) -> list[str]:
    return [
        "--cilium-upgrade",
        "--cilium-phase=pre",
        f"--cilium-kubeconfig={box.kubeconfig}",
        f"--cilium-helm={box.binaries.helm3}",
        f"--cilium-chart={chart}",
        f"--cilium-target-version={TARGET}",
        f"--cilium-values-snapshot={workdir / 'cilium-values.yaml'}",
        f"--cilium-state-file={workdir / 'state.json'}",
        "-p",
        "no:cacheprovider",
        "-q",
        *extra,
    ]


@dataclass
class GateRun:
    wall_s: float
    outcome: str
    self_rss_mb: float | None
    tree_rss_mb: float | None


def gate_run(box: Sandbox, workdir: Path, chart: Path, *extra: str) -> GateRun:
    """The pre phase as a pytest subprocess: wall time, outcome line and peak RSS."""
    time_bin = shutil.which("time", path="/usr/bin")
    argv = [sys.executable, "-c", PYTEST_WRAPPER, *gate_command(box, workdir, chart, *extra)]
    if time_bin:
        argv = [time_bin, "-v", *argv]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CILIUM_UPGRADE_")}
    started = time.perf_counter()
    proc = subprocess.run(
        argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(
            f"gate exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"
        )
    lines = proc.stdout.strip().splitlines()
    own = re.search(r"SELF_MAXRSS_KB=(\d+)", proc.stderr)
    tree = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    tree_kb = int(tree.group(1)) if tree else None
    if tree_kb is None:  # no /usr/bin/time: the largest child so far (a new maximum only)
        tree_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return GateRun(
        wall_s=wall,
        outcome=lines[-1] if lines else "",
        self_rss_mb=int(own.group(1)) / 1024 if own else None,
        tree_rss_mb=tree_kb / 1024,
    )


# ---------------------------------------------------------------------------- notice latency


def _ready(pod: dict[str, Any]) -> tuple[bool, str | None]:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True", cond.get("lastTransitionTime")
    return False, None


@dataclass
class NoticeRun:
    delay_s: float | None
    ltt_delay_s: float | None
    detail: str


def notice_latency(box: Sandbox, kube: Kube, core: Any, victim: str) -> NoticeRun:
    """Delete ``victim``; time from the replacement pod's Ready event to the healthy DS."""
    initial = json.loads(
        core.list_namespaced_pod(NS, label_selector=PREFLIGHT_SELECTOR, _preload_content=False).data
    )
    initial_names = {p["metadata"]["name"] for p in initial["items"]}
    pod_open, ds_open, pod_done, ds_done = (threading.Event() for _ in range(4))
    deleted_at: list[float] = []
    pod_ready: dict[str, Any] = {}
    ds_events: list[tuple[float, bool, str]] = []
    errors: list[str] = []

    def watch_pods() -> None:
        stream = watch.Watch()
        seen = 0
        try:
            for event in stream.stream(
                core.list_namespaced_pod,
                NS,
                label_selector=PREFLIGHT_SELECTOR,
                deserialize=False,
                timeout_seconds=120,
            ):
                now = time.monotonic()
                obj = event["object"]
                name = obj["metadata"]["name"]
                if name in initial_names and not pod_open.is_set():
                    seen += 1
                    if seen >= len(initial_names):
                        pod_open.set()
                    continue
                ready, ltt = _ready(obj)
                if name not in initial_names and ready:
                    pod_ready.update(t=now, wall=time.time(), ltt=ltt, name=name)
                    return
        except Exception as exc:
            errors.append(f"pod watch: {exc}")
        finally:
            stream.stop()
            pod_open.set()
            pod_done.set()

    def watch_ds() -> None:
        saw_unhealthy = False
        try:
            for obj in kube.watch_workload("DaemonSet", NS, PREFLIGHT_DS, 90):
                now = time.monotonic()
                workload = Workload.from_k8s_dict(obj, kind="DaemonSet")
                ds_open.set()
                if not deleted_at:
                    continue
                ds_events.append((now, workload.healthy, f"{workload.ready}/{workload.desired}"))
                if not workload.healthy:
                    saw_unhealthy = True
                elif saw_unhealthy or pod_done.is_set():
                    return
        except Exception as exc:
            errors.append(f"DaemonSet watch: {exc}")
        finally:
            ds_open.set()
            ds_done.set()

    threads = [
        threading.Thread(target=watch_pods, daemon=True),
        threading.Thread(target=watch_ds, daemon=True),
    ]
    for thread in threads:
        thread.start()
    # both watches have delivered their initial state: they are open
    pod_open.wait(90)
    ds_open.wait(90)
    deleted_at.append(time.monotonic())
    box.kubectl("delete", "pod", "-n", NS, victim, "--wait=false")
    pod_done.wait(90)
    # The DaemonSet controller may fold "one missing" and "all ready again" into one
    # status update (or none): then no unhealthy state is ever seen and we stop waiting
    # for it shortly after the replacement pod is Ready.
    ds_done.wait(10)
    if errors:
        return NoticeRun(None, None, "; ".join(errors))
    events = list(ds_events)
    trail = " -> ".join(s for _, _, s in events[-6:]) or "no status change"
    if "t" not in pod_ready:
        return NoticeRun(None, None, f"no replacement pod became Ready ({trail})")
    unhealthy = [t for t, ok, _ in events if not ok]
    healthy = [t for t, ok, _ in events if ok and (not unhealthy or t > unhealthy[-1])]
    if not healthy:
        return NoticeRun(None, None, f"the DaemonSet watch saw no healthy state ({trail})")
    delay = healthy[0] - float(pod_ready["t"])
    ds_wall = float(pod_ready["wall"]) + delay
    ltt_delay = None
    if pod_ready.get("ltt"):
        ltt = datetime.fromisoformat(str(pod_ready["ltt"]).replace("Z", "+00:00")).timestamp()
        ltt_delay = ds_wall - ltt
    return NoticeRun(
        delay,
        ltt_delay,
        f"{victim} -> {pod_ready['name']}; DaemonSet ready {trail}; "
        f"delete to pod Ready {float(pod_ready['t']) - deleted_at[0]:.3f}s",
    )


# ---------------------------------------------------------------------------- watches


class CountingWatcher:
    """``kube`` for a RolloutWait, with the time of each event its watch yields."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.events: list[float] = []

    def get_workload(self, kind: str, namespace: str, name: str) -> JSONDict | None:
        return self.kube.get_workload(kind, namespace, name)

    def watch_workload(
        self, kind: str, namespace: str, name: str, timeout_s: float
    ) -> Iterator[JSONDict]:
        for obj in self.kube.watch_workload(kind, namespace, name, timeout_s):
            self.events.append(time.monotonic())
            yield obj

    def list_pods(self, namespace: str, selector: str | None = None) -> list[JSONDict]:
        return self.kube.list_pods(namespace, selector)

    def list_events(self, namespace: str, involved: str | None = None) -> list[JSONDict]:
        return self.kube.list_events(namespace, involved)

    def pod_log(
        self, namespace: str, pod: str, container: str, *, tail_lines: int | None = None
    ) -> str | None:
        return self.kube.pod_log(namespace, pod, container, tail_lines=tail_lines)


def rollout(box: Sandbox, kube: Kube, res: SizeResult, timeout_s: float) -> None:
    """Every pre-flight pod replaced at once, waited for by RolloutWait."""
    before = json.loads(box.kubectl("get", "ds", "-n", NS, PREFLIGHT_DS, "-o", "json"))
    generation = int(before["metadata"]["generation"])
    healthy_at: list[float] = []
    opened = threading.Event()
    api = config.new_client_from_config(config_file=str(box.kubeconfig))
    apps: Any = client.AppsV1Api(api)
    stream = watch.Watch()

    def bare_watch() -> None:  # the least a watch can do: decode and compare
        try:
            for event in stream.stream(
                apps.list_namespaced_daemon_set,
                NS,
                field_selector=f"metadata.name={PREFLIGHT_DS}",
                deserialize=False,
                timeout_seconds=int(timeout_s),
            ):
                opened.set()
                workload = Workload.from_k8s_dict(event["object"], kind="DaemonSet")
                if workload.generation > generation and workload.healthy:
                    healthy_at.append(time.monotonic())
                    return
        finally:
            opened.set()

    thread = threading.Thread(target=bare_watch, daemon=True)
    thread.start()
    opened.wait(60)
    patch = {
        "spec": {
            "updateStrategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "100%"},
            },
            "template": {"metadata": {"annotations": {"bench/rollout": str(time.time())}}},
        }
    }
    lines: list[str] = []
    watcher = CountingWatcher(kube)
    wait = RolloutWait(watcher, NS, timeout_s, progress=lines.append, redactor=Redactor)
    started = time.monotonic()
    box.kubectl("patch", "ds", "-n", NS, PREFLIGHT_DS, "--type=merge", "-p", json.dumps(patch))
    try:
        wait.wait("DaemonSet", PREFLIGHT_DS, "pre-flight", started + timeout_s, PREFLIGHT_SELECTOR)
        done = time.monotonic()
    finally:
        thread.join(30)
        stream.stop()
        api.close()
    per_second: dict[int, int] = {}
    for t in watcher.events:
        per_second[int(t - started)] = per_second.get(int(t - started), 0) + 1
    res.rollout = RolloutResult(
        pods=int(before["status"].get("desiredNumberScheduled") or 0),
        seconds=done - started,
        events=len(watcher.events),
        peak_rate=max(per_second.values(), default=0),
        lines=len(lines),
        lag_s=done - healthy_at[0] if healthy_at else None,
    )
    log(
        f"[{res.nodes} nodes] rollout of {res.rollout.pods} pods: {res.rollout.seconds:.1f}s, "
        f"{res.rollout.events} events (peak {res.rollout.peak_rate}/s), "
        f"{res.rollout.lines} progress lines; first and last: {lines[0]!r} {lines[-1]!r}"
    )


# The loopback server of the synthetic watch: argv = event template, object, count.
# Answers a GET of the object, and a watch with ``count`` + 1 status updates (ready
# 0..count of count), chunked as the API server sends them (one event a chunk).
WATCH_SERVER = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parts = open(sys.argv[1], "rb").read().split(b'"__READY__"')
obj = open(sys.argv[2], "rb").read()
count = int(sys.argv[3])


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if "watch=" not in self.path:
            self.send_header("Content-Length", str(len(obj)))
            self.end_headers()
            self.wfile.write(obj)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        batch = []
        try:
            for ready in range(count + 1):
                event = str(ready).encode().join(parts)
                batch.append(b"%x\r\n%s\r\n" % (len(event), event))
                if len(batch) == 64:
                    self.wfile.write(b"".join(batch))
                    batch = []
            self.wfile.write(b"".join(batch) + b"0\r\n\r\n")
        except OSError:
            pass
        self.close_connection = True


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@dataclass
class WatchRate:
    events: int
    event_bytes: int
    adapter_rate: float  # events/s through Kube.watch_workload alone
    wait_rate: float  # events/s through RolloutWait
    wait_lines: int


def synthetic_watch(box: Sandbox, workdir: Path) -> WatchRate:
    """The event rate the watch sustains: a loopback server streams status updates of the
    real pre-flight DaemonSet object, as fast as it can, to the adapter and to a wait."""
    obj = json.loads(box.kubectl("get", "ds", "-n", NS, PREFLIGHT_DS, "-o", "json"))
    count = SYNTHETIC_EVENTS
    generation = obj["metadata"]["generation"]
    obj["status"].update(
        observedGeneration=generation,
        desiredNumberScheduled=count,
        currentNumberScheduled=count,
        updatedNumberScheduled=count,
        numberReady="__READY__",
        numberAvailable="__READY__",
    )
    event = json.dumps({"type": "MODIFIED", "object": obj}, separators=(",", ":")) + "\n"
    (workdir / "event.json").write_text(event)
    (workdir / "object.json").write_text(json.dumps(obj).replace('"__READY__"', "0"))
    server = subprocess.Popen(
        [sys.executable, "-c", WATCH_SERVER, str(workdir / "event.json"),
         str(workdir / "object.json"), str(count)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        kubeconfig = workdir / "loopback-kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "c",
                    "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                    "users": [{"name": "u", "user": {"token": "t"}}],
                    "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                }
            )
        )
        with Kube(str(kubeconfig)) as kube:
            seen = 0
            started = time.perf_counter()
            for _ in kube.watch_workload("DaemonSet", NS, PREFLIGHT_DS, 300):
                seen += 1
                if seen == count + 1:
                    break
            adapter = seen / (time.perf_counter() - started)
        with Kube(str(kubeconfig)) as kube:
            lines: list[str] = []
            wait = RolloutWait(kube, NS, 300, progress=lines.append, redactor=Redactor)
            started = time.perf_counter()
            wait.wait("DaemonSet", PREFLIGHT_DS, "pre-flight", time.monotonic() + 300, "x=y")
            waited = (count + 1) / (time.perf_counter() - started)
    finally:
        server.terminate()
        server.wait(10)
    return WatchRate(count + 1, len(event), adapter, waited, len(lines))


# ---------------------------------------------------------------------------- one size


def bench_size(
    nodes: int,
    runs: int,
    binaries: Any,
    archives: dict[str, Path],
    up_timeout: float,
    rates: list[WatchRate],
) -> SizeResult:
    res = SizeResult(nodes=nodes)
    topology = build_topology(ROOT / "kind-config.yaml", control_planes=1, workers=nodes - 1)
    with tempfile.TemporaryDirectory(prefix=f"scale-{nodes}-") as tmp:
        workdir = Path(tmp)
        gate_dir = workdir / "gate"
        gate_dir.mkdir()
        box = Sandbox(
            workdir / "sandbox",
            binaries,
            topology,
            progress=lambda msg: log(f"[{nodes} nodes] {msg}"),
        )
        res.load.append(loadavg())
        started = time.perf_counter()
        with guarded(box, timeout=up_timeout):  # down() in its finally, watchdog besides
            res.up_s = time.perf_counter() - started
            with Kube(str(box.kubeconfig), request_timeout=60) as kube:
                started = time.perf_counter()
                install(box, kube, archives, timeout_s=max(600.0, nodes * 0.5))
                res.install_s = time.perf_counter() - started
                log(f"[{nodes} nodes] installed in {res.install_s:.1f}s; load {loadavg()}")
                if not rates:
                    rates.append(synthetic_watch(box, workdir))
                    log(f"[{nodes} nodes] synthetic watch: {rates[0]}")
                measure(box, kube, gate_dir, archives[TARGET], runs, res)
                res.load.append(loadavg())
                rollout(box, kube, res, timeout_s=max(900.0, nodes * 0.6))
    return res


def measure(
    box: Sandbox, kube: Kube, gate_dir: Path, chart: Path, runs: int, res: SizeResult
) -> None:
    # warm-up (not timed): writes the values snapshot the pre checks compare against
    res.gate_outcome = gate_run(
        box, gate_dir, chart, "--cilium-write-snapshot", "--cilium-overwrite-snapshot"
    ).outcome
    log(f"[{res.nodes} nodes] gate warm-up: {res.gate_outcome}")
    target = Target(
        box.kubeconfig, box.binaries.helm3, box.env(), gate_dir / "cilium-values.yaml", chart
    )
    counting_kube, helm, request = target.clients()
    with counting_kube:
        snapshot_requests(box, counting_kube, helm, request, res)
    log(
        f"[{res.nodes} nodes] one snapshot: {res.requests} API requests, pages "
        f"{res.pages_by_op}, largest response {res.largest_response / MB:.2f} MB, "
        f"{res.pods} pods, verdicts {res.verdicts}"
    )
    for run in range(runs):
        before = apiserver_requests(box) if run == 0 else {}
        gate = gate_run(box, gate_dir, chart)
        if run == 0:
            res.apiserver_gate_by_op = delta(apiserver_requests(box), before)
        res.gate_wall.append(gate.wall_s)
        if gate.self_rss_mb is not None:
            res.rss_self_mb.append(gate.self_rss_mb)
        if gate.tree_rss_mb is not None:
            res.rss_tree_mb.append(gate.tree_rss_mb)
        res.gate_startup.append(gate_run(box, gate_dir, chart, "--collect-only").wall_s)
        inproc_run(target, res)
        raw_lists(target, res)
        log(
            f"[{res.nodes} nodes] run {run + 1}: gate {gate.wall_s:.2f}s ({gate.outcome}; "
            f"start-up {res.gate_startup[-1]:.2f}s), in-process {res.inproc[-1]:.3f}s "
            f"(reads {res.cluster_reads[-1]:.3f}s), unpaginated raw LISTs "
            f"{res.raw_lists[-1]:.3f}s, RSS {gate.self_rss_mb} MB; load {loadavg()}"
        )
    api = config.new_client_from_config(config_file=str(box.kubeconfig))
    try:
        core: Any = client.CoreV1Api(api)
        victims = sorted(
            p["metadata"]["name"]
            for p in json.loads(
                core.list_namespaced_pod(
                    NS, label_selector=PREFLIGHT_SELECTOR, _preload_content=False
                ).data
            )["items"]
        )
        for run in range(runs):
            outcome = notice_latency(box, kube, core, victims[run * len(victims) // runs])
            log(
                f"[{res.nodes} nodes] notice run {run + 1}: "
                f"{'-' if outcome.delay_s is None else f'{outcome.delay_s:.3f}s'} "
                f"({outcome.detail})"
            )
            if outcome.delay_s is None:
                res.notes.append(f"notice run {run + 1}: {outcome.detail}")
                continue
            res.notice.append(outcome.delay_s)
            if outcome.ltt_delay_s is not None:
                res.notice_ltt.append(outcome.ltt_delay_s)
    finally:
        api.close()


# ---------------------------------------------------------------------------- report


def loadavg() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def machine() -> list[str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    import kubernetes
    import msgspec
    import pytest

    return [
        f"{os.cpu_count()} cores ({cpu}), {mem_kb / 1024 / 1024:.1f} GiB, {platform.machine()}, "
        f"{platform.system()} {platform.release()}",
        f"Python {platform.python_version()}, pytest {pytest.__version__}, "
        f"kubernetes client {kubernetes.__version__}, msgspec {msgspec.__version__}",
        f"pages: first {kube_paging.FIRST_LIMIT} items, then up to {kube_paging.PAGE_LIMIT} "
        f"or {kube_paging.PAGE_BYTES / MB:.2f} MB; controllers' client limits "
        + ", ".join(f"--{a['key']}={a['value']}" for a in CONTROLLER_CLIENT_LIMITS),
    ]


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def pages_of(r: SizeResult) -> int:
    return sum(r.pages_by_op.values())


def details(r: SizeResult) -> None:
    inproc = median(r.inproc)
    helm_requests = sum(n for op, n in r.helm_requests_by_op.items() if "secrets" in op)
    print(
        f"\n== {r.nodes} nodes: {r.pods} pods in {NS}; sandbox up {r.up_s:.1f}s, "
        f"install {r.install_s:.1f}s; gate warm-up: {r.gate_outcome}; "
        f"in-process verdicts {r.verdicts}"
    )
    print(
        f"API requests, gate's client: {r.requests} = {r.requests - pages_of(r)} + "
        f"{pages_of(r)} LIST pages; requests {json.dumps(r.requests_by_op, sort_keys=True)}; "
        f"pages {json.dumps(r.pages_by_op, sort_keys=True)}"
    )
    print(
        f"largest response: {r.largest_response / MB:.2f} MB ({r.largest_response_of}); "
        f"unpaginated, the largest LIST would be {r.raw_largest / MB:.1f} MB "
        f"(all five {r.raw_bytes / MB:.1f} MB)"
    )
    print(
        f"helm subprocesses: {r.helm_calls}, making {helm_requests} API requests; whole gate "
        f"subprocess as counted by the apiserver: {sum(r.apiserver_gate_by_op.values())} "
        f"{json.dumps(r.apiserver_gate_by_op, sort_keys=True)}"
    )
    print(
        f"in-process collect()+pre checks: {inproc:.3f}s {[round(x, 3) for x in r.inproc]} "
        f"(cluster reads alone {median(r.cluster_reads):.3f}s; helm version/template "
        f"{median(r.helm_critical_s):.3f}s; checks {median(r.inproc_checks) * 1000:.1f} ms)"
    )
    print(
        f"gate subprocess wall: {median(r.gate_wall):.3f}s {[round(x, 3) for x in r.gate_wall]};"
        f" start-up alone {median(r.gate_startup):.3f}s"
    )
    print(
        f"unpaginated raw LISTs: {median(r.raw_lists):.3f}s, with json.loads "
        f"{median(r.raw_decoded):.3f}s"
    )
    print(f"load average (1, 5, 15 min) before / after the runs: {' / '.join(r.load)}")
    if r.notice:
        print(
            f"notice latency: {[ms(x) for x in r.notice]}; after the Ready condition's "
            f"lastTransitionTime (1 s resolution): {[f'{x:.2f}s' for x in r.notice_ltt]}"
        )
    print(
        f"peak RSS of the pytest process: {[round(x) for x in r.rss_self_mb]} MB; "
        f"/usr/bin/time -v maximum (with waited-for helm): "
        f"{[round(x) for x in r.rss_tree_mb]} MB"
    )
    if r.rollout:
        ro = r.rollout
        print(
            f"rollout of {ro.pods} pre-flight pods at once: {ro.seconds:.1f}s, {ro.events} status "
            f"updates ({ro.events / ro.seconds:.1f}/s, peak {ro.peak_rate}/s), {ro.lines} "
            f"progress lines, returned "
            + ("-" if ro.lag_s is None else ms(ro.lag_s))
            + " after a bare watch saw it healthy"
        )
    for note in r.notes:
        print(f"note: {note}")


def report(results: Sequence[SizeResult], runs: int, rates: Sequence[WatchRate]) -> None:
    print()
    for line in machine():
        print(f"machine: {line}")
    print(f"medians of {runs} run(s) per size")
    for rate in rates:
        print(
            f"watch event rate (loopback server, {rate.events} status updates of "
            f"{rate.event_bytes} bytes): Kube.watch_workload {rate.adapter_rate:.0f}/s, "
            f"RolloutWait {rate.wait_rate:.0f}/s writing {rate.wait_lines} progress lines "
            f"(at most one every {PROGRESS_EVERY_S:g} s)"
        )
    for r in results:
        details(r)
    rows: list[tuple[str, Callable[[SizeResult], str]]] = [
        ("pods in kube-system", lambda r: str(r.pods)),
        ("API requests of one pre snapshot", lambda r: str(r.requests)),
        ("  of which LIST pages", lambda r: str(pages_of(r))),
        ("  the rest (constant)", lambda r: str(r.requests - pages_of(r))),
        ("largest single API response", lambda r: f"{r.largest_response / MB:.2f} MB"),
        ("the pods LIST unpaginated (reference)", lambda r: f"{r.raw_largest / MB:.1f} MB"),
        ("in-process collect() + pre checks", lambda r: ms(median(r.inproc))),
        ("  cluster reads alone", lambda r: ms(median(r.cluster_reads))),
        ("  helm version / template (beside the reads)", lambda r: ms(median(r.helm_critical_s))),
        ("  the pre checks on the snapshot", lambda r: ms(median(r.inproc_checks))),
        ("unpaginated raw LISTs, bytes (reference)", lambda r: ms(median(r.raw_lists))),
        ("  + json.loads (reference)", lambda r: ms(median(r.raw_decoded))),
        ("gate subprocess wall", lambda r: f"{median(r.gate_wall):.2f} s"),
        ("  of which pytest start-up", lambda r: f"{median(r.gate_startup):.2f} s"),
        (
            "peak RSS of the pytest process, max",
            lambda r: f"{max(r.rss_self_mb):.0f} MB" if r.rss_self_mb else "-",
        ),
        (
            "notice latency, max",
            lambda r: ms(max(r.notice)) if r.notice else "not measured",
        ),
        (
            "rollout: status updates, peak/s, lines",
            lambda r: (
                f"{r.rollout.events}, {r.rollout.peak_rate}/s, {r.rollout.lines}"
                if r.rollout
                else "-"
            ),
        ),
        (
            "rollout: wait returned after a bare watch",
            lambda r: ms(r.rollout.lag_s) if r.rollout and r.rollout.lag_s is not None else "-",
        ),
        ("load average before / after", lambda r: " / ".join(x.split()[0] for x in r.load)),
    ]
    print("\n| figure | " + " | ".join(f"{r.nodes} nodes" for r in results) + " |")
    print("|---|" + "---|" * len(results))
    for name, cell in rows:
        print(f"| {name} | " + " | ".join(cell(r) for r in results) + " |")
    cost_curve(results)
    largest = max(results, key=lambda r: r.nodes, default=None)
    if largest is not None:
        targets(largest)


def cost_curve(results: Sequence[SizeResult]) -> None:
    """Time and memory per 1,000 nodes between consecutive sizes, and overall."""
    ordered = sorted(results, key=lambda r: r.nodes)
    if len(ordered) < 2:
        return
    pairs = list(itertools.pairwise(ordered))
    if len(ordered) > 2:
        pairs.append((ordered[0], ordered[-1]))
    print("\n| per 1,000 nodes | " + " | ".join(f"{a.nodes}→{b.nodes}" for a, b in pairs) + " |")
    print("|---|" + "---|" * len(pairs))

    def slope(pick: Callable[[SizeResult], float]) -> list[float]:
        return [(pick(b) - pick(a)) / (b.nodes - a.nodes) * 1000 for a, b in pairs]

    def rss(r: SizeResult) -> float:
        return max(r.rss_self_mb) if r.rss_self_mb else float("nan")

    figures: tuple[tuple[str, Callable[[SizeResult], float], Callable[[float], str]], ...] = (
        ("in-process verdict", lambda r: median(r.inproc), lambda x: ms(x)),
        ("cluster reads alone", lambda r: median(r.cluster_reads), lambda x: ms(x)),
        ("peak RSS of the pytest process", rss, lambda x: f"{x:.0f} MB"),
        ("LIST pages", lambda r: float(pages_of(r)), lambda x: f"{x:.1f}"),
    )
    for name, pick, show in figures:
        print(f"| {name} | " + " | ".join(show(x) for x in slope(pick)) + " |")


def targets(r: SizeResult) -> None:
    at = f"at {r.nodes} nodes" + (
        "" if r.nodes >= TARGET_NODES else f" (targets are for {TARGET_NODES})"
    )
    print(f"\ntargets {at}:")
    inproc = median(r.inproc)
    print(f"  verdict in-process {inproc:.2f} s < {TARGETS['verdict_s']:g} s: "
          f"{verdict(inproc < TARGETS['verdict_s'])}")  # fmt: skip
    if r.rss_self_mb:
        peak = max(r.rss_self_mb)
        print(f"  peak RSS {peak:.0f} MB < {TARGETS['memory_mb']:g} MB: "
              f"{verdict(peak < TARGETS['memory_mb'])}")  # fmt: skip
    largest = r.largest_response / MB
    print(f"  largest single API response {largest:.2f} MB < {TARGETS['response_mb']:g} MB: "
          f"{verdict(largest < TARGETS['response_mb'])}")  # fmt: skip
    if r.notice:
        print(f"  readiness noticed {ms(max(r.notice))} < {TARGETS['notice_s']:g} s: "
              f"{verdict(max(r.notice) < TARGETS['notice_s'])}")  # fmt: skip


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    started = time.perf_counter()
    log(f"{name} ...")
    yield
    log(f"{name} done in {time.perf_counter() - started:.0f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--nodes", type=int, nargs="+", default=[500, 1000, 2000, 5000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--up-timeout",
        type=float,
        default=1800.0,
        help="seconds for the sandbox to have every node Ready",
    )
    args = parser.parse_args()
    if any(n < 2 for n in args.nodes) or args.runs < 1:
        parser.error("--nodes must be 2 or more, --runs 1 or more")
    binaries = Builder().ensure_all()
    archives = resolve_charts([CURRENT, TARGET], repo_root=ROOT)
    log(f"load average at the start: {loadavg()}")
    results: list[SizeResult] = []
    rates: list[WatchRate] = []
    for nodes in args.nodes:
        with phase(f"{nodes} nodes"):
            try:
                results.append(
                    bench_size(nodes, args.runs, binaries, archives, args.up_timeout, rates)
                )
            except Exception as exc:
                log(f"{nodes} nodes failed: {exc}")
                print(f"\n== {nodes} nodes: FAILED: {exc}")
    report(results, args.runs, rates)


if __name__ == "__main__":
    main()
