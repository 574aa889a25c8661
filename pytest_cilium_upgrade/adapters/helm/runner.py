"""How one ``helm`` command is run and recorded.

A :class:`~.commands.HelmCommand` (built in :mod:`.commands`) is the exact argument
list with its timeout and the values that go on stdin; the :class:`Runner` runs it,
:func:`run_subprocess` in earnest and a recorder in tests. The client (:mod:`.client`)
turns what ran into errors.

``helm`` is often a wrapper or a version manager's shim that starts the real helm as
its own child. Each command therefore runs in a process group (a session) of its own,
and on a timeout or an interruption the whole group is ended, not only the direct
child: SIGTERM, then SIGKILL after :data:`KILL_GRACE_S`. :func:`end_running` ends every
command still running, for a run that is interrupted while helm works in other threads.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


class Runner(Protocol):
    """Runs one command; the seam tests replace."""

    def __call__(
        self,
        argv: Sequence[str],
        *,
        input_text: str | None,
        env: Mapping[str, str],
        timeout: float,
    ) -> subprocess.CompletedProcess[str]: ...


KILL_GRACE_S = 1.0  # between SIGTERM and SIGKILL to a command's process group
_REAP_S = 5.0  # for the output of an ended group (a daemon it started may keep the pipes)

_running: set[subprocess.Popen[str]] = set()
_running_lock = threading.Lock()


def run_subprocess(
    argv: Sequence[str],
    *,
    input_text: str | None,
    env: Mapping[str, str],
    timeout: float,
    cwd: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in a session of its own; on timeout or interruption end its group.

    Raises :class:`subprocess.TimeoutExpired` after ending the group at ``timeout``;
    any other exception (KeyboardInterrupt) ends the group and propagates. The one
    place the gate starts a process: helm, and the kubeconfig's credential plugin
    (:mod:`pytest_cilium_upgrade.adapters.kube`).
    """
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # bytes that are not UTF-8 (a plugin's, a wrapper's) become U+FFFD, not an error
        encoding="utf-8",
        errors="replace",
        env=dict(env),
        start_new_session=True,
    )
    with _running_lock:
        _running.add(proc)
    try:
        stdout, stderr = proc.communicate(input_text, timeout=timeout)
    except subprocess.TimeoutExpired:
        _end_group(proc)
        stdout, stderr = _reap(proc)
        raise subprocess.TimeoutExpired(proc.args, timeout, stdout, stderr) from None
    except BaseException:
        _end_group(proc)
        _reap(proc)
        raise
    finally:
        with _running_lock:
            _running.discard(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


class ProgramTimeout(Exception):
    """:func:`run_program` ended a program at its timeout (and its process group)."""


def run_program(
    argv: Sequence[str], *, env: Mapping[str, str], timeout: float, cwd: str | None = None
) -> subprocess.CompletedProcess[str]:
    """:func:`run_subprocess` without stdin, for a caller that does not import subprocess."""
    try:
        return run_subprocess(argv, input_text=None, env=env, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        raise ProgramTimeout(f"did not finish within {timeout:g}s") from None


def end_running() -> int:
    """End the process group of every command still running; how many there were."""
    with _running_lock:
        procs = list(_running)
    for proc in procs:
        _signal_group(proc, signal.SIGTERM)
    end = time.monotonic() + KILL_GRACE_S
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(max(0.0, end - time.monotonic()))
        _signal_group(proc, signal.SIGKILL)
    return len(procs)


def _signal_group(proc: subprocess.Popen[str], sig: signal.Signals) -> None:
    # the group's id is the child's pid (start_new_session): it outlives the child
    # itself while the child's own children run
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _end_group(proc: subprocess.Popen[str]) -> None:
    """SIGTERM to the group, SIGKILL after the grace (also to what outlived the child)."""
    _signal_group(proc, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(KILL_GRACE_S)
    _signal_group(proc, signal.SIGKILL)


def _reap(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """What an ended command printed; its pipes are closed if something still holds them."""
    try:
        stdout, stderr = proc.communicate(timeout=_REAP_S)
    except (subprocess.TimeoutExpired, ValueError, OSError):
        for pipe in (proc.stdout, proc.stderr, proc.stdin):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(_REAP_S)
        return "", ""
    return stdout or "", stderr or ""


@dataclass(frozen=True)
class HelmCall:
    """A record of one command that ran (argv redacted); ``exit_code`` None on timeout."""

    argv: tuple[str, ...]
    exit_code: int | None
    seconds: float
