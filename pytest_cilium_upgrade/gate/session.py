"""One gate run: adapters built once, a snapshot per phase, the results of every check.

The checks' parameters are built once from the settings; the pre phase records what
post needs (release revision, versions, agent restart counts) in the state file of
:mod:`pytest_cilium_upgrade.gate.state`, so the phases can run as separate CI steps
with the user's own upgrade step between them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from pytest_cilium_upgrade import checks, defaults
from pytest_cilium_upgrade.adapters.files import (
    ValuesUnreadable,
    read_values,
    write_values_snapshot,
)
from pytest_cilium_upgrade.adapters.helm import records as release_records
from pytest_cilium_upgrade.checks import CheckParams, CheckResult, CheckSpec
from pytest_cilium_upgrade.errors import GateError
from pytest_cilium_upgrade.gate.settings import Settings
from pytest_cilium_upgrade.gate.state import UpgradeState
from pytest_cilium_upgrade.gate.summary import Row
from pytest_cilium_upgrade.phases import Phase
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
from pytest_cilium_upgrade.versions import Version


def check_params(
    settings: Settings,
    *,
    recorded_revision: int | None = None,
    intended_overrides: Mapping[str, Any] | None = None,
    baseline_restarts: Mapping[str, int] | None = None,
    expected_images: Mapping[str, str] | None = None,
    agent_daemonset: str = defaults.AGENT_DAEMONSET,
    operator_deployment: str = defaults.OPERATOR_DEPLOYMENT,
    required_access: tuple[defaults.AccessRequirement, ...] = defaults.REQUIRED_ACCESS,
) -> CheckParams:
    """The checks' parameters: options from the settings, the rest from the caller."""
    return CheckParams(
        release=settings.release,
        preflight_release=settings.preflight_release,
        agent_daemonset=agent_daemonset,
        operator_deployment=operator_deployment,
        target=settings.target_version,
        allow_downgrade=settings.allow_downgrade,
        coverage_policy=settings.preflight_coverage,
        max_agent_restarts=settings.max_agent_restarts,
        recorded_revision=recorded_revision,
        intended_overrides=dict(intended_overrides or {}),
        baseline_restarts=dict(baseline_restarts or {}),
        expected_images=dict(expected_images or {}),
        required_access=required_access,
    )


def _version_text(version: Version | None) -> str | None:
    return None if version is None else str(version)


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
        self._params = check_params(settings)
        self._snapshots: dict[Phase, ClusterSnapshot] = {}
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
        from pytest_cilium_upgrade.adapters.helm.charts import ChartSource
        from pytest_cilium_upgrade.adapters.helm.client import Helm
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
    def has(self, phase: Phase) -> bool:
        return phase in self._snapshots

    def snapshot(self, phase: Phase) -> ClusterSnapshot:
        if phase not in self._snapshots:
            self._snapshots[phase] = self._collect(phase)
        return self._snapshots[phase]

    def _request(self, phase: Phase) -> CollectRequest:
        s = self.settings
        request = CollectRequest(
            namespace=s.namespace,
            release=s.release,
            preflight_release=s.preflight_release,
            values_snapshot=Path(s.values_snapshot),
            target_version=_version_text(s.target_version),
            chart=self._chart if phase == "pre" else None,
            release_records=self._release_records,
        )
        if s.perform_upgrade:
            request = replace(
                request, extra_values_files=s.values_file, extra_sets=self.upgrade_sets()
            )
        return request

    def _collect(self, phase: Phase) -> ClusterSnapshot:
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
                loaded = read_values(Path(path))
            except ValuesUnreadable:
                continue  # the render check reports an unreadable values file
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
            target_version=_version_text(self.settings.target_version),
            agent_restarts={p.name: p.restarts for p in agents},
        )
        try:
            state.save(Path(self.settings.state_file))
        except OSError as exc:
            raise GateError(f"cannot write state file {self.settings.state_file}: {exc}") from exc

    # ------------------------------------------------------------------ checks
    @property
    def params(self) -> CheckParams:
        """The checks' parameters from the settings alone (those of the pre phase)."""
        return self._params

    def params_for(self, phase: Phase) -> CheckParams:
        """The checks' parameters; post and rollback read what pre recorded."""
        if phase == "pre":
            return self._params
        state = UpgradeState.load(Path(self.settings.state_file))
        if state is not None and (state.release, state.namespace) != (
            self.settings.release,
            self.settings.namespace,
        ):
            state = None
        params = replace(
            self._params,
            recorded_revision=state.revision if state else None,
            baseline_restarts=dict(state.agent_restarts) if state else {},
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

    def properties(self, phase: Phase) -> dict[str, str]:
        snapshot = self._snapshots.get(phase)
        props = {
            "cluster": getattr(self._cluster, "server", "") or "",
            "namespace": self.settings.namespace,
            "release": self.settings.release,
            "target_version": _version_text(self.settings.target_version) or "",
        }
        if snapshot is not None and snapshot.release is not None:
            props["current_version"] = snapshot.release.chart_version or ""
            props["revision"] = str(snapshot.release.revision)
        return props
