"""How an upgrade step ends when it does not succeed: failed, or not applicable."""

from __future__ import annotations

from collections.abc import Sequence

from pytest_cilium_upgrade.errors import GateError


class StepFailed(GateError):
    """A step's one-line verdict (``summary``) and what to look at (``details``)."""

    def __init__(self, summary: str, details: Sequence[str] = ()) -> None:
        super().__init__(summary)
        self.summary = summary
        self.details = list(details)


class StepSkipped(Exception):
    """The step does not apply (dry run, gate closed, nothing to roll back)."""
