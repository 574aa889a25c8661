"""The Kubernetes adapter's workload watch across dropped and refused connections.

As in ``test_kube_errors.py``, the client's list function is replaced by one that
raises what the client raises (or returns a streamed watch response); reconnecting,
the outage bookkeeping and the errors are the adapter's own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubeconfigs import write_kubeconfig
from kubernetes.client.exceptions import ApiException

from pytest_cilium_upgrade.adapters.kube import Kube
from pytest_cilium_upgrade.errors import ApiUnreachable, Forbidden


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    return write_kubeconfig(tmp_path / "kubeconfig")


REFUSED = urllib3.exceptions.NewConnectionError(
    None,  # type: ignore[arg-type]
    "Failed to establish a new connection: [Errno 111] Connection refused",
)


def ds(ready: int) -> dict[str, Any]:
    return {
        "metadata": {"name": "cilium", "namespace": "kube-system"},
        "status": {"numberReady": ready, "desiredNumberScheduled": 8},
    }


class Response:
    """A watch response: its events as JSON lines, then ``drop`` raised mid-stream, if any."""

    def __init__(
        self, *objects: dict[str, Any], drop: BaseException | None = None, lasts: float = 0.0
    ) -> None:
        self.status = 200
        self.objects = objects
        self.drop = drop
        self.lasts = lasts

    def stream(self, amt: Any = None, decode_content: Any = None) -> Iterator[bytes]:
        for obj in self.objects:
            yield (json.dumps({"type": "MODIFIED", "object": obj}) + "\n").encode()
        if self.drop is not None:
            raise self.drop
        time.sleep(self.lasts)  # the server ends the watch (timeoutSeconds)

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


class Server:
    """Answers each watch with the next scripted outcome, then with ``then``."""

    def __init__(self, *script: BaseException | Response, then: BaseException | Response) -> None:
        self.script = list(script)
        self.then = then
        self.requests: list[dict[str, Any]] = []

    def list_namespaced_daemon_set(self, namespace: str, **kwargs: Any) -> Response:
        self.requests.append(kwargs)
        outcome = self.script.pop(0) if self.script else self.then
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def watching(kubeconfig: Path, server: Server, sleeps: list[float]) -> Kube:
    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(min(seconds, 0.02))

    kube = Kube(str(kubeconfig), sleep=sleep)
    kube.__dict__["_apps"] = server  # the client's AppsV1Api
    return kube


def test_refused_then_dropped_connections_are_reopened_and_the_current_state_comes_first(
    kubeconfig: Path,
) -> None:
    server = Server(
        REFUSED,
        REFUSED,
        Response(ds(6), drop=urllib3.exceptions.ProtocolError("Connection broken")),
        REFUSED,
        Response(ds(7), ds(8)),
        then=REFUSED,
    )
    sleeps: list[float] = []
    kube = watching(kubeconfig, server, sleeps)
    seen = []
    for obj in kube.watch_workload("DaemonSet", "kube-system", "cilium", 30):
        assert obj["kind"] == "DaemonSet"
        seen.append(obj["status"]["numberReady"])
        if len(seen) == 3:
            break
    assert seen == [6, 7, 8]
    assert len(server.requests) == 5  # each failure is followed by a new watch
    assert sleeps == [1.0, 1.0, 1.0, 1.0]  # at most one attempt a second
    for request in server.requests:
        assert request["watch"] is True
        assert request["field_selector"] == "metadata.name=cilium"
        assert "resource_version" not in request  # a new watch starts from the current state
    assert kube.requests.counts == {"watch daemonsets.apps": 5}


def test_api_still_unreachable_at_the_deadline_is_raised_with_since_and_last_error(
    kubeconfig: Path,
) -> None:
    server = Server(
        Response(ds(6), drop=urllib3.exceptions.ProtocolError("Connection broken")), then=REFUSED
    )
    kube = watching(kubeconfig, server, [])
    seen: list[int] = []

    def consume() -> None:
        for obj in kube.watch_workload("DaemonSet", "kube-system", "cilium", 0.3):
            seen.append(obj["status"]["numberReady"])

    started = time.monotonic()
    with pytest.raises(ApiUnreachable) as info:
        consume()
    assert time.monotonic() - started < 2  # gives up at its deadline
    assert seen == [6]
    message = str(info.value)
    assert message.startswith(
        "the Kubernetes API server at https://127.0.0.1:1 has been unreachable since "
    )
    assert " UTC (0s, " in message
    assert "to watch daemonsets.apps kube-system/cilium failed" in message
    assert message.endswith(
        "last error: Failed to establish a new connection: [Errno 111] Connection refused"
    )


def test_api_answering_only_503_counts_as_unreachable(kubeconfig: Path) -> None:
    unavailable = ApiException(status=503, reason="Service Unavailable")
    unavailable.body = '{"kind":"Status","message":"apiserver is shutting down"}'
    kube = watching(kubeconfig, Server(then=unavailable), [])
    with pytest.raises(
        ApiUnreachable,
        match=r"last error: 503 Service Unavailable: "
        r"apiserver is shutting down$",
    ):
        list(kube.watch_workload("DaemonSet", "kube-system", "cilium", 0.2))


def test_an_outage_that_ended_before_the_deadline_is_no_error(kubeconfig: Path) -> None:
    server = Server(REFUSED, REFUSED, Response(ds(7)), then=Response(lasts=0.05))
    kube = watching(kubeconfig, server, [])
    seen = [
        o["status"]["numberReady"]
        for o in kube.watch_workload("DaemonSet", "kube-system", "cilium", 0.4)
    ]
    assert seen == [7]  # the wait ends at its deadline; the caller judges the state


def test_a_refused_watch_fails_at_once(kubeconfig: Path) -> None:
    forbidden = ApiException(status=403, reason="Forbidden")
    forbidden.body = '{"kind":"Status","message":"cannot watch resource daemonsets"}'
    server = Server(then=forbidden)
    kube = watching(kubeconfig, server, [])
    with pytest.raises(
        Forbidden,
        match=r"cannot watch daemonsets\.apps in namespace "
        r"kube-system: cannot watch resource daemonsets",
    ):
        list(kube.watch_workload("DaemonSet", "kube-system", "cilium", 30))
    assert len(server.requests) == 1
