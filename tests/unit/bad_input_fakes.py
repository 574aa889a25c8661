"""What the bad-input tests run the gate against, with no cluster and no real helm.

* :class:`FakeApi`: a loopback HTTP server standing in for an API endpoint. By default
  it answers as a small, healthy API server would (an empty cluster, every access
  allowed, the release ``cilium`` as a Helm record); a test replaces any answer with
  what a broken endpoint sends: an HTML page, plain text, a JSON array, a 502.
* :func:`fake_helm`: a ``helm`` script answering each subcommand from files, so a test
  can make it print bytes that are not UTF-8, JSON of other types, or hang.
* :class:`Case` and :func:`run_case`: one bad input, run as the user would run it (the
  gate in a pytester run), which must end with one line naming the culprit, a
  non-zero exit status and no traceback. ``docs/reliability.md`` lists every case,
  with its command, exit status and that line (``tests/unit/test_reliability_doc.py``).
"""

from __future__ import annotations

import base64
import gzip
import http.server
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
NS = "kube-system"
CHART_VERSIONS = ("1.15.17", "1.15.18", "1.16.14", "1.16.15")
CURRENT = "1.15.18"
TARGET = "1.16.15"

Answer = tuple[int, str, bytes]  # status, content type, body
JSONDict = dict[str, Any]


def _json(data: Any, status: int = 200) -> Answer:
    return status, "application/json", json.dumps(data).encode()


def helm_release(name: str = "cilium", version: Any = 1, chart: str = CURRENT) -> JSONDict:
    """A release as Helm keeps it in its record (the fields the gate reads)."""
    return {
        "name": name,
        "namespace": NS,
        "version": version,
        "info": {"status": "deployed", "last_deployed": "2025-01-01T00:00:00Z"},
        "chart": {"metadata": {"name": "cilium", "version": chart, "appVersion": chart}},
        "config": {},
    }


def release_secret(release: JSONDict, *, encoded: str | None = None) -> JSONDict:
    """Helm's Secret for ``release``: gzipped JSON, base64 (and the API's base64 on top)."""
    if encoded is None:
        helm_b64 = base64.b64encode(gzip.compress(json.dumps(release).encode()))
        encoded = base64.b64encode(helm_b64).decode()
    name, revision = release.get("name", "cilium"), release.get("version", 1)
    return {
        "kind": "Secret",
        "type": "helm.sh/release.v1",
        "metadata": {
            "name": f"sh.helm.release.v1.{name}.v{revision}",
            "namespace": NS,
            "labels": {"owner": "helm", "name": str(name), "version": str(revision)},
        },
        "data": {"release": encoded},
    }


class FakeApi:
    """An HTTP server on 127.0.0.1 answering as a small API server, or as told.

    ``answers`` maps a request (``"GET /version/"``, or a path prefix such as
    ``"GET /api/v1/namespaces/kube-system/secrets"``) to what is sent back instead.
    ``requests`` records every request line, in order.
    """

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        self.secrets: list[JSONDict] = [release_secret(helm_release())]
        self.requests: list[str] = []
        self.credentials: list[str] = []  # the Authorization header of each request
        self._lock = threading.Lock()
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with api._lock:
                    api.credentials.append(self.headers.get("Authorization") or "")
                status, kind, data = api.answer(self.command, self.path, body)
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def answer(self, method: str, path: str, body: bytes) -> Answer:
        line = f"{method} {path}"
        with self._lock:
            self.requests.append(line)
        bare = line.split("?", 1)[0]
        for request, answer in self.answers.items():
            if bare == request or bare.startswith(request.rstrip("/") + "/") or line == request:
                return answer
        return self.healthy(method, path.split("?", 1)[0], body)

    def healthy(self, method: str, path: str, body: bytes) -> Answer:
        if path == "/version/" or path == "/version":
            return _json({"major": "1", "minor": "30", "gitVersion": "v1.30.4"})
        if path.endswith("/selfsubjectaccessreviews"):
            review = json.loads(body or b"{}")
            return _json({**review, "status": {"allowed": True}}, 201)
        if path == "/api":
            return _json({"kind": "APIVersions", "versions": ["v1"]})
        if path == "/apis":
            return _json({"kind": "APIGroupList", "groups": []})
        if path == "/api/v1":
            return _json({"kind": "APIResourceList", "groupVersion": "v1", "resources": []})
        if path.endswith("/secrets"):
            return _json({"kind": "SecretList", "items": self.secrets})
        if method == "GET" and path.rsplit("/", 1)[-1] in (
            "nodes",
            "pods",
            "daemonsets",
            "deployments",
            "events",
            "configmaps",
        ):
            return _json({"kind": "List", "items": []})
        return _json({"kind": "Status", "code": 404, "message": f"{path} not found"}, 404)

    def count(self, line: str) -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.split("?", 1)[0] == line)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@pytest.fixture
def api() -> Iterator[FakeApi]:
    server = FakeApi()
    try:
        yield server
    finally:
        server.stop()


