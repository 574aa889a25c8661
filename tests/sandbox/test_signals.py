"""A signal (a CI's cancel, Ctrl-C) while API requests hang: the run ends in seconds,
cleaned up, its report written.

A proxy on loopback stands between the gate and the sandbox's kube-apiserver: plain
HTTP from the gate and helm (the kubeconfig it is given names ``http://127.0.0.1:<port>``),
TLS with the admin's client certificate to the API server. It passes everything
through, except that it never answers a request matching its ``hold`` pattern: the
LIST of nodes, which only the pre checks make (helm, the steps and their waits never
list nodes). The pre checks' reads then hang as behind a stuck proxy or an overloaded
API server, each within ``--cilium-request-timeout`` (30 s here).
"""

from __future__ import annotations

import base64
import contextlib
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from cilium_sandbox.cluster import Sandbox
from cilium_sandbox.faults import ContainerLogs
from junit_report import junit_verdicts
from real_chart_dir import Charts

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.sandbox

DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
VALID = 'level=info msg="All CCNPs and CNPs valid!" subsys=preflight'
LIST_NODES = re.compile(rb"(?:^|\r\n)GET /api/v1/nodes[? ]")
ENDS_WITHIN_S = 10.0


class HoldingProxy:
    """HTTP in, the API server's TLS out; answers to requests matching ``hold`` never come."""

    def __init__(
        self, upstream: tuple[str, int], context: ssl.SSLContext, hold: re.Pattern[bytes]
    ) -> None:
        self.upstream = upstream
        self.context = context
        self.hold = hold
        self.held = threading.Event()  # set once a request is being held
        self.held_count = 0
        self.stopping = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._start(self._accept)

    @property
    def address(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"http://{host}:{port}"

    def _start(self, target: Callable[..., None], *args: object) -> None:
        threading.Thread(target=target, args=args, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                raw = socket.create_connection(self.upstream, timeout=10)
                server = self.context.wrap_socket(raw, server_hostname=self.upstream[0])
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            holding = threading.Event()  # this connection's answer is held
            with self._lock:
                self._sockets += [client, server]
            self._start(self._requests, client, server, holding)
            self._start(self._answers, server, client, holding)

    def _requests(
        self, client: socket.socket, server: socket.socket, holding: threading.Event
    ) -> None:
        with self._pumping(client, server):
            while data := client.recv(65536):
                if self.hold.search(data):  # HTTP/1.1: the next answer is this request's
                    holding.set()
                    with self._lock:
                        self.held_count += 1
                    self.held.set()
                server.sendall(data)

    def _answers(
        self, server: socket.socket, client: socket.socket, holding: threading.Event
    ) -> None:
        with self._pumping(server, client):
            while data := server.recv(65536):
                if holding.is_set():
                    self.stopping.wait()  # never answered while the proxy runs
                    return
                client.sendall(data)

    @contextlib.contextmanager
    def _pumping(self, source: socket.socket, sink: socket.socket) -> Iterator[None]:
        try:
            yield
        except OSError:
            pass  # either side hung up
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self.stopping.set()
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            sock.close()


def _file_or_data(entry: dict[str, Any], key: str, into: Path) -> str:
    """A kubeconfig's ``<key>`` file, or its ``<key>-data`` written to ``into``."""
    if entry.get(key):
        return str(entry[key])
    into.write_bytes(base64.b64decode(entry[f"{key}-data"]))
    into.chmod(0o600)
    return str(into)


@pytest.fixture
def proxy(sandbox: Sandbox, tmp_path: Path) -> Iterator[tuple[HoldingProxy, Path]]:
    """The proxy holding LISTs of nodes, and a kubeconfig that goes through it."""
    config = yaml.safe_load(sandbox.kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    user = config["users"][0]["user"]
    server = urlsplit(cluster["server"])
    assert server.hostname == "127.0.0.1", server
    with tempfile.TemporaryDirectory() as tmp:
        context = ssl.create_default_context(
            cafile=_file_or_data(cluster, "certificate-authority", Path(tmp) / "ca.crt")
        )
        context.load_cert_chain(
            _file_or_data(user, "client-certificate", Path(tmp) / "client.crt"),
            _file_or_data(user, "client-key", Path(tmp) / "client.key"),
        )
    context.set_alpn_protocols(["http/1.1"])
    box = HoldingProxy((server.hostname, server.port or 443), context, LIST_NODES)
    through = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "proxied", "cluster": {"server": box.address}}],
        "users": [{"name": "anyone", "user": {}}],
        "contexts": [{"name": "proxied", "context": {"cluster": "proxied", "user": "anyone"}}],
        "current-context": "proxied",
    }
    kubeconfig = tmp_path / "kubeconfig-proxied"
    kubeconfig.write_text(yaml.safe_dump(through))
    kubeconfig.chmod(0o600)
    try:
        yield box, kubeconfig
    finally:
        box.stop()


CURRENT, TARGET = "1.15.19", "1.16.19"


