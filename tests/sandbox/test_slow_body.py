"""A response body that trickles in: the request timeout bounds the whole request.

A TCP relay on loopback stands between the client and the sandbox's kube-apiserver.
It passes TLS through untouched, so the client talks to the real API server. Once
told to, it passes what the server sends a piece at a time (a connection made after
that gets its first bytes, the TLS handshake, at once). urllib3's read timeout bounds
each read, which over TLS is one record: at 20 KB/s every record of a large LIST
arrives well within the timeout, and the whole body takes half a minute.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from cilium_sandbox.cluster import Sandbox
from kubernetes import client
from real_chart_dir import Charts

from pytest_cilium_upgrade.adapters.kube import Kube
from pytest_cilium_upgrade.errors import NoAnswer

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.sandbox

HANDSHAKE = 8 * 1024  # what a connection made while trickling gets at once
MAX_TRICKLE_S = 60.0  # the relay gives up on a connection after this


class Relay:
    """Loopback TCP relay to ``target``; ``trickle`` slows what the server sends."""

    def __init__(self, target: tuple[str, int], piece: int = 16, pause_s: float = 0.05) -> None:
        self.target = target
        self.piece, self.pause_s = piece, pause_s
        self.trickle = threading.Event()
        self.stopping = threading.Event()
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._start(self._accept)

    @property
    def address(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"https://{host}:{port}"

    def _start(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target, timeout=10)
            server.settimeout(None)
            with self._lock:
                self.connections += 1
                self._sockets += [client, server]
            free = HANDSHAKE if self.trickle.is_set() else 0
            self._start(self._pump, client, server, False, 0)
            self._start(self._pump, server, client, True, free)

    def _pump(
        self, source: socket.socket, sink: socket.socket, from_server: bool, free: int
    ) -> None:
        passed = 0
        started = None
        try:
            while not self.stopping.is_set():
                data = source.recv(65536)
                if not data:
                    break
                if not (from_server and self.trickle.is_set()):
                    sink.sendall(data)
                    continue
                for i in range(0, len(data), self.piece):
                    if passed >= free:
                        started = started or time.monotonic()
                        if self.stopping.is_set() or time.monotonic() - started > MAX_TRICKLE_S:
                            return
                        time.sleep(self.pause_s)
                    sink.sendall(data[i : i + self.piece])
                    passed += self.piece
        except OSError:
            return  # either side hung up
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self.stopping.set()
        self._listener.close()
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for sock in sockets:
            sock.close()
        for thread in threads:
            thread.join(10)


@pytest.fixture
def relay(sandbox: Sandbox, tmp_path: Path) -> Iterator[tuple[Relay, Path]]:
    cfg = yaml.safe_load(sandbox.kubeconfig.read_text())
    server = urlsplit(cfg["clusters"][0]["cluster"]["server"])
    assert server.hostname == "127.0.0.1", server
    box = Relay((server.hostname, server.port or 443))
    cfg["clusters"][0]["cluster"]["server"] = box.address
    kubeconfig = tmp_path / "kubeconfig-relay"
    kubeconfig.write_text(yaml.safe_dump(cfg))
    try:
        yield box, kubeconfig
    finally:
        box.stop()


def test_a_list_whose_body_trickles_in_ends_at_the_request_timeout(
    relay: tuple[Relay, Path], api: client.ApiClient, namespace: str
) -> None:
    box, kubeconfig = relay
    box.piece, box.pause_s = 2048, 0.1  # 20 KB/s: a TLS record (16 KB at most) in 0.8 s
    core = client.CoreV1Api(api)
    for i in range(4):  # Helm's records as the gate lists them, 0.6 MB in all
        core.create_namespaced_secret(
            namespace,
            client.V1Secret(
                metadata=client.V1ObjectMeta(
                    name=f"sh.helm.release.v1.cilium.v{i + 1}",
                    labels={"owner": "helm", "name": "cilium"},
                ),
                data={"release": base64.b64encode(os.urandom(110_000)).decode()},
            ),
        )
    with Kube(str(kubeconfig), request_timeout=3) as kube:
        records = kube.list_release_records(namespace, ["cilium"])  # at full speed
        assert len(records) == 4
        box.trickle.set()
        started = time.monotonic()
        with pytest.raises(NoAnswer, match=r"did not answer list secrets within 3s"):
            kube.list_release_records(namespace, ["cilium"])
        elapsed = time.monotonic() - started
        assert kube.requests.counts["list secrets"] == 2  # not retried
    assert 3 <= elapsed < 10, elapsed
    print(f"gave up after {elapsed:.1f}s, where the body would take about 30 s")


def test_the_gate_ends_with_a_verdict_when_answers_trickle_in(
    relay: tuple[Relay, Path], sandbox: Sandbox, charts: Charts, pytester: pytest.Pytester
) -> None:
    box, kubeconfig = relay
    box.trickle.set()
    started = time.monotonic()
    result = pytester.runpytest(
        "--cilium-upgrade",
        "--cilium-phase=pre",
        "--cilium-target-version=1.16.19",
        f"--cilium-kubeconfig={kubeconfig}",
        f"--cilium-helm={sandbox.binaries.helm3}",
        "--cilium-namespace=kube-system",
        f"--cilium-chart={charts}",
        f"--cilium-state-file={pytester.path / 'state.json'}",
        "--cilium-request-timeout=2",
        "-p",
        "no:cacheprovider",
        "-rA",
    )
    elapsed = time.monotonic() - started
    output = result.stdout.str()
    assert result.ret == 1, output
    assert "Traceback" not in output
    # whichever answers outgrew the relay's handshake allowance time out, each once
    timed_out = re.findall(r"did not answer (\w+ [\w./]+) within 2s", output)
    assert timed_out, output
    assert "FAILED cilium-upgrade::pre::cluster_reachable_and_access_allowed" in output
    assert "--cilium-request-timeout" in output
    assert box.connections >= 1
    assert elapsed < 60, elapsed
    print(f"verdict after {elapsed:.1f}s; timed out: {sorted(set(timed_out))}")
