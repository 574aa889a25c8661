"""The Kubernetes adapter's error translation and bounded retries (no cluster needed).

Requests are replaced by functions raising what the client raises; the retry and
translation logic under test is the adapter's own.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubeconfigs import Response, write_kubeconfig
from kubernetes.client.exceptions import ApiException

from pytest_cilium_upgrade.adapters.kube import Deadlines, Kube
from pytest_cilium_upgrade.errors import (
    ApiError,
    ApiUnreachable,
    Forbidden,
    GateError,
    NoAnswer,
    NotFound,
    Timeout,
)


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    return write_kubeconfig(tmp_path / "kubeconfig")


def _api_error(
    status: int, message: str = "boom", headers: dict[str, str] | None = None
) -> ApiException:
    exc = ApiException(status=status, reason="Reason")
    exc.body = '{"kind":"Status","message":"' + message + '"}'
    exc.headers = headers or {}
    return exc


class Script:
    """A request that raises the given errors in turn, then returns ``result``."""

    def __init__(self, *errors: BaseException, result: Any = "ok") -> None:
        self.errors = list(errors)
        self.calls = 0
        self.result = result

    def __call__(self) -> Any:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.result


def _kube(kubeconfig: Path, sleeps: list[float], retries: int = 3) -> Kube:
    return Kube(str(kubeconfig), retries=retries, backoff=0.5, sleep=sleeps.append)


def test_429_is_retried_honouring_retry_after(kubeconfig: Path) -> None:
    sleeps: list[float] = []
    kube = _kube(kubeconfig, sleeps)
    script = Script(_api_error(429, headers={"Retry-After": "7"}), _api_error(503))
    assert kube._call("list pods", "list", "pods", "ns", script) == "ok"
    assert script.calls == 3
    assert sleeps[0] == 7.0
    assert 0.5 * 2 <= sleeps[1] <= 0.5 * 2 * 1.5  # exponential backoff with jitter
    assert kube.requests.total == 3


def test_retries_are_bounded(kubeconfig: Path) -> None:
    sleeps: list[float] = []
    kube = _kube(kubeconfig, sleeps, retries=2)
    script = Script(*[_api_error(500, "etcd leader changed") for _ in range(10)])
    with pytest.raises(ApiError, match="etcd leader changed") as info:
        kube._call("list pods", "list", "pods", "ns", script)
    assert info.value.status == 500
    assert script.calls == 3
    assert len(sleeps) == 2


def test_retry_after_is_capped(kubeconfig: Path) -> None:
    sleeps: list[float] = []
    kube = _kube(kubeconfig, sleeps)
    kube._call("x", "list", "pods", "ns", Script(_api_error(429, headers={"Retry-After": "3600"})))
    assert sleeps == [30.0]


def test_forbidden_names_verb_resource_and_namespace(kubeconfig: Path) -> None:
    kube = _kube(kubeconfig, [])
    with pytest.raises(Forbidden) as info:
        kube._call(
            "list pods",
            "list",
            "pods",
            "kube-system",
            Script(_api_error(403, 'pods is forbidden: User "x" cannot list')),
        )
    assert str(info.value).startswith("forbidden: cannot list pods in namespace kube-system")
    assert (info.value.verb, info.value.resource) == ("list", "pods")


def test_not_found_and_long_bodies_are_truncated(kubeconfig: Path) -> None:
    kube = _kube(kubeconfig, [])
    with pytest.raises(NotFound, match=r"daemonsets\.apps in namespace ns"):
        kube._call("get", "get", "daemonsets.apps", "ns", Script(_api_error(404)))
    raw = ApiException(status=502, reason="Bad Gateway")
    raw.body = "<html>" + "x" * 5000
    raw.headers = {}
    with pytest.raises(ApiError) as info:
        _kube(kubeconfig, [], retries=0)._call("get", "get", "pods", "ns", Script(raw))
    assert len(str(info.value)) < 700


def test_connection_refused_is_unreachable_after_bounded_retries(kubeconfig: Path) -> None:
    sleeps: list[float] = []
    kube = _kube(kubeconfig, sleeps, retries=2)
    refused = urllib3.exceptions.MaxRetryError(
        None,  # type: ignore[arg-type]
        "/api",
        reason=urllib3.exceptions.NewConnectionError(None, "Connection refused"),  # type: ignore[arg-type]
    )
    with pytest.raises(ApiUnreachable, match=r"cannot reach the Kubernetes API at https://127"):
        kube._call("version", "get", "version", None, Script(refused))
    reset = urllib3.exceptions.ProtocolError("Connection aborted")
    assert kube._call("version", "get", "version", None, Script(reset, reset)) == "ok"
    assert len(sleeps) == 2


def test_refused_no_connection_and_no_answer_are_told_apart(kubeconfig: Path) -> None:
    """urllib3 2 derives NewConnectionError from ConnectTimeoutError: refused is no timeout."""
    sleeps: list[float] = []
    kube = Kube(str(kubeconfig), request_timeout=2, sleep=sleeps.append)
    refused = urllib3.exceptions.NewConnectionError(
        None,  # type: ignore[arg-type]
        "Failed to establish a new connection: [Errno 111] Connection refused",
    )
    no_host = urllib3.exceptions.NameResolutionError("nowhere.invalid", None, OSError("nope"))  # type: ignore[arg-type]
    for error in (refused, no_host):
        with pytest.raises(ApiUnreachable, match=r"cannot reach the Kubernetes API at https://127"):
            kube._call("version", "get", "version", None, Script(error))
    no_connection = urllib3.exceptions.ConnectTimeoutError(None, "timed out")
    with pytest.raises(Timeout) as connect:
        kube._call("version", "get", "version", None, Script(no_connection))
    assert str(connect.value) == (
        "could not connect to the Kubernetes API at https://127.0.0.1:1 within 2s"
    )
    assert not isinstance(connect.value, NoAnswer)  # never reached: unreachable
    no_answer = urllib3.exceptions.ReadTimeoutError(None, "/api", "Read timed out.")  # type: ignore[arg-type]
    with pytest.raises(NoAnswer) as slow:
        kube._call("list pods", "list", "pods", "ns", Script(no_answer))
    assert str(slow.value) == (
        "the Kubernetes API at https://127.0.0.1:1 did not answer list pods within 2s"
    )
    assert sleeps == []  # none of them is retried
    assert kube.requests.counts == {"version": 3, "list pods": 1}


def test_real_sockets_refused_and_never_answered(tmp_path: Path) -> None:
    """What urllib3 really raises, on loopback: a closed port, and one that never answers."""

    def kubeconfig(port: int) -> str:
        return str(write_kubeconfig(tmp_path / f"kubeconfig-{port}", f"http://127.0.0.1:{port}"))

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
    with socket.socket() as silent:  # listens: connections complete, nothing answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        sleeps: list[float] = []
        started = time.monotonic()
        with (
            Kube(
                kubeconfig(closed_port), request_timeout=5, retries=0, sleep=sleeps.append
            ) as kube,
            pytest.raises(ApiUnreachable),
        ):
            kube.server_version()
        assert time.monotonic() - started < 4  # at once, not after the timeout
        with Kube(
            kubeconfig(silent.getsockname()[1]), request_timeout=0.5, sleep=sleeps.append
        ) as kube:
            with pytest.raises(NoAnswer, match=r"did not answer get version within 0\.5s"):
                kube.server_version()
            assert kube.requests.counts == {"version": 1}
        assert sleeps == []


def _trickle(listener: socket.socket, stop: threading.Event) -> None:
    """Answer one request with headers at once, then a byte every 50 ms (5 s at most)."""
    conn, _ = listener.accept()
    with conn:
        request = b""
        while b"\r\n\r\n" not in request:
            request += conn.recv(4096)
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
        )
        deadline = time.monotonic() + 5
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                conn.sendall(b" ")
            except OSError:
                return  # the client hung up
            time.sleep(0.05)


def test_a_body_that_trickles_in_ends_at_the_request_timeout(tmp_path: Path) -> None:
    # every socket read gets a byte well within the timeout: only a deadline for the
    # whole request ends it
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        server = f"http://127.0.0.1:{listener.getsockname()[1]}"
        stop = threading.Event()
        sender = threading.Thread(target=_trickle, args=(listener, stop), daemon=True)
        sender.start()
        try:
            with Kube(
                str(write_kubeconfig(tmp_path / "kubeconfig", server)),
                request_timeout=0.5,
                sleep=lambda s: None,
            ) as kube:
                started = time.monotonic()
                with pytest.raises(NoAnswer, match=r"did not answer list nodes within 0\.5s"):
                    kube.list_nodes()
                elapsed = time.monotonic() - started
                assert kube.requests.counts == {"list nodes": 1}  # not retried
        finally:
            stop.set()
            sender.join(10)
    assert 0.5 <= elapsed < 2.5, elapsed


def test_deadlines_shut_down_the_socket_of_a_read_still_running() -> None:
    deadlines = Deadlines()
    late, peer = socket.socketpair()
    prompt, prompt_peer = socket.socketpair()
    with late, peer, prompt, prompt_peer:
        with deadlines.watching(time.monotonic() + 0.2, late) as watch:
            assert late.recv(16) == b""  # blocked until shut down, then the end
        assert watch.fired
        with deadlines.watching(time.monotonic() + 30, prompt) as in_time:
            prompt_peer.sendall(b"x")
            assert prompt.recv(16) == b"x"
        assert not in_time.fired
        prompt_peer.sendall(b"y")  # a watch that ended leaves its socket alone
        assert prompt.recv(16) == b"y"
    deadlines.stop()


def test_bad_kubeconfig_and_unknown_context_name_the_file(tmp_path: Path, kubeconfig: Path) -> None:
    broken = tmp_path / "broken"
    broken.write_text("clusters: [")
    with pytest.raises(GateError, match=r"kubeconfig .*broken"):
        Kube(str(broken))
    with pytest.raises(GateError, match=r"cannot use kubeconfig .*kubeconfig.*nope"):
        Kube(str(kubeconfig), context="nope")
    with pytest.raises(GateError, match=r"missing"):
        Kube(str(tmp_path / "missing"))


def test_requests_by_path_carry_credentials_and_errors_go_through_the_same_translation(
    kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sleeps: list[float] = []
    kube = _kube(kubeconfig, sleeps)
    sent: list[tuple[str, str, dict[str, str], Any]] = []
    answers = [
        Response(429, b'{"kind":"Status","message":"slow down"}', {"Retry-After": "2"}),
        Response(200, b'{"items":[{"metadata":{"name":"p"}}]}'),
        Response(403, b'{"kind":"Status","message":"pods \\"p\\" is forbidden"}'),
    ]

    def call_api(
        method: str,
        url: str,
        headers: dict[str, str],
        body: Any,
        post: Any,
        _request_timeout: Any = None,
    ) -> Response:
        sent.append((method, url, headers, body))
        return answers.pop(0)

    monkeypatch.setattr(kube._api, "call_api", call_api)
    pods = kube.list_pods("kube-system", "k8s-app=cilium")
    assert pods == [{"metadata": {"name": "p"}, "kind": "Pod"}]
    assert sleeps == [2.0]
    method, url, headers, _ = sent[-1]
    assert (method, url) == (
        "GET",
        "https://127.0.0.1:1/api/v1/namespaces/kube-system/pods"
        "?labelSelector=k8s-app%3Dcilium&limit=100",
    )
    assert headers["authorization"] == "Bearer t"
    assert headers["Accept"] == "application/json"
    with pytest.raises(Forbidden, match='pods "p" is forbidden'):
        kube.pod_log("kube-system", "p", "cnp-validator", previous=True)
    assert sent[-1][1] == (
        "https://127.0.0.1:1/api/v1/namespaces/kube-system/pods/p/log"
        "?container=cnp-validator&limitBytes=1048576&previous=true"
    )
    assert kube.requests.counts == {"list pods": 2, "read pod log": 1}
