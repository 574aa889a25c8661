"""pytest plugin of the sandbox: the ``cilium_sandbox`` session fixture and its options.

Loaded by the project's own tests (``pytest_plugins`` in ``tests/conftest.py``), never
by the gate's entry point: the sandbox is the test rig, not the product.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cilium_sandbox.build import Builder
from cilium_sandbox.cluster import Sandbox, guarded
from cilium_sandbox.errors import SandboxError
from cilium_sandbox.topology import build_topology


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cilium-sandbox")
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
