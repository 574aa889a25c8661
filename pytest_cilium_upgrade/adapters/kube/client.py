"""The Kubernetes adapter: the only module that imports the ``kubernetes`` client.

Reads come back as plain JSON dicts (the API's own camelCase form, decoded straight
from the response body without building client model objects), which is what the
snapshot model consumes. Requests go through the client's ``ApiClient`` (kubeconfig
credentials, TLS, exec plugins, token refresh) by path; the generated per-endpoint
API classes are not used for them: importing those builds validation for every API
type, which took most of a second of each gate run, and we would only ask them for
raw bodies. Only the workload watch of the performed upgrade still goes through
``AppsV1Api`` and the client's watch helper, created on first use.

Every failure is translated here, once, into the gate's error hierarchy; transient
answers (429, 5xx, connection resets) are retried a bounded number of times with
backoff, honouring ``Retry-After``. The request timeout bounds a whole request, its
body included, as kubectl's ``--request-timeout`` does: urllib3's read timeout bounds
each socket read only, so a server or proxy that trickles a body would outlast it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote

import urllib3
import yaml
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.adapters import api_shapes
from pytest_cilium_upgrade.adapters.helm import records as release_records
from pytest_cilium_upgrade.errors import (
    ApiError,
    ApiUnreachable,
    Forbidden,
    GateError,
    LockHeld,
    NoAnswer,
    NotFound,
    Timeout,
)
from pytest_cilium_upgrade.snapshot.model.jsondata import JSONDict

T = TypeVar("T")
_RETRYABLE = {429, 500, 502, 503, 504}
LEASES = "leases.coordination.k8s.io"
_MAX_BODY = 500
_IDLE_S = 10.0  # the deadline thread ends after this long without requests


@dataclass
class RequestLog:
    """How many API requests were made, by operation (for tests and benchmarks)."""

    counts: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, operation: str) -> None:
        with self._lock:  # snapshots read concurrently
            self.counts[operation] = self.counts.get(operation, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())


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


def _status_message(exc: ApiException) -> str:
    """The API's Status message, or the start of the raw body."""
    body = exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else exc.body
    if body:
        try:
            message = json.loads(body).get("message")
            if message:
                return str(message)
        except (ValueError, AttributeError):
            pass
        return str(body)[:_MAX_BODY]
    return str(exc.reason or "")


