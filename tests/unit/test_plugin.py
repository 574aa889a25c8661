"""The pytest plugin end to end, run in-process against in-memory fakes of our adapters.

The fakes, the fake cluster's data and the pytester project that runs the gate
against them are in :mod:`gate_harness`; each test changes the data per scenario.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
from gate_harness import (
    ALL_NODE_IDS,
    CONTROL_PLANES,
    CURRENT,
    NODES,
    PLANTED_OLD_TOKEN,
    PLANTED_PEM,
    PLANTED_TOKEN,
    POST_IDS,
    PRE_IDS,
    PRE_NODE_IDS,
    TARGET,
    WORKERS,
    Gate,
    JSONDict,
    collected,
    failure_section,
    invalid_policy_log,
    new_gate,
    seed_like,
    validator_not_ready,
)

from pytest_cilium_upgrade import checks, defaults

pytest_plugins = ["pytester"]


@pytest.fixture
def gate(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Gate:
    return new_gate(pytester, monkeypatch)


# --------------------------------------------------------------------------- inert


def test_inert_without_cilium_upgrade(gate: Gate, monkeypatch: pytest.MonkeyPatch) -> None:
    gate.pytester.makepyfile(
        test_user="""
        import pytest

        @pytest.mark.cilium_upgrade(phase="pre")
        def test_marked(cilium_snapshot):
            raise AssertionError("must not run without the gate")

        def test_plain():
            pass
        """
    )
    # An option value the gate would reject is not even read.
    monkeypatch.setenv("CILIUM_UPGRADE_PREFLIGHT_COVERAGE", "loose")
    listing = gate.run_plain("--co", "-q")
    assert listing.ret == pytest.ExitCode.OK
    assert collected(listing) == ["test_user.py::test_marked", "test_user.py::test_plain"]
    result = gate.run_plain("-rs")
    result.assert_outcomes(passed=1, skipped=1)
    skip_lines = [ln for ln in result.outlines if ln.startswith("SKIPPED")]
    assert len(skip_lines) == 1
    assert "--cilium-upgrade" in skip_lines[0]
    assert "cilium-upgrade warnings" not in result.stdout.str()
    assert not (gate.path / "adapters-built").exists()
    assert not (gate.path / ".cilium-upgrade-state.json").exists()


# --------------------------------------------------------------------------- collection


def test_collect_only_lists_every_check_of_both_phases(gate: Gate) -> None:
    result = gate.run("--co", "-q")
    assert result.ret == pytest.ExitCode.OK
    assert collected(result) == ALL_NODE_IDS
    assert len(ALL_NODE_IDS) == len(checks.CHECKS)
    result.stdout.fnmatch_lines([f"{len(checks.CHECKS)} tests collected*"])


def test_phase_option_narrows_collection(gate: Gate) -> None:
    result = gate.run("--co", "-q", "--cilium-phase", "pre")
    assert collected(result) == PRE_NODE_IDS
    result = gate.run("--co", "-q", "--cilium-phase=post")
    assert collected(result) == [f"cilium-upgrade::post::{i}" for i in POST_IDS]


def test_keyword_marker_and_deselect_select_checks(gate: Gate) -> None:
    result = gate.run("--co", "-q", "-k", "preflight")
    expected = [n for n in ALL_NODE_IDS if "preflight" in n.rsplit("::", 1)[1]]
    assert expected
    assert collected(result) == expected

    gate.pytester.makepyfile(
        test_user="""
        import pytest

        @pytest.mark.cilium_upgrade(phase="post")
        def test_marked():
            pass

        def test_unmarked():
            pass
        """
    )
    result = gate.run("--co", "-q", "-m", "cilium_upgrade", "test_user.py")
    assert collected(result) == [*ALL_NODE_IDS, "test_user.py::test_marked"]

    dropped = f"cilium-upgrade::pre::{PRE_IDS[2]}"
    result = gate.run("--co", "-q", "--deselect", dropped)
    assert collected(result) == [n for n in ALL_NODE_IDS if n != dropped]


def test_testpaths_are_not_the_gate_but_explicit_files_are(gate: Gate) -> None:
    gate.pytester.makeini("[pytest]\ntestpaths = project_tests\n")
    project = gate.pytester.mkdir("project_tests")
    (project / "test_project.py").write_text("def test_project():\n    pass\n")
    (gate.path / "test_toplevel.py").write_text("def test_toplevel():\n    pass\n")
    extra = gate.pytester.mkdir("extra")
    (extra / "test_extra.py").write_text("def test_extra():\n    pass\n")

    without_gate = gate.run_plain("--co", "-q")
    assert collected(without_gate) == ["project_tests/test_project.py::test_project"]

    only_gate = gate.run("--co", "-q", "--cilium-phase=pre")
    assert collected(only_gate) == PRE_NODE_IDS

    explicit = gate.run("--co", "-q", "--cilium-phase=pre", "extra/test_extra.py")
    assert collected(explicit) == [*PRE_NODE_IDS, "extra/test_extra.py::test_extra"]


# --------------------------------------------------------------------------- runs


def test_healthy_pre_run_passes(gate: Gate) -> None:
    result = gate.run("--cilium-phase=pre")
    result.assert_outcomes(passed=len(PRE_IDS))
    assert result.ret == pytest.ExitCode.OK
    assert "cilium-upgrade warnings" not in result.stdout.str()
    state = json.loads((gate.path / ".cilium-upgrade-state.json").read_text())
    assert (state["release"], state["revision"], state["chart_version"]) == ("cilium", 3, CURRENT)
    assert state["target_version"] == TARGET


@pytest.mark.parametrize(
    ("breakage", "check_id", "verdict"),
    [
        pytest.param(
            validator_not_ready,
            "preflight_deployment_ready",
            f"pre-flight Deployment {defaults.PREFLIGHT_DEPLOYMENT} READY 0/1",
            id="validator-not-ready",
        ),
        pytest.param(
            invalid_policy_log,
            "cnp_validation_passed",
            "CNP validation failed (current log): validation failed",
            id="invalid-policy",
        ),
    ],
)
def test_failing_check_fails_exactly_its_item(
    gate: Gate, breakage: Callable[[JSONDict], None], check_id: str, verdict: str
) -> None:
    breakage(gate.data)
    result = gate.run("--cilium-phase=pre", "-rf")
    result.assert_outcomes(passed=len(PRE_IDS) - 1, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    node_id = f"cilium-upgrade::pre::{check_id}"
    failed = [ln for ln in result.outlines if ln.startswith("FAILED ")]
    assert len(failed) == 1
    assert failed[0].split()[1] == node_id
    body = [ln for ln in failure_section(result, node_id) if ln.strip()]
    assert body[0] == verdict


def test_seed_like_coverage_warns_and_strict_fails(gate: Gate) -> None:
    seed_like(gate.data)
    node_id = "cilium-upgrade::pre::preflight_covers_agent_nodes"

    result = gate.run("--cilium-phase=pre")
    result.assert_outcomes(passed=len(PRE_IDS))
    out = result.stdout.str()
    assert "cilium-upgrade warnings" in out
    section = out.split("cilium-upgrade warnings", 1)[1]
    warning = next(ln for ln in section.splitlines() if ln.startswith(node_id))
    assert "cannot run the pre-flight" in warning
    for name in CONTROL_PLANES:
        assert name in warning
    for name in WORKERS:
        assert name not in warning

    strict = gate.run("--cilium-phase=pre", "--cilium-preflight-coverage=strict", "-rf")
    strict.assert_outcomes(passed=len(PRE_IDS) - 1, failed=1)
    body = [ln for ln in failure_section(strict, node_id) if ln.strip()]
    assert body[0].endswith("[strict coverage policy]")
    assert all(name in body[0] for name in CONTROL_PLANES)


# --------------------------------------------------------------------------- JUnit


def test_junit_report(gate: Gate) -> None:
    invalid_policy_log(gate.data)
    report = gate.path / "junit.xml"
    result = gate.run("-W", "error", f"--junitxml={report}")
    outcomes = result.parseoutcomes()
    assert "warnings" not in outcomes
    assert "errors" not in outcomes
    assert "warnings summary" not in result.stdout.str()
    assert "PytestWarning" not in result.stdout.str() + result.stderr.str()
    root = ET.parse(report).getroot()  # noqa: S314 - a file this test wrote
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("errors")) == (str(len(checks.CHECKS)), "0")
    cases = root.findall(".//testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        (f"cilium-upgrade.{c.phase}", c.check_id) for c in checks.CHECKS
    ]
    assert {c.get("classname") for c in cases} == {"cilium-upgrade.pre", "cilium-upgrade.post"}

    by_name = {(c.get("classname"), c.get("name")): c for c in cases}
    ok = by_name[("cilium-upgrade.pre", "release_deployed")]
    props = {p.get("name"): p.get("value") for p in ok.iter("property")}
    assert props["release"] == defaults.DEFAULT_RELEASE
    assert props["target_version"] == TARGET
    assert (props["verdict"] or "").startswith("pass: release cilium deployed")

    bad = by_name[("cilium-upgrade.pre", "cnp_validation_passed")]
    failure = bad.find("failure")
    assert failure is not None
    verdict = "CNP validation failed (current log): validation failed"
    assert verdict in (failure.get("message") or "")
    assert (failure.text or "").startswith(verdict)
    props = {p.get("name"): p.get("value") for p in bad.iter("property")}
    assert props["verdict"] == f"fail: {verdict}"


# --------------------------------------------------------------------------- Markdown summary


def summary_count(path: Path) -> int:
    return path.read_text().count("## Cilium upgrade gate:")


def test_markdown_summary_to_option_and_step_summary(
    gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = gate.path / "summary.md"
    github = gate.path / "github-step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(github))
    validator_not_ready(gate.data)
    gate.run("--cilium-phase=pre", f"--cilium-summary={mine}")
    for path in (mine, github):
        text = path.read_text()
        assert summary_count(path) == 1
        assert text.startswith("## Cilium upgrade gate: blocked")
        assert "| pre | `preflight_deployment_ready` | ❌ fail |" in text
        assert f"**target_version** {TARGET}" in text
        assert text.count("| pre |") == len(PRE_IDS)


def test_markdown_summary_once_when_both_name_one_file(
    gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    same = gate.path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(same))
    gate.run("--cilium-phase=pre", f"--cilium-summary={same}")
    assert summary_count(same) == 1
    assert same.read_text().startswith("## Cilium upgrade gate: clear")


# --------------------------------------------------------------------------- contributed checks

CONTRIBUTED = '''

from pytest_cilium_upgrade.checks import CheckResult, CheckSpec, Status


def no_more_than_five_agents(snapshot, params):
    """Site policy: at most five agent pods."""
    n = len(snapshot.pods_matching("k8s-app=cilium"))
    if n > 5:
        return CheckResult(Status.FAIL, f"site policy: {n} agent pods, at most 5 allowed")
    return CheckResult(Status.PASS, f"site policy: {n} agent pods")


def pytest_cilium_upgrade_checks(config):
    return [CheckSpec("pre", CHECK_ID, no_more_than_five_agents)]
'''


def test_contributed_check_is_collected_and_can_fail(gate: Gate) -> None:
    gate.conftest_extra = 'CHECK_ID = "site_policy"\n' + CONTRIBUTED
    listing = gate.run("--co", "-q", "--cilium-phase=pre")
    assert collected(listing) == [*PRE_NODE_IDS, "cilium-upgrade::pre::site_policy"]
    result = gate.run("--cilium-phase=pre", "-rf")
    result.assert_outcomes(passed=len(PRE_IDS), failed=1)
    result.stdout.fnmatch_lines(["FAILED cilium-upgrade::pre::site_policy*"])
    body = [ln for ln in failure_section(result, "cilium-upgrade::pre::site_policy") if ln.strip()]
    assert body[0] == "site policy: 8 agent pods, at most 5 allowed"


def test_duplicate_check_id_is_a_usage_error(gate: Gate) -> None:
    gate.conftest_extra = f'CHECK_ID = "{PRE_IDS[0]}"\n' + CONTRIBUTED
    result = gate.run("--cilium-phase=pre")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: two checks named pre::{PRE_IDS[0]}; check ids must be unique"]
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


# --------------------------------------------------------------------------- user checks


def test_user_check_gets_the_snapshot(gate: Gate) -> None:
    gate.pytester.makepyfile(
        test_user=f"""
        import pytest

        from pytest_cilium_upgrade.marker import GATE_KEY

        @pytest.mark.cilium_upgrade(phase="pre")
        def test_agents_everywhere(
            request, cilium_snapshot, cilium_settings, cilium_check_params
        ):
            # The very snapshot the built-in pre checks read.
            assert cilium_snapshot is request.config.stash[GATE_KEY].snapshot("pre")
            agents = cilium_snapshot.pods_matching("k8s-app=cilium")
            assert sorted(p.node_name for p in agents) == {sorted(NODES)!r}
            assert cilium_snapshot.release.chart_version == "{CURRENT}"
            assert cilium_settings.phase == "pre"
            assert str(cilium_check_params.target) == "{TARGET}"

        @pytest.mark.cilium_upgrade(phase="post")
        def test_after(cilium_snapshot):
            raise AssertionError("a post check in a pre run")
        """
    )
    result = gate.run("--cilium-phase=pre", "test_user.py")
    result.assert_outcomes(passed=len(PRE_IDS) + 1, deselected=1)


def test_bad_marker_phase_is_a_usage_error(gate: Gate) -> None:
    gate.pytester.makepyfile(
        test_user="""
        import pytest

        @pytest.mark.cilium_upgrade(phase="during")
        def test_wrong_phase(cilium_snapshot):
            pass
        """
    )
    result = gate.run("test_user.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    result.stderr.fnmatch_lines(["ERROR: test_user.py::test_wrong_phase: *'during'"])
    assert "Traceback" not in result.stdout.str() + err


# --------------------------------------------------------------------------- secrets


def test_secrets_from_values_appear_nowhere(gate: Gate) -> None:
    live = {
        **gate.data["values"],
        "hubble": {"tls": {"server": {"key": PLANTED_PEM}}},
        "etcd": {"authToken": PLANTED_TOKEN},
    }
    gate.data["values"] = live
    gate.snapshot_values = {**live, "etcd": {"authToken": PLANTED_OLD_TOKEN}}
    gate.data["render_error"] = (
        f"Error: hubble.tls.server.key: {PLANTED_PEM!r} is not a file reference\n"
        f"Error: etcd.authToken: {PLANTED_TOKEN} (was {PLANTED_OLD_TOKEN}) is not allowed\n"
    )
    report = gate.path / "junit.xml"
    summary = gate.path / "summary.md"
    result = gate.run(
        "--cilium-phase=pre", "-rA", "-vv", f"--junitxml={report}", f"--cilium-summary={summary}"
    )
    result.assert_outcomes(passed=len(PRE_IDS) - 2, failed=2)
    result.stdout.fnmatch_lines(
        [
            "FAILED cilium-upgrade::pre::values_snapshot_matches_live*",
            "FAILED cilium-upgrade::pre::target_chart_renders_with_snapshot*",
        ],
        consecutive=False,
    )
    out = result.stdout.str() + result.stderr.str()
    assert "etcd.authToken (changed)" in out
    assert "[REDACTED]" in out
    texts = {
        "output": out,
        "junit": report.read_text(),
        "summary": summary.read_text(),
        "state file": (gate.path / ".cilium-upgrade-state.json").read_text(),
    }
    for where, text in texts.items():
        for planted in ("PLANTEDSECRET", PLANTED_TOKEN, PLANTED_OLD_TOKEN, "BEGIN PRIVATE KEY"):
            assert planted not in text, f"{planted} leaked into the {where}"


# --------------------------------------------------------------------------- usage errors


def test_bad_option_value_is_a_usage_error(gate: Gate) -> None:
    result = gate.run("--cilium-preflight-coverage=loose")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    result.stderr.fnmatch_lines(
        ["ERROR: --cilium-preflight-coverage: 'loose' is not one of warn, strict*"]
    )
    assert "Traceback" not in result.stdout.str() + err
