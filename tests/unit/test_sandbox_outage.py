"""The sandbox's pieces for API server outages that need no running cluster.

The outage itself (stop, start, the controllers and kwok coming back) is shown on a real
sandbox in ``tests/sandbox/test_faults.py``.
"""

from __future__ import annotations

import socket
from importlib import resources
from pathlib import Path

import pytest
import yaml
from cilium_sandbox.build import Builder
from cilium_sandbox.cluster import LOOPBACK, Component, Sandbox, port_in_use
from cilium_sandbox.errors import SandboxError
from cilium_sandbox.faults import FAULT_CONDITION, Fault, PodFault
from cilium_sandbox.topology import Topology

FAULT = f'.status.conditions.[] | select( .type == "{FAULT_CONDITION}" )'


def _sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path / "box", Builder(tmp_path / "cache").binaries(), Topology("kind", ()))


def _expressions(stage: dict[str, object]) -> list[dict[str, object]]:
    spec = stage["spec"]
    assert isinstance(spec, dict)
    expressions: list[dict[str, object]] = spec["selector"]["matchExpressions"]
    return expressions


def test_a_fault_marks_its_pods_and_its_heal_selects_only_those() -> None:
    fault = PodFault(
        Fault.NEVER_READY,
        namespace="ns",
        labels={"k8s-app": "cilium"},
        images=["quay.io/cilium/cilium:v1.16.15"],
    )
    other = PodFault(Fault.NEVER_READY, namespace="ns", labels={"k8s-app": "other"})
    assert fault.marker() != other.marker()
    template = fault.stage()["spec"]["next"]["statusTemplate"]
    assert f'status: "True", reason: NeverReady, message: "{fault.marker()}"' in template

    heal = fault.heal_stage()
    assert heal["metadata"]["name"] == fault.heal_name() != fault.name()
    assert heal["metadata"]["labels"] == fault.stage()["metadata"]["labels"]  # cleared alike
    expressions = _expressions(heal)
    assert {"key": f"{FAULT} | .status", "operator": "In", "values": ["True"]} in expressions
    assert {
        "key": f"{FAULT} | .message",
        "operator": "In",
        "values": [fault.marker()],
    } in expressions
    assert heal["spec"]["selector"]["matchLabels"] == {"k8s-app": "cilium"}
    healed = heal["spec"]["next"]["statusTemplate"]
    assert f'{FAULT_CONDITION}, status: "False", reason: Healed' in healed
    assert '- {type: Ready, status: "True"' in healed
    assert "phase: Running" in healed


def test_a_crash_looping_container_keeps_its_restarts_when_healed() -> None:
    fault = PodFault(Fault.CRASH_LOOP, container="cilium-agent", restarts=4)
    healed = fault.heal_stage()["spec"]["next"]["statusTemplate"]
    assert '{{ if and true (eq .name "cilium-agent") }}' in healed
    assert "restartCount: 4" in healed


def test_kubelet_reasserts_ready_for_running_pods_no_fault_holds() -> None:
    stages = {
        doc["metadata"]["name"]: doc
        for doc in yaml.safe_load_all(
            resources.files("cilium_sandbox").joinpath("data", "stages.yaml").read_text()
        )
    }
    again = _expressions(stages["pod-ready-again"])
    assert {"key": ".status.phase", "operator": "In", "values": ["Running"]} in again
    assert {"key": f"{FAULT} | .status", "operator": "NotIn", "values": ["True"]} in again
    assert {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"} in again


def test_components_are_read_from_kwokctls_configuration(tmp_path: Path) -> None:
    box = _sandbox(tmp_path)
    box.cluster_dir.mkdir(parents=True)
    (box.cluster_dir / "kwok.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
                "kind": "KwokctlConfiguration",
                "components": [
                    {
                        "name": "kube-apiserver",
                        "binary": "/bin/kube-apiserver",
                        "args": ["--bind-address=127.0.0.1", "--secure-port=6443"],
                        "workDir": "/w",
                    },
                    {
                        "name": "kube-scheduler",
                        "binary": "/bin/kube-scheduler",
                        "args": ["--secure-port=32762"],
                        "envs": [{"name": "A", "value": "b"}],
                    },
                ],
            }
        )
    )
    found = box.components()
    assert found["kube-apiserver"] == Component(
        "kube-apiserver",
        "/bin/kube-apiserver",
        ("--bind-address=127.0.0.1", "--secure-port=6443"),
        "/w",
    )
    scheduler = found["kube-scheduler"]
    assert scheduler.workdir == str(box.cluster_dir)
    assert scheduler.env == (("A", "b"),)
    assert scheduler.flag("secure-port") == "32762"
    assert scheduler.flag("bind-address") is None
    moved = scheduler.with_flag("secure-port", "40000")
    assert moved.args == ("--secure-port=40000",)
    assert moved.name == "kube-scheduler"


def test_stopping_an_apiserver_that_does_not_run_is_refused(tmp_path: Path) -> None:
    box = _sandbox(tmp_path)
    assert not box.apiserver_running()
    with pytest.raises(SandboxError, match="cannot stop kube-apiserver: it is not running"):
        box.stop_apiserver()
    with pytest.raises(SandboxError, match="cannot read the sandbox's components"):
        box.components()


def test_a_listening_port_is_in_use_also_for_a_server_that_reuses_addresses() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind((LOOPBACK, 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert port_in_use(port)
        assert port_in_use(port, reuse=True)
