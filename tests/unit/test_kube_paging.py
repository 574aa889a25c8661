"""LISTs read in pages: ``limit`` and ``continue``, joined, restarted once on 410 Gone.

The client's transport (``ApiClient.call_api``) is replaced by a fake API server that
pages a collection as kube-apiserver does: ``limit`` items from where the ``continue``
token says, the next token in ``metadata.continue``, none on the last page. The paging
and its bookkeeping are the adapter's own.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from kubeconfigs import Response, write_kubeconfig

from pytest_cilium_upgrade.adapters.kube import RECORDS_FIRST_LIMIT, Kube
from pytest_cilium_upgrade.adapters.kube import paging as kube_paging
from pytest_cilium_upgrade.errors import ApiError, NotAnApi
from pytest_cilium_upgrade.snapshot.model import Pod
from pytest_cilium_upgrade.snapshot.readers import ModelLister

NS = "kube-system"
PODS = f"/api/v1/namespaces/{NS}/pods"


def pod(i: int, padding: int = 0) -> dict[str, Any]:
    return {
        "metadata": {"name": f"cilium-{i:05d}", "namespace": NS, "labels": {"pad": "x" * padding}},
        "spec": {"nodeName": f"worker-{i}"},
        "status": {"phase": "Running"},
    }


def gone(message: str = "The provided continue parameter is too old") -> Response:
    body = {"kind": "Status", "status": "Failure", "reason": "Expired", "code": 410}
    return Response(410, json.dumps({**body, "message": message}).encode())


class Server:
    """Pages ``items`` as the API server does; ``script`` answers some requests instead.

    A token holds the offset of the next item and a revision; it is base64 with ``=``
    and ``/``, which must reach the server URL-encoded and back intact.
    """

    def __init__(self, items: list[dict[str, Any]], *script: Response | None) -> None:
        self.items = items
        self.script = list(script)  # None: answer normally
        self.sent: list[dict[str, list[str]]] = []
        self.revision = 7

    def token(self, offset: int) -> str:
        raw = json.dumps({"rv": self.revision, "start": offset, "pad": "??>>"}).encode()
        token = base64.b64encode(raw).decode()
        assert "=" in token or "/" in token or "+" in token
        return token

    def call_api(self, method: str, url: str, *_: Any, **__: Any) -> Response:
        parts = urlsplit(url)
        assert parts.path == PODS
        query = parse_qs(parts.query)
        self.sent.append(query)
        if self.script:
            answer = self.script.pop(0)
            if answer is not None:
                return answer
        limit = int(query["limit"][0])
        start = 0
        if "continue" in query:
            state = json.loads(base64.b64decode(query["continue"][0]))
            assert state["pad"] == "??>>"
            start = int(state["start"])
        page = self.items[start : start + limit]
        meta: dict[str, Any] = {"resourceVersion": str(self.revision)}
        if start + limit < len(self.items):
            meta["continue"] = self.token(start + limit)
            meta["remainingItemCount"] = len(self.items) - start - limit
        return Response(
            200, json.dumps({"kind": "PodList", "metadata": meta, "items": page}).encode()
        )

    def limits(self) -> list[int]:
        return [int(q["limit"][0]) for q in self.sent]

    def tokens(self) -> list[str | None]:
        return [q["continue"][0] if "continue" in q else None for q in self.sent]


@pytest.fixture
def kube(tmp_path: Path) -> Kube:
    return Kube(str(write_kubeconfig(tmp_path / "kubeconfig")), sleep=lambda _: None)


def serve(kube: Kube, monkeypatch: pytest.MonkeyPatch, server: Server) -> Server:
    monkeypatch.setattr(kube._api, "call_api", server.call_api)
    return server


def names(items: list[dict[str, Any]]) -> list[str]:
    return [i["metadata"]["name"] for i in items]


def test_pages_are_joined_in_order_each_item_once_passing_the_continue_token(
    kube: Kube, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = [pod(i) for i in range(1234)]
    server = serve(kube, monkeypatch, Server(items))
    pods = kube.list_pods(NS)
    assert names(pods) == names(items)
    assert all(p["kind"] == "Pod" for p in pods)
    # the first page asks for FIRST_LIMIT; small items then fill pages of PAGE_LIMIT
    assert server.limits() == [100, 500, 500, 500]
    tokens = server.tokens()
    assert tokens[0] is None
    assert tokens[1:] == [server.token(100), server.token(600), server.token(1100)]
    assert kube.requests.counts == {"list pods": 4}
    assert kube.requests.pages == {"list pods": 4}
    assert (kube.requests.total, kube.requests.page_total) == (4, 4)


def test_one_page_is_one_request_with_a_limit(kube: Kube, monkeypatch: pytest.MonkeyPatch) -> None:
    server = serve(kube, monkeypatch, Server([pod(i) for i in range(3)]))
    assert len(kube.list_pods(NS, "k8s-app=cilium")) == 3
    assert server.sent == [{"labelSelector": ["k8s-app=cilium"], "limit": ["100"]}]
    assert kube.requests.counts == {"list pods": 1}
    assert kube.requests.pages == {"list pods": 1}


def test_pages_are_sized_by_the_largest_item_seen(
    kube: Kube, monkeypatch: pytest.MonkeyPatch
) -> None:
    # small items first, then items of about 20 KB from the 50th on: from the second
    # page on, a page holds as many 20 KB items as fit in PAGE_BYTES, even where the
    # items are small again
    items = [pod(i) for i in range(50)]
    items += [pod(i, padding=20_000) for i in range(50, 650)]
    items += [pod(i) for i in range(650, 1200)]
    server = serve(kube, monkeypatch, Server(items))
    assert names(kube.list_pods(NS)) == names(items)
    limits = server.limits()
    assert limits[0] == kube_paging.FIRST_LIMIT
    per_page = limits[1]
    assert 190 <= per_page <= kube_paging.PAGE_BYTES // 20_000, limits
    assert set(limits[1:]) == {per_page}
    assert kube.requests.largest_page <= kube_paging.PAGE_BYTES + 1000  # the list's envelope
    assert kube.requests.largest_page > 0.9 * kube_paging.PAGE_BYTES


def test_the_next_page_is_asked_for_while_this_one_is_turned_into_models(
    kube: Kube, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = [pod(i) for i in range(1200)]  # pages of 100, 500, 500, 100
    server = serve(kube, monkeypatch, Server(items))
    converted: list[str] = []
    at_request: list[int] = []
    answer = server.call_api

    def call_api(method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        at_request.append(len(converted))
        return answer(method, url, *args, **kwargs)

    monkeypatch.setattr(kube._api, "call_api", call_api)

    def into(item: dict[str, Any]) -> str:
        if not converted:  # the first item: the second page is on its way already
            deadline = time.monotonic() + 10
            while len(server.sent) < 2 and time.monotonic() < deadline:
                time.sleep(0.001)
            assert len(server.sent) == 2
        converted.append(item["metadata"]["name"])
        return str(item["metadata"]["name"]).upper()

    assert kube.pods_as(NS, into) == [n.upper() for n in names(items)]
    assert converted == names(items)
    # a page is asked for once the one two before it is turned: at most two pages held
    assert at_request[0] == 0
    assert at_request[2] >= 100
    assert at_request[3] >= 600


def test_an_empty_page_with_a_token_is_followed(
    kube: Kube, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a server filtering by selector may fill a page with nothing and still go on
    server = Server([pod(i) for i in range(150)])
    empty = {"kind": "PodList", "metadata": {"continue": server.token(0)}, "items": []}
    serve(kube, monkeypatch, server).script = [Response(200, json.dumps(empty).encode())]
    assert len(kube.list_pods(NS)) == 150
    assert server.tokens() == [None, server.token(0), server.token(100)]
    assert server.limits() == [100, 100, 500]  # nothing learnt from the empty page


def test_an_expired_continue_token_restarts_the_list_once_from_its_first_page(
    kube: Kube, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = [pod(i) for i in range(700)]
    # first page, then 410 Gone for the second; the list is read again from the start
    server = serve(kube, monkeypatch, Server(items, None, gone()))
    pods = kube.list_pods(NS)
    assert names(pods) == names(items)  # each item once: the pages read before are dropped
    assert server.tokens() == [None, server.token(100), None, server.token(100), server.token(600)]
    assert kube.requests.counts == {"list pods": 5}  # the expired request is a request
    assert kube.requests.pages == {"list pods": 4}  # and not a page


def test_a_token_expiring_again_is_an_error_naming_the_list(
    kube: Kube, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = serve(
        kube, monkeypatch, Server([pod(i) for i in range(300)], None, gone(), None, gone())
    )
    with pytest.raises(ApiError) as info:
        kube.list_pods(NS)
    assert info.value.status == 410
    message = str(info.value)
    assert "the list of pods kept changing faster than it could be read in pages" in message
    assert "expired 2 times" in message
    assert "The provided continue parameter is too old" in message
    assert len(server.sent) == 4  # one restart, no more


def test_410_on_a_first_page_is_not_a_restart(kube: Kube, monkeypatch: pytest.MonkeyPatch) -> None:
    server = serve(kube, monkeypatch, Server([pod(0)], gone("too old resource version")))
    with pytest.raises(ApiError, match="too old resource version") as info:
        kube.list_pods(NS)
    assert info.value.status == 410
    assert "kept changing" not in str(info.value)
    assert len(server.sent) == 1


def test_a_page_answered_503_is_retried_with_the_same_token(
    kube: Kube, monkeypatch: pytest.MonkeyPatch
) -> None:
    unavailable = Response(503, b'{"kind":"Status","message":"etcd leader changed"}')
    items = [pod(i) for i in range(300)]
    server = serve(kube, monkeypatch, Server(items, None, unavailable))
    assert names(kube.list_pods(NS)) == names(items)
    assert server.tokens() == [None, server.token(100), server.token(100)]
    assert kube.requests.counts == {"list pods": 3}
    assert kube.requests.pages == {"list pods": 2}


def test_a_repeated_token_ends_the_list_with_an_error(
    kube: Kube, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = Server([pod(i) for i in range(300)])
    looping = {"kind": "PodList", "metadata": {"continue": "same"}, "items": [pod(0)]}
    serve(kube, monkeypatch, server).script = [
        Response(200, json.dumps(looping).encode()) for _ in range(3)
    ]
    with pytest.raises(NotAnApi, match="a continue token it had sent before"):
        kube.list_pods(NS)
    assert server.tokens() == [None, "same"]


def test_release_records_start_with_a_small_page(
    kube: Kube, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[str] = []

    def call_api(method: str, url: str, *_: Any, **__: Any) -> Response:
        sent.append(url)
        return Response(200, b'{"kind":"SecretList","metadata":{},"items":[]}')

    monkeypatch.setattr(kube._api, "call_api", call_api)
    assert kube.list_release_records(NS, ["cilium"]) == []
    assert parse_qs(urlsplit(sent[0]).query)["limit"] == [str(RECORDS_FIRST_LIMIT)]


def test_events_of_one_object_are_selected_by_the_server(
    kube: Kube, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[str] = []

    def call_api(method: str, url: str, *_: Any, **__: Any) -> Response:
        sent.append(url)
        return Response(200, b'{"kind":"EventList","metadata":{},"items":[{"reason":"x"}]}')

    monkeypatch.setattr(kube._api, "call_api", call_api)
    assert kube.list_events(NS, involved="cilium-abcde") == [{"reason": "x", "kind": "Event"}]
    assert parse_qs(urlsplit(sent[0]).query) == {
        "fieldSelector": ["involvedObject.name=cilium-abcde"],
        "limit": ["100"],
    }


@pytest.mark.parametrize(
    ("largest", "expected"),
    [
        (1_000, kube_paging.PAGE_LIMIT),  # small items: capped at PAGE_LIMIT
        (20_000, kube_paging.PAGE_BYTES // 20_000),
        (5_000_000, 1),  # one item larger than a page: still one a page
        (0, kube_paging.FIRST_LIMIT),
    ],
)
def test_next_limit(largest: int, expected: int) -> None:
    assert kube_paging.next_limit(largest) == expected


def test_the_adapter_gives_the_snapshot_models_page_by_page(
    kube: Kube, monkeypatch: pytest.MonkeyPatch
) -> None:
    # collect() builds the pods and nodes through pods_as/nodes_as when the reader has them
    assert isinstance(kube, ModelLister)
    items = [pod(i) for i in range(700)]
    serve(kube, monkeypatch, Server(items))
    models = kube.pods_as(NS, Pod.from_k8s_dict)
    assert models == [Pod.from_k8s_dict({**p, "kind": "Pod"}) for p in items]
    assert kube.requests.pages == {"list pods": 3}
