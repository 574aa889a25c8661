"""pytest plugin of the sandbox: the ``cilium_sandbox`` session fixture and its options.

Loaded by the project's own tests (``pytest_plugins`` in ``tests/conftest.py``), never
by the gate's entry point: the sandbox is the test rig, not the product.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from cilium_sandbox.build import Builder, components
from cilium_sandbox.chart_repo import ChartRepository
from cilium_sandbox.charts import REAL_CHART_VERSIONS, find_repo_root, resolve_charts
from cilium_sandbox.cluster import Sandbox, guarded
from cilium_sandbox.errors import SandboxError
from cilium_sandbox.topology import build_topology
from pytest_cilium_upgrade.versions import Version


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


# ---------------------------------------------------------------------- real charts

# The versions the real-chart fixtures handed out (or the loopback repository served).
_CHARTS_USED = pytest.StashKey[set[str]]()


class RealCharts(Mapping[str, Path]):
    """The real chart archives by version; looking one up counts it as used."""

    def __init__(self, archives: Mapping[str, Path], used: set[str]) -> None:
        self._archives = dict(archives)
        self._used = used

    def __getitem__(self, version: str) -> Path:
        path = self._archives[version]
        self._used.add(version)
        return path

    def __contains__(self, version: object) -> bool:
        return version in self._archives

    def __iter__(self) -> Iterator[str]:
        return iter(self._archives)

    def __len__(self) -> int:
        return len(self._archives)

    def uncounted(self) -> dict[str, Path]:
        """Every archive, without counting any as used (e.g. to serve them all)."""
        return dict(self._archives)


def _charts_used(config: pytest.Config) -> set[str]:
    return config.stash.setdefault(_CHARTS_USED, set())


@pytest.fixture(scope="session")
def cilium_charts(pytestconfig: pytest.Config) -> RealCharts:
    """Every version of REAL_CHART_VERSIONS as an upstream archive (see cilium_sandbox.charts).

    A version no source has fails the set-up, naming the versions and the places looked.
    """
    used = _charts_used(pytestconfig)
    root = find_repo_root(pytestconfig.rootpath) or pytestconfig.rootpath
    try:
        archives = resolve_charts(REAL_CHART_VERSIONS, repo_root=root)
    except SandboxError as exc:
        pytest.fail(f"cannot provide the real Cilium charts:\n{exc}", pytrace=False)
    return RealCharts(archives, used)


@pytest.fixture(scope="session")
def cilium_chart_repo_helm() -> Path:
    """The helm that indexes the loopback repositories, found once for the session
    (before any test points the cache elsewhere)."""
    try:
        helm3 = next(c for c in components() if c.name == "helm3")
        return Builder().ensure(helm3) / "helm"
    except SandboxError as exc:
        pytest.fail(f"cannot serve the real Cilium charts: {exc}", pytrace=False)


@pytest.fixture
def cilium_chart_repo(
    pytestconfig: pytest.Config,
    cilium_charts: RealCharts,
    cilium_chart_repo_helm: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ChartRepository]:
    """The real charts as a Helm repository on 127.0.0.1 (``.url``), one for each test.

    A test of its own: no test sees another's server, added versions or downloads, and
    one that ends a server (a signal, a crash) cannot leave the next without one. Its
    index takes well under a second to build.
    """
    try:
        repo = ChartRepository(
            cilium_charts.uncounted(),
            helm=cilium_chart_repo_helm,
            directory=tmp_path_factory.mktemp("chart-repo"),
        ).start()
    except SandboxError as exc:
        pytest.fail(f"cannot serve the real Cilium charts: {exc}", pytrace=False)
    try:
        yield repo
    finally:
        _charts_used(pytestconfig).update(repo.downloads)
        repo.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    used = terminalreporter.config.stash.get(_CHARTS_USED, None)
    if used is None:
        return
    versions = sorted(used, key=Version.parse)
    terminalreporter.write_line(
        f"real Cilium charts used: {len(versions)} versions: {' '.join(versions) or '-'}"
    )
