"""How one ``helm`` command is built, run and recorded.

A :class:`HelmCommand` is the exact argument list (never a shell line) with its timeout
and the values that go on stdin; the :class:`Runner` runs it, :func:`run_subprocess` in
earnest and a recorder in tests. The client (:mod:`.client`) turns what ran into errors.
"""

from __future__ import annotations

import math
import os
import shlex
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import yaml

from pytest_cilium_upgrade.redact import Redactor


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


def run_subprocess(
    argv: Sequence[str],
    *,
    input_text: str | None,
    env: Mapping[str, str],
    timeout: float,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv),
        input=input_text,
        stdin=None if input_text is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=dict(env),
        timeout=timeout,
        check=False,
    )


@dataclass(frozen=True)
class HelmCommand:
    """One ``helm`` invocation, ready to run or to print.

    ``argv`` is exactly what runs (binary first). ``stdin`` holds values passed with
    ``-f -`` and is never shown.
    """

    argv: tuple[str, ...]
    timeout: float
    stdin: str | None = field(default=None, repr=False)

    def display(self, redactor: Redactor | None = None) -> str:
        """The command as a shell line (secrets redacted); stdin values are noted, not shown."""
        argv = [redactor.redact(a) for a in self.argv] if redactor else list(self.argv)
        text = shlex.join(argv)
        return f"{text}  # values on stdin" if self.stdin is not None else text


@dataclass(frozen=True)
class HelmCall:
    """A record of one command that ran (argv redacted); ``exit_code`` None on timeout."""

    argv: tuple[str, ...]
    exit_code: int | None
    seconds: float


def duration(seconds: float) -> str:
    """A Helm ``--timeout`` value: whole seconds, rounded up."""
    if seconds <= 0:
        raise ValueError(f"timeout must be positive, not {seconds}")
    return f"{math.ceil(seconds)}s"


def values_args(
    values_files: Iterable[str | os.PathLike[str]],
    values: Mapping[str, Any] | None,
    set_values: Iterable[str],
    set_string_values: Iterable[str],
) -> tuple[list[str], str | None]:
    """Helm's values flags; a mapping goes on stdin (``--values -``), never on the command line."""
    args: list[str] = []
    for path in values_files:
        args += ["--values", os.fspath(path)]
    stdin = None
    if values is not None:
        stdin = yaml.safe_dump(dict(values), sort_keys=False)
        args += ["--values", "-"]
    for item in set_values:
        args += ["--set", item]
    for item in set_string_values:
        args += ["--set-string", item]
    return args, stdin
