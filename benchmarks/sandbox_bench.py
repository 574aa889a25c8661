"""Figures for the sandbox: cold build, warm up, down, and control-plane memory.

    .venv/bin/python benchmarks/sandbox_bench.py [--runs 3] [--cold]

--cold builds every binary from scratch into throw-away Go caches (module download
included) and takes tens of minutes on two cores. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from cilium_sandbox.build import Builder
from cilium_sandbox.cluster import Sandbox
from cilium_sandbox.topology import build_topology

ROOT = Path(__file__).resolve().parents[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cold_build() -> None:
    with tempfile.TemporaryDirectory(prefix="cold-") as tmp:
        os.environ["GOCACHE"] = f"{tmp}/gocache"
        os.environ["GOMODCACHE"] = f"{tmp}/gomodcache"
        started = time.monotonic()
        Builder(cache_dir=Path(tmp) / "cache").ensure_all()
        print(f"cold build of all binaries: {time.monotonic() - started:.0f} s")
        os.system(f"chmod -R u+w {tmp}")  # noqa: S605 - Go's module cache is read-only


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cold", action="store_true")
    parser.add_argument("--control-planes", type=int)
    parser.add_argument("--workers", type=int)
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    if args.cold:
        cold_build()
    binaries = Builder().ensure_all()
    topology = build_topology(
        ROOT / "kind-config.yaml", control_planes=args.control_planes, workers=args.workers
    )
    ups, downs, memory = [], [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            box = Sandbox(Path(tmp), binaries, topology, progress=lambda _: None)
            started = time.monotonic()
            box.up()
            ups.append(time.monotonic() - started)
            memory.append(sum(rss_mib(pid) for pid in box.pids().values()))
            started = time.monotonic()
            box.down()
            downs.append(time.monotonic() - started)
    nodes = len(topology.nodes)
    print(
        f"warm up to {nodes} nodes Ready: median {statistics.median(ups):.1f} s "
        f"(min {min(ups):.1f}, max {max(ups):.1f}, {args.runs} runs)"
    )
    print(f"down: median {statistics.median(downs):.2f} s")
    print(
        f"control-plane RSS after up (etcd, apiserver, controller-manager, scheduler, kwok): "
        f"median {statistics.median(memory):.0f} MiB"
    )


if __name__ == "__main__":
    main()
