from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from pytest_cilium_upgrade.errors import GateError
from pytest_cilium_upgrade.values_file import SnapshotConflict, write_values_snapshot

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
