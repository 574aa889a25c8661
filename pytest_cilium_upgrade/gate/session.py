"""One gate run: adapters built once, a snapshot per phase, the results of every check.

The checks' parameters are built once from the settings; the pre phase records what
post needs (release revision, versions, agent restart counts) in the state file of
:mod:`pytest_cilium_upgrade.gate.state`, so the phases can run as separate CI steps
with the user's own upgrade step between them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_cilium_upgrade import checks, defaults
from pytest_cilium_upgrade.adapters.files import read_yaml_quietly, write_values_snapshot
from pytest_cilium_upgrade.adapters.helm import records as release_records
from pytest_cilium_upgrade.checks import CheckParams, CheckResult, CheckSpec, IntendedValues
from pytest_cilium_upgrade.errors import GateError, HelmFailed
from pytest_cilium_upgrade.gate.settings import Settings
from pytest_cilium_upgrade.gate.state import UpgradeState
from pytest_cilium_upgrade.gate.summary import Row
from pytest_cilium_upgrade.phases import Phase
from pytest_cilium_upgrade.redact import (
    Redactor,
    Secrets,
    kubeconfig_secrets,
    set_item_secrets,
    url_without_userinfo,
    values_secrets,
)
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

if TYPE_CHECKING:  # built on first use: a run that collects nothing never imports them
    from pytest_cilium_upgrade.adapters.helm.charts import ChartSource
    from pytest_cilium_upgrade.adapters.helm.client import Helm
    from pytest_cilium_upgrade.adapters.kube import Kube


def check_params(
    settings: Settings,
    *,
    recorded_revision: int | None = None,
    intended: IntendedValues | None = None,
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
        values_check=settings.values_check,
        max_agent_restarts=settings.max_agent_restarts,
        recorded_revision=recorded_revision,
        intended=intended,
        baseline_restarts=dict(baseline_restarts or {}),
        expected_images=dict(expected_images or {}),
        required_access=required_access,
    )


def _version_text(version: Version | None) -> str | None:
    return None if version is None else str(version)


def _stamp(path: Path) -> object:
    """When and how big the file was last written (None: unreadable), to know it changed."""
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size)


class GateSession:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._params = check_params(settings)
        self._snapshots: dict[Phase, ClusterSnapshot] = {}
        self._results: list[tuple[CheckSpec, CheckResult]] = []
        self._cluster: Kube | None = None
        self._helm: Helm | None = None
        self._cluster_error: str | None = None
        self._helm_error: str | None = None
        self._adapters_built = False
        self._chart: ChartSource | None = None
        self._release_records: str | None = None
        self.snapshot_outcome: str | None = None
        self._snapshot_write_error = ""
        self._flow: UpgradeFlow | None = None
        self.rows: list[Row] = []
        self._redactor: Redactor | None = None
        self._redactor_key: object = None
        # secrets: those known at the start, one redactor per snapshot, and all of them
        self._start_secrets: Secrets | None = None
        self._check_redactors: dict[Phase, Redactor] = {}
        self._known = Redactor()
        # Helm's merge of the snapshot with the overrides, by the files' stamps and items
        self._intended: tuple[object, IntendedValues | None] | None = None
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
                redactor=self._known_now(),  # stderr echoes values and the kubeconfig's URL
            )
            self._chart = ChartSource.parse(s.chart, s.chart_repo, helm=self._helm)
            # helm keeps its records where HELM_DRIVER says; the API ones are read directly
            self._release_records = release_records.storage_kind(self._helm.env.get("HELM_DRIVER"))
        except GateError as exc:
            self._helm_error = str(exc)
            self._chart = None

    def close(self) -> None:
        """The run is over: close the cluster client's connections.

        Requests still under way on abandoned reader threads (after an interruption)
        keep their own connections and end with the process.
        """
        cluster, self._cluster = self._cluster, None
        if cluster is not None:
            cluster.close()

    @property
    def cluster(self) -> Kube | None:
        self._adapters()
        return self._cluster

    # ------------------------------------------------------------------ snapshots
    def has(self, phase: Phase) -> bool:
        return phase in self._snapshots

    def snapshot(self, phase: Phase) -> ClusterSnapshot:
        if phase not in self._snapshots:
            self._snapshots[phase] = self._collect(phase)
            self._check_redactor(phase)  # its secrets are known before anything reports it
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
        # rendered with what the upgrade adds, performed or the user's own
        return replace(request, extra_values_files=s.values_file, extra_sets=self.upgrade_sets())

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
        if phase == "pre" and snapshot.release is not None and snapshot.api_failure is None:
            self._record_state(snapshot)
        return snapshot

    def upgrade_sets(self) -> tuple[str, ...]:
        """The --set items the upgrade adds to the snapshot values."""
        sets = self.settings.set
        if self.settings.upgrade_compatibility:
            sets += (f"upgradeCompatibility={self.settings.upgrade_compatibility}",)
        return sets

    def overrides(
        self, state: UpgradeState | None = None
    ) -> tuple[tuple[str, ...], tuple[str, ...], str]:
        """The values files and --set items the upgrade adds to the snapshot, and their origin.

        This run's own (--cilium-values-file, --cilium-set, --cilium-upgrade-compatibility)
        when it has any; else, in the post phase, those the pre phase recorded in ``state``.
        """
        files = tuple(str(p) for p in self.settings.values_file)
        sets = self.upgrade_sets()
        if files or sets:
            return files, sets, ""
        if state is not None and (state.values_files or state.sets):
            origin = f"recorded by the pre phase in {self.settings.state_file}"
            return tuple(map(str, state.values_files)), tuple(map(str, state.sets)), origin
        return (), (), ""

    def intended_values(self, state: UpgradeState | None = None) -> IntendedValues | None:
        """The values the release is to have, as Helm merges the snapshot with the overrides.

        None without overrides (the snapshot's own values are the intended ones). Helm
        computes them (``Helm.user_values``), once per content of the files involved.
        """
        files, sets, origin = self.overrides(state)
        if not files and not sets:
            return None
        snapshot = Path(self.settings.values_snapshot)
        key = (tuple(_stamp(Path(f)) for f in (str(snapshot), *files)), files, sets)
        if self._intended is not None and self._intended[0] == key:
            return self._intended[1]
        self._adapters()
        count = len(files) + len(sets)
        if self._helm is None:
            error = self._helm_error or "no helm client"
            intended = IntendedValues(None, count, origin, error=error)
        elif not snapshot.is_file():  # not written yet, or gone: the snapshot checks say which
            error = f"the values snapshot {snapshot} is not there to merge"
            intended = IntendedValues(None, count, origin, error=error)
        else:
            try:
                values = self._helm.user_values([snapshot, *files], sets)
            except HelmFailed as exc:  # Helm's own words, not the command and its --set items
                intended = IntendedValues(None, count, origin, error=exc.stderr)
            except GateError as exc:
                intended = IntendedValues(None, count, origin, error=str(exc))
            else:
                intended = IntendedValues(values, count, origin)
        self._intended = (key, intended)
        return intended

    def _intended_for_redaction(self) -> IntendedValues | None:
        """The intended values, whose secrets the redactor must know too."""
        state = None
        if self.settings.phase == "post":  # a post-only run judges those pre recorded
            try:
                state = self.recorded_state()
            except GateError:
                state = None
        return self.intended_values(state)

    def recorded_state(self) -> UpgradeState | None:
        """What the pre phase recorded for this release and namespace, if anything."""
        state = UpgradeState.load(Path(self.settings.state_file))
        if state is not None and (state.release, state.namespace) != (
            self.settings.release,
            self.settings.namespace,
        ):
            return None
        return state

    def _write_snapshot(self, request: CollectRequest) -> ReleaseReader | None:
        """Save the live values (what `helm get values` prints) before the checks read them.

        The release state read for it, for the checks to judge; None if it could not be
        read (the checks then read it again and report why).
        """
        s = self.settings
        self._snapshot_write_error = ""
        reader: ReleaseReader | None = None
        try:
            if self._helm is None:
                raise GateError(self._helm_error or "no usable helm client")
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
            # what the user's own upgrade is to add, for the post phase to judge against
            values_files=[str(p) for p in self.settings.values_file],
            sets=list(self.upgrade_sets()),
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
        if phase == "pre":  # what the upgrade is to pass, for the checks of the values
            return replace(self._params, intended=self.intended_values())
        state = self.recorded_state()
        params = replace(
            self._params,
            recorded_revision=state.revision if state else None,
            baseline_restarts=dict(state.agent_restarts) if state else {},
            intended=self.intended_values(state) if phase == "post" else None,
        )
        if phase == "rollback":
            params = self.flow.rollback_params(params)
        return params

    def run(self, spec: CheckSpec) -> CheckResult:
        snapshot = self.snapshot(spec.phase)
        params = self.params_for(spec.phase)
        result = checks.run_check(spec, snapshot, params, self._check_redactor(spec.phase))
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
                release_records=self._release_records,
            )
            # why an adapter could not be built: a step says it (a dry run checks nothing)
            self._flow.unusable = tuple(e for e in (self._cluster_error, self._helm_error) if e)
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
                # one LIST of Helm's records where the API keeps them, else `helm get values`
                reader = release_reader(self._helm, self._cluster, self._request("post"))
                live = reader.get_values(self.settings.release, self.settings.namespace)
            except GateError:
                live = None
        self._redactor = self._learn(
            checks.redactor_for(
                ClusterSnapshot(values_snapshot=read_values_snapshot(path), live_values=live),
                replace(self.params, intended=self._intended_for_redaction()),
            )
        )
        self._redactor_key = key
        return self._redactor

    # ------------------------------------------------------------------ secrets
    def start_secrets(self) -> Secrets:
        """The secrets known before the cluster is read: the kubeconfig's credentials,
        the ``--set`` items (split as Helm splits them) and the values files' values,
        this run's and those the pre phase recorded for a post phase."""
        if self._start_secrets is None:
            s = self.settings
            sets = list(self.upgrade_sets())
            files = [Path(p) for p in s.values_file]
            try:
                state = UpgradeState.load(Path(s.state_file)) if s.phase == "post" else None
            except GateError:
                state = None
            if state is not None:
                sets += [str(item) for item in state.sets]
                files += [Path(str(p)) for p in state.values_files]
            found = set_item_secrets(sets)
            for path in files:
                values = read_yaml_quietly(path)
                found |= values_secrets(values if isinstance(values, Mapping) else None)
            for name in s.kubeconfig.split(os.pathsep):
                if name.strip():
                    found |= kubeconfig_secrets(read_yaml_quietly(Path(name)))
            self._start_secrets = found
            self._known = self._known.extended(found)
        return self._start_secrets

    def _known_now(self) -> Redactor:
        self.start_secrets()
        return self._known

    def _learn(self, redactor: Redactor) -> Redactor:
        """``redactor`` with the start-up secrets; every secret it knows is known from now."""
        redactor = redactor.extended(self.start_secrets())
        known = self._known.known
        more = redactor.known
        if not (more.anywhere <= known.anywhere and more.words <= known.words):
            self._known = self._known.extended(more)
            if self._helm is not None:
                self._helm.redactor = self._known
        return redactor

    def _check_redactor(self, phase: Phase) -> Redactor:
        """The redactor of a phase's checks, built once per snapshot: the snapshot file's
        and the live values' secrets, and those known at the start (the values files and
        --set items, whose merge is the intended values)."""
        if phase not in self._check_redactors:
            snapshot = self.snapshot(phase)
            self._check_redactors[phase] = self._learn(checks.redactor_for(snapshot, self._params))
        return self._check_redactors[phase]

    def redact(self, text: str) -> str:
        """``text`` with every secret known so far replaced; no I/O beyond the start-up
        files, so it can be called at any time (an interrupted run's notes, the summary)."""
        return self._known_now().redact(text)

    def results(self) -> list[tuple[CheckSpec, CheckResult]]:
        return list(self._results)

    def properties(self, phase: Phase) -> dict[str, str]:
        snapshot = self._snapshots.get(phase)
        props = {
            "cluster": url_without_userinfo(getattr(self._cluster, "server", "") or ""),
            "namespace": self.settings.namespace,
            "release": self.settings.release,
            "target_version": _version_text(self.settings.target_version) or "",
        }
        if snapshot is not None and snapshot.release is not None:
            props["current_version"] = snapshot.release.chart_version or ""
            props["revision"] = str(snapshot.release.revision)
        return props
