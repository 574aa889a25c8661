"""The values an upgrade is to leave, as Helm merges them, in both ways of running the gate.

In phases mode the user's own ``helm upgrade -f SNAPSHOT -f FILE --set ITEM`` runs between
a pre and a post run: pre records the values files and ``--set`` items it was given (the
state file is then secret: mode 0600), and post judges the release's values against Helm's
merge of the snapshot with them. The fake Helm answers the merge as the scenario says:
the merge itself is Helm's (``tests/sandbox/test_values_semantics.py`` asks the real one).
"""

from __future__ import annotations

import copy
import json
import stat
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pytest
from gate_harness import Gate, JSONDict, new_gate

if TYPE_CHECKING:
    from pytest_cilium_upgrade.adapters.helm.client import Helm

pytest_plugins = ["pytester"]

VALUES_PRESERVED = "cilium-upgrade::post::values_preserved"


@pytest.fixture
def gate(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Gate:
    return new_gate(pytester, monkeypatch)


def _upgraded(values: JSONDict) -> JSONDict:
    """The release's values after `-f snapshot -f extra.yaml --set a=1,b=2` (Helm's merge)."""
    out = copy.deepcopy(values)
    out["hubble"]["relay"]["enabled"] = True  # from extra.yaml
    out["a"], out["b"] = 1, 2
    return out


def _pre(gate: Gate, *extra: str) -> None:
    (gate.path / "extra.yaml").write_text("hubble:\n  relay:\n    enabled: true\n")
    result = gate.run("--cilium-phase=pre", *extra)
    assert result.ret == 0, result.stdout.str()


def _post(gate: Gate, *extra: str) -> dict[str, str]:
    """Run the post phase's values_preserved: its outcome and verdict, what Helm was asked."""
    junit = gate.path / "junit.xml"
    result = gate.run(
        "--cilium-phase=post", "-k", "values_preserved", f"--junitxml={junit}", *extra
    )
    (case,) = ET.parse(junit).getroot().iter("testcase")  # noqa: S314 - our own report
    verdict = next(str(p.get("value")) for p in case.iter("property") if p.get("name") == "verdict")
    outcome = "passed" if result.ret == 0 else "failed"
    asked = json.loads((gate.path / "user-values-asked.json").read_text())
    return {
        "outcome": outcome,
        "text": result.stdout.str(),
        "verdict": verdict,
        "asked": json.dumps(asked),
    }


def test_pre_records_the_overrides_privately_and_renders_with_them(gate: Gate) -> None:
    _pre(gate, "--cilium-values-file=extra.yaml", "--cilium-set=a=1,b=2")
    state_file = gate.path / ".cilium-upgrade-state.json"
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600  # the --set items may be secret
    state = json.loads(state_file.read_text())
    assert state["values_files"] == [str(gate.path / "extra.yaml")]
    assert state["sets"] == ["a=1,b=2"]
    # the target was rendered as the cluster would render it
    rendered_for = json.loads((gate.path / "rendered-for.json").read_text())
    assert rendered_for["kube_version"] == gate.data["server_version"]
    assert "apps/v1/DaemonSet" in rendered_for["api_versions"]


def test_post_judges_the_users_upgrade_by_the_overrides_pre_recorded(gate: Gate) -> None:
    before = copy.deepcopy(gate.data["values"])
    _pre(gate, "--cilium-values-file=extra.yaml", "--cilium-set=a=1,b=2")
    # the user's upgrade: -f snapshot -f extra.yaml --set a=1,b=2
    gate.snapshot_values = before
    gate.data["values"] = _upgraded(before)
    gate.data["user_values"] = _upgraded(before)
    verdict = _post(gate)
    assert verdict["outcome"] == "passed", verdict["text"]
    assert json.loads(verdict["asked"]) == {
        "files": [str(gate.path / "cilium-values.yaml"), str(gate.path / "extra.yaml")],
        "sets": ["a=1,b=2"],
    }
    assert verdict["verdict"] == (
        "pass: live values equal the snapshot with 2 override(s) (recorded by the pre phase"
        f" in {gate.path / '.cilium-upgrade-state.json'}), as Helm merges them"
    )


def test_post_catches_a_value_the_users_upgrade_lost(gate: Gate) -> None:
    before = copy.deepcopy(gate.data["values"])
    _pre(gate, "--cilium-values-file=extra.yaml", "--cilium-set=a=1,b=2")
    # the user's upgrade forgot `-f extra.yaml`
    gate.snapshot_values = before
    live = _upgraded(before)
    live["hubble"]["relay"]["enabled"] = False
    gate.data["values"] = live
    gate.data["user_values"] = _upgraded(before)
    verdict = _post(gate)
    assert verdict["outcome"] == "failed", verdict["text"]
    assert "hubble.relay.enabled (changed) (expected vs live)" in verdict["text"]


def test_without_overrides_post_judges_by_the_snapshot(gate: Gate) -> None:
    before = copy.deepcopy(gate.data["values"])
    _pre(gate)
    gate.snapshot_values = before
    gate.data["values"] = _upgraded(before)  # values the gate was never told of
    result = gate.run("--cilium-phase=post", "-k", "values_preserved", "-rA")
    assert result.ret != 0
    assert "differ from the snapshot" in result.stdout.str()
    assert not (gate.path / "user-values-asked.json").exists()  # no helm for no overrides


def test_post_given_its_own_overrides_uses_them(gate: Gate) -> None:
    before = copy.deepcopy(gate.data["values"])
    _pre(gate, "--cilium-set=a=1,b=2")
    gate.snapshot_values = before
    gate.data["values"] = _upgraded(before)
    gate.data["user_values"] = _upgraded(before)
    verdict = _post(gate, "--cilium-values-file=extra.yaml", "--cilium-set=a=1,b=2")
    assert verdict["outcome"] == "passed", verdict["text"]
    assert json.loads(verdict["asked"])["files"][1:] == [str(gate.path / "extra.yaml")]
    assert verdict["verdict"] == (
        "pass: live values equal the snapshot with 2 override(s), as Helm merges them"
    )


class _MergingHelm:
    """Answers ``user_values`` with what Helm merged; counts how often it was asked."""

    def __init__(self, merged: JSONDict) -> None:
        self.merged = merged
        self.asked = 0

    def user_values(self, values_files: object = (), set_values: object = ()) -> JSONDict:
        self.asked += 1
        return self.merged

    def get_values(self, release: str, namespace: str) -> JSONDict:
        return {}


def test_the_redactor_knows_the_secrets_helm_parsed_from_set_items(tmp_path: Path) -> None:
    from pytest_cilium_upgrade.gate.session import GateSession
    from pytest_cilium_upgrade.gate.settings import Settings

    secret = "c2V0LWl0ZW0tc2VjcmV0LWtleS0wMTIzNDU2Nzg5"  # noqa: S105 - fixture
    snapshot = tmp_path / "values.yaml"
    snapshot.write_text("cluster:\n  name: a\n")
    settings = Settings(
        enabled=True,
        phase="pre",
        values_snapshot=snapshot,
        state_file=tmp_path / "state.json",
        set=(f"hubble.tls.server.key={secret},cluster.id=2",),
    )
    session = GateSession(settings)
    helm = _MergingHelm(
        {"cluster": {"name": "a", "id": 2}, "hubble": {"tls": {"server": {"key": secret}}}}
    )
    session._adapters_built = True
    session._helm = cast("Helm", helm)
    redactor = session.redactor()
    assert secret not in redactor.redact(
        f"helm upgrade --set hubble.tls.server.key={secret},cluster.id=2"
    )
    # Helm is asked once for as long as the files and items are the same
    session.intended_values()
    assert helm.asked == 1
    snapshot.write_text("cluster:\n  name: changed\n")  # another size: a new stamp
    session.intended_values()
    assert helm.asked == 2


def test_without_a_snapshot_helm_is_not_asked(tmp_path: Path) -> None:
    from pytest_cilium_upgrade.gate.session import GateSession
    from pytest_cilium_upgrade.gate.settings import Settings

    settings = Settings(
        enabled=True,
        phase="pre",
        values_snapshot=tmp_path / "not-yet.yaml",
        state_file=tmp_path / "state.json",
        set=("a=1",),
    )
    session = GateSession(settings)
    helm = _MergingHelm({"a": 1})
    session._adapters_built = True
    session._helm = cast("Helm", helm)
    intended = session.intended_values()
    assert intended is not None
    assert (intended.values, intended.overrides) == (None, 1)
    assert "not-yet.yaml is not there to merge" in intended.error
    assert helm.asked == 0