@pytest.fixture
def installed(sandbox: Sandbox, namespace: str, charts: Charts) -> Iterator[str]:
    charts.use(TARGET)
    sandbox.helm(
        3,
        "install",
        "cilium",
        str(charts / CURRENT),
        *charts.values(CURRENT, sandbox),
        "-n",
        namespace,
        "--wait",
        "--timeout",
        "2m",
    )
    sandbox.set_logs(ContainerLogs(namespace, "cnp-validator", current=[VALID]))
    yield namespace
    for release in sandbox.helm(3, "list", "-q", "-a", "-n", namespace).stdout.split():
        sandbox.helm(3, "uninstall", release, "-n", namespace, "--wait", check=False)
    sandbox.clear_faults()


def _releases(sandbox: Sandbox, namespace: str) -> list[str]:
    return sandbox.helm(3, "list", "-q", "-a", "-n", namespace).stdout.split()


@dataclass(frozen=True)
class Case:
    """A signal while requests hang, and its row of docs/reliability.md."""

    id: str
    sig: signal.Signals
    command: str
    exit: int
    line: str

    @property
    def row(self) -> str:
        return f"| {self.id} | {self.command} | {self.exit} | `{self.line}` |"


RUN = "`--cilium-perform-upgrade --cilium-target-version=1.16.19 --cilium-request-timeout=30`,"
CASES = (
    Case(
        "sigterm-while-requests-hang",
        signal.SIGTERM,
        f"{RUN} SIGTERM (a CI's cancel) while the pre checks' reads hang",
        int(pytest.ExitCode.INTERRUPTED),
        "cilium-upgrade: uninstalled cilium-preflight during clean-up",
    ),
    Case(
        "sigint-while-requests-hang",
        signal.SIGINT,
        f"{RUN} Ctrl-C while the pre checks' reads hang",
        int(pytest.ExitCode.INTERRUPTED),
        "cilium-upgrade: uninstalled cilium-preflight during clean-up",
    ),
)


def test_the_reliability_doc_lists_every_case() -> None:
    text = DOC.read_text()
    section = text.split("\n## Signals while requests hang\n", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in section.splitlines() if ln.startswith("| ") and "---" not in ln]
    assert rows[1:] == [c.row for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_signal_while_requests_hang_ends_the_run_cleaned_up_within_seconds(
    case: Case,
    sandbox: Sandbox,
    installed: str,
    proxy: tuple[HoldingProxy, Path],
    pytester: pytest.Pytester,
    charts: Charts,
) -> None:
    box, kubeconfig = proxy
    namespace = installed
    junit = pytester.path / "junit.xml"
    (pytester.path / "pytest.ini").write_text("[pytest]\n")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-rA",
            f"--junitxml={junit}",
            "--cilium-upgrade",
            "--cilium-perform-upgrade",
            f"--cilium-target-version={TARGET}",
            f"--cilium-kubeconfig={kubeconfig}",
            f"--cilium-helm={sandbox.binaries.helm3}",
            f"--cilium-namespace={namespace}",
            f"--cilium-chart={charts}",
            f"--cilium-values-snapshot={pytester.path / 'values.yaml'}",
            f"--cilium-state-file={pytester.path / 'state.json'}",
            "--cilium-timeout=120",
            "--cilium-request-timeout=30",
        ],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    reader = threading.Thread(
        target=lambda: output.extend(proc.stdout or ()), daemon=True
    )  # the output, read while the run goes on
    reader.start()
    try:
        # the pre checks' LIST of nodes is held: the run is reading the cluster
        end = time.monotonic() + 180
        while not box.held.wait(0.5) and proc.poll() is None and time.monotonic() < end:
            pass
        assert box.held.is_set(), "".join(output)
        time.sleep(1.0)
        assert proc.poll() is None, "".join(output)
        assert _releases(sandbox, namespace) == ["cilium", "cilium-preflight"]
        signalled = time.monotonic()
        proc.send_signal(case.sig)
        proc.wait(timeout=60)
        elapsed = time.monotonic() - signalled
        reader.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(10)
        if proc.stdout is not None:
            proc.stdout.close()
    text = "".join(output)
    assert elapsed < ENDS_WITHIN_S, f"the run ended {elapsed:.1f}s after the signal:\n{text}"
    assert proc.returncode == case.exit, text
    assert case.line in text
    assert "cilium-upgrade: interrupted; cleaning up within" in text
    assert "uninstalled cilium-preflight during clean-up" in text
    assert "the values saved before the upgrade are in" in text
    assert "Traceback" not in text
    assert _releases(sandbox, namespace) == ["cilium"]  # the pre-flight is gone
    verdicts = junit_verdicts(junit, whole_failure=False)
    assert verdicts["cilium-upgrade.prepare::snapshot_values"] == "passed", verdicts
    assert box.held_count >= 1
    leases = sandbox.kubectl("get", "leases", "-n", namespace, "-o", "name")
    assert "cilium-upgrade-lock" not in leases  # released within the clean-up's time
    print(f"ended {elapsed:.1f}s after {case.sig.name}")
