"""The reads: what the snapshot and the checks ask of the cluster."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TypeVar

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.adapters import api_shapes
from pytest_cilium_upgrade.adapters.helm import records as release_records
from pytest_cilium_upgrade.adapters.kube.client import _as_is, _Core, _q
from pytest_cilium_upgrade.adapters.kube.discovery import (
    DISCOVERY_ACCEPT,
    aggregated_api_versions,
    plain_group_versions,
    resource_list_api_versions,
)
from pytest_cilium_upgrade.errors import ApiError, NotFound
from pytest_cilium_upgrade.snapshot.model.jsondata import JSONDict

T = TypeVar("T")
# a Helm release record is hundreds of KB: a few on the first page (see paging.py)
RECORDS_FIRST_LIMIT = 4


class _Reads(_Core):
    """GETs and LISTs of what the checks judge, and the access reviews."""

    def server_version(self) -> str:
        data = self._get_json("version", "get", "version", None, "GET", "/version/")
        return str(data.get("gitVersion", ""))

    def api_versions(self) -> list[str]:
        """What ``.Capabilities.APIVersions`` holds during ``helm upgrade``, sorted.

        Every ``group/version`` the API server serves (``v1`` for the core group) and
        every ``group/version/Kind`` of their resources and subresources, as Helm builds
        the set from discovery. Two requests, ``/api`` and ``/apis``, where the server
        serves aggregated discovery (``apidiscovery.k8s.io`` v2, or v2beta1 before
        Kubernetes 1.30); a server without it answers with the plain lists, and each
        group version's resources then cost one request more, as they do for Helm.
        Versions whose discovery is stale (an aggregated API down) are left out, as
        client-go leaves them out.
        """
        found: set[str] = set()
        for root in ("/api", "/apis"):
            document = self._discovery(root)
            if document.get("kind") == "APIGroupDiscoveryList":
                found.update(aggregated_api_versions(document))
                continue
            for group_version in plain_group_versions(document):
                found.add(group_version)
                prefix = "/api/" if "/" not in group_version else "/apis/"
                try:
                    resources = self._discovery(prefix + group_version)
                except (NotFound, ApiError):
                    continue  # a group that fails discovery: its kinds are unknown to Helm too
                found.update(resource_list_api_versions(resources))
        return sorted(found)

    def _discovery(self, path: str) -> JSONDict:
        def request() -> JSONDict:
            data: JSONDict = json.loads(self._send("GET", path, accept=DISCOVERY_ACCEPT))
            return data

        return self._call("discovery", "get", path, None, request)

    def list_nodes(self) -> list[JSONDict]:
        return self.nodes_as(_as_is)

    def nodes_as(self, into: Callable[[JSONDict], T]) -> list[T]:
        """Every node, each turned by ``into`` (a model) as its page of the LIST arrives."""
        return self._list_as(
            into, "Node", "nodes", "/api/v1/nodes", None, shape=api_shapes.NodeList
        )

    def list_pods(self, namespace: str, selector: str | None = None) -> list[JSONDict]:
        return self.pods_as(namespace, _as_is, selector)

    def pods_as(
        self, namespace: str, into: Callable[[JSONDict], T], selector: str | None = None
    ) -> list[T]:
        """The pods of ``namespace``, each turned by ``into`` (a model) as its page arrives.

        A pod as the API server sends it is 10 to 25 KB, and even the fields the model
        reads make a JSON dict of about 15 KB, several times the model: turned page by
        page, the dicts of 10,000 pods are never held at once.
        """
        return self._list_as(
            into, "Pod", "pods", _core_path(namespace, "pods"), namespace, selector,
            shape=api_shapes.PodList,
        )  # fmt: skip

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
            first_limit=RECORDS_FIRST_LIMIT,
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

    def list_events(self, namespace: str, involved: str | None = None) -> list[JSONDict]:
        """The events of ``namespace``; with ``involved``, only those about that object."""
        fields = f"involvedObject.name={involved}" if involved else None
        return self._list(
            "Event", "events", _core_path(namespace, "events"), namespace, fields=fields
        )

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


def _core_path(namespace: str, resource: str, *rest: str) -> str:
    return "/".join(["/api/v1/namespaces", _q(namespace), resource, *map(_q, rest)])


def _apps_path(namespace: str, resource: str, *rest: str) -> str:
    return "/".join(["/apis/apps/v1/namespaces", _q(namespace), resource, *map(_q, rest)])
