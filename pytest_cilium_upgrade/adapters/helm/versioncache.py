"""What a helm binary printed for ``version``, kept between runs."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from pytest_cilium_upgrade.adapters.files import write_atomically


class VersionCache:
    """What a binary printed for ``version``, one file per binary under ``directory``.

    An entry is keyed on the binary's real path and its inode, size and modification
    and change times, so a binary replaced or rebuilt in place is asked again. Failing
    to read or write the cache only means asking the binary.

    Only a file that is helm itself is cached. Version managers put a dispatcher in
    its place that picks a helm per directory or environment: asdf's shim is a script,
    mise's is a link to the ``mise`` binary. The same file then answers for several
    versions, so scripts, and files whose real name is not helm's, are always asked.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @staticmethod
    def cacheable(real: str) -> bool:
        """Is the file at ``real`` (a resolved path) helm itself rather than a dispatcher?"""
        if not os.path.basename(real).startswith("helm"):
            return False
        try:
            with open(real, "rb") as handle:
                return handle.read(2) != b"#!"
        except OSError:
            return False

    def _entry(self, binary: str) -> Path | None:
        try:
            real = os.path.realpath(binary)
            info = os.stat(real)
        except OSError:
            return None
        if not self.cacheable(real):
            return None
        key = "\0".join(
            map(
                str,
                (real, info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns),
            )
        )
        return self.directory / hashlib.sha256(key.encode()).hexdigest()

    def get(self, binary: str) -> str | None:
        entry = self._entry(binary)
        if entry is None:
            return None
        try:
            return entry.read_text().strip() or None
        except OSError:
            return None

    def put(self, binary: str, version: str) -> None:
        entry = self._entry(binary)
        if entry is None:
            return
        # whole or not at all, when two runs write at once
        with contextlib.suppress(OSError):
            self.directory.mkdir(parents=True, exist_ok=True)
            write_atomically(entry, version + "\n")
