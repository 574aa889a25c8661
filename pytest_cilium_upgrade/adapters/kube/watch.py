"""Watching one workload through an outage of the API server (the performed upgrade)."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import urllib3
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from pytest_cilium_upgrade.adapters.kube.client import _Core
from pytest_cilium_upgrade.adapters.kube.errors import _RETRYABLE, _status_message
from pytest_cilium_upgrade.errors import ApiError, ApiUnreachable, Forbidden, GateError
from pytest_cilium_upgrade.snapshot.model.jsondata import JSONDict


class _WatchVerbs(_Core):
    """The watch of the performed upgrade (through ``AppsV1Api``, made on first use)."""

    @functools.cached_property
    def _apps(self) -> Any:
        return client.AppsV1Api(self._api)

    def watch_workload(
        self, kind: str, namespace: str, name: str, timeout_s: float
    ) -> Iterator[JSONDict]:
        """The named DaemonSet or Deployment as it changes (first its current state).

        Ends when ``timeout_s`` has passed. A watch that ends or drops (the apiserver
        restarting, say) is opened again, once a second, without a resourceVersion:
        the server then sends the object's current state first, so a reconnection is
        a re-list and a re-watch. If the API server is still unreachable (or answers
        only 429/5xx) when the time is up, raises :class:`ApiUnreachable` saying since
        when and with which error; other refusals (401, 403, ...) are raised at once.
        """
        list_fn = (
            self._apps.list_namespaced_daemon_set
            if kind == "DaemonSet"
            else self._apps.list_namespaced_deployment
        )
        resource = "daemonsets.apps" if kind == "DaemonSet" else "deployments.apps"
        deadline = time.monotonic() + timeout_s
        # the outage under way: when the first failed attempt was, how many, the last error
        down_since: datetime | None = None
        failures = 0
        last_error = ""

        def opened(*args: Any, **kwargs: Any) -> Any:
            nonlocal down_since, failures
            response = list_fn(*args, **kwargs)
            if 200 <= int(getattr(response, "status", 200) or 200) < 300:
                down_since, failures = None, 0  # the API server answered: the outage is over
            return response

        while (remaining := deadline - time.monotonic()) > 0:
            stream = watch.Watch()

            def events(remaining: float = remaining, stream: Any = stream) -> Any:
                return iter(
                    stream.stream(
                        opened,
                        namespace,
                        field_selector=f"metadata.name={name}",
                        timeout_seconds=max(1, int(remaining)),
                        deserialize=False,
                        # never block connecting past the deadline (a black-holed address)
                        _request_timeout=(
                            min(self.request_timeout, max(1.0, remaining)),
                            remaining + 5,
                        ),
                    )
                )

            try:
                iterator = self._call(f"watch {resource}", "watch", resource, namespace, events)
                for event in iterator:
                    obj = event.get("object")
                    if event.get("type") in ("ADDED", "MODIFIED") and isinstance(obj, dict):
                        yield {**obj, "kind": kind}
                    if time.monotonic() >= deadline:
                        return
                continue  # the server ended the watch (its timeoutSeconds): watch again
            except (urllib3.exceptions.HTTPError, ApiException) as exc:
                # refused, dropped (the apiserver restarting), or 429/5xx: watch again soon
                status = int(getattr(exc, "status", 0) or 0)
                if status == 410:
                    pass  # the watch expired (410 Gone): watch again from the current state
                elif status and status not in _RETRYABLE:
                    raise self._watch_refused(exc, resource, namespace) from None
                else:
                    down_since = down_since or _now()
                    failures += 1
                    last_error = self._watch_failure(exc)
            except KeyError:
                # An ERROR event (410 Gone, or the server ending the watch): the client's
                # watch without deserializing looks for a key such events lack instead of
                # raising ApiException. Watch again from the current state.
                pass
            finally:
                stream.stop()
            self._sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        if down_since is not None:
            attempts = "1 attempt" if failures == 1 else f"{failures} attempts"
            raise ApiUnreachable(
                f"the Kubernetes API server at {self.server} has been unreachable since "
                f"{down_since:%H:%M:%S} UTC ({(_now() - down_since).total_seconds():.0f}s, "
                f"{attempts} to watch {resource} {namespace}/{name} failed); "
                f"last error: {last_error}"
            )

    def _watch_refused(self, exc: Any, resource: str, namespace: str) -> GateError:
        """A watch the API server answered with a non-transient error, translated."""
        message = _status_message(exc)
        if exc.status == 403:
            return Forbidden("watch", resource, namespace, message)
        if exc.status == 401:
            return GateError(f"the API at {self.server} rejected our credentials (401): {message}")
        return ApiError(int(exc.status), str(exc.reason or ""), message)

    @staticmethod
    def _watch_failure(exc: BaseException) -> str:
        """One line saying why a watch could not be (kept) open."""
        if isinstance(exc, ApiException):
            return f"{exc.status} {exc.reason or ''}: {_status_message(exc)}".replace(" :", ":")
        if isinstance(exc, urllib3.exceptions.ProtocolError) and exc.args:
            return str(exc.args[0])  # "Connection broken: ..." / "Connection aborted."
        text = str(exc)
        head, sep, tail = text.partition(": ")
        # urllib3 prefixes the connection or pool ("None: ", "HTTPSConnectionPool(...): ")
        if sep and (head == "None" or head.endswith((")", ">"))):
            return tail
        return text


def _now() -> datetime:
    return datetime.now(UTC)