def write_kubeconfig(path: Path, server: str, user: Mapping[str, Any] | None = None) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": dict(user or {"token": "t"})}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            }
        )
    )
    path.chmod(0o600)
    return path


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def fake_helm(directory: Path, **answers: tuple[int, bytes | str, bytes | str]) -> Path:
    """A ``helm`` script in ``directory`` answering ``helm <key> ...`` with (exit, out, err).

    The key is the subcommand (``version``, ``search``, ``status``, ``history``,
    ``template``, ``install``, ...) or ``get-<what>`` (``get-values``, ``get-metadata``).
    By default it is Helm 3.22 whose repository offers :data:`CHART_VERSIONS` and whose
    other commands print nothing and succeed.
    """
    directory.mkdir(parents=True, exist_ok=True)
    search = json.dumps([{"name": "cilium/cilium", "version": v} for v in CHART_VERSIONS])
    defaults: dict[str, tuple[int, bytes | str, bytes | str]] = {
        "version": (0, "v3.22.0+gabc1234\n", ""),
        "search": (0, search, ""),
    }
    for key, (code, out, err) in {**defaults, **answers}.items():
        for suffix, content in (("out", out), ("err", err)):
            data = content.encode() if isinstance(content, str) else content
            (directory / f"{key}.{suffix}").write_bytes(data)
        (directory / f"{key}.code").write_text(str(code))
    return executable(
        directory / "helm",
        "#!/bin/sh\n"
        f'd="{directory}"\n'
        'k="$1"; [ "$1" = get ] && k="get-$2"\n'
        '[ -f "$d/$k.out" ] && cat "$d/$k.out"\n'
        '[ -f "$d/$k.err" ] && cat "$d/$k.err" >&2\n'
        '[ -f "$d/$k.code" ] && exit "$(cat "$d/$k.code")"\n'
        "exit 0\n",
    )


@dataclass(frozen=True)
class Case:
    """One bad input, and its row of docs/reliability.md.

    ``command`` is what follows ``pytest --cilium-upgrade`` (the options and the
    scenario), ``line`` the line the user sees, where ``<server>`` and ``<dir>`` stand
    for the address of the stand-in API and the run's directory: the output must hold
    it verbatim. ``args`` are the command's options as run, with the test's own
    narrowing (``-k``) where other checks would fail too.
    """

    id: str
    command: str
    line: str
    exit: int = 1
    args: tuple[str, ...] = ()
    prepare: Callable[[Env], list[str]] | None = field(default=None, repr=False)

    @property
    def row(self) -> str:
        """The case's row in docs/reliability.md."""
        code = f"`` {self.line} ``" if "`" in self.line else f"`{self.line}`"
        return f"| {self.id} | {self.command} | {self.exit} | {code} |"


@dataclass
class Env:
    """What a case's ``prepare`` may change: the API, the files of the run, the environment."""

    api: FakeApi
    path: Path
    monkeypatch: pytest.MonkeyPatch
    helm_answers: dict[str, tuple[int, bytes | str, bytes | str]] = field(default_factory=dict)

    def file(self, name: str, text: str) -> Path:
        target = self.path / name
        target.write_text(text)
        return target


@dataclass(frozen=True)
class Outcome:
    ret: int
    text: str


def run_gate(pytester: pytest.Pytester, env: Env, *args: str) -> Outcome:
    """The gate in a pytester run against ``env``'s API and a fake helm: what the user sees."""
    kubeconfig = env.path / "kubeconfig"
    if not kubeconfig.exists():
        write_kubeconfig(kubeconfig, env.api.url)
    helm = fake_helm(env.path / "fake-helm", **env.helm_answers)
    defaults = {
        "--cilium-kubeconfig": str(kubeconfig),
        "--cilium-helm": str(helm),
        "--cilium-values-snapshot": str(env.path / "values.yaml"),
        "--cilium-state-file": str(env.path / "state.json"),
        "--cilium-request-timeout": "5",
        "--cilium-timeout": "20",
    }
    given = {a.split("=", 1)[0] for a in args}
    pytester.makeini("[pytest]\n")
    result = pytester.runpytest(
        "--cilium-upgrade",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        "-rA",
        *[f"{k}={v}" for k, v in defaults.items() if k not in given],
        *args,
    )
    return Outcome(int(result.ret), result.stdout.str() + result.stderr.str())


def run_case(case: Case, pytester: pytest.Pytester, env: Env) -> Outcome:
    """Run ``case`` and check what every bad input must end with."""
    args = [*case.args, *(case.prepare(env) if case.prepare else [])]
    outcome = run_gate(pytester, env, *args)
    line = case.line.replace("<server>", env.api.url).replace("<dir>", str(env.path))
    assert outcome.ret == case.exit, outcome.text
    assert line in outcome.text, outcome.text
    assert "Traceback" not in outcome.text, outcome.text
    assert "INTERNALERROR" not in outcome.text, outcome.text
    return outcome


def doc_rows(section: str) -> list[str]:
    """The case rows of the table under ``## <section>`` in docs/reliability.md."""
    text = DOC.read_text()
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    body = text[start : end if end != -1 else len(text)]
    rows = [ln for ln in body.splitlines() if ln.startswith("| ") and "---" not in ln]
    return rows[1:]  # after the header
