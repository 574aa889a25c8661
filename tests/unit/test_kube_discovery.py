"""What the Kubernetes adapter reads for ``.Capabilities.APIVersions`` (no cluster needed).

The answers are shaped as kube-apiserver sends them: aggregated discovery
(``APIGroupDiscoveryList``) from Kubernetes 1.27 on, the plain lists before; the set built
from them is the one Helm builds from client-go's discovery during ``helm upgrade``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kubeconfigs import Response, write_kubeconfig

from pytest_cilium_upgrade.adapters.kube import (
    DISCOVERY_ACCEPT,
    Kube,
    aggregated_api_versions,
)
from pytest_cilium_upgrade.errors import ApiUnreachable

CORE = {
    "kind": "APIGroupDiscoveryList",
    "apiVersion": "apidiscovery.k8s.io/v2",
    "items": [
        {
            "metadata": {"creationTimestamp": None},
            "versions": [
                {
                    "version": "v1",
                    "resources": [
                        {
                            "resource": "pods",
                            "responseKind": {"group": "", "version": "v1", "kind": "Pod"},
                            "subresources": [
                                {
                                    "subresource": "eviction",
                                    "responseKind": {
                                        "group": "policy",
                                        "version": "v1",
                                        "kind": "Eviction",
                                    },
                                },
                                {"subresource": "log"},  # no responseKind: no kind
                            ],
                        },
                        {"resource": "configmaps", "responseKind": {"kind": "ConfigMap"}},
                    ],
                    "freshness": "Current",
                }
            ],
        }
    ],
}
GROUPS = {
    "kind": "APIGroupDiscoveryList",
    "apiVersion": "apidiscovery.k8s.io/v2",
    "items": [
        {
            "metadata": {"name": "apps"},
            "versions": [
                {
                    "version": "v1",
                    "resources": [
                        {"resource": "daemonsets", "responseKind": {"kind": "DaemonSet"}}
                    ],
                }
            ],
        },
        {
            "metadata": {"name": "gateway.networking.k8s.io"},
            "versions": [
                {
                    "version": "v1",
                    "resources": [
                        {"resource": "gatewayclasses", "responseKind": {"kind": "GatewayClass"}}
                    ],
                },
                {
                    "version": "v1beta1",
                    "resources": [
                        {"resource": "gatewayclasses", "responseKind": {"kind": "GatewayClass"}}
                    ],
                },
            ],
        },
        {
            # an aggregated API whose server is down: client-go drops it, Helm goes on
            "metadata": {"name": "metrics.k8s.io"},
            "versions": [
                {
                    "version": "v1beta1",
                    "resources": [{"resource": "nodes", "responseKind": {"kind": "NodeMetrics"}}],
                    "freshness": "Stale",
                }
            ],
        },
    ],
}
EXPECTED = [
    "apps/v1",
    "apps/v1/DaemonSet",
    "gateway.networking.k8s.io/v1",
    "gateway.networking.k8s.io/v1/GatewayClass",
    "gateway.networking.k8s.io/v1beta1",
    "gateway.networking.k8s.io/v1beta1/GatewayClass",
    "v1",
    "v1/ConfigMap",
    "v1/Eviction",
    "v1/Pod",
]


@pytest.fixture
def kube(tmp_path: Path) -> Kube:
    return Kube(str(write_kubeconfig(tmp_path / "kubeconfig")), sleep=lambda _: None)


def _serve(
    kube: Kube, monkeypatch: pytest.MonkeyPatch, answers: dict[str, Any]
) -> list[tuple[str, dict[str, str]]]:
    """Answer GETs by path from ``answers`` (a body, or a Response); record what was sent."""
    sent: list[tuple[str, dict[str, str]]] = []

    def call_api(
        method: str, url: str, headers: dict[str, str], body: Any, post: Any, **_: Any
    ) -> Response:
        path = url.removeprefix("https://127.0.0.1:1")
        sent.append((path, headers))
        answer = answers[path]
        if isinstance(answer, Response):
            return answer
        return Response(200, json.dumps(answer).encode())

    monkeypatch.setattr(kube._api, "call_api", call_api)
    return sent


def test_aggregated_discovery_is_two_requests(kube: Kube, monkeypatch: pytest.MonkeyPatch) -> None:
    sent = _serve(kube, monkeypatch, {"/api": CORE, "/apis": GROUPS})
    assert kube.api_versions() == EXPECTED
    assert [path for path, _ in sent] == ["/api", "/apis"]
    # aggregated v2 first, then v2beta1 (Kubernetes 1.27 to 1.29), then the plain lists
    assert all(headers["Accept"] == DISCOVERY_ACCEPT for _, headers in sent)
    assert DISCOVERY_ACCEPT.split(",") == [
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
        "application/json",
    ]
    assert kube.requests.counts == {"discovery": 2}


def test_v2beta1_has_the_same_shape() -> None:
    beta = {**GROUPS, "apiVersion": "apidiscovery.k8s.io/v2beta1"}
    assert aggregated_api_versions(beta) == {v for v in EXPECTED if v.startswith(("apps", "gat"))}


def test_without_aggregated_discovery_each_group_version_is_read(
    kube: Kube, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers: dict[str, Any] = {
        "/api": {"kind": "APIVersions", "versions": ["v1"]},
        "/apis": {
            "kind": "APIGroupList",
            "groups": [
                {"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}]},
                {
                    "name": "metrics.k8s.io",
                    "versions": [{"groupVersion": "metrics.k8s.io/v1beta1"}],
                },
            ],
        },
        "/api/v1": {
            "kind": "APIResourceList",
            "groupVersion": "v1",
            "resources": [
                {"name": "pods", "kind": "Pod"},
                {"name": "pods/eviction", "kind": "Eviction", "group": "policy"},
            ],
        },
        "/apis/apps/v1": {
            "kind": "APIResourceList",
            "groupVersion": "apps/v1",
            "resources": [{"name": "daemonsets", "kind": "DaemonSet"}],
        },
        # a group whose API server is down: its kinds stay unknown, as for Helm
        "/apis/metrics.k8s.io/v1beta1": Response(
            503, b'{"kind":"Status","message":"service unavailable"}'
        ),
    }
    sent = _serve(kube, monkeypatch, answers)
    assert kube.api_versions() == [
        "apps/v1",
        "apps/v1/DaemonSet",
        "metrics.k8s.io/v1beta1",
        "v1",
        "v1/Eviction",
        "v1/Pod",
    ]
    assert [p for p, _ in sent][:3] == ["/api", "/api/v1", "/apis"]
    assert kube.requests.counts["discovery"] == len(sent)


def test_an_unreachable_discovery_is_an_error(kube: Kube) -> None:
    with pytest.raises(ApiUnreachable):
        kube.api_versions()
