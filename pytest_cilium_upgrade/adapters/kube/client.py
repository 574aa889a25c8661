"""The core of :class:`~pytest_cilium_upgrade.adapters.kube.Kube`: the connection and
its requests (retries, deadlines, errors translated, LISTs read in pages)."""

from __future__ import annotations

import contextlib
import json
import random
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Self, TypeVar
from urllib.parse import quote

import urllib3
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from pytest_cilium_upgrade.adapters import api_shapes
from pytest_cilium_upgrade.adapters.kube import paging
from pytest_cilium_upgrade.adapters.kube.deadlines import Deadlines, RequestLog
from pytest_cilium_upgrade.adapters.kube.errors import (
    _RETRYABLE,
    _foreign,
    _reason,
    _status_message,
)
from pytest_cilium_upgrade.adapters.kube.kubeconfig import _load_kubeconfig
from pytest_cilium_upgrade.errors import (
    ApiError,
    ApiUnreachable,
    Forbidden,
    GateError,
    NoAnswer,
    NotAnApi,
    NotFound,
    Timeout,
)
from pytest_cilium_upgrade.redact import url_without_userinfo
from pytest_cilium_upgrade.snapshot.model.jsondata import JSONDict

T = TypeVar("T")


class _Core:
    """The connection to the API server of one kubeconfig context, and its requests:
    retried, bounded by a deadline, their failures translated. The verbs are mixins."""

    def __init__(
        self,
        kubeconfig: str | None = None,
        context: str | None = None,
        *,
        request_timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.context = context
        self.request_timeout = request_timeout
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep
        self.requests = RequestLog()
        self._cutoff: float | None = None  # see finishing_by
        cfg = client.Configuration()
        where = kubeconfig or "the default kubeconfig ($KUBECONFIG or ~/.kube/config)"
        try:
            _load_kubeconfig(kubeconfig, context, cfg, plugin_timeout=request_timeout)
        except ConfigException as exc:
            raise GateError(f"cannot use kubeconfig {where}: {exc}") from None
        except (OSError, TypeError, ValueError, yaml.YAMLError) as exc:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise GateError(f"cannot read kubeconfig {where}: {detail}") from None
        cfg.retries = False  # retries are ours, bounded and visible
        self.server = url_without_userinfo(cfg.host)  # never print a password
        self._api = client.ApiClient(cfg)
        self._deadlines = Deadlines()

    def close(self) -> None:
        self._deadlines.stop()
        self._api.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def finishing_by(self, deadline: float) -> Iterator[None]:
        """Requests made inside end by ``deadline`` (a ``time.monotonic()`` value).

        For the clean-up of an interrupted run: each request gets what is left of the
        time (at most the request timeout) and is not retried; with no time left it
        fails at once with :class:`~pytest_cilium_upgrade.errors.NoAnswer`.
        """
        previous, self._cutoff = self._cutoff, deadline
        try:
            yield
        finally:
            self._cutoff = previous

    def _timeout(self, verb: str, resource: str) -> float:
        """This request's timeout: the request timeout, or less under :meth:`finishing_by`."""
        if self._cutoff is None:
            return self.request_timeout
        left = min(self.request_timeout, self._cutoff - time.monotonic())
        if left <= 0:
            raise NoAnswer(f"no time left to {verb} {resource} at {self.server}")
        return left

    # ------------------------------------------------------------------ plumbing
    def _call(
        self,
        operation: str,
        verb: str,
        resource: str,
        namespace: str | None,
        fn: Callable[[], T],
    ) -> T:
        """Run one request with bounded retries and translated errors."""
        attempt = 0
        while True:
            attempt += 1
            self.requests.add(operation)
            try:
                return fn()
            except ApiException as exc:
                status = int(exc.status or 0)
                message = _status_message(exc)
                foreign = _foreign(exc)
                if foreign is not None and status not in _RETRYABLE and status != 401:
                    raise NotAnApi(
                        status,
                        str(exc.reason or ""),
                        f"{self.server} is not a Kubernetes API server: it answered {verb} "
                        f"{resource} with {status} {exc.reason or ''}, {foreign}".replace(
                            " ,", ","
                        ),
                    ) from None
                if foreign is not None:  # a proxy's error page: status, address, its title
                    message = f"{self.server} answered {verb} {resource} with {foreign}"
                if status == 403:
                    raise Forbidden(verb, resource, namespace, message) from None
                if status == 404:
                    where = f" in namespace {namespace}" if namespace else ""
                    raise NotFound(f"{resource}{where}: {message}") from None
                if status == 401:
                    raise GateError(
                        f"the API at {self.server} rejected our credentials (401): {message}"
                    ) from None
                if status in _RETRYABLE and attempt <= self._retries():
                    self._sleep(self._delay(attempt, exc))
                    continue
                if status == 0:
                    raise ApiUnreachable(
                        f"cannot reach the Kubernetes API at {self.server}: {message}"
                    ) from None
                if attempt > 1:
                    message += f" (gave up after {attempt} attempts)"
                raise ApiError(status, str(exc.reason or ""), message) from None
            except urllib3.exceptions.HTTPError as exc:
                retry = attempt <= self._retries()
                if retry and isinstance(exc, urllib3.exceptions.ProtocolError):
                    self._sleep(self._delay(attempt, None))
                    continue
                # urllib3 2 derives NewConnectionError (refused, no such host) from
                # ConnectTimeoutError: those failed at once, they did not time out
                if isinstance(exc, urllib3.exceptions.NewConnectionError):
                    pass
                elif isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
                    raise Timeout(
                        f"could not connect to the Kubernetes API at {self.server} "
                        f"within {self.request_timeout:g}s"
                    ) from None
                elif isinstance(exc, urllib3.exceptions.TimeoutError):
                    # connected and asked, but no answer in time: the server is slow
                    raise NoAnswer(
                        f"the Kubernetes API at {self.server} did not answer {verb} {resource} "
                        f"within {self.request_timeout:g}s"
                    ) from None
                raise ApiUnreachable(
                    f"cannot reach the Kubernetes API at {self.server}: {_reason(exc)}"
                ) from None

    def _retries(self) -> int:
        return self.retries if self._cutoff is None else 0

    def _delay(self, attempt: int, exc: ApiException | None) -> float:
        if exc is not None and exc.headers:
            retry_after = exc.headers.get("Retry-After")
            if retry_after and retry_after.isdigit():
                return min(float(retry_after), 30.0)
        return float(self.backoff * (2 ** (attempt - 1)) * (1 + random.random() / 2))  # noqa: S311

    def _send(
        self,
        method: str,
        path: str,
        query: Iterable[tuple[str, str]] = (),
        body: JSONDict | None = None,
        *,
        accept: str = "application/json",
    ) -> bytes:
        """One request through the client's transport: the body, or ApiException."""
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = "application/json"
        serialized = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=list(query) or None,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        timeout = self._timeout(method.lower(), path)
        deadline = time.monotonic() + timeout
        response: Any = self._api.call_api(*serialized, _request_timeout=timeout)
        raw = response.response  # urllib3's, headers read and body not yet
        sock = getattr(getattr(raw, "connection", None), "sock", None)
        data: bytes
        if not isinstance(sock, socket.socket):  # nothing we can shut down
            data = raw.read()
        else:
            with self._deadlines.watching(deadline, sock) as watch:
                try:
                    data = raw.read()
                except (urllib3.exceptions.HTTPError, OSError):
                    if not watch.fired:
                        raise
                    raise urllib3.exceptions.TimeoutError(
                        f"{path}: the body came too slowly"
                    ) from None
                if watch.fired:  # whole, but the connection is shut: not to be reused
                    raw.close()
        response.data = data  # what ApiException and RESTResponse.read() take
        if not 200 <= response.status <= 299:
            raise ApiException(http_resp=response)
        if accept != "*/*" and data.lstrip()[:1] != b"{":
            # 2xx, but no JSON object: not the API server's answer (see _call)
            raise ApiException(http_resp=response)
        return data

    def _undecodable(self, verb: str, resource: str, problem: str) -> NotAnApi:
        return NotAnApi(
            200,
            "OK",
            f"{self.server} is not a Kubernetes API server: it answered {verb} {resource} "
            f"with {problem}",
        )

    def _get_json(
        self,
        operation: str,
        verb: str,
        resource: str,
        namespace: str | None,
        method: str,
        path: str,
        query: Iterable[tuple[str, str]] = (),
        body: JSONDict | None = None,
    ) -> JSONDict:
        def request() -> JSONDict:
            try:
                data = json.loads(self._send(method, path, query, body))
            except ValueError as exc:
                raise self._undecodable(
                    verb, resource, f"JSON that cannot be read: {exc}"
                ) from None
            if not isinstance(data, dict):
                raise self._undecodable(verb, resource, "JSON that is not an object")
            return data

        return self._call(operation, verb, resource, namespace, request)

    def _list(
        self,
        kind: str,
        resource: str,
        path: str,
        namespace: str | None,
        selector: str | None = None,
        shape: type[Any] | None = None,
        *,
        fields: str | None = None,
        first_limit: int | None = None,
    ) -> list[JSONDict]:
        """The items of a LIST, read in pages (:mod:`.paging`); with a ``shape`` (of
        :mod:`api_shapes`), only its fields. ``selector`` and ``fields`` are the label and
        field selectors."""
        return self._list_as(
            _as_is, kind, resource, path, namespace, selector, shape,
            fields=fields, first_limit=first_limit,
        )  # fmt: skip

    def _list_as(
        self,
        into: Callable[[JSONDict], T],
        kind: str,
        resource: str,
        path: str,
        namespace: str | None,
        selector: str | None = None,
        shape: type[Any] | None = None,
        *,
        fields: str | None = None,
        first_limit: int | None = None,
    ) -> list[T]:
        """As :meth:`_list`, each item turned by ``into`` as its page is decoded: only one
        page's JSON is held at a time, not the whole collection's."""
        base = [("labelSelector", selector)] if selector else []
        if fields:
            base.append(("fieldSelector", fields))
        operation = f"list {resource.split('.')[0]}"

        def fetch(limit: int, token: str | None) -> paging.Page:
            query = [*base, ("limit", str(limit))]
            if token is not None:
                query.append(("continue", token))
            try:
                body = self._call(
                    operation, "list", resource, namespace, lambda: self._send("GET", path, query)
                )
            except ApiError as exc:
                if token is not None and exc.status == 410:
                    raise paging.ContinueExpired(str(exc)) from None
                raise
            try:
                following, count, largest = api_shapes.list_head(body)
            except ValueError as exc:
                raise self._undecodable(
                    "list", resource, f"JSON that cannot be read: {exc}"
                ) from None
            self.requests.add_page(operation, len(body))
            return paging.Page(body, following, count, largest)

        def build(page: paging.Page) -> list[T]:
            try:
                data = api_shapes.decode_list(page.body, shape)
            except ValueError as exc:
                raise self._undecodable(
                    "list", resource, f"JSON that cannot be read: {exc}"
                ) from None
            items = data.get("items") if isinstance(data, dict) else None
            if items is not None and not (
                isinstance(items, list) and all(isinstance(i, dict) for i in items)
            ):
                raise self._undecodable("list", resource, "items that are not a list of objects")
            if into is _as_is:
                return _items(data, kind)  # type: ignore[return-value]
            return [into(item) for item in _items(data, kind)]

        try:
            return paging.list_in_pages(fetch, build, first_limit=first_limit or paging.FIRST_LIMIT)
        except paging.ContinueExpired as exc:
            raise ApiError(
                410,
                "Gone",
                f"the list of {resource} kept changing faster than it could be read in pages: "
                f"its continue token expired {paging.RESTARTS + 1} times ({exc})",
            ) from None
        except paging.RepeatedToken:
            raise self._undecodable(
                "list", resource, "a continue token it had sent before (the list would not end)"
            ) from None


def _q(segment: str) -> str:
    return quote(segment, safe="")


def _as_is(item: JSONDict) -> JSONDict:
    return item


def _items(data: JSONDict, kind: str) -> list[JSONDict]:
    items: list[JSONDict] = data.get("items") or []
    for item in items:  # freshly decoded, ours to change: list items carry no kind
        item.setdefault("kind", kind)
    return items
