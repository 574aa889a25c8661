"""The whole-request deadline: a clock outside urllib3's per-read timeout.

urllib3's read timeout bounds each socket read only, so a server or proxy that trickles
a body would outlast it; :class:`Deadlines` shuts the connection down at the request's
deadline instead. :class:`RequestLog` counts the requests made.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

_IDLE_S = 10.0  # the deadline thread ends after this long without requests


@dataclass
class RequestLog:
    """How many API requests were made, by operation (for tests and benchmarks).

    ``counts`` has every request sent: a retry is one more, and so is each page of a
    LIST. ``pages`` has, by operation, the LIST pages read (a LIST of one page is one),
    so ``total - page_total`` is what does not grow with the cluster: everything but the
    LISTs' pages. ``largest_page`` is the largest LIST response, in bytes.
    """

    counts: dict[str, int] = field(default_factory=dict)
    pages: dict[str, int] = field(default_factory=dict)
    largest_page: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, operation: str) -> None:
        with self._lock:  # snapshots read concurrently
            self.counts[operation] = self.counts.get(operation, 0) + 1

    def add_page(self, operation: str, size: int) -> None:
        with self._lock:
            self.pages[operation] = self.pages.get(operation, 0) + 1
            self.largest_page = max(self.largest_page, size)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def page_total(self) -> int:
        return sum(self.pages.values())


@dataclass
class _Watch:
    deadline: float
    sock: Any
    fired: bool = False


class Deadlines:
    """Shuts down the connection of a response still being read at its deadline.

    urllib3's read timeout bounds each socket read, and TLS builds a record out of as
    many reads as it takes, so only a clock outside the read bounds a body that
    trickles in. One thread per client keeps that clock, started on first use.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._watches: list[_Watch] = []
        self._thread: threading.Thread | None = None
        self._stopped = False

    @contextlib.contextmanager
    def watching(self, deadline: float, sock: Any) -> Iterator[_Watch]:
        """``sock`` is shut down if the block is still running at ``deadline``."""
        watch = _Watch(deadline, sock)
        with self._cond:
            self._watches.append(watch)
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(
                    target=self._run, name="kube-deadlines", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        try:
            yield watch
        finally:
            with self._cond:
                self._watches.remove(watch)

    def _run(self) -> None:
        with self._cond:
            while not self._stopped:
                now = time.monotonic()
                for watch in self._watches:
                    if not watch.fired and watch.deadline <= now:
                        watch.fired = True
                        with contextlib.suppress(OSError):
                            # the plain socket's shutdown: the reader, blocked in TLS
                            # or not, sees the connection end
                            socket.socket.shutdown(watch.sock, socket.SHUT_RDWR)
                waiting = [w.deadline for w in self._watches if not w.fired]
                if waiting:
                    self._cond.wait(min(waiting) - now)
                elif not self._cond.wait(_IDLE_S) and not self._watches:
                    self._thread = None  # idle: the next watch starts another
                    return

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()
