"""Starting and stopping the sandbox: clear failures, and nothing left running."""

from __future__ import annotations

import dataclasses
import os
import select
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cilium_sandbox.build import Builder
from cilium_sandbox.cluster import Sandbox
from cilium_sandbox.errors import SandboxError
from cilium_sandbox.topology import build_topology
from cilium_sandbox.watchdog import _processes_naming

pytestmark = pytest.mark.sandbox
ROOT = Path(__file__).resolve().parents[2]


def _new_sandbox(workdir: Path, **kwargs: object) -> Sandbox:
    topology = build_topology(ROOT / "kind-config.yaml", workers=1)
    return Sandbox(workdir, Builder().ensure_all(), topology, progress=lambda _: None, **kwargs)  # type: ignore[arg-type]


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Wait (on pidfds, no polling) until ``pids`` exit; return those still alive."""
    fds = {}
    for pid in pids:
        try:
            fds[os.pidfd_open(pid)] = pid
        except ProcessLookupError:
            continue
    try:
        remaining = dict(fds)
        while remaining:
            ready, _, _ = select.select(list(remaining), [], [], timeout)
            if not ready:
                break
            for fd in ready:
                remaining.pop(fd)
        return list(remaining.values())
    finally:
        for fd in fds:
            os.close(fd)


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    # whatever a failing test left behind must not outlive it
    for pid in _processes_naming(str(tmp_path / "kwok").encode()):
        os.kill(pid, 9)


def test_up_then_down_leaves_no_process_and_no_kubeconfig(workdir: Path) -> None:
    box = _new_sandbox(workdir)
    box.up(timeout=120)
    pids = list(box.pids().values())
    assert len(pids) == 5  # etcd, apiserver, controller-manager, scheduler, kwok
    assert box.kubeconfig.is_file()
    assert oct(box.kubeconfig.stat().st_mode & 0o777) == "0o600"
    box.down()
    assert _wait_gone(pids, timeout=10) == []
    assert _processes_naming(str(box.kwok_workdir).encode()) == []
    assert not box.kubeconfig.exists()
    assert not box.is_running()


def test_port_in_use_is_refused_and_nothing_starts(workdir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        box = _new_sandbox(workdir, apiserver_port=port)
        with pytest.raises(SandboxError, match=rf"port {port} on 127.0.0.1 \(kube-apiserver\)"):
            box.up(timeout=60)
    assert box.pids() == {}
    assert _processes_naming(str(box.kwok_workdir).encode()) == []


@pytest.mark.parametrize(
    "script",
    [
        # fails even to tell its version
        "echo 'etcd: simulated broken binary' >&2; exit 1",
        # tells its version, then dies when started
        'if [ "$1" = --version ]; then echo "etcd Version: 3.6.16"; exit 0; fi\n'
        "echo 'etcd: simulated start-up crash' >&2; exit 1",
    ],
    ids=["broken-binary", "crash-at-start"],
)
def test_component_dying_at_start_up_is_named_with_its_log(workdir: Path, script: str) -> None:
    broken = workdir / "etcd"
    broken.write_text(f"#!/bin/sh\n{script}\n")
    broken.chmod(0o755)
    box = _new_sandbox(workdir / "box")
    box.binaries = dataclasses.replace(box.binaries, etcd=broken)
    with pytest.raises(SandboxError) as info:
        box.up(timeout=30)
    message = str(info.value)
    assert "etcd" in message
    assert "simulated" in message
    assert str(box.workdir / "kwokctl-create.log") in message
    assert _processes_naming(str(box.kwok_workdir).encode()) == []
    assert not box.is_running()


def test_watchdog_stops_the_sandbox_when_the_test_process_is_killed(workdir: Path) -> None:
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from cilium_sandbox.build import Builder\n"
        "from cilium_sandbox.cluster import Sandbox, guarded\n"
        "from cilium_sandbox.topology import build_topology\n"
        f"topo = build_topology(Path({str(ROOT / 'kind-config.yaml')!r}), workers=1)\n"
        f"box = Sandbox(Path({str(workdir)!r}), Builder().ensure_all(), topo)\n"
        "with guarded(box):\n"
        "    print('UP', flush=True)\n"
        "    sys.stdin.read()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "UP"
        box = _new_sandbox(workdir)
        pids = list(box.pids().values())
        assert len(pids) == 5
        child.kill()  # no finalizer runs: only the watchdog can clean up
        child.wait(timeout=10)
        assert _wait_gone(pids, timeout=20) == []
    finally:
        if child.poll() is None:
            child.kill()
        if child.stdin is not None:
            child.stdin.close()
        if child.stdout is not None:
            child.stdout.close()
