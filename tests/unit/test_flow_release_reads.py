"""How the performed upgrade reads the release between its steps.

Where Helm keeps its records in the API (Secrets, ConfigMaps), the flow reads the
release's state with one LIST of them, as the snapshots do, instead of helm processes
(``status`` and ``get metadata`` for each question, ``history`` and ``get values`` to
save the values): each of those is a process start and a read of the same records.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from test_release_records import release, secret

from pytest_cilium_upgrade.adapters.helm.charts import ChartSource
from pytest_cilium_upgrade.gate.settings import Settings
from pytest_cilium_upgrade.redact import Redactor
from pytest_cilium_upgrade.upgrade.steps import StepFailed, UpgradeFlow

NS = "kube-system"


class RecordsKube:
    """The API: Helm's release Secrets, and a Lease that is always free."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records
        self.lists: list[tuple[str, tuple[str, ...], str]] = []

    def list_release_records(
        self, namespace: str, releases: Iterable[str], kind: str = "Secret"
    ) -> list[dict[str, Any]]:
        self.lists.append((namespace, tuple(sorted(releases)), kind))
        return list(self.records)

    def acquire_lease(self, namespace: str, name: str, holder: str, duration_s: int) -> None:
        pass

    def release_lease(self, namespace: str, name: str, holder: str) -> bool:
        return True


class NoReadsHelm:
    """A helm that must not be asked about the release."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"helm.{name} called")


class ReadingHelm:
    """A helm answering ``status``/``history``/``get values`` as the real one does."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def status(self, name: str, namespace: str) -> dict[str, Any] | None:
        self.calls.append(f"status {name}")
        if name != "cilium":
            return None
        return {
            "name": "cilium",
            "namespace": NS,
            "version": 3,
            "info": {"status": "deployed"},
            "chart": {"metadata": {"name": "cilium", "version": "1.14.19"}},
        }

    def history(self, name: str, namespace: str) -> list[dict[str, Any]]:
        self.calls.append(f"history {name}")
        return [{"revision": 3, "status": "deployed", "chart": "cilium-1.14.19", "app_version": ""}]

    def get_values(self, name: str, namespace: str) -> dict[str, Any]:
        self.calls.append(f"get_values {name}")
        return {"ipam": {"mode": "kubernetes"}}


def _flow(tmp_path: Path, kube: Any, helm: Any, records: str | None) -> UpgradeFlow:
    settings = Settings(
        namespace=NS,
        target_version=None,
        values_snapshot=tmp_path / "values.yaml",
        overwrite_snapshot=True,
    )
    return UpgradeFlow(
        settings,
        kube,
        helm,
        chart=cast(ChartSource, object()),
        progress=lambda _: None,
        redactor=Redactor,
        release_records=records,
    )


def test_values_and_revision_come_from_one_list_of_the_records(tmp_path: Path) -> None:
    kube = RecordsKube(
        [
            secret(release("cilium", 1, "superseded", "1.14.18")),
            secret(release("cilium", 2, "deployed", "1.14.19")),
        ]
    )
    flow = _flow(tmp_path, kube, NoReadsHelm(), "Secret")
    said = flow.snapshot_values()
    assert flow.state.pre_revision == 2
    assert flow.state.pre_version == "1.14.19"
    assert "revision 2, chart 1.14.19" in said
    saved = yaml.safe_load((tmp_path / "values.yaml").read_text())
    assert saved == {"ipam": {"mode": "kubernetes"}, "revision": 2}
    assert kube.lists == [(NS, ("cilium",), "Secret")]


def test_each_question_about_a_release_is_one_fresh_list(tmp_path: Path) -> None:
    kube = RecordsKube([secret(release("cilium", 1, "deployed", "1.14.19"))])
    flow = _flow(tmp_path, kube, NoReadsHelm(), "Secret")
    assert flow._release("cilium-preflight") is None
    found = flow._release("cilium")
    assert found is not None
    assert found.revision == 1
    # helm upgrade wrote revision 2: the next question sees it
    kube.records.append(secret(release("cilium", 2, "deployed", "1.15.19")))
    found = flow._release("cilium")
    assert found is not None
    assert (found.revision, found.chart_version) == (2, "1.15.19")
    # each LIST selects the records of the release asked about only
    assert kube.lists == [
        (NS, ("cilium-preflight",), "Secret"),
        (NS, ("cilium",), "Secret"),
        (NS, ("cilium",), "Secret"),
    ]


def test_a_release_that_is_not_deployed_is_refused_from_the_records(tmp_path: Path) -> None:
    kube = RecordsKube([secret(release("cilium", 4, "pending-upgrade", "1.14.19"))])
    flow = _flow(tmp_path, kube, NoReadsHelm(), "Secret")
    with pytest.raises(StepFailed, match="refusing to upgrade"):
        flow.snapshot_values()
    assert not (tmp_path / "values.yaml").exists()


def test_without_records_in_the_api_helm_is_asked(tmp_path: Path) -> None:
    helm = ReadingHelm()
    flow = _flow(tmp_path, NoReadsHelm(), helm, None)
    flow.lock.take = lambda: None  # type: ignore[method-assign]
    flow.snapshot_values()
    assert helm.calls == ["status cilium", "history cilium", "get_values cilium"]
    assert flow.state.pre_revision == 3
