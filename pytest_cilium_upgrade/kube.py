"""The Kubernetes adapter: the only module that imports the ``kubernetes`` client.

Reads come back as plain JSON dicts (the API's own camelCase form, decoded straight
from the response body without building client model objects), which is what the
snapshot model consumes. Every failure is translated here, once, into the gate's
error hierarchy; transient answers (429, 5xx, connection resets) are retried a
bounded number of times with backoff, honouring ``Retry-After``.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import urllib3
import yaml
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.errors import (
    ApiError,
    ApiUnreachable,
    Forbidden,
    GateError,
    LockHeld,
    NotFound,
    Timeout,
)

JSONDict = dict[str, Any]
T = TypeVar("T")
_RETRYABLE = {429, 500, 502, 503, 504}
_MAX_BODY = 500


@dataclass
class RequestLog:
    """How many API requests were made, by operation (for tests and benchmarks)."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, operation: str) -> None:
        self.counts[operation] = self.counts.get(operation, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())


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
        self._core = client.CoreV1Api(self._api)
        self._apps = client.AppsV1Api(self._api)
        self._authz = client.AuthorizationV1Api(self._api)
        self._version = client.VersionApi(self._api)
        self._coordination = client.CoordinationV1Api(self._api)

    def close(self) -> None:
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
                raise ApiError(status, str(exc.reason or ""), message) from None
            except urllib3.exceptions.HTTPError as exc:
                if attempt <= self.retries and isinstance(
                    exc, urllib3.exceptions.ProtocolError
                ):
                    self._sleep(self._delay(attempt, None))
                    continue
                if isinstance(exc, urllib3.exceptions.TimeoutError):
                    raise Timeout(
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

    def _get_json(
        self, operation: str, verb: str, resource: str, namespace: str | None,
        fn: Callable[..., Any], *args: Any, **kwargs: Any,
    ) -> JSONDict:
        def request() -> JSONDict:
            response = fn(
                *args, _preload_content=False, _request_timeout=self.request_timeout, **kwargs
            )
            data: JSONDict = json.loads(response.data)
            return data

        return self._call(operation, verb, resource, namespace, request)

    # ------------------------------------------------------------------ reads
    def server_version(self) -> str:
        data = self._get_json("version", "get", "version", None, self._version.get_code)
        return str(data.get("gitVersion", ""))

    def list_nodes(self) -> list[JSONDict]:
        data = self._get_json("list nodes", "list", "nodes", None, self._core.list_node)
        return _items(data, "Node")

    def list_pods(self, namespace: str, selector: str | None = None) -> list[JSONDict]:
        kwargs = {"label_selector": selector} if selector else {}
        data = self._get_json(
            "list pods", "list", "pods", namespace,
            self._core.list_namespaced_pod, namespace, **kwargs,
        )
        return _items(data, "Pod")

    def list_daemonsets(self, namespace: str) -> list[JSONDict]:
        data = self._get_json(
            "list daemonsets", "list", "daemonsets.apps", namespace,
            self._apps.list_namespaced_daemon_set, namespace,
        )
        return _items(data, "DaemonSet")

    def list_deployments(self, namespace: str) -> list[JSONDict]:
        data = self._get_json(
            "list deployments", "list", "deployments.apps", namespace,
            self._apps.list_namespaced_deployment, namespace,
        )
        return _items(data, "Deployment")

    def namespace_exists(self, namespace: str) -> bool:
        try:
            self._get_json(
                "get namespace", "get", "namespaces", None,
                self._core.read_namespace, namespace,
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

        extra: dict[str, Any] = {"tail_lines": tail_lines} if tail_lines else {}

        def request() -> str:
            response: Any = self._core.read_namespaced_pod_log(
                pod, namespace, container=container, previous=previous,
                limit_bytes=limit_bytes, _preload_content=False,
                _request_timeout=self.request_timeout, **extra,
            )
            return bytes(response.data).decode(errors="replace")

        try:
            return self._call("read pod log", "get", "pods/log", namespace, request)
        except (NotFound, ApiError):
            # 400/404: the container has no (previous) instance to read from
            return None

    def get_workload(self, kind: str, namespace: str, name: str) -> JSONDict | None:
        """One DaemonSet or Deployment, or None when it does not exist."""
        fn = (self._apps.read_namespaced_daemon_set if kind == "DaemonSet"
              else self._apps.read_namespaced_deployment)
        resource = "daemonsets.apps" if kind == "DaemonSet" else "deployments.apps"
        try:
            data = self._get_json(f"get {resource}", "get", resource, namespace, fn, name,
                                  namespace)
        except NotFound:
            return None
        return {**data, "kind": kind}

    def list_events(self, namespace: str) -> list[JSONDict]:
        data = self._get_json(
            "list events", "list", "events", namespace,
            self._core.list_namespaced_event, namespace,
        )
        return _items(data, "Event")

    def watch_workload(
        self, kind: str, namespace: str, name: str, timeout_s: float
    ) -> Iterator[JSONDict]:
        """The named DaemonSet or Deployment as it changes (first its current state).

        Ends when ``timeout_s`` has passed; a watch the server closes early is
        re-opened, so a restarting apiserver only delays the events.
        """
        list_fn = (self._apps.list_namespaced_daemon_set if kind == "DaemonSet"
                   else self._apps.list_namespaced_deployment)
        resource = "daemonsets.apps" if kind == "DaemonSet" else "deployments.apps"
        deadline = time.monotonic() + timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            stream = watch.Watch()

            def events(remaining: float = remaining, stream: Any = stream) -> Any:
                return iter(stream.stream(
                    list_fn, namespace, field_selector=f"metadata.name={name}",
                    timeout_seconds=max(1, int(remaining)), deserialize=False,
                    _request_timeout=(self.request_timeout, remaining + 5),
                ))

            try:
                iterator = self._call(f"watch {resource}", "watch", resource, namespace, events)
                for event in iterator:
                    obj = event.get("object")
                    if event.get("type") in ("ADDED", "MODIFIED") and isinstance(obj, dict):
                        yield {**obj, "kind": kind}
                    if time.monotonic() >= deadline:
                        return
            except (urllib3.exceptions.HTTPError, ApiException, ApiUnreachable):
                # the connection dropped (e.g. the apiserver restarted): watch again
                if time.monotonic() >= deadline:
                    return
                self._sleep(min(1.0, max(0.0, deadline - time.monotonic())))
            finally:
                stream.stop()

    # ------------------------------------------------------------------ the upgrade lock
    def acquire_lease(
        self, namespace: str, name: str, holder: str, duration_s: int
    ) -> None:
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
                body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                        "metadata": {"name": name, "namespace": namespace},
                        "spec": {**spec, "acquireTime": _micro(now)}}
                try:
                    self._get_json("create leases", "create", "leases.coordination.k8s.io",
                                   namespace, self._coordination.create_namespaced_lease,
                                   namespace, body)
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
                self._get_json("update leases", "update", "leases.coordination.k8s.io",
                               namespace, self._coordination.replace_namespaced_lease,
                               name, namespace, body)
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
            self._get_json("delete leases", "delete", "leases.coordination.k8s.io", namespace,
                           self._coordination.delete_namespaced_lease, name, namespace,
                           body={"preconditions": {"resourceVersion": version}})
        except (NotFound, ApiError):
            return False
        return True

    def _read_lease(self, namespace: str, name: str) -> JSONDict | None:
        try:
            return self._get_json("get leases", "get", "leases.coordination.k8s.io", namespace,
                                  self._coordination.read_namespaced_lease, name, namespace)
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
                    "create selfsubjectaccessreviews", "create",
                    "selfsubjectaccessreviews.authorization.k8s.io", None,
                    self._authz.create_self_subject_access_review, body,
                )
            )
        return answers


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
    items = data.get("items") or []
    return [{**item, "kind": item.get("kind", kind)} for item in items]


def _reason(exc: urllib3.exceptions.HTTPError) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc)
