from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from pytest_cilium_upgrade.adapters.files import SnapshotConflict, write_values_snapshot
from pytest_cilium_upgrade.errors import GateError

VALUES = {"hubble": {"tls": {"server": {"key": "-----BEGIN PRIVATE KEY-----abc"}}}, "ipam": "k"}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_written_with_mode_0600_and_parses_back(tmp_path: Path) -> None:
    path = tmp_path / "values.yaml"
    assert write_values_snapshot(path, VALUES) == "written"
    assert _mode(path) == 0o600
    assert yaml.safe_load(path.read_text()) == VALUES
    assert [p.name for p in tmp_path.iterdir()] == ["values.yaml"]  # no temp file left


def test_same_values_are_left_alone_and_mode_tightened(tmp_path: Path) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(VALUES))
    path.chmod(0o644)
    assert write_values_snapshot(path, VALUES) == "unchanged"
    assert _mode(path) == 0o600


def test_an_old_leftover_goes_even_when_the_values_are_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "values.yaml"
    write_values_snapshot(path, VALUES)
    leftover = tmp_path / ".values.yaml.k1ll3d.tmp"  # a killed writer's, with the secrets
    leftover.write_text(yaml.safe_dump(VALUES))
    other = tmp_path / ".other.yaml.k1ll3d.tmp"  # another snapshot's: not ours to remove
    other.write_text("x")
    old = time.time() - 120
    for p in (leftover, other):
        os.utime(p, (old, old))
    assert write_values_snapshot(path, VALUES) == "unchanged"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.yaml.k1ll3d.tmp", "values.yaml"]


def test_different_snapshot_is_never_overwritten_silently(tmp_path: Path) -> None:
    path = tmp_path / "values.yaml"
    path.write_text("other: release\n")
    with pytest.raises(SnapshotConflict, match="--cilium-overwrite-snapshot"):
        write_values_snapshot(path, VALUES)
    assert path.read_text() == "other: release\n"
    assert write_values_snapshot(path, VALUES, overwrite=True) == "replaced"
    assert yaml.safe_load(path.read_text()) == VALUES


def test_unwritable_directory_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "values.yaml"
    with pytest.raises(GateError, match=r"cannot write values snapshot .*values\.yaml"):
        write_values_snapshot(missing, VALUES)


def test_failed_write_keeps_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "values.yaml"
    path.write_text("old: values\n")

    def boom(src: str, dst: str) -> None:
        raise KeyboardInterrupt  # interrupted between writing and renaming

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(KeyboardInterrupt):
        write_values_snapshot(path, VALUES, overwrite=True)
    assert path.read_text() == "old: values\n"
    assert [p.name for p in tmp_path.iterdir()] == ["values.yaml"]


# The writer runs in a process of its own and is killed with SIGKILL (no clean-up runs)
# at a point named by the test: while it writes the temporary file's content, or after
# it has synced it and before it renames it over the snapshot.
KILLED_WRITER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from pytest_cilium_upgrade.adapters import files as values_file

    path, stage = Path(sys.argv[1]), sys.argv[2]
    real_fsync = os.fsync

    def fsync(fd):
        if stage == "content":
            os.write(fd, b"half: [")  # a partial document already in the file
        else:
            real_fsync(fd)
        print("in the window", flush=True)
        time.sleep(60)  # killed here

    values_file.os.fsync = fsync
    values_file.write_values_snapshot(path, {"new": {"key": "x" * 4096}}, overwrite=True)
""")


@pytest.mark.parametrize("stage", ["content", "synced"])
def test_a_writer_killed_mid_write_leaves_the_old_snapshot_whole(
    tmp_path: Path, stage: str
) -> None:
    path = tmp_path / "values.yaml"
    write_values_snapshot(path, VALUES)
    before = path.read_bytes()
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(path), stage], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "in the window"
        leftovers = [p for p in tmp_path.iterdir() if p != path]
        assert len(leftovers) == 1  # the temporary file, written, not yet renamed
        writer.send_signal(signal.SIGKILL)
    finally:
        writer.kill()
        writer.wait(timeout=30)
        if writer.stdout is not None:
            writer.stdout.close()
    assert writer.returncode == -signal.SIGKILL
    assert path.read_bytes() == before  # the snapshot is the old one, whole
    assert yaml.safe_load(path.read_text()) == VALUES
    assert _mode(path) == 0o600
    # the next run writes over it normally; the killed writer's temporary file (a
    # hidden .values.yaml.*.tmp, with the same secrets) is never read as the snapshot,
    # and is removed by a write once it is old enough to belong to no live writer
    (leftover,) = [p for p in tmp_path.iterdir() if p != path]
    assert write_values_snapshot(path, {"new": 1}, overwrite=True) == "replaced"
    assert yaml.safe_load(path.read_text()) == {"new": 1}
    assert leftover.exists()  # too young: it could be a writer still running
    old = time.time() - 120
    os.utime(leftover, (old, old))
    assert write_values_snapshot(path, {"new": 2}, overwrite=True) == "replaced"
    assert sorted(tmp_path.iterdir()) == [path]