class Kube:
    """Reads (and, for the upgrade flow, watches) the cluster of one kubeconfig context."""

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
        cfg = client.Configuration()
        where = kubeconfig or "the default kubeconfig ($KUBECONFIG or ~/.kube/config)"
        try:
            config.load_kube_config(
                config_file=kubeconfig, context=context, client_configuration=cfg
            )
        except ConfigException as exc:
            raise GateError(f"cannot use kubeconfig {where}: {exc}") from None
        except (OSError, TypeError, ValueError, yaml.YAMLError) as exc:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise GateError(f"cannot read kubeconfig {where}: {detail}") from None
        cfg.retries = False  # retries are ours, bounded and visible
        self.server = cfg.host
        self._api = client.ApiClient(cfg)
        self._deadlines = Deadlines()

    @functools.cached_property
    def _apps(self) -> Any:
        return client.AppsV1Api(self._api)

    def close(self) -> None:
        self._deadlines.stop()
        self._api.close()

    def __enter__(self) -> Kube:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
                if status == 403:
                    raise Forbidden(verb, resource, namespace, message) from None
                if status == 404:
                    where = f" in namespace {namespace}" if namespace else ""
                    raise NotFound(f"{resource}{where}: {message}") from None
                if status == 401:
                    raise GateError(
                        f"the API at {self.server} rejected our credentials (401): {message}"
                    ) from None
                if status in _RETRYABLE and attempt <= self.retries:
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
                if attempt <= self.retries and isinstance(exc, urllib3.exceptions.ProtocolError):
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
        deadline = time.monotonic() + self.request_timeout
        response: Any = self._api.call_api(*serialized, _request_timeout=self.request_timeout)
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
        return data

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
            data: JSONDict = json.loads(self._send(method, path, query, body))
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
    ) -> list[JSONDict]:
        """The items of a LIST; with a ``shape`` (of :mod:`api_shapes`), only its fields."""
        query = [("labelSelector", selector)] if selector else []

        def request() -> JSONDict:
            return api_shapes.decode_list(self._send("GET", path, query), shape)

        data = self._call(f"list {resource.split('.')[0]}", "list", resource, namespace, request)
        return _items(data, kind)

    # ------------------------------------------------------------------ reads
    def server_version(self) -> str:
        data = self._get_json("version", "get", "version", None, "GET", "/version/")
        return str(data.get("gitVersion", ""))

    def list_nodes(self) -> list[JSONDict]:
        return self._list("Node", "nodes", "/api/v1/nodes", None, shape=api_shapes.NodeList)

    def list_pods(self, namespace: str, selector: str | None = None) -> list[JSONDict]:
        return self._list(
            "Pod",
            "pods",
            _core_path(namespace, "pods"),
            namespace,
            selector,
            shape=api_shapes.PodList,
        )

    def list_daemonsets(self, namespace: str) -> list[JSONDict]:
        return self._list(
            "DaemonSet",
            "daemonsets.apps",
            _apps_path(namespace, "daemonsets"),
            namespace,
            shape=api_shapes.WorkloadList,
        )

    def list_deployments(self, namespace: str) -> list[JSONDict]:
        return self._list(
            "Deployment",
            "deployments.apps",
            _apps_path(namespace, "deployments"),
            namespace,
            shape=api_shapes.WorkloadList,
        )

    def list_release_records(
        self, namespace: str, releases: Iterable[str], kind: str = "Secret"
    ) -> list[JSONDict]:
        """Helm's release records (Secrets or ConfigMaps) of ``releases``, every revision."""
        resource = "configmaps" if kind == "ConfigMap" else "secrets"
        return self._list(
            kind,
            resource,
            _core_path(namespace, resource),
            namespace,
            release_records.selector(releases),
        )

    def namespace_exists(self, namespace: str) -> bool:
        try:
            self._get_json(
                "get namespace",
                "get",
                "namespaces",
                None,
                "GET",
                f"/api/v1/namespaces/{_q(namespace)}",
            )
        except NotFound:
            return False
        return True

    def pod_log(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        previous: bool = False,
        limit_bytes: int = 1 << 20,
        tail_lines: int | None = None,
    ) -> str | None:
        """The container's log (or its previous instance's); None when there is none."""

        query = [("container", container), ("limitBytes", str(limit_bytes))]
        if previous:
            query.append(("previous", "true"))
        if tail_lines:
            query.append(("tailLines", str(tail_lines)))

        def request() -> str:
            body = self._send("GET", _core_path(namespace, "pods", pod, "log"), query, accept="*/*")
            return body.decode(errors="replace")

        try:
            return self._call("read pod log", "get", "pods/log", namespace, request)
        except (NotFound, ApiError):
            # 400/404: the container has no (previous) instance to read from
            return None

    def get_workload(self, kind: str, namespace: str, name: str) -> JSONDict | None:
        """One DaemonSet or Deployment, or None when it does not exist."""
        resource = "daemonsets.apps" if kind == "DaemonSet" else "deployments.apps"
        path = _apps_path(namespace, resource.split(".")[0], name)
        try:
            data = self._get_json(f"get {resource}", "get", resource, namespace, "GET", path)
        except NotFound:
            return None
        return {**data, "kind": kind}

    def list_events(self, namespace: str) -> list[JSONDict]:
        return self._list("Event", "events", _core_path(namespace, "events"), namespace)

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

    # ------------------------------------------------------------------ the upgrade lock
    def acquire_lease(self, namespace: str, name: str, holder: str, duration_s: int) -> None:
        """Take (or renew) the Lease ``name`` for ``holder``; raise LockHeld if another holds it.

        An expired lease (renewTime + leaseDurationSeconds in the past) is taken over.
        Updates carry the resourceVersion read, so two takers cannot both win.
        """
        for _ in range(3):
            now = _now()
            lease = self._read_lease(namespace, name)
            spec: JSONDict = {
                "holderIdentity": holder,
                "leaseDurationSeconds": duration_s,
                "renewTime": _micro(now),
            }
            if lease is None:
                body = {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": name, "namespace": namespace},
                    "spec": {**spec, "acquireTime": _micro(now)},
                }
                try:
                    self._get_json(
                        "create leases",
                        "create",
                        LEASES,
                        namespace,
                        "POST",
                        _lease_path(namespace),
                        body=body,
                    )
                    return
                except ApiError as exc:
                    if exc.status == 409:  # created by someone else meanwhile: look again
                        continue
                    raise
            current = lease.get("spec") or {}
            other = current.get("holderIdentity")
            expires = _lease_expiry(current)
            if other and other != holder and expires is not None and expires > now:
                raise LockHeld(namespace, name, str(other), expires)
            if other != holder:
                spec["acquireTime"] = _micro(now)
            body = {**lease, "spec": {**current, **spec}}
            try:
                self._get_json(
                    "update leases",
                    "update",
                    LEASES,
                    namespace,
                    "PUT",
                    _lease_path(namespace, name),
                    body=body,
                )
                return
            except ApiError as exc:
                if exc.status == 409:  # changed since we read it: read again
                    continue
                raise
        raise GateError(f"could not take Lease {namespace}/{name}: it kept changing")

    def release_lease(self, namespace: str, name: str, holder: str) -> bool:
        """Delete the Lease if ``holder`` still holds it; True when it was ours and is gone."""
        lease = self._read_lease(namespace, name)
        if lease is None or (lease.get("spec") or {}).get("holderIdentity") != holder:
            return False
        version = (lease.get("metadata") or {}).get("resourceVersion")
        try:
            self._get_json(
                "delete leases",
                "delete",
                LEASES,
                namespace,
                "DELETE",
                _lease_path(namespace, name),
                body={"preconditions": {"resourceVersion": version}},
            )
        except (NotFound, ApiError):
            return False
        return True

    def _read_lease(self, namespace: str, name: str) -> JSONDict | None:
        try:
            return self._get_json(
                "get leases", "get", LEASES, namespace, "GET", _lease_path(namespace, name)
            )
        except NotFound:
            return None

    def access_reviews(
        self, namespace: str, requirements: Iterable[defaults.AccessRequirement]
    ) -> list[JSONDict]:
        """Ask, for each requirement, whether our identity is allowed (SelfSubjectAccessReview)."""
        answers = []
        for req in requirements:
            attrs: JSONDict = {"verb": req.verb, "resource": req.resource}
            if req.group:
                attrs["group"] = req.group
            if req.subresource:
                attrs["subresource"] = req.subresource
            if req.namespaced:
                attrs["namespace"] = namespace
            body = {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attrs},
            }
            answers.append(
                self._get_json(
                    "create selfsubjectaccessreviews",
                    "create",
                    "selfsubjectaccessreviews.authorization.k8s.io",
                    None,
                    "POST",
                    "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                    body=body,
                )
            )
        return answers


