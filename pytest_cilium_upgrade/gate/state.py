"""The state file that carries what the pre phase saw to the post phase.

The phases can run as separate CI steps with the user's own upgrade step between
them: pre records the release revision, the versions and the agent restart counts,
post reads them back. The file holds no values (they can hold secrets).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from pytest_cilium_upgrade.adapters.files import write_atomically
from pytest_cilium_upgrade.errors import GateError

__all__ = ["STATE_VERSION", "UpgradeState"]

STATE_VERSION: Final = 1


@dataclass
class UpgradeState:
    """What the pre phase saw, for the post phase (no values: they can hold secrets)."""

    namespace: str
    release: str
    revision: int | None
    chart_version: str | None
    target_version: str | None
    agent_restarts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"version": STATE_VERSION, **self.__dict__}, indent=2, sort_keys=True)

    @classmethod
    def load(cls, path: Path) -> UpgradeState | None:
        """The state ``path`` holds, or None if there is no such file."""
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise GateError(f"cannot read state file {path}: {exc}") from exc
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise GateError(f"state file {path} is not a pytest-cilium-upgrade state file")
        data.pop("version")
        try:
            return cls(**data)
        except TypeError as exc:
            raise GateError(f"state file {path} is malformed: {exc}") from exc

    def save(self, path: Path) -> None:
        """Write the state to ``path`` atomically (a reader never sees half a file)."""
        write_atomically(path, self.to_json())
