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

The files the gate writes (the values snapshot, the state file, the Markdown summary)
are regular files it owns. A path that is a directory, a FIFO, a socket or a device
is refused (:func:`path_problem` says why, for a usage error at start-up), and never
opened: :func:`read_regular_text` checks the file before it reads, without blocking
on a FIFO, and :func:`write_atomically` never replaces anything but a regular file
or a symbolic link (the link itself is replaced, its target is left alone). The
summary is appended to (:func:`append_regular`), and never through a symbolic link:
a link there is refused.
"""

from __future__ import annotations

import contextlib
import os
import stat
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


class NotRegularFile(OSError):
    """A path the gate reads or writes as its own file is something else.

    Its text says what the path is instead: ``/x is a FIFO, not a regular file``.
    """

    def __init__(self, path: Path, what: str) -> None:
        super().__init__(f"{path} is {what}, not a regular file")
        self.strerror = str(self.args[0])
        self.filename = str(path)

    def __str__(self) -> str:
        return str(self.args[0])


def kind_of(mode: int) -> str:
    """``a directory``, ``a FIFO``, ... for a file's ``st_mode``."""
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISREG, "a regular file"),
    )
    return next((name for test, name in kinds if test(mode)), "a special file")


def _special(path: Path, *, follow: bool) -> str | None:
    """What ``path`` is when it exists and is not a regular file (None otherwise).

    A symbolic link is looked through when ``follow`` (a dangling one is None), else it
    is None too: it is the link itself that a writer replaces.
    """
    try:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            if not follow:
                return None
            target = path.stat()
            if not stat.S_ISREG(target.st_mode):
                return f"a symbolic link to {kind_of(target.st_mode)}"
            return None
    except OSError:
        return None  # missing (or a dangling link): nothing is there to spare
    return None if stat.S_ISREG(info.st_mode) else kind_of(info.st_mode)


def path_problem(path: Path, *, written: bool, append: bool = False) -> str | None:
    """Why ``path`` cannot be one of the gate's own files, or None when it can.

    Refused: a directory, FIFO, socket or device (also behind a symbolic link); with
    ``append`` (the summary, appended to) a symbolic link; and, when the gate is to
    write it, a file whose directory does not exist or is not writable, or a file it
    cannot append to. Checked before any cluster work, so that the run stops at once.
    """
    if append:
        try:
            if stat.S_ISLNK(path.lstat().st_mode):
                target = os.readlink(path)
                return (
                    f"{path} is a symbolic link (to {target}), which is never written"
                    " through: name the file itself"
                )
        except OSError:
            pass
    special = _special(path, follow=True)
    if special is not None:
        return f"{path} is {special}, not a regular file"
    if not written:
        return None
    directory = path.parent
    if not directory.exists():
        return f"directory {directory} does not exist"
    if not directory.is_dir():
        return f"{directory} is not a directory"
    if path.exists():
        if append and not os.access(path, os.W_OK):
            return f"{path} is not writable"
        if not append and not os.access(directory, os.W_OK | os.X_OK):
            return f"directory {directory} is not writable (the file is replaced whole)"
    elif not os.access(directory, os.W_OK | os.X_OK):
        return f"directory {directory} is not writable"
    return None


def read_regular_text(path: Path) -> str:
    """The text of the regular file ``path``; :class:`NotRegularFile` for anything else.

    Checked before it is opened (a device is never opened) and opened without
    blocking, so that a FIFO put there meanwhile cannot hold the run.
    """
    special = _special(path, follow=True)
    if special is not None:
        raise NotRegularFile(path, special)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(path, kind_of(mode))
        with os.fdopen(fd, encoding="utf-8", closefd=False) as handle:
            return handle.read()
    finally:
        os.close(fd)


def append_regular(path: Path, text: str) -> None:
    """Append ``text`` to the regular file ``path``, creating it (mode 0644 less the umask).

    Never through a symbolic link (the open refuses one) and never to a FIFO, socket
    or device: :class:`NotRegularFile`. Raises ``OSError``.
    """
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISLNK(path.lstat().st_mode):
            raise NotRegularFile(path, "a symbolic link")
    special = _special(path, follow=False)
    if special is not None:
        raise NotRegularFile(path, special)
    fd = os.open(path, flags, 0o644)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(path, kind_of(mode))
        data = text.encode("utf-8")
        while data:
            written = os.write(fd, data)
            data = data[written:]
    finally:
        os.close(fd)


def write_atomically(path: Path, text: str, *, mode: int = 0o600, durable: bool = False) -> None:
    """Replace ``path`` with ``text`` whole, or leave it as it was.

    The new file has ``mode``. ``durable`` syncs the file and its directory to disk
    before returning, so the new content survives a power loss. Raises ``OSError``
    (:class:`NotRegularFile` when ``path`` is a directory, FIFO, socket or device: only
    a regular file, or a symbolic link itself, is ever replaced); the temporary file is
    removed on any failure but the death of the process.
    """
    special = _special(path, follow=False)
    if special is not None:
        raise NotRegularFile(path, special)
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
    return _parse_values(path, text)


def _parse_values(path: Path, text: str) -> dict[str, Any]:
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


def read_yaml_quietly(path: Path) -> Any:
    """The YAML document in the regular file ``path``, or None if there is none to read.

    For finding secrets in files that others read and report on (the kubeconfig, the
    values files): whatever is wrong with the file is theirs to say.
    """
    try:
        return yamltext.load(read_regular_text(path))
    except (OSError, ValueError, yaml.YAMLError):
        return None


def dump_values(values: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(values), sort_keys=True, default_flow_style=False)


def write_values_snapshot(path: Path, values: Mapping[str, Any], *, overwrite: bool = False) -> str:
    """Write ``values`` to ``path``; returns what happened (for the report).

    Returns ``"written"``, ``"unchanged"`` (same values already there) or
    ``"replaced"``; raises :class:`SnapshotConflict` when the file differs and
    ``overwrite`` is false, and :class:`GateError` when the file cannot be written.
    """
    text = dump_values(values)
    special = _special(path, follow=True)
    if special is not None:  # never read, never replaced
        raise GateError(
            f"cannot write values snapshot {path}: it is {special}, not a regular file;"
            " choose another --cilium-values-snapshot path"
        )
    directory = path.parent if str(path.parent) else Path(".")
    _remove_stale_temporaries(directory, path.name)  # whatever happens next
    existed = path.exists()
    if existed:
        try:
            current: dict[str, Any] | None = _parse_values(path, read_regular_text(path))
        except (OSError, ValuesUnreadable):
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
