"""Reading a big collection in pages: ``limit`` and ``continue``, one consistent list.

A LIST of the pods of a 5,000-node cluster is over a hundred megabytes that the API
server would otherwise build in memory and send at once, and that the gate would hold
whole before decoding it. Read in pages, no response is larger than about
:data:`PAGE_BYTES`, and each page is decoded (into the shapes of :mod:`api_shapes`, and
by the caller into its models) and its bytes and JSON dropped before the next page is
decoded. While one page is decoded the next one is already being asked for, so the API
server's work and the gate's overlap.

**What each page is read at.** The first page is a consistent read: no
``resourceVersion``, so the API server answers with the collection as it is now (from
its watch cache since Kubernetes 1.31, where ``ConsistentListFromCache`` first waits for
the cache to catch up with etcd's current revision; from etcd before). Its ``continue``
token carries that revision, and every further page is read at exactly it: from a
snapshot of the watch cache since Kubernetes 1.34 (``ListFromCacheSnapshot``), from etcd
before. The pages therefore join into one list as of one moment, with no object missed
or seen twice, however long the reading takes. ``resourceVersion=0`` is not used: it
lets the cache answer with older data, and the cache ignores ``limit`` for it (the whole
collection in one response).

**An expired token.** etcd forgets old revisions when it is compacted (every five
minutes by default); a ``continue`` token older than that is answered with
``410 Gone``. The list is then read again from its first page, once
(:func:`list_in_pages`).

**How big a page is.** The first page asks for :data:`FIRST_LIMIT` items; each further
page for as many of the largest item seen so far as fit in :data:`PAGE_BYTES`, at most
:data:`PAGE_LIMIT` (kubectl's ``--chunk-size``), at least one. Items differ: a Cilium
agent's pod is about 25 KB as the API server sends it, a pre-flight pod 8 KB, a Helm
release record hundreds of KB; sized by the average of the last page, a page of agent
pods following one of pre-flight pods was three times too large.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from pytest_cilium_upgrade.snapshot.model.jsondata import JSONDict

T = TypeVar("T")
R = TypeVar("R")

PAGE_LIMIT = 500  # items a page at most, as kubectl's --chunk-size
FIRST_LIMIT = 100  # items on the first page, before their size is known
PAGE_BYTES = 4 << 20  # a page at most, at the size of the largest item seen (4.2 MB)
RESTARTS = 1  # a list whose continue token expired is read again this many times


@dataclass(frozen=True)
class Page:
    """One LIST response, read but not yet decoded.

    ``body`` is the response; ``token`` the ``continue`` of the next page (None on the
    last); ``count`` and ``largest`` how many items it holds and the size of the
    largest, in bytes.
    """

    body: bytes
    token: str | None
    count: int
    largest: int

    @property
    def size(self) -> int:
        return len(self.body)


class ContinueExpired(Exception):
    """The API server answered a page's ``continue`` token with 410 Gone."""


class RepeatedToken(Exception):
    """The API server sent a ``continue`` token it had sent before: the list would not end."""


def continue_token(data: JSONDict) -> str | None:
    """The ``metadata.continue`` of a decoded LIST response (None when it is the last page)."""
    meta = data.get("metadata")
    token = meta.get("continue") if isinstance(meta, dict) else None
    return str(token) if token else None


def next_limit(largest: int) -> int:
    """How many items to ask for when the largest item seen is ``largest`` bytes."""
    if largest <= 0:
        return FIRST_LIMIT
    return max(1, min(PAGE_LIMIT, PAGE_BYTES // largest))


class _Ahead(Generic[R]):
    """``fn()`` run in a thread of its own; :meth:`result` waits for it."""

    def __init__(self, fn: Callable[[], R]) -> None:
        self._fn = fn
        self._value: R | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="kube-page", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as exc:  # handed to the reader, which raises it
            self._error = exc

    def result(self) -> R:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


def list_in_pages(
    fetch: Callable[[int, str | None], Page],
    build: Callable[[Page], list[T]],
    *,
    first_limit: int,
) -> list[T]:
    """Every item of a collection: pages read with ``fetch(limit, token)``, each turned
    into items with ``build(page)`` while the next one is read.

    ``fetch`` raises :class:`ContinueExpired` when the server no longer has the revision
    a token was read at; the list is then read again from its first page, at most
    :data:`RESTARTS` times, after which the exception is raised to the caller.
    """
    for attempt in range(RESTARTS + 1):
        items: list[T] = []
        tokens: set[str] = set()
        largest = 0
        ahead: _Ahead[Page] | None = None
        try:
            page = fetch(first_limit, None)
            while True:
                largest = max(largest, page.largest)
                token = page.token
                if token is not None:
                    if token in tokens:
                        raise RepeatedToken(token)
                    tokens.add(token)
                    limit = next_limit(largest) if largest else first_limit
                    ahead = _Ahead(_bind(fetch, limit, token))
                items.extend(build(page))
                del page  # its bytes, before the next page's arrive
                if ahead is None:
                    return items
                page, ahead = ahead.result(), None
        except ContinueExpired:
            if attempt == RESTARTS:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _bind(fetch: Callable[[int, str | None], Page], limit: int, token: str) -> Callable[[], Page]:
    def call() -> Page:
        return fetch(limit, token)

    return call
