"""Real chart archives served as a Helm repository on 127.0.0.1.

The repository is what ``https://helm.cilium.io/`` is: packaged charts plus an
``index.yaml`` built by the real ``helm repo index DIR --url URL``, over HTTP. So
``helm repo add cilium URL``, ``helm search repo cilium/cilium --versions`` and
``helm install cilium/cilium --version X`` behave as against the public repository,
including a client's stale local index after :meth:`ChartRepository.add` publishes a
version (until ``helm repo update``).
"""

from __future__ import annotations

import functools
import http.server
import shutil
import socket
import socketserver
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from cilium_sandbox.build import Builder
from cilium_sandbox.charts import CHART_NAME, archive_name
from cilium_sandbox.errors import SandboxError
from pytest_cilium_upgrade.versions import Version

LOOPBACK = "127.0.0.1"
INDEX_TIMEOUT = 120.0


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the repository directory, quietly, and tells the repository what was fetched."""

    def __init__(
        self,
        request: socket.socket | tuple[bytes, socket.socket],
        client_address: tuple[str, int],
        server: socketserver.BaseServer,
        *,
        repository: ChartRepository,
        directory: str,
    ) -> None:
        self.repository = repository
        super().__init__(request, client_address, server, directory=directory)

    def do_GET(self) -> None:
        name = self.path.split("?", 1)[0].rsplit("/", 1)[-1]
        self.repository._fetched(name)
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


class ChartRepository:
    """A Helm chart repository on ``http://127.0.0.1:PORT`` serving ``archives``.

    ``archives`` maps a version to its ``cilium-X.tgz``; they are linked (never copied
    into the project) into ``directory`` (a temporary directory by default). Use as a
    context manager, or :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        archives: Mapping[str, Path],
        *,
        helm: Path | None = None,
        directory: Path | None = None,
    ) -> None:
        self.helm = helm or Builder().binaries().helm3
        self._own_directory = directory is None
        self.directory = directory or Path(tempfile.mkdtemp(prefix="cilium-chart-repo-"))
        self._initial = dict(archives)
        self._served: dict[str, Path] = {}
        self._downloads: set[str] = set()
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ state
    @property
    def url(self) -> str:
        if self._server is None:
            raise SandboxError("the chart repository is not running")
        return f"http://{LOOPBACK}:{self._server.server_address[1]}"

    @property
    def versions(self) -> list[str]:
        """The versions served, oldest first."""
        return sorted(self._served, key=Version.parse)

    @property
    def downloads(self) -> set[str]:
        """The versions whose archive a client has fetched so far."""
        with self._lock:
            return set(self._downloads)

    def _fetched(self, name: str) -> None:
        prefix, suffix = f"{CHART_NAME}-", ".tgz"
        if name.startswith(prefix) and name.endswith(suffix):
            with self._lock:
                self._downloads.add(name[len(prefix) : -len(suffix)])

    # ------------------------------------------------------------------ content
    def add(self, archives: Mapping[str, Path]) -> None:
        """Publish more versions: link their archives and rebuild the index."""
        self._link(archives)
        if self._server is not None:
            self.reindex()

    def _link(self, archives: Mapping[str, Path]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for version, source in archives.items():
            if not source.is_file():
                raise SandboxError(f"no chart archive at {source}")
            link = self.directory / archive_name(version)
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(source.resolve())
            self._served[version] = source

    def reindex(self) -> None:
        """``helm repo index DIR --url URL``: the index of every archive in the directory."""
        if not self.helm.is_file():
            raise SandboxError(f"no helm binary at {self.helm} (build it: cilium-sandbox build)")
        argv = [str(self.helm), "repo", "index", str(self.directory), "--url", self.url]
        try:
            proc = subprocess.run(
                argv, capture_output=True, text=True, timeout=INDEX_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired:
            raise SandboxError(f"helm repo index took more than {INDEX_TIMEOUT:g}s") from None
        if proc.returncode != 0:
            raise SandboxError(f"helm repo index {self.directory} failed: {proc.stderr.strip()}")

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> ChartRepository:
        if self._server is not None:
            return self
        self._link(self._initial)
        handler = functools.partial(_Handler, repository=self, directory=str(self.directory))
        server = http.server.ThreadingHTTPServer((LOOPBACK, 0), handler)
        server.daemon_threads = True
        self._server = server
        try:
            self.reindex()
        except BaseException:
            self.stop()
            raise
        self._thread = threading.Thread(
            target=server.serve_forever, name="cilium-chart-repo", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            if self._thread is not None:
                server.shutdown()
                self._thread.join(timeout=10)
                self._thread = None
            server.server_close()
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> ChartRepository:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
