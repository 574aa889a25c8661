"""Files the gate writes and reads: whole-file writes, the values snapshot, values files.

:func:`write_atomically` replaces a file whole or not at all: the content goes to a
temporary file ``.<name>.<random>.tmp`` in the same directory (created with mode
0600), which is then renamed over the file. A crash leaves either the old file or
the new one, never half of one.

The values snapshot (``helm get values -o yaml``) can hold TLS keys and IPsec
secrets: it is written that way with mode 0600 and synced to disk, and an existing
snapshot with different content is only replaced when the caller says so. The
temporary file of a writer killed before its rename holds the same secrets; the next
write of that snapshot (or its check) removes it once it is a minute old (a live
writer holds one for milliseconds).

:func:`read_values` reads a Helm values file; its errors never quote the file's text.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from pytest_cilium_upgrade import defaults, yamltext
from pytest_cilium_upgrade.errors import GateError

# a temporary file older than this belongs to no writer still running
_STALE_TMP_SECONDS = 60.0


class SnapshotConflict(GateError):
    """An existing snapshot holds different values and overwriting was not allowed."""


class ValuesUnreadable(GateError):
    """A values file that cannot be read, is not YAML or holds no mapping."""


def write_atomically(path: Path, text: str, *, mode: int = 0o600, durable: bool = False) -> None:
    """Replace ``path`` with ``text`` whole, or leave it as it was.

    The new file has ``mode``. ``durable`` syncs the file and its directory to disk
    before returning, so the new content survives a power loss. Raises ``OSError``;
    the temporary file is removed on any failure but the death of the process.
    """
    directory = path.parent if str(path.parent) else Path(".")
    prefix, suffix = _temporary_affixes(path.name)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
    try:
        with os.fdopen(fd, "w") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(text)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(directory)


def read_values(path: Path) -> dict[str, Any]:
    """The mapping in the Helm values file at ``path`` (``{}`` for an empty file).

    Raises :class:`ValuesUnreadable` when the file cannot be read, is not YAML or holds
    something else than a mapping; the message names the file and where the YAML is
    wrong, never its text (values can be secret).
    """
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValuesUnreadable(f"cannot read values file {path}: {exc.strerror or exc}") from exc
    try:
        data = yamltext.load(text) or {}
    except yaml.YAMLError as exc:
        mark = exc.problem_mark if isinstance(exc, yaml.MarkedYAMLError) else None
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        # the parser's error can quote the text: it is not chained
        raise ValuesUnreadable(f"values file {path} is not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise ValuesUnreadable(
            f"values file {path} holds a {type(data).__name__}, not a mapping of values"
        )
    return data


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
            current: dict[str, Any] | None = read_values(path)
        except ValuesUnreadable:
            current = None
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
        write_atomically(path, text, mode=defaults.VALUES_SNAPSHOT_MODE, durable=True)
    except OSError as exc:
        raise GateError(f"cannot write values snapshot {path}: {exc.strerror or exc}") from exc
    return "replaced" if existed else "written"


def _temporary_affixes(name: str) -> tuple[str, str]:
    """How the temporary files of ``name`` are named: ``.<name>.<random>.tmp``."""
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
    mode = defaults.VALUES_SNAPSHOT_MODE
    try:
        path.chmod(mode)
    except OSError as exc:
        raise GateError(f"cannot restrict {path} to mode {mode:04o}: {exc.strerror}") from exc


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
