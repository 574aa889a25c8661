"""The real Cilium charts as the sandbox tests use them (the ``charts`` fixture)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from cilium_sandbox.charts import ChartImages, chart_images, sandbox_values, set_args
from cilium_sandbox.cluster import Sandbox
from cilium_sandbox.pytest_plugin import RealCharts


class Charts:
    """The real Cilium charts, unpacked by version: ``--cilium-chart={charts}`` takes them.

    ``charts / "1.16.19"`` is one version's chart directory, ``charts.images(v)`` the
    images it renders by default (faults select pods by them: the real charts pin
    digests), ``charts.values(v, sandbox)`` the ``--set`` arguments the sandbox needs
    (see ``cilium_sandbox.charts.sandbox_values``). Each of them counts the version as
    used in the terminal summary (``real Cilium charts used: N versions``), as does
    ``charts.use(v, ...)`` for a test that hands the versions to Helm otherwise.
    """

    def __init__(self, real: RealCharts, root: Path) -> None:
        self._real = real
        self.root = root

    def use(self, *versions: str) -> None:
        """Count ``versions`` as used (looking one up in RealCharts does)."""
        for version in versions:
            self._real[version]

    def use_targets(self, args: Iterable[str]) -> None:
        """Count the real chart a gate run's ``--cilium-target-version=X`` names, if any."""
        for arg in args:
            option, _, version = arg.partition("=")
            if option == "--cilium-target-version" and version in self._real:
                self.use(version)

    def __str__(self) -> str:
        return str(self.root)

    def __truediv__(self, version: str) -> Path:
        self.use(version)
        return self.root / version

    def archive(self, version: str) -> Path:
        return self._real[version]

    def images(self, version: str) -> ChartImages:
        return chart_images(self._real[version])

    def values(self, version: str, sandbox: Sandbox) -> list[str]:
        self.use(version)
        return set_args(sandbox_values(version, nodes=len(sandbox.topology.nodes)))
