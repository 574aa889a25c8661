"""LISTs read in pages from the real API server: every object once, as of one moment.

kube-apiserver v1.36 serves the first page of a consistent LIST from its watch cache
and every further page from a snapshot of the cache at the first page's revision
(``ListFromCacheSnapshot``). The pages are made small here, so that a few dozen objects
take many of them; what the adapter joins must be exactly what kubectl lists, and a
change made while the pages are read must not show in them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from cilium_sandbox.cluster import Sandbox

from pytest_cilium_upgrade.adapters.kube import Kube
from pytest_cilium_upgrade.adapters.kube import paging as kube_paging

pytestmark = pytest.mark.sandbox

PODS = 25
SELECTOR = "paging=test"


def pod(name: str, namespace: str, node: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"paging": "test"}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
    }


def kubectl_names(sandbox: Sandbox, *args: str) -> list[str]:
    listed = json.loads(sandbox.kubectl("get", *args, "-o", "json"))
    return sorted(item["metadata"]["name"] for item in listed["items"])


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kube_paging, "FIRST_LIMIT", 3)
    monkeypatch.setattr(kube_paging, "PAGE_LIMIT", 4)


@pytest.fixture
def pods(sandbox: Sandbox, namespace: str) -> list[str]:
    workers = [n for n in kubectl_names(sandbox, "nodes") if "control-plane" not in n]
    names = [f"p-{i:02d}" for i in range(PODS)]
    sandbox.apply([pod(n, namespace, workers[i % len(workers)]) for i, n in enumerate(names)])
    assert kubectl_names(sandbox, "pods", "-n", namespace, "-l", SELECTOR) == names
    return names


@pytest.mark.usefixtures("small_pages")
def test_pods_read_in_small_pages_are_each_listed_once(
    sandbox: Sandbox, namespace: str, pods: list[str]
) -> None:
    with Kube(str(sandbox.kubeconfig)) as kube:
        listed = kube.list_pods(namespace, SELECTOR)
        # 3 on the first page, then 4 a page: 3 + 5 * 4 + 2
        assert kube.requests.pages == {"list pods": 7}
        assert kube.requests.counts == {"list pods": 7}
    assert [p["metadata"]["name"] for p in listed] == pods
    assert all(p["kind"] == "Pod" for p in listed)


@pytest.mark.usefixtures("small_pages")
def test_nodes_read_in_small_pages_are_those_kubectl_lists(sandbox: Sandbox) -> None:
    expected = kubectl_names(sandbox, "nodes")
    assert len(expected) > kube_paging.FIRST_LIMIT + kube_paging.PAGE_LIMIT  # several pages
    with Kube(str(sandbox.kubeconfig)) as kube:
        listed = [n["metadata"]["name"] for n in kube.list_nodes()]
        assert kube.requests.pages["list nodes"] == 1 + -(-(len(expected) - 3) // 4)
    assert listed == expected


@pytest.mark.usefixtures("small_pages")
def test_changes_made_between_pages_do_not_show_in_the_list(
    sandbox: Sandbox, namespace: str, pods: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    node = json.loads(sandbox.kubectl("get", "pod", pods[0], "-n", namespace, "-o", "json"))[
        "spec"
    ]["nodeName"]
    with Kube(str(sandbox.kubeconfig)) as kube:
        counted = kube.requests.add_page

        def between_pages(operation: str, size: int) -> None:
            counted(operation, size)
            if kube.requests.pages[operation] == 1:  # after the first page, before the second
                sandbox.kubectl(
                    "delete", "pod", pods[-1], "-n", namespace, "--grace-period=0", "--force"
                )
                sandbox.apply([pod("p-zz-new", namespace, node)])

        monkeypatch.setattr(kube.requests, "add_page", between_pages)
        listed = [p["metadata"]["name"] for p in kube.list_pods(namespace, SELECTOR)]
        assert kube.requests.pages == {"list pods": 7}
    # the list is the pods as they were at its first page: the deleted one, not the new one
    assert listed == pods
    with Kube(str(sandbox.kubeconfig)) as kube:
        now = [p["metadata"]["name"] for p in kube.list_pods(namespace, SELECTOR)]
    assert now == [*pods[:-1], "p-zz-new"]
