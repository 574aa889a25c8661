"""The README's main job: the offline demo, both scenarios, on sandboxes of its own."""

from __future__ import annotations

from pathlib import Path

import pytest
from _pytest.capture import CaptureFixture
from cilium_sandbox.build import Builder
from cilium_sandbox.cluster import Sandbox
from cilium_sandbox.demo import DEMO_FROM, DEMO_TO, run_demo
from cilium_sandbox.topology import build_topology
from cilium_sandbox.watchdog import _processes_naming

pytestmark = pytest.mark.sandbox
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("scenario", ["upgrade", "failing"])
def test_demo_runs_the_gated_upgrade_and_leaves_nothing_running(
    tmp_path: Path, scenario: str, capfd: CaptureFixture[str]
) -> None:
    box = Sandbox(
        tmp_path / "box",
        Builder().ensure_all(),
        build_topology(ROOT / "kind-config.yaml"),
        progress=lambda _: None,
    )
    code = run_demo(box, ROOT / "tests" / "charts", scenario=scenario, reports=tmp_path / "reports")
    out = capfd.readouterr().out
    assert code == 0, out
    assert (tmp_path / "reports" / f"demo-{scenario}.xml").is_file()
    summary = (tmp_path / "reports" / f"demo-{scenario}.md").read_text()
    if scenario == "upgrade":
        assert "Cilium upgrade gate: clear" in summary
        assert f"cilium-{DEMO_TO}" in out
    else:
        assert "Cilium upgrade gate: blocked" in summary
        assert f"rolled back to {DEMO_FROM}" in out
    assert _processes_naming(str(box.kwok_workdir).encode()) == []
