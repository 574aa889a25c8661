"""CheckParams: what it accepts."""

from __future__ import annotations

import pytest

from pytest_cilium_upgrade.checks.params import CheckParams
from pytest_cilium_upgrade.versions import Version


def test_params_validation() -> None:
    with pytest.raises(ValueError, match="coverage policy"):
        CheckParams(coverage_policy="lenient")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        CheckParams(max_agent_restarts=-1)
    assert CheckParams(target=Version(1, 16, 3)).target == Version(1, 16, 3)
    assert CheckParams(target=Version(1, 16, 3)).target_version == "1.16.3"
    assert CheckParams().target is None
    assert CheckParams().target_version is None
    assert CheckParams().coverage_policy == "warn"
