"""Hooks pytest-cilium-upgrade offers to other plugins and conftest files."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_cilium_upgrade.checks import CheckSpec


@pytest.hookspec
def pytest_cilium_upgrade_checks(config: pytest.Config) -> list[CheckSpec]:
    """Return extra checks to run as ``cilium-upgrade::<phase>::<check_id>`` items.

    Each :class:`~pytest_cilium_upgrade.checks.CheckSpec` names its phase
    (``"pre"`` or ``"post"``), a unique ``check_id`` and a pure function
    ``(ClusterSnapshot, CheckParams) -> CheckResult``. Results pass through the same
    redaction and reporting as the built-in checks.
    """
    raise NotImplementedError
