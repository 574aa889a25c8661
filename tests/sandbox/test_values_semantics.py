"""Helm's own value semantics decide what the release's values are to be after an upgrade.

``--set a=1,b=2`` is two keys, ``tolerations[0].operator=Exists`` changes the first item of
a list, ``x\\.y=1`` is one key with a dot, ``list={a,b}`` a list: the gate asks Helm for the
merge of the values snapshot with the upgrade's values files and ``--set`` items (a probe
chart rendered by ``helm template``) and compares the release's values with that, so a good
upgrade is not failed (and rolled back) for values parsed otherwise. Shown on real Helm 3
and 4 against what ``helm get values`` prints, then on the real 1.19.6 -> 1.20.0 upgrade,
performed by the gate and performed by the user between a pre and a post run.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from cilium_sandbox.cluster import Sandbox
from cilium_sandbox.faults import ContainerLogs
from cilium_sandbox.pytest_plugin import RealCharts

from pytest_cilium_upgrade.adapters.helm.client import Helm

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.sandbox

SOURCE, TARGET = "1.19.6", "1.20.0"
VALID = 'level=info msg="All CCNPs and CNPs valid!" subsys=preflight'
VALUES_PRESERVED = "cilium-upgrade.post::values_preserved"
# what the upgrade adds, in the forms a hand-made parser got wrong
SETS = ("a=1,b=2", "tolerations[0].operator=Exists", "x\\.y=1", "list={a,b}")
BASE = {
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu"}],
    "cluster": {"name": "sandbox", "id": None},
}
# as Helm computes them (checked against `helm get values` below)
MERGED = {
    "a": 1,
    "b": 2,
    "tolerations": [{"key": "dedicated", "operator": "Exists", "value": "gpu"}],
    "x.y": 1,
    "list": ["a", "b"],
    "cluster": {"name": "sandbox", "id": None},
}


def _helm_binary(sandbox: Sandbox, major: int) -> Path:
    return Path(sandbox.binaries.helm3 if major == 3 else sandbox.binaries.helm4)


def _verdicts(junit: Path) -> dict[str, str]:
    """``classname::name`` -> ``passed`` or the failure's text (message and details);
    ``classname::name (verdict)`` -> the gate's one-line verdict of a check."""
    out = {}
    for case in ET.parse(junit).getroot().iter("testcase"):  # noqa: S314 - our own report
        failure, skipped = case.find("failure"), case.find("skipped")
        key = f"{case.get('classname')}::{case.get('name')}"
        for prop in case.iter("property"):
            if prop.get("name") == "verdict":
                out[f"{key} (verdict)"] = str(prop.get("value"))
        if failure is not None:
            out[key] = failure.text or str(failure.get("message", ""))
        elif skipped is not None:
            out[key] = "skipped: " + skipped.get("message", "")
        else:
            out[key] = "passed"
    return out


@pytest.mark.parametrize("major", [3, 4])
def test_helms_merge_is_what_helm_get_values_prints(
    sandbox: Sandbox, namespace: str, tmp_path: Path, major: int
) -> None:
    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: semantics\nversion: 0.1.0\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n"
    )
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump(BASE))
    flags = [arg for item in SETS for arg in ("--set", item)]
    sandbox.helm(
        major, "install", "semantics", str(chart), "-n", namespace, "-f", str(base), *flags
    )
    try:
        stored = json.loads(
            sandbox.helm(major, "get", "values", "semantics", "-n", namespace, "-o", "json").stdout
        )
    finally:
        sandbox.helm(major, "uninstall", "semantics", "-n", namespace, check=False)
    helm = Helm(str(_helm_binary(sandbox, major)), env=sandbox.env())
    computed = helm.user_values([base], SETS)
    assert computed == stored == MERGED
    assert [call.argv[1] for call in helm.calls] == ["template"]  # one local helm process


def _gate(
    sandbox: Sandbox, pytester: pytest.Pytester, namespace: str, major: int, *args: str
) -> dict[str, str]:
    junit = pytester.path / "junit.xml"
    junit.unlink(missing_ok=True)
    result = pytester.runpytest(
        "--cilium-upgrade",
        f"--cilium-kubeconfig={sandbox.kubeconfig}",
        f"--cilium-helm={_helm_binary(sandbox, major)}",
        f"--cilium-namespace={namespace}",
        f"--cilium-values-snapshot={pytester.path / 'values.yaml'}",
        f"--cilium-state-file={pytester.path / 'state.json'}",
        f"--junitxml={junit}",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        "-rA",
        *args,
    )
    verdicts = _verdicts(junit)
    verdicts["(output)"] = result.stdout.str()
    return verdicts


