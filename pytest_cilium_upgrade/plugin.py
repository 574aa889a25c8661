"""pytest entry point of pytest-cilium-upgrade.

Every pytest run of an environment that has the plugin installed loads this module,
so it stays light: it registers the options, the marker, the hook spec and the
fixtures, and skips marked checks. With ``--cilium-upgrade`` it registers
:mod:`pytest_cilium_upgrade.gate_plugin`, which collects and runs the gate; the
checks, the model and the adapters are imported only then.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_cilium_upgrade import hookspecs, settings

if TYPE_CHECKING:
    from pytest_cilium_upgrade.checks import CheckParams
    from pytest_cilium_upgrade.model import ClusterSnapshot
    from pytest_cilium_upgrade.sandbox.cluster import Sandbox
    from pytest_cilium_upgrade.session import GateSession

MARKER = "cilium_upgrade"
PHASES = ("pre", "post")
GATE_KEY: pytest.StashKey[GateSession] = pytest.StashKey()


# ---------------------------------------------------------------------------- options


def pytest_addoption(parser: pytest.Parser) -> None:
    settings.register(parser)
    group = parser.getgroup("cilium-upgrade")
    group.addoption(
        "--cilium-sandbox-topology",
        dest="cilium_sandbox_topology",
        default=None,
        help="kind config the cilium_sandbox fixture takes its nodes from "
        "(default: kind-config.yaml in the rootdir).",
    )
    parser.addini(
        "cilium_sandbox_control_planes",
        "Control-plane nodes of the cilium_sandbox fixture (default: as the kind config says).",
        default="",
    )
    parser.addini(
        "cilium_sandbox_workers",
        "Worker nodes of the cilium_sandbox fixture (default: as the kind config says).",
        default="",
    )


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
    from pytest_cilium_upgrade import gate_plugin

    config.pluginmanager.register(gate_plugin, "cilium-upgrade-gate")
    gate_plugin.start(config)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marked user checks are skipped without the gate (gate_plugin narrows them with it)."""
    if _enabled(config):
        return
    for item in items:
        marker = item.get_closest_marker(MARKER)
        if marker is not None:
            marker_phase(item, marker)  # a wrong phase is an error, with or without the gate
            item.add_marker(pytest.mark.skip(reason="Cilium upgrade check: needs --cilium-upgrade"))


def marker_phase(item: pytest.Item, marker: pytest.Mark) -> str:
    phase = marker.kwargs.get("phase", marker.args[0] if marker.args else None)
    if phase not in PHASES:
        raise pytest.UsageError(
            f"{item.nodeid}: @pytest.mark.{MARKER}(phase=...) must be 'pre' or 'post', "
            f"not {phase!r}"
        )
    return str(phase)


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
def cilium_settings(request: pytest.FixtureRequest) -> settings.Settings:
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


# ---------------------------------------------------------------------------- sandbox


def _ini_count(config: pytest.Config, name: str) -> int | None:
    raw = str(config.getini(name)).strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise pytest.UsageError(f"ini option {name} = {raw!r} is not a whole number") from None


@pytest.fixture(scope="session")
def cilium_sandbox(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Sandbox]:
    """A real control plane on loopback (built once, cached), up for the whole session."""
    from pytest_cilium_upgrade.sandbox.build import Builder
    from pytest_cilium_upgrade.sandbox.cluster import Sandbox, guarded
    from pytest_cilium_upgrade.sandbox.errors import SandboxError
    from pytest_cilium_upgrade.sandbox.topology import build_topology

    option = pytestconfig.getoption("cilium_sandbox_topology")
    topology_file = Path(option) if option else pytestconfig.rootpath / "kind-config.yaml"
    try:
        topology = build_topology(
            topology_file,
            control_planes=_ini_count(pytestconfig, "cilium_sandbox_control_planes"),
            workers=_ini_count(pytestconfig, "cilium_sandbox_workers"),
        )
        binaries = Builder().ensure_all()
    except SandboxError as exc:
        pytest.fail(f"cannot prepare the sandbox: {exc}", pytrace=False)
    workdir = tmp_path_factory.mktemp("sandbox", numbered=True)
    sandbox = Sandbox(workdir, binaries, topology)
    try:
        with guarded(sandbox) as running_sandbox:
            yield running_sandbox
    except SandboxError as exc:
        pytest.fail(f"sandbox failed: {exc}", pytrace=False)
