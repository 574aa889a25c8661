"""Merging the JUnit reports of a gated upgrade run in separate steps.

The reports are real: pytester runs tiny test files the way a pipeline runs the
pre checks, the user's upgrade step, the post checks and the checks after a
rollback (the post checks again, so the same classnames and names).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_cilium_upgrade.tools import junit
from pytest_cilium_upgrade.tools.junit import ReportError, merge_reports

pytest_plugins = ["pytester"]

GATE = textwrap.dedent(
    """
    import pytest

    @pytest.fixture(autouse=True)
    def _properties(request, record_testsuite_property):
        record_testsuite_property("cluster", "kind-cilium-upgrade")
        request.node.user_properties.append(("release", "cilium"))
        request.node.user_properties.append(("verdict", f"checked {request.node.name}"))

    class TestPre:
        def test_release_deployed(self):
            pass

        def test_preflight_covers_agent_nodes(self):
            assert False, "pre-flight READY 5 of 8 agent nodes: cp-1, cp-2, cp-3 lack a toleration"

        def test_target_chart_renders(self):
            pytest.skip("no target version given")

    class TestPost:
        def test_agents_run_target_version(self):
            pass

        def test_values_preserved(self):
            assert False, "values differ at key hubble.enabled"
    """
)

UPGRADE = textwrap.dedent(
    """
    import pytest

    @pytest.fixture
    def helm_release():
        raise RuntimeError("helm upgrade: release cilium is pending-upgrade")

    def test_helm_upgrade():
        pass

    def test_release_revision(helm_release):
        pass
    """
)


@dataclass(frozen=True)
class Reports:
    pre: Path
    upgrade: Path
    post: Path
    rollback: Path

    @property
    def all(self) -> list[Path]:
        return [self.pre, self.upgrade, self.post, self.rollback]


def run(pytester: pytest.Pytester, report: str, *args: str, **outcomes: int) -> Path:
    path = pytester.path / "reports" / report
    result = pytester.runpytest_inprocess(*args, f"--junitxml={path}", "-p", "no:cacheprovider")
    result.assert_outcomes(**outcomes)
    assert path.is_file()
    return path


@pytest.fixture
def reports(pytester: pytest.Pytester) -> Reports:
    pytester.makepyfile(test_phases_demo=GATE, test_upgrade_demo=UPGRADE)
    return Reports(
        pre=run(pytester, "pre.xml", "test_phases_demo.py::TestPre", passed=1, failed=1, skipped=1),
        upgrade=run(pytester, "upgrade.xml", "test_upgrade_demo.py", passed=1, errors=1),
        post=run(pytester, "post.xml", "test_phases_demo.py::TestPost", passed=1, failed=1),
        rollback=run(pytester, "rollback.xml", "test_phases_demo.py::TestPost", passed=1, failed=1),
    )


def parse(path: Path) -> ET.Element:
    return ET.parse(path).getroot()  # noqa: S314 - a report this test wrote


def cases(root: ET.Element) -> list[ET.Element]:
    return root.findall(".//testcase")


def case_ids(root: ET.Element) -> list[tuple[str, str]]:
    return [(c.get("classname") or "", c.get("name") or "") for c in cases(root)]


def find(root: ET.Element, classname: str, name: str) -> ET.Element:
    for case in cases(root):
        if (case.get("classname"), case.get("name")) == (classname, name):
            return case
    raise AssertionError(f"no testcase {classname}::{name} in {case_ids(root)}")


def properties(element: ET.Element) -> dict[str, str]:
    props = element.find("properties")
    assert props is not None
    return {p.get("name") or "": p.get("value") or "" for p in props.findall("property")}


def counts(element: ET.Element) -> tuple[int, int, int, int]:
    return (
        int(element.get("tests") or -1),
        int(element.get("failures") or -1),
        int(element.get("errors") or -1),
        int(element.get("skipped") or -1),
    )


# --------------------------------------------------------------------------- merging


def test_merge_keeps_every_case_with_distinct_classnames(reports: Reports, tmp_path: Path) -> None:
    out = tmp_path / "merged.xml"
    summary = merge_reports(reports.all, out)

    root = parse(out)
    assert root.tag == "testsuites"
    assert root.get("name") == "cilium-upgrade"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [
        "cilium-upgrade.pre",
        "cilium-upgrade.upgrade",
        "cilium-upgrade.post",
        "cilium-upgrade.rollback",
    ]

    ids = case_ids(root)
    assert len(ids) == len(set(ids)) == 3 + 2 + 2 + 2
    assert {classname for classname, _ in ids} == {
        "test_phases_demo.TestPre",
        "test_upgrade_demo",
        "test_phases_demo.TestPost",
        "test_phases_demo.TestPost.rollback",
    }
    # The rollback's post checks stand beside the upgrade's, not behind them.
    assert ("test_phases_demo.TestPost", "test_values_preserved") in ids
    assert ("test_phases_demo.TestPost.rollback", "test_values_preserved") in ids
    assert [(r.classname, r.new_classname) for r in summary.renamed] == [
        ("test_phases_demo.TestPost", "test_phases_demo.TestPost.rollback")
    ] * 2
    assert all(r.path == reports.rollback and r.name == r.new_name for r in summary.renamed)


def test_counts_match_the_inputs(reports: Reports, tmp_path: Path) -> None:
    out = tmp_path / "merged.xml"
    summary = merge_reports(reports.all, out)
    root = parse(out)

    for path, suite in zip(reports.all, root.findall("testsuite"), strict=True):
        (original,) = parse(path).findall("testsuite")
        assert counts(suite) == counts(original)
        assert suite.get("time") == original.get("time")
        assert suite.get("timestamp") == original.get("timestamp")
        assert suite.get("hostname") == original.get("hostname")

    # pre: 3 (1 failed, 1 skipped), upgrade: 2 (1 error), post and rollback: 2 (1 failed) each
    assert counts(root) == (9, 3, 1, 1)
    assert (summary.tests, summary.failures, summary.errors, summary.skipped) == (9, 3, 1, 1)
    assert summary.counts.passed == 4
    assert not summary.ok
    assert [(r.label, r.suites, r.counts.tests) for r in summary.inputs] == [
        ("pre", 1, 3),
        ("upgrade", 1, 2),
        ("post", 1, 2),
        ("rollback", 1, 2),
    ]
    assert summary.describe() == (
        f"merged 4 reports into {out}: 9 tests, 4 passed, 3 failed, 1 errors, 1 skipped"
    )


def test_failures_skips_errors_and_properties_survive(reports: Reports, tmp_path: Path) -> None:
    out = tmp_path / "merged.xml"
    merge_reports(reports.all, out)
    root = parse(out)

    failed = find(root, "test_phases_demo.TestPre", "test_preflight_covers_agent_nodes")
    failure = failed.find("failure")
    assert failure is not None
    verdict = "pre-flight READY 5 of 8 agent nodes: cp-1, cp-2, cp-3 lack a toleration"
    assert verdict in (failure.get("message") or "")
    assert verdict in (failure.text or "")

    skipped = find(root, "test_phases_demo.TestPre", "test_target_chart_renders").find("skipped")
    assert skipped is not None
    assert "no target version given" in (skipped.get("message") or "")

    errored = find(root, "test_upgrade_demo", "test_release_revision").find("error")
    assert errored is not None
    assert "release cilium is pending-upgrade" in (errored.text or "")

    rollback = find(root, "test_phases_demo.TestPost.rollback", "test_values_preserved")
    rollback_failure = rollback.find("failure")
    assert rollback_failure is not None
    assert "values differ at key hubble.enabled" in (rollback_failure.get("message") or "")

    gate_cases = [
        c for c in cases(root) if (c.get("classname") or "").startswith("test_phases_demo.")
    ]
    assert len(gate_cases) == 7
    for case in gate_cases:
        props = properties(case)
        assert props["release"] == "cilium"
        assert props["verdict"] == f"checked {case.get('name')}"
    for suite in root.findall("testsuite"):
        if suite.get("name") == "cilium-upgrade.upgrade":
            assert suite.find("properties") is None
        else:
            assert properties(suite) == {"cluster": "kind-cilium-upgrade"}


def test_no_rename_without_a_clash(reports: Reports, tmp_path: Path) -> None:
    out = tmp_path / "merged.xml"
    summary = merge_reports([reports.pre, reports.upgrade, reports.post], out, suite_name="gate")
    assert summary.renamed == ()
    root = parse(out)
    assert root.get("name") == "gate"
    assert [s.get("name") for s in root.findall("testsuite")] == [
        "gate.pre",
        "gate.upgrade",
        "gate.post",
    ]
    originals = [case_ids(parse(p)) for p in (reports.pre, reports.upgrade, reports.post)]
    assert case_ids(root) == [pair for ids in originals for pair in ids]


def test_same_file_names_get_distinct_labels(reports: Reports, tmp_path: Path) -> None:
    first = tmp_path / "post" / "junit.xml"
    second = tmp_path / "rollback" / "junit.xml"
    for source, target in ((reports.post, first), (reports.rollback, second)):
        target.parent.mkdir()
        target.write_bytes(source.read_bytes())
    out = tmp_path / "merged.xml"
    summary = merge_reports([first, second], out)
    assert [r.label for r in summary.inputs] == ["junit", "junit-2"]
    assert {c for c, _ in case_ids(parse(out))} == {
        "test_phases_demo.TestPost",
        "test_phases_demo.TestPost.junit-2",
    }


def test_duplicates_within_one_report_are_numbered(tmp_path: Path) -> None:
    report = tmp_path / "hand-made.xml"
    report.write_text(
        '<?xml version="1.0" encoding="utf-8"?>'
        '<testsuite name="x" tests="3">'
        '<testcase classname="cilium-upgrade.post" name="values_preserved" time="0.1"/>'
        '<testcase classname="cilium-upgrade.post" name="values_preserved" time="0.2">'
        '<failure message="differ">body</failure></testcase>'
        '<testcase name="no_classname"/>'
        "</testsuite>",
        encoding="utf-8",
    )
    out = tmp_path / "merged.xml"
    summary = merge_reports([report, report], out)
    assert case_ids(parse(out)) == [
        ("cilium-upgrade.post", "values_preserved"),
        ("cilium-upgrade.post", "values_preserved (2)"),
        ("", "no_classname"),
        ("cilium-upgrade.post.hand-made-2", "values_preserved"),
        ("cilium-upgrade.post.hand-made-2", "values_preserved (2)"),
        ("hand-made-2", "no_classname"),
    ]
    assert len(summary.renamed) == 4
    # A report without its own time gets the sum of its cases' times.
    assert [s.get("time") for s in parse(out).findall("testsuite")] == ["0.3", "0.3"]
    assert counts(parse(out)) == (6, 2, 0, 0)


def test_a_merged_report_merges_again(reports: Reports, tmp_path: Path) -> None:
    first = tmp_path / "first.xml"
    merge_reports([reports.pre, reports.post], first)
    out = tmp_path / "merged.xml"
    summary = merge_reports([first, reports.rollback], out)
    root = parse(out)
    assert [s.get("name") for s in root.findall("testsuite")] == [
        "cilium-upgrade.first.1",
        "cilium-upgrade.first.2",
        "cilium-upgrade.rollback",
    ]
    assert counts(root) == (7, 3, 0, 1)
    assert summary.inputs[0].suites == 2


def test_output_may_replace_an_input(reports: Reports, tmp_path: Path) -> None:
    out = tmp_path / "merged.xml"
    out.write_bytes(reports.pre.read_bytes())
    merge_reports([out, reports.post], out)
    assert counts(parse(out)) == (5, 2, 0, 1)
    assert [p.name for p in tmp_path.iterdir()] == ["merged.xml"]  # no temporary file left


# --------------------------------------------------------------------------- refused inputs


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("", "is not well-formed XML"),
        ("<testsuite><testcase name='a'>", "is not well-formed XML"),
        ("<html><body/></html>", "is not a JUnit report"),
        (
            "<testsuites><testsuite><testcase classname='a'/></testsuite></testsuites>",
            "has no name",
        ),
    ],
    ids=["missing", "empty", "truncated", "not-junit", "nameless-case"],
)
def test_bad_input_is_refused_and_nothing_is_written(
    reports: Reports, tmp_path: Path, content: str | None, message: str
) -> None:
    bad = tmp_path / "post.xml"
    if content is not None:
        bad.write_text(content, encoding="utf-8")
    out = tmp_path / "merged.xml"
    with pytest.raises(ReportError, match=message) as excinfo:
        merge_reports([reports.pre, bad], out)
    assert str(bad) in str(excinfo.value)
    assert not out.exists()


def test_a_directory_is_refused(reports: Reports, tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=f"{tmp_path} is not a file"):
        merge_reports([reports.pre, tmp_path], tmp_path / "merged.xml")


def test_no_inputs_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no JUnit reports"):
        merge_reports([], tmp_path / "merged.xml")


# --------------------------------------------------------------------------- command line


def test_main_merges(reports: Reports, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out" / "merged.xml"
    argv = ["merge", "--suite-name", "upgrade", str(out), *map(str, reports.all)]
    assert junit.main(argv) == 0
    stdout = capsys.readouterr().out
    assert stdout.startswith(f"merged 4 reports into {out}: 9 tests,")
    assert f"{reports.rollback} as upgrade.rollback: 2 tests, 1 failed" in stdout
    assert (
        f"renamed {reports.rollback}: test_phases_demo.TestPost::test_values_preserved"
        " -> test_phases_demo.TestPost.rollback::test_values_preserved"
    ) in stdout
    assert parse(out).get("name") == "upgrade"


def test_main_refuses_a_missing_input(
    reports: Reports, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "post.xml"
    out = tmp_path / "merged.xml"
    assert junit.main(["merge", str(out), str(reports.pre), str(missing)]) == 1
    err = capsys.readouterr().err
    assert f"error: JUnit report {missing} does not exist" in err
    assert not out.exists()


def test_main_allow_missing_skips_steps_that_never_ran(
    reports: Reports, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "post.xml"
    out = tmp_path / "merged.xml"
    assert junit.main(["merge", "--allow-missing", str(out), str(reports.pre), str(missing)]) == 0
    assert f"skipped {missing}: it does not exist" in capsys.readouterr().err
    assert counts(parse(out)) == (3, 1, 0, 1)

    assert junit.main(["merge", "--allow-missing", str(out), str(missing)]) == 1
    assert "none of the JUnit reports exists" in capsys.readouterr().err


def test_main_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        junit.main(["merge", "only-an-output.xml"])
    assert excinfo.value.code == 2
    assert "IN" in capsys.readouterr().err


def test_runs_as_a_module(reports: Reports, tmp_path: Path) -> None:
    out = tmp_path / "merged.xml"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_cilium_upgrade.tools.junit",
            "merge",
            str(out),
            str(reports.pre),
            str(reports.post),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"merged 2 reports into {out}: 5 tests,")
