"""Stop a sandbox when the process that started it dies, however it dies.

The pytest fixture starts this watchdog beside the sandbox. It waits on a pidfd of
the test process (no polling) and, when that process is gone (a crash, SIGKILL, a
CI timeout), ends every process whose command line names the sandbox's kwok work
directory. A normal teardown stops the sandbox itself and then ends the watchdog.

    python -m cilium_sandbox.watchdog <pid> <kwok-workdir>
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
from pathlib import Path


def _processes_naming(needle: bytes) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def wait_for_exit(pid: int) -> None:
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        select.select([fd], [], [])
    finally:
        os.close(fd)


def reap(kwok_workdir: Path) -> list[int]:
    """SIGKILL every process naming ``kwok_workdir``; returns their pids."""
    pids = _processes_naming(str(kwok_workdir).encode())
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    parent, workdir = int(argv[0]), Path(argv[1])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    wait_for_exit(parent)
    killed = reap(workdir)
    if killed:
        print(
            f"sandbox watchdog: test process {parent} ended; stopped {len(killed)} "
            f"sandbox process(es) of {workdir}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
