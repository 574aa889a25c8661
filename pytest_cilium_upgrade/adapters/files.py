"""Write the values snapshot (``helm get values -o yaml``) safely.

The file can hold TLS keys and IPsec secrets: it is created with mode 0600, written
to a temporary file in the same directory and renamed into place (a crash leaves
either the old file or the new one, never half of one), and an existing snapshot
with different content is only replaced when the caller says so. The temporary file
of a writer killed before its rename holds the same secrets; the next write of that
snapshot (or its check) removes it once it is a minute old (a live writer holds one for
milliseconds).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from pytest_cilium_upgrade import yamltext
from pytest_cilium_upgrade.errors import GateError

# a temporary file older than this belongs to no writer still running
_STALE_TMP_SECONDS = 60.0


class SnapshotConflict(GateError):
    """An existing snapshot holds different values and overwriting was not allowed."""


def dump_values(values: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(values), sort_keys=True, default_flow_style=False)


def write_values_snapshot(path: Path, values: Mapping[str, Any], *, overwrite: bool = False) -> str:
    """Write ``values`` to ``path``; returns what happened (for the report).

    Returns ``"written"``, ``"unchanged"`` (same values already there) or
    ``"replaced"``; raises :class:`SnapshotConflict` when the file differs and
    ``overwrite`` is false, and :class:`GateError` when the file cannot be written.
    """
    text = dump_values(values)
    directory = path.parent if str(path.parent) else Path(".")
    _remove_stale_temporaries(directory, path.name)  # whatever happens next
    existed = path.exists()
    if existed:
        try:
            current = yamltext.load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            current = exc
        if current == dict(values):
            _restrict(path)
            return "unchanged"
        if not overwrite:
            raise SnapshotConflict(
                f"values snapshot {path} already exists with different content; "
                "refusing to overwrite it (pass --cilium-overwrite-snapshot to replace it, "
                "or choose another --cilium-values-snapshot path)"
            )
    try:
        prefix, suffix = _temporary_affixes(path.name)
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
    except OSError as exc:
        raise GateError(f"cannot write values snapshot {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w") as handle:  # mkstemp creates the file 0600
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(directory)
    return "replaced" if existed else "written"


def _temporary_affixes(name: str) -> tuple[str, str]:
    """How the temporary files of snapshot ``name`` are named: ``.<name>.<random>.tmp``."""
    return f".{name}.", ".tmp"


def _remove_stale_temporaries(directory: Path, name: str) -> None:
    """Remove what killed writers of ``name`` left behind (best effort)."""
    cutoff = time.time() - _STALE_TMP_SECONDS
    prefix, suffix = _temporary_affixes(name)  # compared, not globbed
    try:
        leftovers = [
            p for p in directory.iterdir() if p.name.startswith(prefix) and p.name.endswith(suffix)
        ]
    except OSError:
        return
    for leftover in leftovers:
        try:
            if leftover.is_file() and leftover.stat().st_mtime < cutoff:
                leftover.unlink()
        except OSError:
            continue


def _restrict(path: Path) -> None:
    try:
        path.chmod(0o600)
    except OSError as exc:
        raise GateError(f"cannot restrict {path} to mode 0600: {exc.strerror}") from None


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
