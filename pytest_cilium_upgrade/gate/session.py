"""One gate run: adapters built once, a snapshot per phase, the results of every check.

The pre phase records what post needs (release revision, versions, agent restart
counts) in a small state file, so the phases can run as separate CI steps with the
user's own upgrade step between them.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from pytest_cilium_upgrade import checks, defaults, yamltext
from pytest_cilium_upgrade.adapters.files import write_values_snapshot
from pytest_cilium_upgrade.adapters.helm import records as release_records
from pytest_cilium_upgrade.checks import CheckParams, CheckResult, CheckSpec
from pytest_cilium_upgrade.errors import GateError
from pytest_cilium_upgrade.gate.summary import Row
from pytest_cilium_upgrade.options import Settings
from pytest_cilium_upgrade.redact import Redactor
from pytest_cilium_upgrade.snapshot.model import ClusterSnapshot
from pytest_cilium_upgrade.snapshot.read import (
    CollectRequest,
    ReleaseReader,
    collect,
    read_values_snapshot,
    release_reader,
)
from pytest_cilium_upgrade.upgrade.steps import UpgradeFlow

STATE_VERSION = 1


@dataclass
class UpgradeState:
    """What the pre phase saw, for the post phase (no values: they can hold secrets)."""

    namespace: str
    release: str
    revision: int | None
    chart_version: str | None
    target_version: str | None
    agent_restarts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"version": STATE_VERSION, **self.__dict__}, indent=2, sort_keys=True)

    @classmethod
    def load(cls, path: Path) -> UpgradeState | None:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise GateError(f"cannot read state file {path}: {exc}") from None
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise GateError(f"state file {path} is not a pytest-cilium-upgrade state file")
        data.pop("version")
        try:
            return cls(**data)
        except TypeError as exc:
            raise GateError(f"state file {path} is malformed: {exc}") from None

    def save(self, path: Path) -> None:
        directory = path.parent if str(path.parent) else Path(".")
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(self.to_json())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _helm_scalar(raw: str) -> Any:
    """A --set value typed as Helm types it: booleans, null and integers; else a string."""
    if raw in ("true", "false"):
        return raw == "true"
    if raw == "null":
        return None
    body = raw[1:] if raw[:1] in "+-" else raw
    if body.isdigit() and (body == "0" or not body.startswith("0")):
        return int(raw)
    return raw


class GateSession:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._snapshots: dict[str, ClusterSnapshot] = {}
        self._results: list[tuple[CheckSpec, CheckResult]] = []
        self._cluster: Any = None
        self._helm: Any = None
        self._cluster_error: str | None = None
        self._helm_error: str | None = None
        self._adapters_built = False
        self._chart: Any = None
        self._release_records: str | None = None
        self.snapshot_outcome: str | None = None
        self._snapshot_write_error = ""
        self._flow: UpgradeFlow | None = None
        self.rows: list[Row] = []
        self._redactor: Redactor | None = None
        self._redactor_key: object = None
        self.notes: list[str] = []
        self.progress: Callable[[str], None] = lambda _: None

    # ------------------------------------------------------------------ adapters
    def _adapters(self) -> None:
        if self._adapters_built:
            return
        self._adapters_built = True
        from pytest_cilium_upgrade.adapters.helm.client import ChartSource, Helm
        from pytest_cilium_upgrade.adapters.kube import Kube

        s = self.settings
        try:
            self._cluster = Kube(s.kubeconfig, s.context, request_timeout=s.request_timeout)
        except GateError as exc:
            self._cluster_error = str(exc)
        try:
            self._helm = Helm(
                binary=s.helm,
                kubeconfig=s.kubeconfig,
                kube_context=s.context,
                timeout=s.timeout,
            )
            self._chart = ChartSource.parse(s.chart, helm=self._helm)
            # helm keeps its records where HELM_DRIVER says; the API ones are read directly
            self._release_records = release_records.storage_kind(self._helm.env.get("HELM_DRIVER"))
        except GateError as exc:
            self._helm_error = str(exc)
            self._chart = None

    @property
    def cluster(self) -> Any:
        self._adapters()
        return self._cluster

    # ------------------------------------------------------------------ snapshots
    def has(self, phase: str) -> bool:
        return phase in self._snapshots

    def snapshot(self, phase: str) -> ClusterSnapshot:
        if phase not in self._snapshots:
            self._snapshots[phase] = self._collect(phase)
        return self._snapshots[phase]

    def _request(self, phase: str) -> CollectRequest:
        s = self.settings
        request = CollectRequest(
            namespace=s.namespace,
            release=s.release,
            preflight_release=s.preflight_release,
            values_snapshot=Path(s.values_snapshot),
            target_version=s.target_version,
            chart=self._chart if phase == "pre" else None,
            release_records=self._release_records,
        )
        if s.perform_upgrade:
            request = replace(
                request, extra_values_files=s.values_file, extra_sets=self.upgrade_sets()
            )
        return request

    def _collect(self, phase: str) -> ClusterSnapshot:
        self._adapters()
        request = self._request(phase)
        releases = None
        if phase == "pre" and self.settings.write_snapshot and self._helm is not None:
            releases = self._write_snapshot(request)
        snapshot = collect(
            self._cluster,
            self._helm,
            request,
            cluster_error=self._cluster_error,
            helm_error=self._helm_error,
            releases=releases,
        )
        if snapshot.values_snapshot is not None and self._snapshot_write_error:
            snapshot = replace(
                snapshot,
                values_snapshot=replace(
                    snapshot.values_snapshot, write_error=self._snapshot_write_error
                ),
            )
        if phase == "pre" and snapshot.release is not None and not snapshot.api_error:
            self._record_state(snapshot)
        return snapshot

    def upgrade_sets(self) -> tuple[str, ...]:
        """The --set items the upgrade adds to the snapshot values."""
        sets = self.settings.set
        if self.settings.upgrade_compatibility:
            sets += (f"upgradeCompatibility={self.settings.upgrade_compatibility}",)
        return sets

    def intended_overrides(self) -> dict[str, Any]:
        """What the performed upgrade sets on top of the snapshot (values files, then --set)."""
        if not self.settings.perform_upgrade:
            return {}
        merged: dict[str, Any] = {}
        for path in self.settings.values_file:
            try:
                loaded = yamltext.load(Path(path).read_text())
            except (OSError, yaml.YAMLError):
                continue  # the render check reports an unreadable values file
            if isinstance(loaded, dict):
                merged = checks.deep_merge(merged, loaded)
        flat: dict[str, Any] = {}
        for item in self.upgrade_sets():
            key, _, raw = item.partition("=")
            flat[key] = _helm_scalar(raw)
        return checks.deep_merge(merged, checks.nest_dotted(flat))

    def _write_snapshot(self, request: CollectRequest) -> ReleaseReader | None:
        """Save the live values (what `helm get values` prints) before the checks read them.

        The release state read for it, for the checks to judge; None if it could not be
        read (the checks then read it again and report why).
        """
        s = self.settings
        self._snapshot_write_error = ""
        reader: ReleaseReader | None = None
        try:
            reader = release_reader(self._helm, self._cluster, request)
            if reader.status(s.release, s.namespace) is None:
                raise GateError(f"release {s.release} not found in namespace {s.namespace}")
            values = reader.get_values(s.release, s.namespace)
            self.snapshot_outcome = write_values_snapshot(
                Path(s.values_snapshot), values, overwrite=s.overwrite_snapshot
            )
        except GateError as exc:
            self._snapshot_write_error = str(exc)
            self.snapshot_outcome = f"not written: {exc}"
        self.notes.append(f"values snapshot {s.values_snapshot}: {self.snapshot_outcome}")
        return reader

    def _record_state(self, snapshot: ClusterSnapshot) -> None:
        release = snapshot.release
        assert release is not None
        agents = snapshot.pods_matching(defaults.AGENT_SELECTOR)
        state = UpgradeState(
            namespace=snapshot.namespace,
            release=release.name,
            revision=release.revision,
            chart_version=release.chart_version,
            target_version=self.settings.target_version,
            agent_restarts={p.name: p.restarts for p in agents},
        )
        try:
            state.save(Path(self.settings.state_file))
        except OSError as exc:
            raise GateError(f"cannot write state file {self.settings.state_file}: {exc}") from None

    # ------------------------------------------------------------------ checks
    @property
    def params(self) -> CheckParams:
        return self.params_for("pre")

    def params_for(self, phase: str) -> CheckParams:
        """The checks' parameters; post and rollback read what pre recorded."""
        if phase == "pre":
            return self.settings.check_params()
        state = UpgradeState.load(Path(self.settings.state_file))
        if state is not None and (state.release, state.namespace) != (
            self.settings.release,
            self.settings.namespace,
        ):
            state = None
        params = self.settings.check_params(
            recorded_revision=state.revision if state else None,
            baseline_restarts=state.agent_restarts if state else {},
            intended_overrides=self.intended_overrides() if phase == "post" else {},
        )
        if phase == "rollback":
            params = self.flow.rollback_params(params)
        return params

    def run(self, spec: CheckSpec) -> CheckResult:
        snapshot = self.snapshot(spec.phase)
        result = checks.run_check(spec, snapshot, self.params_for(spec.phase))
        self._results.append((spec, result))
        return result

    # ------------------------------------------------------------------ the upgrade flow
    @property
    def flow(self) -> UpgradeFlow:
        if self._flow is None:
            self._adapters()
            self._flow = UpgradeFlow(
                self.settings,
                self._cluster,
                self._helm,
                self._chart,
                progress=self.progress,
                redactor=self.redactor,
                sets=self.upgrade_sets(),
            )
        return self._flow

    def redactor(self) -> Redactor:
        """Secrets of the saved and the live values and of the upgrade's own values.

        Built again only when the snapshot file changed or helm changed the release
        (upgrade, rollback), so steps do not each run ``helm get values``.
        """
        path = Path(self.settings.values_snapshot)
        try:
            stamp: object = path.stat().st_mtime_ns
        except OSError:
            stamp = None
        flow = self._flow.state if self._flow is not None else None
        touched = flow is not None and (flow.upgrade_attempted or flow.rolled_back)
        key = (stamp, flow and (flow.upgraded_revision, flow.upgrade_attempted, flow.rolled_back))
        if self._redactor is not None and self._redactor_key == key:
            return self._redactor
        live = None
        pre = self._snapshots.get("pre")
        if pre is not None and pre.live_values is not None and not touched:
            live = pre.live_values  # helm has not changed the release since pre read it
        elif self._helm is not None:
            try:
                live = self._helm.get_values(self.settings.release, self.settings.namespace)
            except GateError:
                live = None
        self._redactor = checks.redactor_for(
            ClusterSnapshot(values_snapshot=read_values_snapshot(path), live_values=live),
            replace(self.params, intended_overrides=self.intended_overrides()),
        )
        self._redactor_key = key
        return self._redactor

    def results(self) -> list[tuple[CheckSpec, CheckResult]]:
        return list(self._results)

    def properties(self, phase: str) -> dict[str, str]:
        snapshot = self._snapshots.get(phase)
        props = {
            "cluster": getattr(self._cluster, "server", "") or "",
            "namespace": self.settings.namespace,
            "release": self.settings.release,
            "target_version": self.settings.target_version or "",
        }
        if snapshot is not None and snapshot.release is not None:
            props["current_version"] = snapshot.release.chart_version or ""
            props["revision"] = str(snapshot.release.revision)
        return props
