"""How the pre checks scale with the number of nodes, on the sandbox.

    .venv/bin/python benchmarks/scale_bench.py --nodes 10 100 500 --runs 3

For each size: a fresh sandbox (1 control-plane node, N-1 workers), stand-in Cilium
1.15.18 and the pre-flight release of 1.16.15 (agent and pre-flight DaemonSets on every
node), then

1. the API requests of one pre snapshot (``Kube.requests``, the gate's own client) and
   the helm subprocesses it runs (``Helm.calls``); the requests those helm processes
   make are read from the apiserver's ``apiserver_request_total`` (resource secrets);
2. time to verdict: the pre phase as a real ``pytest --cilium-upgrade`` subprocess, and
   ``collect()`` + every pre check in-process, against the same five LIST calls made raw
   with the kubernetes client (one after another) and against the upgrade guide's
   manual kubectl sequence;
3. notice latency: one pre-flight pod is deleted while a pod watch and
   ``Kube.watch_workload`` run in threads; the delay is from the replacement pod's Ready
   event (pod watch) to ``watch_workload`` yielding a healthy DaemonSet;
4. peak memory of the pytest process (its own peak RSS, and ``/usr/bin/time -v``'s
   maximum, which also covers the helm processes it waited for);
5. floors, the least any gate built on these parts could take: ``python -c 'import
   pytest'``, the ``helm template`` of the verdict run on its own, and the raw pods LIST
   alone, each set against the time the targets allow.

Prints figures; asserts nothing. Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
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

from cilium_sandbox.build import Builder
from cilium_sandbox.cluster import Sandbox, guarded
from cilium_sandbox.faults import ContainerLogs
from cilium_sandbox.topology import build_topology
from kubernetes import client, config, watch

from pytest_cilium_upgrade.adapters.helm.charts import ChartSource
from pytest_cilium_upgrade.adapters.helm.client import Helm
from pytest_cilium_upgrade.adapters.kube import Kube
from pytest_cilium_upgrade.checks import CheckParams, Status, checks_for_phase, run_check
from pytest_cilium_upgrade.snapshot.model import Workload
from pytest_cilium_upgrade.snapshot.read import CollectRequest, collect
from pytest_cilium_upgrade.versions import Version

ROOT = Path(__file__).resolve().parents[1]
CHARTS = ROOT / "tests" / "charts"
NS = "kube-system"
CURRENT = "1.15.18"
TARGET = "1.16.15"
PREFLIGHT_DS = "cilium-pre-flight-check"
PREFLIGHT_SELECTOR = "k8s-app=cilium-pre-flight-check"
RECORDS_SELECTOR = "owner=helm,name in (cilium,cilium-preflight)"
VALID = 'level=info msg="All CCNPs and CNPs valid!" subsys=preflight'
PREFLIGHT_SETS = (
    "--set",
    "preflight.enabled=true",
    "--set",
    "agent=false",
    "--set",
    "operator.enabled=false",
)
# The upgrade guide's manual sequence, as run by hand with kubectl (what we time).
MANUAL = (
    ("get", "ds", "-n", NS, PREFLIGHT_DS),
    ("get", "ds", "-n", NS, "cilium"),
    ("get", "deployment", "-n", NS, PREFLIGHT_DS),
    ("logs", "-n", NS, f"deployment/{PREFLIGHT_DS}", "-c", "cnp-validator"),
    ("get", "pods", "-n", NS, "-l", "k8s-app=cilium", "-o", "wide"),
    ("get", "nodes"),
)
# Run in the pytest subprocess: pytest itself, then its own peak RSS (no children).
PYTEST_WRAPPER = (
    "import resource, sys, pytest\n"
    "rc = pytest.main(sys.argv[1:])\n"
    "print(f'SELF_MAXRSS_KB={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}',"
    " file=sys.stderr)\n"
    "sys.exit(int(rc))\n"
)
TARGETS = {
    "requests": 20,
    "raw_ratio": 1.5,
    "manual_speedup": 5.0,
    "notice_s": 1.0,
    "memory_mb": 200.0,
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


@dataclass
class SizeResult:
    nodes: int
    up_s: float = 0.0
    install_s: float = 0.0
    pods: int = 0
    requests: int = 0
    requests_by_op: dict[str, int] = field(default_factory=dict)
    helm_calls: int = 0
    helm_calls_s: list[float] = field(default_factory=list)
    helm_critical_s: list[float] = field(default_factory=list)
    helm_requests_by_op: dict[str, int] = field(default_factory=dict)
    apiserver_kube_by_op: dict[str, int] = field(default_factory=dict)
    apiserver_gate_by_op: dict[str, int] = field(default_factory=dict)
    verdicts: dict[str, int] = field(default_factory=dict)
    gate_outcome: str = ""
    gate_wall: list[float] = field(default_factory=list)
    gate_startup: list[float] = field(default_factory=list)
    inproc: list[float] = field(default_factory=list)
    inproc_checks: list[float] = field(default_factory=list)
    cluster_part: list[float] = field(default_factory=list)
    raw_lists: list[float] = field(default_factory=list)
    raw_decoded: list[float] = field(default_factory=list)
    cluster_reads: list[float] = field(default_factory=list)
    slowest_check: dict[str, list[float]] = field(default_factory=dict)
    load: list[str] = field(default_factory=list)
    raw_bytes: int = 0
    floor_pytest: list[float] = field(default_factory=list)
    floor_render: list[float] = field(default_factory=list)
    floor_pods: list[float] = field(default_factory=list)
    manual: list[float] = field(default_factory=list)
    notice: list[float] = field(default_factory=list)
    notice_ltt: list[float] = field(default_factory=list)
    rss_self_mb: list[float] = field(default_factory=list)
    rss_tree_mb: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- set-up


def wait_healthy(kube: Kube, kind: str, name: str, timeout_s: float) -> None:
    for obj in kube.watch_workload(kind, NS, name, timeout_s):
        workload = Workload.from_k8s_dict(obj, kind=kind)
        if workload.desired > 0 and workload.healthy:
            return
    raise RuntimeError(f"{kind} {name} not healthy within {timeout_s:.0f}s")


def install(box: Sandbox, kube: Kube, timeout_s: float) -> None:
    """Cilium 1.15.18 and the 1.16.15 pre-flight, waited for by watching (not helm --wait)."""
    box.helm(3, "install", "cilium", str(CHARTS / CURRENT), "-n", NS)
    wait_healthy(kube, "DaemonSet", "cilium", timeout_s)
    wait_healthy(kube, "Deployment", "cilium-operator", timeout_s)
    box.set_logs(ContainerLogs(NS, "cnp-validator", current=[VALID]))
    box.helm(3, "install", "cilium-preflight", str(CHARTS / TARGET), "-n", NS, *PREFLIGHT_SETS)
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


def snapshot_requests(
    box: Sandbox, kube: Kube, helm: Helm, request: CollectRequest, res: SizeResult
) -> None:
    """Requests of one pre snapshot: our client's, the helm subprocesses', and what the
    apiserver counted for each part."""
    before_ops = dict(kube.requests.counts)
    base = apiserver_requests(box)
    snapshot = collect(kube, helm, request)
    counted = delta(apiserver_requests(box), base)
    res.helm_calls = len(helm.calls)
    res.requests_by_op = {
        op: n - before_ops.get(op, 0)
        for op, n in kube.requests.counts.items()
        if n - before_ops.get(op, 0)
    }
    res.requests = sum(res.requests_by_op.values())
    # what the apiserver saw beyond our client's own secrets LIST is helm's
    ours = res.requests_by_op.get("list secrets", 0)
    helm_secrets = int(counted.get("LIST secrets", 0)) - ours
    res.helm_requests_by_op = {"LIST secrets": helm_secrets} if helm_secrets else {}
    res.apiserver_kube_by_op = {
        op: n for op, n in counted.items() if not (op == "LIST secrets" and helm_secrets)
    }
    if helm_secrets:
        res.apiserver_kube_by_op["LIST secrets"] = ours
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

    def clients(self) -> tuple[Kube, Helm, CollectRequest]:
        kube = Kube(str(self.kubeconfig), request_timeout=60)
        helm = Helm(binary=str(self.helm_binary), kubeconfig=self.kubeconfig, env=self.helm_env)
        request = CollectRequest(
            namespace=NS,
            values_snapshot=self.values_snapshot,
            target_version=TARGET,
            chart=ChartSource.parse(str(CHARTS), helm=helm),
            release_records="Secret",
        )
        return kube, helm, request


def inproc_run(target: Target, res: SizeResult) -> None:
    """collect() + every pre check in-process (fresh clients, as in a gate run), and parts."""
    params = CheckParams(target=Version.parse(TARGET))
    specs = checks_for_phase("pre")
    cluster_specs = [s for s in specs if s.needs_cluster and not s.needs_helm]

    helms: list[Helm] = []

    def full() -> None:
        kube, helm, request = target.clients()
        helms.append(helm)
        with kube:
            snapshot = collect(kube, helm, request)
            for spec in specs:
                run_check(spec, snapshot, params)

    def cluster_verdict() -> None:
        # the cluster part of the verdict: cluster reads and the checks judged from them
        kube, _, request = target.clients()
        with kube:
            snapshot = collect(kube, None, request)
            for spec in cluster_specs:
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
    res.cluster_part.append(timed(cluster_verdict)[0])
    res.cluster_reads.append(timed(cluster_reads)[0])
    kube, helm, request = target.clients()
    with kube:
        snapshot = collect(kube, helm, request)
    each: dict[str, float] = {}
    for spec in specs:
        started = time.perf_counter()
        run_check(spec, snapshot, params)
        each[spec.check_id] = time.perf_counter() - started
    res.inproc_checks.append(sum(each.values()))
    slowest = max(each, key=lambda k: each[k])
    res.slowest_check.setdefault(slowest, []).append(each[slowest])


def raw_lists(target: Target, res: SizeResult) -> None:
    """The same five LIST calls, raw (fresh client, no retries, no model), one after
    another: as bytes, and decoded with json.loads."""

    def run(decode: bool) -> int:
        api = config.new_client_from_config(config_file=str(target.kubeconfig))
        try:
            core: Any = client.CoreV1Api(api)
            apps: Any = client.AppsV1Api(api)
            size = 0
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
                size += len(data)
                if decode:
                    json.loads(data)
            return size
        finally:
            api.close()

    elapsed, size = timed(lambda: run(False))
    res.raw_lists.append(elapsed)
    res.raw_bytes = size
    res.raw_decoded.append(timed(lambda: run(True))[0])


def floors(target: Target, res: SizeResult) -> None:
    """What a verdict cannot go below: pytest's import, the render, the pods LIST."""
    res.floor_pytest.append(
        timed(
            lambda: subprocess.run(
                [sys.executable, "-c", "import pytest"], check=True, capture_output=True, timeout=60
            )
        )[0]
    )
    _, helm, request = target.clients()
    res.floor_render.append(
        timed(
            lambda: helm.template(
                request.release, request.chart, TARGET, NS, values_files=[target.values_snapshot]
            )
        )[0]
    )
    api = config.new_client_from_config(config_file=str(target.kubeconfig))
    try:
        core: Any = client.CoreV1Api(api)
        res.floor_pods.append(
            timed(lambda: core.list_namespaced_pod(NS, _preload_content=False).data)[0]
        )
    finally:
        api.close()