def _q(segment: str) -> str:
    return quote(segment, safe="")


def _core_path(namespace: str, resource: str, *rest: str) -> str:
    return "/".join(["/api/v1/namespaces", _q(namespace), resource, *map(_q, rest)])


def _apps_path(namespace: str, resource: str, *rest: str) -> str:
    return "/".join(["/apis/apps/v1/namespaces", _q(namespace), resource, *map(_q, rest)])


def _lease_path(namespace: str, *name: str) -> str:
    return "/".join(
        ["/apis/coordination.k8s.io/v1/namespaces", _q(namespace), "leases", *map(_q, name)]
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _micro(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _lease_expiry(spec: JSONDict) -> datetime | None:
    renewed = spec.get("renewTime") or spec.get("acquireTime")
    duration = spec.get("leaseDurationSeconds")
    if not renewed or not isinstance(duration, int):
        return None
    try:
        moment = datetime.fromisoformat(str(renewed).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment + timedelta(seconds=duration)


def _items(data: JSONDict, kind: str) -> list[JSONDict]:
    items: list[JSONDict] = data.get("items") or []
    for item in items:  # freshly decoded, ours to change: list items carry no kind
        item.setdefault("kind", kind)
    return items


def _reason(exc: urllib3.exceptions.HTTPError) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc)
