"""Merge the JUnit reports of one Cilium upgrade into a single report.

An upgrade gated in separate steps leaves one report per pytest run: the pre
checks, the checks of your own upgrade step, the post checks, the checks after a
rollback. CI systems show one report per job best, and GitLab keeps only one test
case per classname and name, so a plain concatenation would lose the rollback's
post checks behind the upgrade's. :func:`merge_reports` combines the reports:

* Every ``<testsuite>`` of every input is kept, in input order, with its
  properties, timestamp, hostname and time, and every ``<testcase>`` in it with
  its failure, error and skip messages and bodies, ``system-out``/``system-err``
  and properties. The suite is renamed ``<suite_name>.<label>``, where the label
  is the input file's name without its extension (``gate-post.xml`` gives
  ``gate-post``; a label already taken gets ``-2``, ``-3``, ...), with
  ``.2``, ``.3``, ... appended when one input holds several suites.
* Test cases are identified by ``(classname, name)``. When an input holds a
  pair that an earlier input already holds, *every* classname of that input is
  qualified with its label (``cilium-upgrade.post`` from ``gate-rollback.xml``
  becomes ``cilium-upgrade.post.gate-rollback``), so a rerun's cases stay
  together under one classname. A pair repeated within one input gets `` (2)``,
  `` (3)``, ... appended to its name. Every such rename is listed in
  :attr:`MergeSummary.renamed`; nothing is dropped.
* The counts (tests, failures, errors, skipped) of each suite and of the root
  are recomputed from the test cases.

A missing file, a file that is not XML, or XML that is not a JUnit report is
refused with a :class:`ReportError` naming the file; nothing is written then.

Command line::

    python -m pytest_cilium_upgrade.tools.junit merge [--suite-name NAME] [--allow-missing] \
        OUT IN...
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from junitparser import Error, Failure, JUnitXml, JUnitXmlError, Skipped, TestCase, TestSuite

from pytest_cilium_upgrade.errors import GateError

__all__ = [
    "DEFAULT_SUITE_NAME",
    "InputReport",
    "MergeSummary",
    "Renamed",
    "ReportError",
    "main",
    "merge_reports",
]

DEFAULT_SUITE_NAME: Final = "cilium-upgrade"
PROG: Final = "python -m pytest_cilium_upgrade.tools.junit"


class ReportError(GateError):
    """An input report is missing or is not a JUnit XML report (the message names the file)."""


@dataclass(frozen=True)
class Counts:
    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.tests + other.tests,
            self.failures + other.failures,
            self.errors + other.errors,
            self.skipped + other.skipped,
        )

    @property
    def passed(self) -> int:
        return self.tests - self.failures - self.errors - self.skipped


@dataclass(frozen=True)
class InputReport:
    """One input of a merge: where it came from, its label and what it held."""

    path: Path
    label: str
    suites: int
    counts: Counts


@dataclass(frozen=True)
class Renamed:
    """A test case whose ``(classname, name)`` was changed to keep it distinct."""

    path: Path
    classname: str
    name: str
    new_classname: str
    new_name: str

    def describe(self) -> str:
        return (
            f"{self.path}: {self.classname}::{self.name} -> {self.new_classname}::{self.new_name}"
        )


@dataclass(frozen=True)
class MergeSummary:
    """What :func:`merge_reports` wrote."""

    output: Path
    suite_name: str
    inputs: tuple[InputReport, ...]
    renamed: tuple[Renamed, ...]

    @property
    def counts(self) -> Counts:
        total = Counts()
        for report in self.inputs:
            total += report.counts
        return total

    @property
    def tests(self) -> int:
        return self.counts.tests

    @property
    def failures(self) -> int:
        return self.counts.failures

    @property
    def errors(self) -> int:
        return self.counts.errors

    @property
    def skipped(self) -> int:
        return self.counts.skipped

    @property
    def ok(self) -> bool:
        """No test case failed or errored."""
        return self.failures == 0 and self.errors == 0

    def describe(self) -> str:
        c = self.counts
        plural = "" if len(self.inputs) == 1 else "s"
        return (
            f"merged {len(self.inputs)} report{plural} into {self.output}: {c.tests} tests,"
            f" {c.passed} passed, {c.failures} failed, {c.errors} errors, {c.skipped} skipped"
        )


# --------------------------------------------------------------------------- reading


def _load(path: Path) -> JUnitXml:
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise ReportError(f"JUnit report {path} {what}")
    try:
        xml = JUnitXml.fromfile(str(path))
    except OSError as exc:
        raise ReportError(f"JUnit report {path} cannot be read: {exc.strerror or exc}") from None
    except SyntaxError as exc:  # xml.etree's ParseError and lxml's XMLSyntaxError
        raise ReportError(f"JUnit report {path} is not well-formed XML: {exc}") from None
    except JUnitXmlError:
        raise ReportError(
            f"JUnit report {path} is not a JUnit report: its root element must be"
            " <testsuites> or <testsuite>"
        ) from None
    for suite in xml:
        for case in suite:
            if not case.name:
                raise ReportError(
                    f"JUnit report {path} is malformed: a <testcase> in suite"
                    f" {suite.name or '(unnamed)'!r} has no name"
                )
    return xml


def _labels(paths: Sequence[Path]) -> list[str]:
    labels: list[str] = []
    for path in paths:
        stem = path.name.removesuffix(".xml") or path.name
        label, n = stem, 2
        while label in labels:
            label, n = f"{stem}-{n}", n + 1
        labels.append(label)
    return labels


# --------------------------------------------------------------------------- counting


def _case_counts(case: TestCase) -> Counts:
    results = case.result
    return Counts(
        tests=1,
        failures=int(any(isinstance(r, Failure) for r in results)),
        errors=int(any(isinstance(r, Error) for r in results)),
        skipped=int(any(isinstance(r, Skipped) for r in results)),
    )


def _suite_counts(cases: Iterable[TestCase]) -> Counts:
    total = Counts()
    for case in cases:
        total += _case_counts(case)
    return total


def _set_counts(element: TestSuite | JUnitXml, counts: Counts) -> None:
    element.tests = counts.tests
    element.failures = counts.failures
    element.errors = counts.errors
    element.skipped = counts.skipped


def _time(suite: TestSuite) -> float:
    """The suite's time as written (pytest's wall time), left as it is.

    A suite without a time gets the sum of its cases' times (junitparser computes
    it when the attribute is read).
    """
    value = suite.time
    return float(value) if value is not None else 0.0


# --------------------------------------------------------------------------- merging


def merge_reports(
    inputs: Sequence[Path], output: Path, *, suite_name: str = DEFAULT_SUITE_NAME
) -> MergeSummary:
    """Merge the JUnit reports ``inputs`` (in that order) into ``output``.

    See the module documentation for the rules. Raises :class:`ReportError` for
    a missing or malformed input (and writes nothing), :class:`ValueError` for
    no inputs, and :class:`OSError` when ``output`` cannot be written.
    """
    if not inputs:
        raise ValueError("no JUnit reports to merge")
    if not suite_name.strip():
        raise ValueError("the suite name must not be empty")
    paths = [Path(p) for p in inputs]
    loaded = [_load(path) for path in paths]

    merged = JUnitXml(suite_name)
    seen: set[tuple[str, str]] = set()
    reports: list[InputReport] = []
    renamed: list[Renamed] = []
    total_time = 0.0
    for path, label, xml in zip(paths, _labels(paths), loaded, strict=True):
        suites = [copy.deepcopy(suite) for suite in xml]
        pairs = [(case.classname or "", case.name or "") for suite in suites for case in suite]
        qualify = any(pair in seen for pair in pairs)
        counts = Counts()
        for index, suite in enumerate(suites, start=1):
            suite.name = f"{suite_name}.{label}" + (f".{index}" if len(suites) > 1 else "")
            for case in suite:
                classname, name = case.classname or "", case.name or ""
                new_classname = classname
                if qualify:
                    new_classname = f"{classname}.{label}" if classname else label
                new_name, n = name, 2
                while (new_classname, new_name) in seen:
                    new_name, n = f"{name} ({n})", n + 1
                seen.add((new_classname, new_name))
                if (new_classname, new_name) != (classname, name):
                    case.classname = new_classname
                    case.name = new_name
                    renamed.append(Renamed(path, classname, name, new_classname, new_name))
            suite_counts = _suite_counts(suite)
            total_time += _time(suite)
            _set_counts(suite, suite_counts)
            counts += suite_counts
            merged.add_testsuite(suite)
        reports.append(InputReport(path, label, len(suites), counts))

    summary = MergeSummary(output, suite_name, tuple(reports), tuple(renamed))
    _set_counts(merged, summary.counts)
    merged.time = round(total_time, 3)
    _write(merged, output)
    return summary


def _write(xml: JUnitXml, output: Path) -> None:
    """Write atomically: a temporary file in the same directory, renamed into place."""
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
    os.close(fd)
    try:
        xml.write(tmp)
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Combine JUnit reports of one Cilium upgrade (pre, upgrade, post, rollback).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    merge = commands.add_parser(
        "merge",
        help="merge JUnit reports into one",
        description=(
            "Merge JUnit reports into OUT, keeping every test case. Each input's suite is"
            " named SUITE.LABEL (LABEL: the file name without .xml); when an input repeats"
            " a classname and name of an earlier input, its classnames get .LABEL appended."
        ),
    )
    merge.add_argument("output", metavar="OUT", type=Path, help="the merged report to write")
    merge.add_argument("inputs", metavar="IN", type=Path, nargs="+", help="JUnit reports, in order")
    merge.add_argument(
        "--suite-name",
        default=DEFAULT_SUITE_NAME,
        help="name of the merged report and prefix of its suites (default: %(default)s)",
    )
    merge.add_argument(
        "--allow-missing",
        action="store_true",
        help="skip inputs that do not exist (a step that never ran) instead of refusing them;"
        " at least one must exist",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pytest_cilium_upgrade.tools.junit merge OUT IN...``; returns the exit status.

    0 when the report was written (whatever its test results), 1 when an input
    was refused or the output could not be written, 2 for a usage error.
    """
    args = _parser().parse_args(argv)
    inputs: list[Path] = list(args.inputs)
    if args.allow_missing:
        for path in [p for p in inputs if not p.exists()]:
            print(f"skipped {path}: it does not exist", file=sys.stderr)
            inputs.remove(path)
        if not inputs:
            print(f"{PROG}: error: none of the JUnit reports exists", file=sys.stderr)
            return 1
    try:
        summary = merge_reports(inputs, args.output, suite_name=args.suite_name)
    except (ReportError, ValueError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{PROG}: error: cannot write {args.output}: {exc}", file=sys.stderr)
        return 1
    print(summary.describe())
    for report in summary.inputs:
        c = report.counts
        print(
            f"  {report.path} as {summary.suite_name}.{report.label}: {c.tests} tests,"
            f" {c.failures} failed, {c.errors} errors, {c.skipped} skipped"
        )
    for rename in summary.renamed:
        print(f"  renamed {rename.describe()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
