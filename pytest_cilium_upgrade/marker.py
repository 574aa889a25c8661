"""What the entry point and the gate share: the marker, its phase and the run's stash key.

Loaded by every pytest run (through :mod:`pytest_cilium_upgrade.plugin`), so it
imports nothing of the gate at run time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import pytest

from pytest_cilium_upgrade.phases import CHECK_PHASES, Phase

if TYPE_CHECKING:
    from pytest_cilium_upgrade.gate.session import GateSession

__all__ = ["GATE_KEY", "MARKER", "MARKER_PHASES", "marker_phase"]

MARKER: Final = "cilium_upgrade"
# The phases a marked user check may name: those of the built-in checks.
MARKER_PHASES: Final = CHECK_PHASES
# The run's GateSession, stored by the gate plugin when ``--cilium-upgrade`` is given.
GATE_KEY: Final[pytest.StashKey[GateSession]] = pytest.StashKey()


def marker_phase(item: pytest.Item, marker: pytest.Mark) -> Phase:
    """The phase ``@pytest.mark.cilium_upgrade`` names; any other is a usage error."""
    phase = marker.kwargs.get("phase", marker.args[0] if marker.args else None)
    for allowed in MARKER_PHASES:
        if phase == allowed:
            return allowed
    raise pytest.UsageError(
        f"{item.nodeid}: @pytest.mark.{MARKER}(phase=...) must be 'pre' or 'post', not {phase!r}"
    )
