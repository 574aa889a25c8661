from __future__ import annotations

from pathlib import Path

import pytest
from cilium_sandbox.errors import SandboxError
from cilium_sandbox.topology import Taint, build_topology

ROOT = Path(__file__).resolve().parents[2]
CP_TAINT = Taint("node-role.kubernetes.io/control-plane", "NoSchedule")


def test_repo_kind_config_gives_kind_names_labels_and_taints() -> None:
    topo = build_topology(ROOT / "kind-config.yaml")
    names = [n.name for n in topo.nodes]
    assert names == [
        "cilium-upgrade-control-plane",
        "cilium-upgrade-worker",
        "cilium-upgrade-worker2",
        "cilium-upgrade-worker3",
    ]
    cp = topo.nodes[0]
    assert cp.taints == (CP_TAINT,)
    assert cp.labels["node-role.kubernetes.io/control-plane"] == ""
    assert cp.labels["kubernetes.io/hostname"] == cp.name
    for worker in topo.workers:
        assert worker.taints == ()
        assert worker.labels["kubernetes.io/os"] == "linux"
        assert "node-role.kubernetes.io/control-plane" not in worker.labels


def test_single_node_cluster_keeps_control_plane_schedulable(tmp_path: Path) -> None:
    cfg = tmp_path / "kind.yaml"
    cfg.write_text("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n")
    topo = build_topology(cfg)
    assert [n.name for n in topo.nodes] == ["kind-control-plane"]
    assert topo.nodes[0].taints == ()


def test_seed_topology_three_control_planes_five_workers() -> None:
    topo = build_topology(ROOT / "kind-config.yaml", control_planes=3, workers=5)
    assert [n.name for n in topo.control_plane] == [
        "cilium-upgrade-control-plane",
        "cilium-upgrade-control-plane2",
        "cilium-upgrade-control-plane3",
    ]
    assert [n.name for n in topo.workers][-1] == "cilium-upgrade-worker5"
    assert all(n.taints == (CP_TAINT,) for n in topo.control_plane)


def test_extra_taints_by_node_and_by_role() -> None:
    gpu = Taint.parse("gpu=true:NoSchedule")
    topo = build_topology(
        ROOT / "kind-config.yaml",
        extra_taints=[("cilium-upgrade-worker2", gpu), ("worker", Taint.parse("x:NoExecute"))],
    )
    by_name = {n.name: n for n in topo.nodes}
    assert gpu in by_name["cilium-upgrade-worker2"].taints
    assert Taint("x", "NoExecute") in by_name["cilium-upgrade-worker3"].taints
    assert Taint("x", "NoExecute") not in by_name["cilium-upgrade-control-plane"].taints
    manifest = by_name["cilium-upgrade-worker2"].manifest()
    assert {"key": "gpu", "value": "true", "effect": "NoSchedule"} in manifest["spec"]["taints"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("kind: Cluster\nnodes: [{role: bogus}]\n", "nodes[0].role is 'bogus'"),
        ("kind: Cluster\nnodes: [{role: worker}]\n", "at least one control-plane"),
        ("kind: Pod\n", "expected a kind `kind: Cluster` document"),
        ("kind: Cluster\nnodes: [\n", "not valid YAML"),
        ("kind: Cluster\nnodes: {a: b}\n", "`nodes` must be a list"),
    ],
)
def test_malformed_topology_names_file_and_problem(
    tmp_path: Path, content: str, message: str
) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(content)
    with pytest.raises(SandboxError, match=r"bad\.yaml") as info:
        build_topology(cfg)
    assert message in str(info.value)


def test_missing_topology_file(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match=r"cannot read topology file .*missing\.yaml"):
        build_topology(tmp_path / "missing.yaml")


def test_unknown_taint_target_is_rejected() -> None:
    with pytest.raises(SandboxError, match="names node 'nope'"):
        build_topology(ROOT / "kind-config.yaml", extra_taints=[("nope", CP_TAINT)])


@pytest.mark.parametrize("text", ["novalue", "key:Sometimes", ":NoSchedule"])
def test_bad_taint_text(text: str) -> None:
    with pytest.raises(SandboxError, match="is not a taint"):
        Taint.parse(text)


def test_taint_round_trip() -> None:
    assert str(Taint.parse("a=b:NoExecute")) == "a=b:NoExecute"
    assert str(Taint.parse("a:PreferNoSchedule")) == "a:PreferNoSchedule"