def test_a_performed_upgrade_with_set_items_keeps_its_values(
    sandbox: Sandbox, namespace: str, pytester: pytest.Pytester, cilium_charts: RealCharts
) -> None:
    source, target = cilium_charts[SOURCE], cilium_charts[TARGET]
    sandbox.helm(3, "install", "cilium", str(source), "-n", namespace, "--wait", "--timeout", "3m")
    sandbox.set_logs(ContainerLogs(namespace, "cnp-validator", current=[VALID]))
    try:
        verdicts = _gate(
            sandbox,
            pytester,
            namespace,
            3,
            "--cilium-perform-upgrade",
            f"--cilium-chart={target}",
            f"--cilium-target-version={TARGET}",
            "--cilium-timeout=120",
            *(f"--cilium-set={item}" for item in SETS),
        )
        assert verdicts[VALUES_PRESERVED] == "passed", verdicts["(output)"]
        assert verdicts["cilium-upgrade.upgrade::helm_upgrade"] == "passed"
        assert verdicts["cilium-upgrade.rollback::values_preserved"].startswith("skipped")
        history = json.loads(
            sandbox.helm(3, "history", "cilium", "-n", namespace, "-o", "json").stdout
        )
        assert [(h["chart"], h["status"]) for h in history] == [
            (f"cilium-{SOURCE}", "superseded"),
            (f"cilium-{TARGET}", "deployed"),
        ]
        live = json.loads(
            sandbox.helm(3, "get", "values", "cilium", "-n", namespace, "-o", "json").stdout
        )
        assert live == {k: v for k, v in MERGED.items() if k != "cluster"} | {
            "tolerations": [{"operator": "Exists"}]
        }
    finally:
        sandbox.helm(3, "uninstall", "cilium", "-n", namespace, "--wait", check=False)
        sandbox.clear_faults()


def test_phases_judge_the_users_upgrade_by_what_pre_was_given(
    sandbox: Sandbox, namespace: str, pytester: pytest.Pytester, cilium_charts: RealCharts
) -> None:
    source, target = cilium_charts[SOURCE], cilium_charts[TARGET]
    major = 4
    extra = pytester.path / "extra.yaml"
    extra.write_text(yaml.safe_dump({"hubble": {"relay": {"enabled": True}}}))
    snapshot = pytester.path / "values.yaml"
    sandbox.helm(
        major, "install", "cilium", str(source), "-n", namespace,
        "--set", "cluster.name=sandbox", "--wait", "--timeout", "3m",
    )  # fmt: skip
    try:
        pre = _gate(
            sandbox,
            pytester,
            namespace,
            major,
            "--cilium-phase=pre",
            "--cilium-write-snapshot",
            f"--cilium-chart={target}",
            f"--cilium-target-version={TARGET}",
            f"--cilium-values-file={extra}",
            *(f"--cilium-set={item}" for item in SETS),
        )
        # the target was rendered with what the upgrade will add
        assert pre["cilium-upgrade.pre::target_chart_renders_with_snapshot"] == "passed"
        state = pytester.path / "state.json"
        assert state.stat().st_mode & 0o777 == 0o600
        assert json.loads(state.read_text())["sets"] == list(SETS)
        assert yaml.safe_load(snapshot.read_text()) == {"cluster": {"name": "sandbox"}}

        # the user's own upgrade, with the same values files and --set items
        flags = [arg for item in SETS for arg in ("--set", item)]
        sandbox.helm(
            major, "upgrade", "cilium", str(target), "-n", namespace,
            "-f", str(snapshot), "-f", str(extra), *flags, "--wait", "--timeout", "3m",
        )  # fmt: skip
        post = _gate(sandbox, pytester, namespace, major, "--cilium-phase=post")
        assert post[VALUES_PRESERVED] == "passed", post["(output)"]
        assert post[f"{VALUES_PRESERVED} (verdict)"] == (
            f"pass: live values equal the snapshot with {1 + len(SETS)} override(s)"
            f" (recorded by the pre phase in {state}), as Helm merges them"
        )

        # an upgrade that forgot `-f extra.yaml`: the value it set is lost, and caught
        sandbox.helm(
            major, "upgrade", "cilium", str(target), "-n", namespace,
            "-f", str(snapshot), *flags, "--wait", "--timeout", "3m",
        )  # fmt: skip
        post = _gate(sandbox, pytester, namespace, major, "--cilium-phase=post")
        assert post[VALUES_PRESERVED] != "passed"
        assert "hubble (removed) (expected vs live)" in post[VALUES_PRESERVED]
    finally:
        sandbox.helm(major, "uninstall", "cilium", "-n", namespace, "--wait", check=False)