def manual_sequence(box: Sandbox, res: SizeResult) -> None:
    env = box.env()

    def run() -> None:
        for args in MANUAL:
            subprocess.run(
                [str(box.binaries.kubectl), *args],
                env=env,
                check=True,
                capture_output=True,
                timeout=120,
            )

    res.manual.append(timed(run)[0])


def gate_command(box: Sandbox, workdir: Path, *extra: str) -> list[str]:
    return [
        "--cilium-upgrade",
        "--cilium-phase=pre",
        f"--cilium-kubeconfig={box.kubeconfig}",
        f"--cilium-helm={box.binaries.helm3}",
        f"--cilium-chart={CHARTS}",
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


def gate_run(box: Sandbox, workdir: Path, *extra: str) -> GateRun:
    """The pre phase as a pytest subprocess: wall time, outcome line and peak RSS."""
    time_bin = shutil.which("time", path="/usr/bin")
    argv = [sys.executable, "-c", PYTEST_WRAPPER, *gate_command(box, workdir, *extra)]
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
                timeout_seconds=90,
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
            for obj in kube.watch_workload("DaemonSet", NS, PREFLIGHT_DS, 60):
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
    pod_open.wait(60)
    ds_open.wait(60)
    deleted_at.append(time.monotonic())
    box.kubectl("delete", "pod", "-n", NS, victim, "--wait=false")
    pod_done.wait(60)
    # The DaemonSet controller may fold "one missing" and "all ready again" into one
    # status update (or none): then no unhealthy state is ever seen and we stop waiting
    # for it shortly after the replacement pod is Ready.
    ds_done.wait(10)
    if errors:
        return NoticeRun(None, None, "; ".join(errors))
    events = list(ds_events)
    trail = " -> ".join(s for _, _, s in events) or "no status change"
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


# ---------------------------------------------------------------------------- one size


def bench_size(nodes: int, runs: int, binaries: Any, up_timeout: float) -> SizeResult:
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
                install(box, kube, timeout_s=max(300.0, nodes * 1.5))
                res.install_s = time.perf_counter() - started
                log(f"[{nodes} nodes] installed in {res.install_s:.1f}s")
                measure(box, kube, gate_dir, runs, res)
                res.load.append(loadavg())
    return res


def measure(box: Sandbox, kube: Kube, gate_dir: Path, runs: int, res: SizeResult) -> None:
    # warm-up (not timed): writes the values snapshot the pre checks compare against
    res.gate_outcome = gate_run(
        box, gate_dir, "--cilium-write-snapshot", "--cilium-overwrite-snapshot"
    ).outcome
    log(f"[{res.nodes} nodes] gate warm-up: {res.gate_outcome}")
    target = Target(box.kubeconfig, box.binaries.helm3, box.env(), gate_dir / "cilium-values.yaml")
    counting_kube, helm, request = target.clients()
    with counting_kube:
        snapshot_requests(box, counting_kube, helm, request, res)
    log(
        f"[{res.nodes} nodes] one snapshot: {res.requests} API requests (gate client), "
        f"{res.helm_calls} helm calls making {sum(res.helm_requests_by_op.values())}, "
        f"{res.pods} pods, verdicts {res.verdicts}"
    )
    for run in range(runs):
        before = apiserver_requests(box) if run == 0 else {}
        gate = gate_run(box, gate_dir)
        if run == 0:
            res.apiserver_gate_by_op = delta(apiserver_requests(box), before)
        res.gate_wall.append(gate.wall_s)
        if gate.self_rss_mb is not None:
            res.rss_self_mb.append(gate.self_rss_mb)
        if gate.tree_rss_mb is not None:
            res.rss_tree_mb.append(gate.tree_rss_mb)
        res.gate_startup.append(gate_run(box, gate_dir, "--collect-only").wall_s)
        inproc_run(target, res)
        raw_lists(target, res)
        floors(target, res)
        manual_sequence(box, res)
        log(
            f"[{res.nodes} nodes] run {run + 1}: gate {gate.wall_s:.2f}s ({gate.outcome}; "
            f"start-up {res.gate_startup[-1]:.2f}s), in-process {res.inproc[-1]:.3f}s, "
            f"raw LISTs {res.raw_lists[-1]:.3f}s, manual {res.manual[-1]:.2f}s, "
            f"RSS {gate.self_rss_mb} MB"
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
    import pytest

    return [
        f"{os.cpu_count()} cores ({cpu}), {mem_kb / 1024 / 1024:.1f} GiB, {platform.machine()}, "
        f"{platform.system()} {platform.release()}",
        f"Python {platform.python_version()}, pytest {pytest.__version__}, "
        f"kubernetes client {kubernetes.__version__}",
    ]


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def report(results: Sequence[SizeResult], runs: int) -> None:
    print()
    for line in machine():
        print(f"machine: {line}")
    print(f"medians of {runs} run(s) per size")
    rows: list[tuple[str, list[str]]] = []

    def row(name: str, cells: list[str]) -> None:
        rows.append((name, cells))

    for r in results:
        raw = median(r.raw_lists)
        gate, inproc, manual = median(r.gate_wall), median(r.inproc), median(r.manual)
        cluster = median(r.cluster_part)
        # helm reads its release Secrets; anything else in that window (a rare
        # GET /openapi/v3) is not made by every helm call and is listed, not counted
        helm_requests = sum(n for op, n in r.helm_requests_by_op.items() if "secrets" in op)
        gate_requests = sum(r.apiserver_gate_by_op.values())
        print(
            f"\n== {r.nodes} nodes: {r.pods} pods in {NS}; sandbox up {r.up_s:.1f}s, "
            f"install {r.install_s:.1f}s; gate warm-up: {r.gate_outcome}; "
            f"in-process verdicts {r.verdicts}"
        )
        print(
            f"API requests, gate's client (Kube.requests): {r.requests} "
            f"{json.dumps(r.requests_by_op, sort_keys=True)}"
        )
        print(
            f"  as counted by the apiserver: {json.dumps(r.apiserver_kube_by_op, sort_keys=True)}"
        )
        print(
            f"helm subprocesses: {r.helm_calls}, making {helm_requests} API requests "
            f"{json.dumps(r.helm_requests_by_op, sort_keys=True)}"
        )
        print(
            f"whole gate subprocess as counted by the apiserver: {gate_requests} "
            f"{json.dumps(r.apiserver_gate_by_op, sort_keys=True)}"
        )
        print(
            f"gate subprocess wall: {gate:.3f}s {[round(x, 3) for x in r.gate_wall]}; "
            f"its start-up alone (--collect-only): {median(r.gate_startup):.3f}s"
        )
        print(
            f"in-process collect()+pre checks: {inproc:.3f}s (helm processes "
            f"{median(r.helm_calls_s):.3f}s in all, the longer of version and template "
            f"{median(r.helm_critical_s):.3f}s; "
            f"checks {median(r.inproc_checks) * 1000:.1f} ms); "
            f"cluster part (cluster reads + cluster-only checks): {cluster:.3f}s"
        )
        print(
            f"cluster reads alone (collect without helm): {median(r.cluster_reads):.3f}s; "
            f"slowest check: "
            + ", ".join(f"{k} {ms(median(v))} ({len(v)}x)" for k, v in r.slowest_check.items())
        )
        print(
            f"raw LISTs ({r.raw_bytes / 1024:.0f} KiB): {raw:.3f}s, with json.loads "
            f"{median(r.raw_decoded):.3f}s; manual kubectl sequence: {manual:.3f}s"
        )
        print(f"load average (1, 5, 15 min) before / after: {' / '.join(r.load)}")
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
        for note in r.notes:
            print(f"note: {note}")
        total_requests = r.requests + helm_requests
        row(
            "API requests: gate client + helm (target <= 20)",
            [
                f"{r.requests} + {helm_requests} = {total_requests} "
                f"({verdict(total_requests <= TARGETS['requests'])})"
            ],
        )
        row("helm subprocesses", [str(r.helm_calls)])
        row("whole gate subprocess, as counted by the apiserver", [str(gate_requests)])
        row("gate subprocess wall", [f"{gate:.2f} s"])
        row("  of which pytest start-up (--collect-only)", [f"{median(r.gate_startup):.2f} s"])
        row("in-process collect() + pre checks", [ms(inproc)])
        row("  helm processes, summed (concurrent with the reads)", [ms(median(r.helm_calls_s))])
        row("  the longer of helm version and helm template", [ms(median(r.helm_critical_s))])
        row("  cluster part (reads + cluster-only checks)", [ms(cluster)])
        row("  cluster reads alone", [ms(median(r.cluster_reads))])
        row("  all pre checks (pure, on the snapshot)", [ms(median(r.inproc_checks))])
        row("raw LISTs (bytes)", [ms(raw)])
        row("raw LISTs + json.loads", [ms(median(r.raw_decoded))])
        row(
            "in-process / raw (target <= 1.5x)",
            [f"{inproc / raw:.1f}x ({verdict(inproc / raw <= TARGETS['raw_ratio'])})"],
        )
        row("  cluster part / raw", [f"{cluster / raw:.2f}x"])
        row(
            "  cluster reads alone / raw + json.loads",
            [f"{median(r.cluster_reads) / median(r.raw_decoded):.2f}x"],
        )
        row("manual kubectl sequence", [ms(manual)])
        row(
            "manual / gate subprocess (target >= 5x)",
            [f"{manual / gate:.2f}x ({verdict(manual / gate >= TARGETS['manual_speedup'])})"],
        )
        row("manual / in-process", [f"{manual / inproc:.2f}x"])
        budget_manual = manual / TARGETS["manual_speedup"]
        budget_raw = raw * TARGETS["raw_ratio"]
        row("time the targets allow: manual / 5", [ms(budget_manual)])
        row("time the targets allow: 1.5 x raw", [ms(budget_raw)])
        row(
            "floor: `python -c 'import pytest'`",
            [
                f"{ms(median(r.floor_pytest))} ({median(r.floor_pytest) / budget_manual:.1f}x "
                "manual / 5)"
            ],
        )
        row(
            "floor: the `helm template` alone",
            [
                f"{ms(median(r.floor_render))} ({median(r.floor_render) / budget_raw:.2f}x "
                "1.5 x raw)"
            ],
        )
        row(
            "floor: the raw pods LIST alone",
            [
                f"{ms(median(r.floor_pods))} ({median(r.floor_pods) / budget_manual:.2f}x "
                "manual / 5)"
            ],
        )
        if r.notice:
            row(
                "notice latency, max (target < 1 s)",
                [f"{ms(max(r.notice))} ({verdict(max(r.notice) < TARGETS['notice_s'])})"],
            )
        else:
            row("notice latency, max (target < 1 s)", ["not measured"])
        if r.rss_self_mb:
            row(
                "peak RSS of pytest, max (target < 200 MB)",
                [
                    f"{max(r.rss_self_mb):.0f} MB "
                    f"({verdict(max(r.rss_self_mb) < TARGETS['memory_mb'])})"
                ],
            )
            row("  /usr/bin/time -v maximum", [f"{max(r.rss_tree_mb):.0f} MB"])
    # one Markdown table, a column per size
    names = list(dict.fromkeys(name for name, _ in rows))
    by_size = len(results)
    cells: dict[str, list[str]] = {name: [] for name in names}
    for name, value in rows:
        cells[name] += value
    print("\n| figure | " + " | ".join(f"{r.nodes} nodes" for r in results) + " |")
    print("|---|" + "---|" * by_size)
    for name in names:
        print(f"| {name} | " + " | ".join(cells[name]) + " |")


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    started = time.perf_counter()
    log(f"{name} ...")
    yield
    log(f"{name} done in {time.perf_counter() - started:.0f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--nodes", type=int, nargs="+", default=[10, 100, 500])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--up-timeout",
        type=float,
        default=600.0,
        help="seconds for the sandbox to have every node Ready",
    )
    args = parser.parse_args()
    if any(n < 2 for n in args.nodes) or args.runs < 1:
        parser.error("--nodes must be 2 or more, --runs 1 or more")
    binaries = Builder().ensure_all()
    results = []
    for nodes in args.nodes:
        with phase(f"{nodes} nodes"):
            try:
                results.append(bench_size(nodes, args.runs, binaries, args.up_timeout))
            except Exception as exc:
                log(f"{nodes} nodes failed: {exc}")
                print(f"\n== {nodes} nodes: FAILED: {exc}")
    report(results, args.runs)


if __name__ == "__main__":
    main()
