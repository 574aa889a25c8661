"""Stand-ins for the Helm adapter's tests: a scripted helm binary, a recording runner."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cilium_sandbox.helm import HelmDriver

from pytest_cilium_upgrade.adapters.helm.charts import ChartSource
from pytest_cilium_upgrade.adapters.helm.client import Helm
from pytest_cilium_upgrade.versions import Version

CHARTS = Path(__file__).resolve().parents[1] / "charts"
CHART_VERSIONS = sorted(Version.parse(p.parent.name) for p in CHARTS.glob("*/Chart.yaml"))
SECRET = "c2VjcmV0LWtleS1tYXRlcmlhbC1mb3ItaHViYmxlLXRscw"  # noqa: S105
STANDINS = ChartSource.parse(str(CHARTS))
REPO = ChartSource.parse("cilium/cilium")


def helm_script(directory: Path, body: str, name: str = "helm") -> str:
    """An executable shell script named ``name`` in ``directory``; its path."""
    path = directory / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


class Recorder:
    """Answers commands by their first words (``status``, ``get metadata``, ...)."""

    def __init__(self, answers: Mapping[str, tuple[int, str, str]] | None = None) -> None:
        self.answers = dict(answers or {})
        self.argvs: list[list[str]] = []
        self.stdins: list[str | None] = []

    def __call__(
        self,
        argv: Sequence[str],
        *,
        input_text: str | None,
        env: Mapping[str, str],
        timeout: float,
    ) -> subprocess.CompletedProcess[str]:
        self.argvs.append(list(argv))
        self.stdins.append(input_text)
        for words in (" ".join(argv[1:3]), argv[1]):
            if words in self.answers:
                code, out, err = self.answers[words]
                return subprocess.CompletedProcess(list(argv), code, out, err)
        return subprocess.CompletedProcess(list(argv), 0, "", "")

    def ran(self, subcommand: str) -> bool:
        return any(a[1] == subcommand for a in self.argvs)


def fake_helm(binary: str, major: int, recorder: Recorder | None = None, **kwargs: Any) -> Helm:
    return Helm(binary, major=major, runner=recorder or Recorder(), **kwargs)


def fake_driver(
    binary: str, major: int, recorder: Recorder | None = None, **kwargs: Any
) -> HelmDriver:
    return HelmDriver(binary, major=major, runner=recorder or Recorder(), **kwargs)
