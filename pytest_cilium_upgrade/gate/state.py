"""The state file that carries what the pre phase saw to the post phase.

The phases can run as separate CI steps with the user's own upgrade step between
them: pre records the release revision, the versions and the agent restart counts,
and the values files and ``--set`` items the upgrade is to add to the values snapshot;
post reads them back, and judges the release's values against Helm's merge of the
snapshot with them.

Values files are recorded by path only (their content is read again by post). The
``--set`` items are recorded as given, and they can carry secrets: the file is written
with mode 0600, like the values snapshot, and the gate never prints it.
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
    """What the pre phase saw, for the post phase.

    ``values_files`` (absolute paths) and ``sets`` (``--set`` items, secret) are what the
    upgrade adds to the values snapshot, in the order Helm takes them.
    """

    namespace: str
    release: str
    revision: int | None
    chart_version: str | None
    target_version: str | None
    agent_restarts: dict[str, int] = field(default_factory=dict)
    values_files: list[str] = field(default_factory=list)
    sets: list[str] = field(default_factory=list, repr=False)

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
            # not chained: a decoding error keeps the whole text, --set items included
            raise GateError(f"cannot read state file {path}: {exc}") from None
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise GateError(f"state file {path} is not a pytest-cilium-upgrade state file")
        data.pop("version")
        try:
            state = cls(**data)
        except TypeError as exc:
            raise GateError(f"state file {path} is malformed: {exc}") from exc
        wrong = state._wrong_types()
        if wrong:
            raise GateError(f"state file {path} is malformed: {wrong}; run the pre phase again")
        return state

    def _wrong_types(self) -> str | None:
        """The first field of a type the gate never writes there (None: all are right)."""
        expected: dict[str, tuple[type, ...]] = {
            "namespace": (str,),
            "release": (str,),
            "revision": (int, type(None)),
            "chart_version": (str, type(None)),
            "target_version": (str, type(None)),
            "agent_restarts": (dict,),
            "values_files": (list,),
            "sets": (list,),
        }
        for name, types in expected.items():
            value = getattr(self, name, None)
            if not isinstance(value, types) or isinstance(value, bool):
                return f"{name} is a {type(value).__name__}"
        if not all(isinstance(k, str) and type(v) is int for k, v in self.agent_restarts.items()):
            return "agent_restarts is not a mapping of pod names to restart counts"
        if not all(isinstance(item, str) for item in [*self.values_files, *self.sets]):
            return "values_files and sets are not lists of strings"
        return None

    def save(self, path: Path) -> None:
        """Write the state to ``path`` atomically (a reader never sees half a file),
        readable by its owner only: the ``--set`` items can hold secrets."""
        write_atomically(path, self.to_json(), mode=0o600)
