"""The phases of a gate run, named once for the checks, the upgrade and the pytest items.

A check is written for ``pre`` (before the upgrade) or ``post`` (after it). A
performed upgrade (``--cilium-perform-upgrade``) runs its steps and checks in the
phases of :data:`UPGRADE_PHASES`, in that order; its ``rollback`` phase runs the
post checks again against the release rolled back to.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = ["CHECK_PHASES", "UPGRADE_PHASES", "Phase"]

Phase = Literal["prepare", "pre", "upgrade", "post", "rollback"]

# The phases checks are written for: built-in, contributed and marked user checks.
CHECK_PHASES: Final[tuple[Phase, ...]] = ("pre", "post")

# Every phase of a performed upgrade, in the order its items run.
UPGRADE_PHASES: Final[tuple[Phase, ...]] = ("prepare", "pre", "upgrade", "post", "rollback")
