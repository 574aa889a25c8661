"""The README's main job: the offline demo, both scenarios, on sandboxes of its own.

The demo upgrades real upstream charts (the newest patch of the previous minor to the
newest release at hand) through a Helm repository on loopback.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _pytest.capture import CaptureFixture
from cilium_sandbox.build import Builder
from cilium_sandbox.charts import REAL_CHART_VERSIONS, ChartsMissing
from cilium_sandbox.cli import main
from cilium_sandbox.cluster import Sandbox
from cilium_sandbox.demo import DEMO_FROM, DEMO_TO, demo_charts, demo_versions, run_demo
from cilium_sandbox.pytest_plugin import RealCharts
from cilium_sandbox.topology import build_topology
from cilium_sandbox.watchdog import _processes_naming

pytestmark = pytest.mark.sandbox
ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_upgrades_the_newest_patch_of_the_previous_minor_to_the_newest_release() -> None:
    assert (DEMO_FROM, DEMO_TO) == demo_versions(REAL_CHART_VERSIONS) == ("1.19.6", "1.20.0")
    assert demo_versions(["1.18.0", "1.18.12", "1.19.0", "1.19.6"]) == ("1.18.12", "1.19.6")


@pytest.mark.parametrize("scenario", ["upgrade", "failing"])
def test_demo_runs_the_gated_upgrade_and_leaves_nothing_running(
    tmp_path: Path, scenario: str, cilium_charts: RealCharts, capfd: CaptureFixture[str]
) -> None:
    box = Sandbox(
        tmp_path / "box",
        Builder().ensure_all(),
        build_topology(ROOT / "kind-config.yaml"),
        progress=lambda _: None,
    )
    code = run_demo(box, cilium_charts, scenario=scenario, reports=tmp_path / "reports")
    out = capfd.readouterr().out
    assert code == 0, out
    assert (tmp_path / "reports" / f"demo-{scenario}.xml").is_file()
    summary = (tmp_path / "reports" / f"demo-{scenario}.md").read_text()
    # installed and upgraded through the loopback repository, as from helm.cilium.io
    assert "helm repo add cilium http://127.0.0.1:" in out
    assert f"install cilium cilium/cilium --version {DEMO_FROM}" in out
    assert "--cilium-chart=cilium/cilium" in out
    assert f"charts fetched from the repository: {DEMO_FROM}, {DEMO_TO}" in out
    if scenario == "upgrade":
        assert "Cilium upgrade gate: clear" in summary
        assert f"cilium-{DEMO_TO}" in out
    else:
        assert "Cilium upgrade gate: blocked" in summary
        assert f"rolled back to {DEMO_FROM}" in out
    assert _processes_naming(str(box.kwok_workdir).encode()) == []


def test_the_demo_takes_its_charts_from_a_directory_of_archives(
    tmp_path: Path, cilium_charts: RealCharts
) -> None:
    archives = tmp_path / "archives"
    archives.mkdir()
    for version in (DEMO_FROM, DEMO_TO):
        source = cilium_charts.uncounted()[version]
        (archives / source.name).symlink_to(source)
    assert demo_charts(archives) == {
        DEMO_FROM: archives / f"cilium-{DEMO_FROM}.tgz",
        DEMO_TO: archives / f"cilium-{DEMO_TO}.tgz",
    }
    (archives / f"cilium-{DEMO_TO}.tgz").unlink()
    with pytest.raises(ChartsMissing) as missing:
        demo_charts(archives)
    assert missing.value.missing == (DEMO_TO,)
    assert f"--charts-dir: {archives}" in str(missing.value)


def test_the_demo_command_names_missing_charts_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(["demo", "--charts-dir", str(empty), "--workdir", str(tmp_path / "box")])
    err = capsys.readouterr().err
    assert code == 1
    assert f"real Cilium charts missing: {DEMO_FROM}, {DEMO_TO}" in err
    assert f"--charts-dir: {empty}" in err
    assert not (tmp_path / "box").exists()
