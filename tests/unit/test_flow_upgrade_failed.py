"""A helm upgrade that fails: the rollback follows at once, without waiting for a rollout.

The cluster is a fake of our Kubernetes adapter holding Helm's release records; helm is
a fake whose upgrade writes a failed revision 2 (as a half-applied upgrade does) and
exits non-zero.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from test_flow_release_reads import RecordsKube
from test_release_records import release, secret

from pytest_cilium_upgrade.adapters.helm.charts import ChartSource
from pytest_cilium_upgrade.adapters.helm.commands import HelmCommand
from pytest_cilium_upgrade.errors import HelmFailed
from pytest_cilium_upgrade.gate.settings import Settings
from pytest_cilium_upgrade.redact import Redactor
from pytest_cilium_upgrade.upgrade.ports import FlowCluster, FlowHelm
from pytest_cilium_upgrade.upgrade.steps import StepSkipped, UpgradeFlow
from pytest_cilium_upgrade.versions import Version

NS = "kube-system"


class FailingUpgradeHelm:
    """Builds commands; running the upgrade leaves a failed revision and exits 1."""

    timeout = 60.0

    def __init__(self, kube: RecordsKube, fails: bool) -> None:
        self.kube = kube
        self.fails = fails
        self.ran: list[str] = []

    def upgrade_command(self, release: str, *args: Any, **kwargs: Any) -> HelmCommand:
        return HelmCommand(("helm", "upgrade", release), self.timeout)

    def rollback_command(self, release: str, revision: int, *args: Any, **kw: Any) -> HelmCommand:
        return HelmCommand(("helm", "rollback", release, str(revision)), self.timeout)

    def execute(self, command: HelmCommand, **kwargs: Any) -> None:
        self.ran.append(" ".join(command.argv[1:]))
        if command.argv[1] == "upgrade":
            status = "failed" if self.fails else "deployed"
            self.kube.records.append(secret(release("cilium", 2, status, "1.15.19")))
            if self.fails:
                raise HelmFailed(list(command.argv), 1, "Error: UPGRADE FAILED: forbidden")


def _flow(tmp_path: Path, fails: bool) -> tuple[UpgradeFlow, FailingUpgradeHelm]:
    kube = RecordsKube([secret(release("cilium", 1, "deployed", "1.14.19"))])
    helm = FailingUpgradeHelm(kube, fails)
    settings = Settings(
        namespace=NS, target_version=Version.parse("1.15.19"), values_snapshot=tmp_path / "v.yaml"
    )
    flow = UpgradeFlow(
        settings,
        cast(FlowCluster, kube),
        cast(FlowHelm, helm),
        cast(ChartSource, object()),
        progress=lambda _: None,
        redactor=Redactor,
        release_records="Secret",
    )
    flow.state.pre_revision, flow.state.pre_version = 1, "1.14.19"
    return flow, helm


def test_a_failed_helm_upgrade_is_rolled_back_without_a_wait(tmp_path: Path) -> None:
    flow, helm = _flow(tmp_path, fails=True)
    with pytest.raises(HelmFailed):
        flow.helm_upgrade()
    assert (flow.state.upgrade_failed, flow.state.upgraded_revision) == (True, 2)
    flow.state.failed_phases.add("upgrade")  # as the gate records a failed step
    with pytest.raises(StepSkipped, match="helm upgrade failed; nothing to wait for"):
        flow.wait_rollout()
    assert flow.rollback_needed() == "the upgrade phase failed"
    said = flow.helm_rollback()
    assert said == "rolled back to revision 1 (1.14.19) because the upgrade phase failed"
    assert helm.ran == ["upgrade cilium", "rollback cilium 1"]


def test_a_helm_upgrade_that_passes_is_waited_for(tmp_path: Path) -> None:
    flow, _ = _flow(tmp_path, fails=False)
    assert flow.helm_upgrade() == "helm upgrade to 1.15.19: revision 2"
    assert flow.state.upgrade_failed is False
    waited: list[str] = []

    def wait_components() -> str:
        waited.append("wait")
        return "waited"

    flow._wait_components = wait_components  # type: ignore[method-assign]
    assert flow.wait_rollout() == "waited"
    assert waited == ["wait"]
