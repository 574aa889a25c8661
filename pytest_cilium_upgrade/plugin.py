"""pytest entry point of pytest-cilium-upgrade.

Every pytest run of an environment that has the plugin installed loads this module,
so it stays light: it registers the options, the marker, the hook spec and the
fixtures, and skips marked checks. With ``--cilium-upgrade`` it registers
:class:`pytest_cilium_upgrade.gate.hooks.GatePlugin`, which collects and runs the
gate; the checks, the model and the adapters are imported only then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pytest_cilium_upgrade import hookspecs, options
from pytest_cilium_upgrade.marker import GATE_KEY, MARKER, marker_phase

if TYPE_CHECKING:
    from pytest_cilium_upgrade.checks import CheckParams
    from pytest_cilium_upgrade.gate.settings import Settings
    from pytest_cilium_upgrade.snapshot.model import ClusterSnapshot

# ---------------------------------------------------------------------------- options


def pytest_addoption(parser: pytest.Parser) -> None:
    options.register(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def _enabled(config: pytest.Config) -> bool:
    return bool(config.getoption("cilium_upgrade", default=False))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(phase='pre'|'post'): a check of the Cilium upgrade gate, run in that phase "
        "with the cilium_snapshot fixture; skipped unless --cilium-upgrade is given.",
    )
    if not _enabled(config):
        return
    from pytest_cilium_upgrade.gate.hooks import GatePlugin

    config.pluginmanager.register(GatePlugin(config), GatePlugin.name)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marked user checks are skipped without the gate (GatePlugin narrows them with it)."""
    if _enabled(config):
        return
    for item in items:
        marker = item.get_closest_marker(MARKER)
        if marker is not None:
            marker_phase(item, marker)  # a wrong phase is an error, with or without the gate
            item.add_marker(pytest.mark.skip(reason="Cilium upgrade check: needs --cilium-upgrade"))


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture
def cilium_snapshot(request: pytest.FixtureRequest) -> ClusterSnapshot:
    """The snapshot of the marked phase (collected once per phase and shared)."""
    config = request.config
    if not _enabled(config):
        pytest.skip("cilium_snapshot needs --cilium-upgrade")
    marker = request.node.get_closest_marker(MARKER)
    phase = marker_phase(request.node, marker) if marker is not None else "pre"
    return config.stash[GATE_KEY].snapshot(phase)


@pytest.fixture
def cilium_settings(request: pytest.FixtureRequest) -> Settings:
    """The resolved options of the gate."""
    if not _enabled(request.config):
        pytest.skip("cilium_settings needs --cilium-upgrade")
    return request.config.stash[GATE_KEY].settings


@pytest.fixture
def cilium_check_params(request: pytest.FixtureRequest) -> CheckParams:
    """The checks' parameters, as the built-in checks get them."""
    if not _enabled(request.config):
        pytest.skip("cilium_check_params needs --cilium-upgrade")
    return request.config.stash[GATE_KEY].params
