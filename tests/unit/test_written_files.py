"""The files the gate writes are regular files it owns.

A values snapshot, state file or summary path that is a directory, FIFO, socket or
device is refused when the run starts, with one line naming the option and the path
(a usage error, before any cluster work); the summary is never written through a
symbolic link; ``--cilium-overwrite-snapshot`` never replaces a device node; a FIFO
never holds the run. A summary that still cannot be written at the end (its directory
removed meanwhile) is one line, and a passing gate then exits 1.

Runs that would block on a FIFO if the check were missing run in a subprocess with a
timeout. No test writes to a real device: ``/dev/null`` is only ever named as a path
that must be refused before anything is opened, and the writers are guarded so that
a regression fails instead of replacing it.
"""

from __future__ import annotations

import os
import socket
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from gate_harness import Gate, new_gate

from pytest_cilium_upgrade.adapters.files import (
    NotRegularFile,
    append_regular,
    path_problem,
    read_regular_text,
    write_atomically,
    write_values_snapshot,
)
from pytest_cilium_upgrade.errors import GateError
from pytest_cilium_upgrade.snapshot.read import read_values_snapshot

pytest_plugins = ["pytester"]

DEV_NULL = Path("/dev/null")
DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
VALUES = {"ipam": {"mode": "kubernetes"}}


