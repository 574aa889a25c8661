"""How a snapshot's reads run: daemon worker threads, with the garbage collector paused.

The reads run on daemon threads (:class:`Workers`), never joined on an interruption: a
Ctrl-C or SIGTERM while requests hang cancels the queued ones and abandons those under
way, so the run goes on to its clean-up at once instead of waiting out every request's
timeout. :func:`gc_paused` pauses Python's cyclic garbage collector while a snapshot is
read (see :mod:`pytest_cilium_upgrade.snapshot.read` for why).
"""

from __future__ import annotations

import contextlib
import gc
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import wait as wait_all
from typing import Any, TypeVar

T = TypeVar("T")

_Task = tuple[Future[Any], Callable[[], Any]]


class Workers:
    """Up to ``size`` daemon threads running submitted calls, as a thread pool does.

    Unlike :class:`concurrent.futures.ThreadPoolExecutor`, whose threads the interpreter
    joins at exit, nothing ever waits for a call under way unless asked: used as a
    context manager, a block that ends normally waits for every call submitted, and a
    block left by an exception (KeyboardInterrupt, SIGTERM turned into one) cancels the
    calls not started and leaves the running ones behind, to end with the process.
    """

    def __init__(self, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._tasks: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = threading.Semaphore(0)  # one release per thread waiting for a call
        self._submitted: list[Future[Any]] = []
        self._closed = False

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot submit to closed workers")
            self._submitted.append(future)
            self._tasks.put((future, lambda: fn(*args)))
            if not self._idle.acquire(blocking=False) and self._threads < self._size:
                self._threads += 1
                threading.Thread(
                    target=self._work, name=f"{self._name}-{self._threads}", daemon=True
                ).start()
        return future

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            future, call = task
            if future.set_running_or_notify_cancel():
                try:
                    result = call()
                except BaseException as exc:  # handed to whoever waits for the future
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            del call, future, task  # an idle thread keeps nothing of its last call alive
            self._idle.release()

    def close(self, *, wait: bool) -> None:
        """No more calls; ``wait`` for those submitted, else cancel the ones not started."""
        with self._lock:
            self._closed = True
            submitted = list(self._submitted)
        if wait:
            wait_all(submitted)
        else:
            for future in submitted:
                future.cancel()  # a call under way is left to finish on its own
        for _ in range(self._threads):
            self._tasks.put(None)

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        self.close(wait=kind is None)


_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_resume = False


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside; nested and concurrent uses end together."""
    global _gc_pauses, _gc_resume
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_resume = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_resume:
                gc.enable()
