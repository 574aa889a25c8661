"""How a step's wait ends: healthy, not ready at the deadline, or the API server away.

The Kubernetes adapter is replaced by a fake of its interface (``get_workload``,
``watch_workload``, ``list_pods``, ``list_events``, ``pod_log``); the wait's own logic
is what is under test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any, cast

import pytest

from pytest_cilium_upgrade.errors import ApiUnreachable
from pytest_cilium_upgrade.gate.settings import Settings
from pytest_cilium_upgrade.redact import Redactor
from pytest_cilium_upgrade.upgrade.ports import FlowCluster
from pytest_cilium_upgrade.upgrade.steps import StepFailed, UpgradeFlow

NS = "kube-system"
UNREACHABLE = (
    "the Kubernetes API server at https://10.0.0.1:6443 has been unreachable since "
    "10:00:00 UTC (12s, 12 attempts to watch daemonsets.apps kube-system/cilium failed); "
    "last error: Failed to establish a new connection: [Errno 111] Connection refused"
)


def daemonset(ready: int, updated: int, desired: int = 8) -> dict[str, Any]:
    return {
        "kind": "DaemonSet",
        "metadata": {"name": "cilium", "namespace": NS, "generation": 2},
        "spec": {"template": {"spec": {"containers": [{"name": "cilium-agent"}]}}},
        "status": {
            "observedGeneration": 2,
            "desiredNumberScheduled": desired,
            "currentNumberScheduled": desired,
            "numberReady": ready,
            "updatedNumberScheduled": updated,
            "numberAvailable": ready,
        },
    }


class FakeKube:
    """``watch_workload`` yields ``states`` in turn, then raises ``end`` (or just ends)."""

    def __init__(self, states: Sequence[dict[str, Any]], end: Exception | None = None) -> None:
        self.states = list(states)
        self.end = end
        self.calls: list[str] = []

    def get_workload(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        self.calls.append("get_workload")
        return daemonset(8, 8)

    def watch_workload(
        self, kind: str, namespace: str, name: str, timeout_s: float
    ) -> Iterator[dict[str, Any]]:
        self.calls.append("watch_workload")
        yield from self.states
        if self.end is not None:
            raise self.end

    def list_pods(self, namespace: str, selector: str | None = None) -> list[dict[str, Any]]:
        self.calls.append("list_pods")
        return [
            {
                "metadata": {"name": "cilium-abcde", "namespace": NS},
                "spec": {"nodeName": "worker2", "containers": [{"name": "cilium-agent"}]},
                "status": {
                    "phase": "Running",
                    "conditions": [{"type": "Ready", "status": "False"}],
                    "containerStatuses": [
                        {"name": "cilium-agent", "ready": False, "state": {"running": {}}}
                    ],
                },
            }
        ]

    def list_events(self, namespace: str, involved: str | None = None) -> list[dict[str, Any]]:
        self.calls.append("list_events")
        return []

    def pod_log(self, namespace: str, pod: str, container: str, **kwargs: Any) -> str | None:
        self.calls.append("pod_log")
        return "level=error msg=boom\n"


def wait(kube: FakeKube) -> tuple[str, list[str]]:
    progress: list[str] = []
    flow = UpgradeFlow(
        Settings(namespace=NS, timeout=20),
        cast(FlowCluster, kube),
        helm=None,
        chart=None,
        progress=progress.append,
        redactor=Redactor,
    )
    done = flow._wait("DaemonSet", "cilium", "agent", time.monotonic() + 20, "k8s-app=cilium")
    return done, progress


def test_a_workload_that_becomes_healthy_ends_the_wait() -> None:
    kube = FakeKube([daemonset(6, 2), daemonset(8, 8)])
    done, progress = wait(kube)
    assert done == "DaemonSet cilium: 8/8 ready"
    assert progress == ["agent 6/8 ready, 2/8 updated…", "agent 8/8 ready"]


def test_api_unreachable_at_the_deadline_is_named_with_the_last_state_seen() -> None:
    kube = FakeKube([daemonset(6, 2)], end=ApiUnreachable(UNREACHABLE))
    with pytest.raises(StepFailed) as info:
        wait(kube)
    summary = info.value.summary
    assert summary.startswith("timed out after 20s waiting for DaemonSet cilium: ")
    assert "API server at https://10.0.0.1:6443 has been unreachable since 10:00:00 UTC" in summary
    assert (
        "last error: Failed to establish a new connection: [Errno 111] Connection refused"
        in summary
    )
    assert summary.endswith("last seen: ready 6/8; up-to-date 2/8; available 6/8")
    assert any("check the control plane" in d for d in info.value.details)
    # the API server is away: it is not asked to describe the pods
    assert kube.calls == ["get_workload", "watch_workload"]


def test_api_unreachable_before_the_first_state_says_never_observed() -> None:
    kube = FakeKube([], end=ApiUnreachable(UNREACHABLE))
    with pytest.raises(StepFailed) as info:
        wait(kube)
    assert "has been unreachable since" in info.value.summary
    assert info.value.summary.endswith("last seen: never observed")


def test_a_plain_timeout_still_describes_the_pods_not_ready() -> None:
    kube = FakeKube([daemonset(6, 2)])
    with pytest.raises(StepFailed) as info:
        wait(kube)
    assert info.value.summary == (
        "timed out after 20s waiting for DaemonSet cilium: ready 6/8; up-to-date 2/8; available 6/8"
    )
    assert "unreachable" not in info.value.summary
    assert (
        "pod cilium-abcde on node worker2: containers not ready: cilium-agent" in info.value.details
    )
    assert "list_pods" in kube.calls