@pytest.fixture(autouse=True)
def devices_untouched(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail, rather than replace a device, if a writer ever gets that far."""
    real_mkstemp = tempfile.mkstemp

    def guarded(*args: Any, **kwargs: Any) -> tuple[int, str]:
        where = Path(str(kwargs.get("dir", ""))).resolve()
        if where == Path("/dev") or Path("/dev") in where.parents:
            raise AssertionError(f"a temporary file was about to be made in {where}")
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", guarded)
    yield
    assert stat.S_ISCHR(DEV_NULL.stat().st_mode)


@pytest.fixture
def gate(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Gate:
    return new_gate(pytester, monkeypatch)


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def run_subprocess(gate: Gate, *args: str) -> pytest.RunResult:
    """A gate run in a process of its own, ended after 60 s if it hangs."""
    gate.write()
    return gate.pytester.runpytest_subprocess(
        "-p",
        "no:randomly",
        "--cilium-upgrade",
        "--cilium-target-version=1.16.15",
        *args,
        timeout=60,
    )


def assert_refused_at_start(gate: Gate, result: pytest.RunResult, *lines: str) -> None:
    """A usage error of one line per problem, no traceback, and no cluster work."""
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, out
    result.stderr.fnmatch_lines([f"ERROR: {lines[0]}", *lines[1:]])
    assert "Traceback" not in out
    assert "INTERNALERROR" not in out
    assert not (gate.path / "adapters-built").exists()


# --------------------------------------------------------------------------- the cases
# Each case is a row of docs/reliability.md ("Files the gate writes"): the command (the
# options besides --cilium-upgrade and the target), the exit status and the one line
# the user sees, with <path> (and <dir>, <target>) for the paths of the scenario.


@dataclass(frozen=True)
class Case:
    id: str
    command: str
    prepare: Callable[[Gate, pytest.MonkeyPatch], tuple[list[str], dict[str, Path]]]
    exit: int
    line: str
    # a FIFO: the run goes to a process of its own, whose hang a timeout ends
    subprocess: bool = False
    # what must be left as it was (a FIFO, a link's target, a directory)
    after: Callable[[dict[str, Path]], None] | None = None

    def expected(self, paths: dict[str, Path]) -> str:
        line = self.line
        for name, path in paths.items():
            line = line.replace(f"<{name}>", str(path))
        return line


def _directory(gate: Gate, name: str) -> Path:
    path = gate.path / name
    path.mkdir()
    return path


def _summary_directory(gate: Gate, mp: pytest.MonkeyPatch) -> tuple[list[str], dict[str, Path]]:
    path = _directory(gate, "reports")
    return [f"--cilium-summary={path}"], {"path": path}


def _step_summary_missing(gate: Gate, mp: pytest.MonkeyPatch) -> tuple[list[str], dict[str, Path]]:
    path = gate.path / "gone" / "step_summary"
    mp.setenv("GITHUB_STEP_SUMMARY", str(path))
    return [], {"path": path, "dir": path.parent}


def _summary_link(gate: Gate, mp: pytest.MonkeyPatch) -> tuple[list[str], dict[str, Path]]:
    target = gate.path / "elsewhere.md"
    target.write_text("someone else's file\n")
    path = gate.path / "summary.md"
    path.symlink_to(target)
    return [f"--cilium-summary={path}"], {"path": path, "target": target}


def _link_untouched(paths: dict[str, Path]) -> None:
    assert paths["path"].is_symlink()
    assert paths["target"].read_text() == "someone else's file\n"


def _summary_fifo(gate: Gate, mp: pytest.MonkeyPatch) -> tuple[list[str], dict[str, Path]]:
    path = fifo(gate.path / "summary.md")
    return [f"--cilium-summary={path}"], {"path": path}


def _still_fifo(paths: dict[str, Path]) -> None:
    assert stat.S_ISFIFO(paths["path"].lstat().st_mode)


def _still_directory(paths: dict[str, Path]) -> None:
    assert paths["path"].is_dir()


def _summary_lost(gate: Gate, mp: pytest.MonkeyPatch) -> tuple[list[str], dict[str, Path]]:
    folder = _directory(gate, "reports")
    path = folder / "summary.md"
    # the directory goes away while the checks run
    gate.conftest_extra = f"""

    import shutil

    def pytest_collection_finish(session):
        shutil.rmtree({str(folder)!r})
    """
    return ["--cilium-phase=pre", f"--cilium-summary={path}"], {"path": path}


def _snapshot(*extra: str, kind: str) -> Callable[..., tuple[list[str], dict[str, Path]]]:
    def prepare(gate: Gate, mp: pytest.MonkeyPatch) -> tuple[list[str], dict[str, Path]]:
        if kind == "directory":
            path = _directory(gate, "values-dir")
        elif kind == "fifo":
            path = fifo(gate.path / "values.yaml")
        else:
            path = DEV_NULL
        return ["--cilium-phase=pre", *extra, f"--cilium-values-snapshot={path}"], {"path": path}

    return prepare


def _state(phase: str, kind: str) -> Callable[..., tuple[list[str], dict[str, Path]]]:
    def prepare(gate: Gate, mp: pytest.MonkeyPatch) -> tuple[list[str], dict[str, Path]]:
        path = _directory(gate, "state") if kind == "directory" else fifo(gate.path / "state")
        return [f"--cilium-phase={phase}", f"--cilium-state-file={path}"], {"path": path}

    return prepare


WRITE = "--cilium-write-snapshot"
OVERWRITE = "--cilium-overwrite-snapshot"
CASES = (
    Case(
        "summary-is-a-directory",
        "`--cilium-summary=<path>`, a directory",
        _summary_directory,
        4,
        "ERROR: --cilium-summary (from the command line): cannot write the summary to <path>:"
        " <path> is a directory, not a regular file",
        after=_still_directory,
    ),
    Case(
        "step-summary-in-a-missing-directory",
        "`$GITHUB_STEP_SUMMARY` in a missing directory",
        _step_summary_missing,
        4,
        "ERROR: $GITHUB_STEP_SUMMARY: cannot write the summary to <path>: directory <dir>"
        " does not exist",
    ),
    Case(
        "summary-is-a-symbolic-link",
        "`--cilium-summary=<path>`, a symbolic link to <target>",
        _summary_link,
        4,
        "ERROR: --cilium-summary (from the command line): cannot write the summary to <path>:"
        " <path> is a symbolic link (to <target>), which is never written through: name the"
        " file itself",
        after=_link_untouched,
    ),
    Case(
        "summary-is-a-fifo",
        "`--cilium-summary=<path>`, a FIFO",
        _summary_fifo,
        4,
        "ERROR: --cilium-summary (from the command line): cannot write the summary to <path>:"
        " <path> is a FIFO, not a regular file",
        subprocess=True,
        after=_still_fifo,
    ),
    Case(
        "summary-lost-at-the-end",
        "`--cilium-summary=<path>`, its directory removed while the checks run",
        _summary_lost,
        1,
        "cilium-upgrade: --cilium-summary (from the command line): cannot write the summary"
        " to <path>: No such file or directory; the summary is lost and the run fails,"
        " although the gate passed",
    ),
    Case(
        "snapshot-is-a-directory",
        f"`{WRITE} --cilium-values-snapshot=<path>`, a directory",
        _snapshot(WRITE, kind="directory"),
        4,
        "ERROR: --cilium-values-snapshot (from the command line): cannot write values snapshot"
        " <path>: <path> is a directory, not a regular file",
        after=_still_directory,
    ),
    Case(
        "snapshot-overwrite-a-directory",
        f"`{WRITE} {OVERWRITE} --cilium-values-snapshot=<path>`, a directory",
        _snapshot(WRITE, OVERWRITE, kind="directory"),
        4,
        "ERROR: --cilium-values-snapshot (from the command line): cannot write values snapshot"
        " <path>: <path> is a directory, not a regular file",
        after=_still_directory,
    ),
    Case(
        "snapshot-overwrite-a-fifo",
        f"`{WRITE} {OVERWRITE} --cilium-values-snapshot=<path>`, a FIFO",
        _snapshot(WRITE, OVERWRITE, kind="fifo"),
        4,
        "ERROR: --cilium-values-snapshot (from the command line): cannot write values snapshot"
        " <path>: <path> is a FIFO, not a regular file",
        subprocess=True,
        after=_still_fifo,
    ),
    Case(
        "snapshot-overwrite-a-device",
        f"`{WRITE} {OVERWRITE} --cilium-values-snapshot=/dev/null`",
        _snapshot(WRITE, OVERWRITE, kind="device"),
        4,
        "ERROR: --cilium-values-snapshot (from the command line): cannot write values snapshot"
        " <path>: <path> is a character device, not a regular file",
    ),
    Case(
        "snapshot-is-a-fifo",
        "`--cilium-phase=pre --cilium-values-snapshot=<path>`, a FIFO (read by the checks)",
        _snapshot(kind="fifo"),
        4,
        "ERROR: --cilium-values-snapshot (from the command line): cannot read values snapshot"
        " <path>: <path> is a FIFO, not a regular file",
        subprocess=True,
        after=_still_fifo,
    ),
    Case(
        "state-file-is-a-directory",
        "`--cilium-phase=pre --cilium-state-file=<path>`, a directory",
        _state("pre", "directory"),
        4,
        "ERROR: --cilium-state-file (from the command line): cannot write state file <path>:"
        " <path> is a directory, not a regular file",
        after=_still_directory,
    ),
    Case(
        "state-file-is-a-fifo",
        "`--cilium-phase=post --cilium-state-file=<path>`, a FIFO",
        _state("post", "fifo"),
        4,
        "ERROR: --cilium-state-file (from the command line): cannot read state file <path>:"
        " <path> is a FIFO, not a regular file",
        subprocess=True,
        after=_still_fifo,
    ),
)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_file_path_ends_with_one_line(
    case: Case, gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    args, paths = case.prepare(gate, monkeypatch)
    result = run_subprocess(gate, *args) if case.subprocess else gate.run(*args)
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == case.exit, out
    assert case.expected(paths) in result.outlines + result.errlines, out
    assert "Traceback" not in out
    assert "INTERNALERROR" not in out
    if case.exit == pytest.ExitCode.USAGE_ERROR:  # refused before any cluster work
        assert not (gate.path / "adapters-built").exists()
    if case.after is not None:
        case.after(paths)


def test_the_reliability_doc_lists_every_case() -> None:
    text = DOC.read_text()
    section = text[text.index("## Files the gate writes") :]
    section = section[: section.find("\n## ", 1)] if "\n## " in section[1:] else section
    rows = [ln for ln in section.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    assert rows == [f"| {c.id} | {c.command} | {c.exit} | `{c.line}` |" for c in CASES]


def test_a_summary_lost_at_the_end_keeps_a_failing_gates_status(gate: Gate) -> None:
    folder = gate.path / "reports"
    folder.mkdir()
    gate.data["render_error"] = "Error: the chart refuses the values"
    gate.conftest_extra = f"""

    import shutil

    def pytest_collection_finish(session):
        shutil.rmtree({str(folder)!r})
    """
    result = gate.run("--cilium-phase=pre", f"--cilium-summary={folder / 'summary.md'}")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, out
    assert "the summary is lost" in out
    assert "although the gate passed" not in out


def test_every_problem_is_listed_at_once(gate: Gate) -> None:
    directory = gate.path / "d"
    directory.mkdir()
    result = gate.run(
        "--cilium-phase=pre",
        f"--cilium-state-file={directory}",
        f"--cilium-summary={gate.path / 'missing' / 'summary.md'}",
    )
    assert_refused_at_start(
        gate,
        result,
        "--cilium-state-file (from the command line): *is a directory, not a regular file",
        "--cilium-summary (from the command line): *directory * does not exist",
    )


# --------------------------------------------------------------------------- the writers


def _in_time(call: object, seconds: float = 10.0) -> object:
    """``call()``'s result or exception, failing if it blocks (a FIFO would)."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())  # type: ignore[operator]
        except BaseException as exc:  # handed back to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, "blocked"
    return outcome[0]


@pytest.mark.parametrize("kind", ["directory", "fifo", "socket", "device"])
def test_path_problem_names_what_the_path_is(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "x"
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        fifo(path)
    elif kind == "socket":
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
        server.close()
    else:
        path = DEV_NULL
    what = {
        "directory": "a directory",
        "fifo": "a FIFO",
        "socket": "a socket",
        "device": "a character device",
    }
    expected = f"{path} is {what[kind]}, not a regular file"
    assert path_problem(path, written=False) == expected
    assert path_problem(path, written=True) == expected
    assert path_problem(path, written=True, append=True) == expected
    link = tmp_path / "link"
    link.symlink_to(path)
    assert path_problem(link, written=True) == (
        f"{link} is a symbolic link to {what[kind]}, not a regular file"
    )


def test_path_problem_accepts_regular_and_new_files(tmp_path: Path) -> None:
    regular = tmp_path / "r"
    regular.write_text("x")
    assert path_problem(regular, written=True) is None
    assert path_problem(regular, written=True, append=True) is None
    assert path_problem(tmp_path / "new", written=True) is None
    assert path_problem(tmp_path / "no" / "new", written=False) is None
    assert path_problem(tmp_path / "no" / "new", written=True) == (
        f"directory {tmp_path / 'no'} does not exist"
    )


def test_a_fifo_is_never_read(tmp_path: Path) -> None:
    path = fifo(tmp_path / "values.yaml")
    error = _in_time(lambda: read_regular_text(path))
    assert isinstance(error, NotRegularFile)
    assert str(error) == f"{path} is a FIFO, not a regular file"
    snapshot = _in_time(lambda: read_values_snapshot(path))
    assert getattr(snapshot, "read_error", None) == f"{path} is a FIFO, not a regular file"


@pytest.mark.parametrize("overwrite", [False, True])
def test_the_snapshot_writer_never_replaces_a_fifo_or_a_directory(
    tmp_path: Path, overwrite: bool
) -> None:
    pipe = fifo(tmp_path / "pipe.yaml")
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    for path, what in ((pipe, "a FIFO"), (folder, "a directory")):
        error = _in_time(lambda p=path: write_values_snapshot(p, VALUES, overwrite=overwrite))
        assert isinstance(error, GateError)
        assert str(error) == (
            f"cannot write values snapshot {path}: it is {what}, not a regular file;"
            " choose another --cilium-values-snapshot path"
        )
    assert stat.S_ISFIFO(pipe.lstat().st_mode)
    assert folder.is_dir()


def test_the_snapshot_writer_never_replaces_a_device() -> None:
    with pytest.raises(GateError, match="it is a character device, not a regular file"):
        write_values_snapshot(DEV_NULL, VALUES, overwrite=True)


def test_the_atomic_writer_replaces_only_regular_files_and_links(tmp_path: Path) -> None:
    pipe = fifo(tmp_path / "pipe")
    with pytest.raises(NotRegularFile, match="is a FIFO, not a regular file"):
        write_atomically(pipe, "x")
    with pytest.raises(NotRegularFile, match="is a character device, not a regular file"):
        write_atomically(DEV_NULL, "x")
    # a symbolic link is replaced itself; its target is left alone
    target = tmp_path / "target"
    target.write_text("theirs")
    link = tmp_path / "link"
    link.symlink_to(target)
    write_atomically(link, "ours")
    assert not link.is_symlink()
    assert link.read_text() == "ours"
    assert target.read_text() == "theirs"


def test_the_summary_is_appended_only_to_a_regular_file(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    append_regular(summary, "one\n")
    append_regular(summary, "two\n")
    assert summary.read_text() == "one\ntwo\n"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("")
    link = tmp_path / "link.md"
    link.symlink_to(elsewhere)
    with pytest.raises(NotRegularFile, match="is a symbolic link"):
        append_regular(link, "x")
    assert elsewhere.read_text() == ""
    pipe = fifo(tmp_path / "pipe.md")
    error = _in_time(lambda: append_regular(pipe, "x"))
    assert isinstance(error, OSError)
