"""The upgrade gate's checks: pure functions from a snapshot to a verdict.

Each check takes a :class:`~pytest_cilium_upgrade.snapshot.model.ClusterSnapshot` and
:class:`CheckParams` and returns a :class:`CheckResult`. None does I/O. The
:data:`CHECKS` registry lists them by phase; :func:`run_check` runs one with its
prerequisites and redacts every message with the secrets found in the values.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import yaml

from pytest_cilium_upgrade import defaults, yamltext
from pytest_cilium_upgrade.checks.scheduling import (
    Ineligibility,
    NodeEligibility,
    affinity_domain_counts,
    evaluate_node,
)
from pytest_cilium_upgrade.redact import Redactor
from pytest_cilium_upgrade.snapshot.model import ClusterSnapshot, HelmHistoryEntry, Pod, Workload
from pytest_cilium_upgrade.versions import (
    Hop,
    Version,
    hop,
    image_version,
    latest_patch,
    parse_all,
    parse_helm_client_version,
    parse_image,
    same_image,
)

# --------------------------------------------------------------------------- results


class Status(enum.Enum):
    PASS = "pass"  # noqa: S105 - a verdict, not a password
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class CheckResult:
    """A verdict: ``summary`` is one line; ``details`` say what, where and how to fix."""

    status: Status
    summary: str
    details: list[str] = field(default_factory=list)
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """PASS, WARN and SKIP do not block the upgrade."""
        return self.status is not Status.FAIL

    def redacted(self, redactor: Redactor) -> CheckResult:
        return replace(
            self,
            summary=redactor.redact(self.summary),
            details=redactor.redact_all(self.details),
            properties={k: redactor.redact(v) for k, v in self.properties.items()},
        )


def _pass(summary: str, details: Iterable[str] = (), **props: str) -> CheckResult:
    return CheckResult(Status.PASS, summary, list(details), dict(props))


def _warn(summary: str, details: Iterable[str] = (), **props: str) -> CheckResult:
    return CheckResult(Status.WARN, summary, list(details), dict(props))


def _fail(summary: str, details: Iterable[str] = (), **props: str) -> CheckResult:
    return CheckResult(Status.FAIL, summary, list(details), dict(props))


def _skip(summary: str, details: Iterable[str] = ()) -> CheckResult:
    return CheckResult(Status.SKIP, summary, list(details))


# --------------------------------------------------------------------------- parameters

# defined beside the options' other defaults, which must load without the checks
CoveragePolicy = defaults.CoveragePolicy
COVERAGE_POLICIES = defaults.COVERAGE_POLICIES
DEFAULT_MAX_AGENT_RESTARTS = defaults.DEFAULT_MAX_AGENT_RESTARTS


@dataclass(frozen=True)
class CheckParams:
    """What the checks need besides the snapshot (resolved from the plugin's settings).

    ``recorded_revision`` and ``baseline_restarts`` come from the pre-upgrade
    snapshot; ``intended_overrides`` are the values the upgrade sets on top of the
    snapshot; ``expected_images`` (component name -> image) are optional pins, e.g.
    taken from the rendered target chart, for components with their own version
    scheme such as Envoy.
    """

    release: str = defaults.DEFAULT_RELEASE
    preflight_release: str = defaults.DEFAULT_PREFLIGHT_RELEASE
    agent_daemonset: str = defaults.AGENT_DAEMONSET
    operator_deployment: str = defaults.OPERATOR_DEPLOYMENT
    target_version: str | None = None
    allow_downgrade: bool = False
    coverage_policy: CoveragePolicy = "warn"
    max_agent_restarts: int = DEFAULT_MAX_AGENT_RESTARTS
    recorded_revision: int | None = None
    intended_overrides: Mapping[str, Any] = field(default_factory=dict)
    baseline_restarts: Mapping[str, int] = field(default_factory=dict)
    expected_images: Mapping[str, str] = field(default_factory=dict)
    required_access: tuple[defaults.AccessRequirement, ...] = defaults.REQUIRED_ACCESS

    def __post_init__(self) -> None:
        if self.coverage_policy not in COVERAGE_POLICIES:
            raise ValueError(
                f"coverage policy must be one of {', '.join(COVERAGE_POLICIES)},"
                f" not {self.coverage_policy!r}"
            )
        if self.max_agent_restarts < 0:
            raise ValueError("max agent restarts must not be negative")
        if self.target_version is not None and Version.try_parse(self.target_version) is None:
            raise ValueError(f"target version {self.target_version!r} is not a semantic version")

    @property
    def target(self) -> Version | None:
        return Version.try_parse(self.target_version)


# --------------------------------------------------------------------------- helpers


def _agent_component(params: CheckParams) -> defaults.Component:
    return defaults.AGENT._replace(name=params.agent_daemonset)


def _operator_component(params: CheckParams) -> defaults.Component:
    return defaults.OPERATOR._replace(name=params.operator_deployment)


def _pod_where(pod: Pod) -> str:
    return f"pod {pod.name} on node {pod.node_name}" if pod.node_name else f"pod {pod.name}"


def _live_pods(pods: Iterable[Pod]) -> list[Pod]:
    return [p for p in pods if not p.terminal]


def _container_images(pod: Pod) -> list[tuple[str, str]]:
    return [(c.name, c.image) for c in (*pod.containers, *pod.init_containers)]


def _pod_problems(pods: Sequence[Pod]) -> list[str]:
    out: list[str] = []
    for pod in sorted(pods, key=lambda p: (p.node_name, p.name)):
        if pod.crash_looping:
            looping = [
                c
                for c in (*pod.init_containers, *pod.containers)
                if c.waiting_reason == "CrashLoopBackOff"
            ]
            for c in looping:
                last = ""
                if c.last_termination_reason or c.last_termination_exit_code is not None:
                    last = (
                        f", last exit {c.last_termination_reason or 'code'}"
                        f" ({c.last_termination_exit_code})"
                    )
                out.append(
                    f"{_pod_where(pod)}: container {c.name} is crash-looping"
                    f" (CrashLoopBackOff, {c.restart_count} restarts{last})"
                )
            continue
        problem = pod.problem()
        if problem:
            out.append(f"{_pod_where(pod)} not ready: {problem}")
    return out


def _images_by_container(pods: Sequence[Pod], container: str) -> dict[str, list[str]]:
    images: dict[str, list[str]] = {}
    for pod in pods:
        c = pod.container(container)
        if c is not None:
            images.setdefault(c.image, []).append(pod.name)
    return images


def _release_cmd(params: CheckParams, snapshot: ClusterSnapshot) -> str:
    return f"{params.release} -n {snapshot.namespace}"


def _last_good_revision(
    history: Sequence[HelmHistoryEntry], before: int
) -> HelmHistoryEntry | None:
    good = [
        h
        for h in history
        if h.revision < before
        and h.status in (defaults.HELM_STATUS_DEPLOYED, defaults.HELM_STATUS_SUPERSEDED)
    ]
    return max(good, key=lambda h: h.revision) if good else None


def _versions_equal(a: str, b: str) -> bool:
    va, vb = Version.try_parse(a), Version.try_parse(b)
    if va is not None and vb is not None:
        return va == vb
    return a.strip().removeprefix("v") == b.strip().removeprefix("v")


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class ValueDifference:
    """A values key that differs; values themselves are never kept (they may be secret)."""

    path: str
    change: Literal["added", "removed", "changed"]

    def __str__(self) -> str:
        return f"{self.path} ({self.change})"


def _key_segment(key: object) -> str:
    # Escape dots the way `helm --set` does, so a path can be pasted back.
    return str(key).replace(".", "\\.")


def _join(prefix: str, key: object) -> str:
    seg = _key_segment(key)
    return f"{prefix}.{seg}" if prefix else seg


def _same_scalar(a: object, b: object) -> bool:
    # True == 1 in Python; values files distinguish them.
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return a == b


def diff_values(expected: Any, actual: Any, prefix: str = "") -> list[ValueDifference]:
    """Dotted paths (``a.b[0].c``) where ``actual`` differs from ``expected``.

    ``added`` means present only in ``actual``, ``removed`` only in ``expected``.
    A top-level ``None`` counts as an empty mapping (``helm get values`` prints
    ``null`` for a release without user values).
    """
    if not prefix:
        expected = {} if expected is None else expected
        actual = {} if actual is None else actual
    if isinstance(expected, Mapping) and isinstance(actual, Mapping):
        out: list[ValueDifference] = []
        for key in sorted(set(expected) | set(actual), key=str):
            path = _join(prefix, key)
            if key not in actual:
                out.append(ValueDifference(path, "removed"))
            elif key not in expected:
                out.append(ValueDifference(path, "added"))
            else:
                out.extend(diff_values(expected[key], actual[key], path))
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        out = []
        for i in range(max(len(expected), len(actual))):
            path = f"{prefix}[{i}]"
            if i >= len(actual):
                out.append(ValueDifference(path, "removed"))
            elif i >= len(expected):
                out.append(ValueDifference(path, "added"))
            else:
                out.extend(diff_values(expected[i], actual[i], path))
        return out
    if isinstance(expected, Mapping | list) or isinstance(actual, Mapping | list):
        return [ValueDifference(prefix or "(root)", "changed")]
    return (
        [] if _same_scalar(expected, actual) else [ValueDifference(prefix or "(root)", "changed")]
    )


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's merge of user values: maps merge recursively, anything else is replaced."""
    merged: dict[str, Any] = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = value
    return merged


_UNESCAPED_DOT = re.compile(r"(?<!\\)\.")


def nest_dotted(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"hubble.relay.enabled": True}`` -> ``{"hubble": {"relay": {"enabled": True}}}``.

    ``\\.`` keeps a dot inside a key, as with ``helm --set``; list indices are not supported.
    """
    out: dict[str, Any] = {}
    for dotted, value in flat.items():
        parts = [p.replace("\\.", ".") for p in _UNESCAPED_DOT.split(dotted)]
        out = deep_merge(out, _nest(parts, value))
    return out


def _nest(parts: list[str], value: Any) -> dict[str, Any]:
    if len(parts) == 1:
        return {parts[0]: value}
    return {parts[0]: _nest(parts[1:], value)}


@dataclass(frozen=True)
class ParsedValues:
    values: dict[str, Any] | None
    error: str = ""


def parse_values_text(text: str) -> ParsedValues:
    """Parse a values file. Errors give position and problem only, never the file's text."""
    try:
        data = yamltext.load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "?"
        return ParsedValues(None, f"YAML error at {where}: {exc.problem or 'invalid YAML'}")
    except yaml.YAMLError as exc:
        return ParsedValues(None, f"YAML error: {type(exc).__name__}")
    if data is None:
        return ParsedValues({})
    if not isinstance(data, dict):
        return ParsedValues(None, f"top level is a {type(data).__name__}, not a mapping")
    return ParsedValues(data)


def snapshot_values(snapshot: ClusterSnapshot) -> ParsedValues:
    vs = snapshot.values_snapshot
    if vs is None or not vs.exists or vs.text is None:
        return ParsedValues(None, "no values snapshot")
    return parse_values_text(vs.text)


# --------------------------------------------------------------------------- validator log

_LOGFMT = re.compile(r'(?P<key>[A-Za-z_][\w.\-]*)=(?P<value>"(?:[^"\\]|\\.)*"|\S*)')
_OLD_VALIDATING = re.compile(
    r"Validating (?P<kind>Cilium\w*NetworkPolicy) '(?P<name>[^']*)': (?P<rest>.*)"
)


def parse_log_fields(line: str) -> dict[str, str]:
    """Fields of a logrus/slog text line (``key=value`` / ``key="quoted"``) or a JSON line."""
    stripped = line.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except ValueError:
            data = None
        if isinstance(data, dict):
            return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
    fields: dict[str, str] = {}
    for match in _LOGFMT.finditer(stripped):
        value = match.group("value")
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            try:
                value = json.loads(value)
            except ValueError:
                value = value[1:-1]
        fields.setdefault(match.group("key"), value)
    return fields


@dataclass(frozen=True)
class InvalidPolicy:
    kind: str
    name: str
    error: str

    def __str__(self) -> str:
        kind = self.kind or "policy"
        name = f" {self.name}" if self.name else ""
        return f"{kind}{name}: {self.error or 'invalid'}"


@dataclass(frozen=True)
class ValidatorLogReport:
    """What one cnp-validator container log says."""

    all_valid: bool = False
    identity_excluded: bool = False
    validated_ok: int = 0
    invalid: tuple[InvalidPolicy, ...] = ()
    found_invalid: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    excluded_label_warnings: tuple[str, ...] = ()
    policy_warnings: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        return bool(self.invalid or self.found_invalid or self.errors)

    @property
    def succeeded(self) -> bool:
        return (self.all_valid or self.identity_excluded) and not self.invalid

    @property
    def conclusive(self) -> bool:
        return self.succeeded or self.failed


def parse_validator_log(text: str) -> ValidatorLogReport:
    """Classify the lines of a ``cilium preflight validate-cnp`` log.

    Understands the success line (and its identity-excluded-labels variant), the
    per-policy ``Validation OK!`` / ``Unexpected validation error`` lines, the older
    ``Validating CiliumNetworkPolicy 'ns/name': ...`` form, ``Found invalid ...``
    (also inside ``failed to start: ...``) and ``Kubernetes client not configured``.
    Any other error-level line is kept as an error.
    """
    all_valid = excluded = False
    ok = 0
    invalid: list[InvalidPolicy] = []
    found: list[str] = []
    errors: list[str] = []
    excluded_warnings: list[str] = []
    policy_warnings: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        fields = parse_log_fields(line)
        msg = fields.get("msg") or fields.get("message") or line
        level = fields.get("level", "").lower()
        kind = fields.get("type", "")
        name = fields.get("name", "")
        error = fields.get("error") or fields.get("err") or ""
        old = _OLD_VALIDATING.search(msg)
        if defaults.CNP_ALL_VALID_IDENTITY_EXCLUDED in line:
            excluded = True
        elif defaults.CNP_ALL_VALID in line:
            all_valid = True
        elif old is not None:
            rest = old.group("rest").strip()
            if rest.startswith("OK"):
                ok += 1
            else:
                err = re.sub(r"^unexpected validation error:\s*", "", rest, flags=re.IGNORECASE)
                invalid.append(InvalidPolicy(old.group("kind"), old.group("name"), err or error))
        elif defaults.CNP_UNEXPECTED_VALIDATION_ERROR in msg or defaults.CNP_UNABLE_TO_PARSE in msg:
            invalid.append(InvalidPolicy(kind, name, error or msg))
        elif defaults.CNP_VALIDATION_OK in msg:
            ok += 1
        elif defaults.CNP_EXCLUDED_LABEL_WARNING in msg:
            label = fields.get("labels", "")
            excluded_warnings.append(
                f"{kind or 'policy'} {name}: selects on label {label!s} excluded from identities"
            )
        elif defaults.CNP_FOUND_INVALID in line:
            match = re.search(r"Found invalid \w+", line)
            found.append(match.group(0) if match else msg)
        elif defaults.CNP_K8S_NOT_CONFIGURED in line:
            errors.append(msg)
        elif level in ("error", "fatal", "panic", "err", "crit", "critical"):
            errors.append(msg if not error else f"{msg}: {error}")
        elif level in ("warn", "warning") and (name or "polic" in msg.lower()):
            policy_warnings.append(f"{msg} {name}".strip())
    return ValidatorLogReport(
        all_valid=all_valid,
        identity_excluded=excluded,
        validated_ok=ok,
        invalid=tuple(invalid),
        found_invalid=tuple(dict.fromkeys(found)),
        errors=tuple(errors),
        excluded_label_warnings=tuple(excluded_warnings),
        policy_warnings=tuple(policy_warnings),
    )


# --------------------------------------------------------------------------- pre checks


def cluster_reachable_and_access_allowed(
    snapshot: ClusterSnapshot, params: CheckParams
) -> CheckResult:
    """The API server answers and our identity may read everything the checks read."""
    if snapshot.api_error:
        return _api_failure(snapshot.api_error, snapshot.api_status, snapshot.api_no_answer)
    denied: list[str] = []
    unknown: list[str] = []
    for req in params.required_access:
        review = next((r for r in snapshot.access_reviews if r.answers(req)), None)
        where = f" in namespace {snapshot.namespace}" if req.namespaced else " (cluster-wide)"
        if review is None:
            unknown.append(f"not reviewed: {req.describe()}{where}")
        elif not review.allowed:
            reason = f" ({review.reason})" if review.reason else ""
            denied.append(f"forbidden: {req.describe()}{where}{reason}")
    server = f" (server {snapshot.server_version})" if snapshot.server_version else ""
    if denied:
        first = denied[0].removeprefix("forbidden: ")
        return _fail(
            f"cluster reachable{server} but access denied: cannot {first}",
            [*denied, *unknown, "grant these verbs to the identity running the gate"],
        )
    if snapshot.read_errors:
        # the checks that need the cluster are skipped on a partial read: this one fails,
        # or the gate would pass without having judged the cluster
        return _fail(
            f"cluster reachable{server} but not all of it could be read: {snapshot.read_errors[0]}",
            [
                *snapshot.read_errors,
                *unknown,
                "the checks that need the cluster judge nothing from a partial read; a read"
                " that timed out may need more time (--cilium-request-timeout)",
            ],
        )
    if unknown:
        return _warn(f"cluster reachable{server}; some access was not reviewed", unknown)
    return _pass(
        f"cluster reachable{server}; all {len(params.required_access)} required permissions granted"
    )


def _api_failure(error: str, status: int | None, no_answer: bool = False) -> CheckResult:
    if status == 429:
        return _fail(
            "API server is throttling the gate (429 Too Many Requests)",
            [
                error,
                "it refused every retry (API Priority and Fairness or max-inflight limits): run the"
                " gate when the control plane is less busy, or give its identity a FlowSchema"
                " with more concurrency",
            ],
        )
    if status is not None and status >= 500:
        return _fail(
            f"API server failing ({status})",
            [error, "it is reachable but answers errors: check its health and etcd's"],
        )
    if status is not None:
        return _fail(f"API server refused the first request ({status})", [error])
    if no_answer:
        return _fail(
            "API server did not answer within the request timeout",
            [
                error,
                "it was reached and asked, but sent no answer in time: it is up but slow or"
                " overloaded (API Priority and Fairness may be queuing the gate's requests);"
                " run the gate when the control plane is less busy, or allow more time with"
                " --cilium-request-timeout",
            ],
        )
    return _fail(
        "cluster unreachable", [error, "check the kubeconfig/context and that the API server is up"]
    )


def _release_unreadable(snapshot: ClusterSnapshot) -> CheckResult:
    return _fail(
        "release state unreadable",
        [
            snapshot.release_error or "",
            "the checks read it from Helm's release records: the identity needs get/list on"
            " them (Secrets, or ConfigMaps with HELM_DRIVER=configmap) in the release namespace",
        ],
    )


def helm_client_supported(snapshot: ClusterSnapshot, params: CheckParams) -> CheckResult:
    """A helm client is installed and its major version is 3 or 4."""
    if snapshot.helm_error:
        return _fail("helm client not usable", [snapshot.helm_error, "install Helm 3 or 4"])
    if not snapshot.helm_version:
        return _fail("helm client version unknown", ["`helm version --short` printed nothing"])
    version = parse_helm_client_version(snapshot.helm_version)
    if version is None:
        return _fail(f"cannot read the helm version from {snapshot.helm_version.strip()!r}")
    if version.major not in defaults.HELM_SUPPORTED_MAJORS:
        supported = " or ".join(str(m) for m in defaults.HELM_SUPPORTED_MAJORS)
        return _fail(f"helm {version} is not supported (major version {supported} required)")
    return _pass(f"helm {version}")


def _release_recovery(
    snapshot: ClusterSnapshot, params: CheckParams, status: str, revision: int
) -> list[str]:
    rel = _release_cmd(params, snapshot)
    good = _last_good_revision(snapshot.release_history, revision)
    rev = str(good.revision) if good else "<REVISION>"
    current = next((h for h in snapshot.release_history if h.revision == revision), None)
    out: list[str] = []
    if current is not None and current.description:
        out.append(f"revision {revision}: {current.description}")
    if status in (defaults.HELM_STATUS_PENDING_UPGRADE, defaults.HELM_STATUS_PENDING_ROLLBACK):
        out.append(
            f"an interrupted helm operation left the release {status}; Helm refuses another"
            " upgrade until it is resolved"
        )
        out.append(
            f"recover: `helm history {rel}`, then `helm rollback {params.release} {rev}"
            f" -n {snapshot.namespace}` (the last deployed revision), then run the gate again"
        )
    elif status == defaults.HELM_STATUS_PENDING_INSTALL:
        out.append(
            "the first install never completed; there is no deployed revision to roll back to"
        )
        out.append(
            f"recover: inspect `helm history {rel}` and the cluster, then finish the install"
            " (re-run it) before upgrading"
        )
    elif status == defaults.HELM_STATUS_FAILED:
        out.append("the last helm operation on the release failed")
        out.append(
            f"recover: `helm rollback {params.release} {rev} -n {snapshot.namespace}`"
            " (the last deployed revision) or fix the cause and redeploy the current version"
        )
    else:
        out.append(f"inspect `helm history {rel}` and `helm status {rel}`")
    return out


def release_deployed(snapshot: ClusterSnapshot, params: CheckParams) -> CheckResult:
    """The Cilium release exists and is ``deployed`` (not pending or failed)."""
    if snapshot.release_error:
        return _release_unreadable(snapshot)
    rel = snapshot.release
    if rel is None:
        return _fail(
            f"release {params.release} not found in namespace {snapshot.namespace}",
            [f"`helm list -n {snapshot.namespace}` shows the installed releases"],
        )
    if rel.status != defaults.HELM_STATUS_DEPLOYED:
        return _fail(
            f"release {rel.name} is {rel.status} (revision {rel.revision}), not deployed:"
            " it blocks an upgrade",
            _release_recovery(snapshot, params, rel.status, rel.revision),
            revision=str(rel.revision),
        )
    return _pass(
        f"release {rel.name} deployed: chart {rel.chart_name}-{rel.chart_version},"
        f" revision {rel.revision}",
        revision=str(rel.revision),
        chart_version=rel.chart_version,
    )


def _workload_health(
    snapshot: ClusterSnapshot, component: defaults.Component
) -> tuple[Workload | None, list[str], list[Pod], dict[str, list[str]]]:
    wl = snapshot.component_workload(component)
    pods = _live_pods(snapshot.component_pods(component))
    if wl is None:
        return None, [], pods, {}
    problems = [f"{wl.kind} {wl.name}: {p}" for p in wl.health_problems()]
    problems.extend(_pod_problems(pods))
    images = _images_by_container(pods, component.container)
    if len(images) > 1:
        problems.append(
            f"{len(images)} images for container {component.container}: "
            + "; ".join(f"{img} ({len(names)} pods)" for img, names in sorted(images.items()))
        )
    return wl, problems, pods, images


def _health_result(
    snapshot: ClusterSnapshot, component: defaults.Component, what: str
) -> CheckResult:
    wl, problems, pods, images = _workload_health(snapshot, component)
    if wl is None:
        return _fail(f"{what} {component.kind} {component.name} not found in {snapshot.namespace}")
    image = (
        next(iter(images)) if len(images) == 1 else wl.container_image(component.container) or "?"
    )
    counts = f"{wl.ready}/{wl.desired} ready"
    if problems:
        return _fail(f"{what} {wl.kind} {wl.name} unhealthy ({counts})", problems)
    return _pass(
        f"{what} {wl.kind} {wl.name} healthy: {counts}, up-to-date and available;"
        f" {len(pods)} pods on {image}",
        image=image,
    )


def agent_daemonset_healthy(snapshot: ClusterSnapshot, params: CheckParams) -> CheckResult:
    """Agent DaemonSet rolled out, all pods ready, none crash-looping, one image."""
    return _health_result(snapshot, _agent_component(params), "agent")


def operator_healthy(snapshot: ClusterSnapshot, params: CheckParams) -> CheckResult:
    """Operator Deployment rolled out, all pods ready, none crash-looping, one image."""
    return _health_result(snapshot, _operator_component(params), "operator")


def _component_images(
    snapshot: ClusterSnapshot, wl: Workload, component: defaults.Component
) -> list[tuple[str, str, str]]:
    """(where, container, image) for the workload template and every live pod."""
    out = [
        (f"{wl.kind} {wl.name} template {c.name}", c.name, c.image)
        for c in (*wl.containers, *wl.init_containers)
    ]
    for pod in _live_pods(snapshot.component_pods(component)):
        out.extend(
            (f"pod {pod.name} container {name}", name, img) for name, img in _container_images(pod)
        )
    return out


def components_on_one_version(snapshot: ClusterSnapshot, params: CheckParams) -> CheckResult:
    """Agent, operator and the optional components present all run one Cilium version."""
    comps = [
        _agent_component(params),
        _operator_component(params),
        *[c for c in defaults.VERSION_COMPONENTS if c.optional],
    ]
    versions: dict[Version, list[str]] = {}
    details: list[str] = []
    problems: list[str] = []
    unversioned: list[str] = []
    for comp in comps:
        wl = snapshot.component_workload(comp)
        if wl is None:
            if comp.optional:
                details.append(f"{comp.name}: disabled")
            else:
                problems.append(f"{comp.name}: {comp.kind} not found")
            continue
        entries = _component_images(snapshot, wl, comp)
        if comp.versioned_with_cilium:
            seen: dict[Version, int] = {}
            for where, _, img in entries:
                if parse_image(img).name not in defaults.CILIUM_VERSIONED_IMAGE_NAMES:
                    continue
                ver = image_version(img)
                if ver is None:
                    unversioned.append(f"{comp.name}: {where} image {img} carries no version tag")
                    continue
                seen[ver] = seen.get(ver, 0) + 1
                versions.setdefault(ver, []).append(f"{comp.name} {where}")
            shown = ", ".join(str(v) for v in sorted(seen)) or "unknown"
            details.append(f"{comp.name}: {shown}")
        else:
            template = wl.container_image(comp.container)
            imgs = sorted({img for _, name, img in entries if name == comp.container})
            if len(imgs) > 1:
                problems.append(f"{comp.name}: pods run {len(imgs)} images: {', '.join(imgs)}")
            pinned = params.expected_images.get(comp.name)
            if pinned and template and not same_image(pinned, template):
                problems.append(f"{comp.name}: runs {template}, expected {pinned}")
            details.append(f"{comp.name}: image {template or '?'} (own version scheme)")
    if len(versions) > 1:
        for ver in sorted(versions):
            places = versions[ver]
            sample = ", ".join(places[:3]) + (
                f" and {len(places) - 3} more" if len(places) > 3 else ""
            )
            problems.append(f"version {ver}: {sample}")
    if problems:
        shown = ", ".join(str(v) for v in sorted(versions))
        summary = (
            f"Cilium components on {len(versions)} versions ({shown}):"
            " upgrading only some of them is unsupported"
            if len(versions) > 1
            else "Cilium components not all on one version"
        )
        return _fail(summary, [*problems, *unversioned, *details])
    if not versions:
        return _fail("no Cilium version found on any component", [*unversioned, *details])
    (only,) = versions
    if unversioned:
        return _warn(
            f"Cilium components on {only}; some images carry no version", [*unversioned, *details]
        )
    return _pass(f"all Cilium components on {only}", details, version=str(only))


def _current_version(snapshot: ClusterSnapshot, params: CheckParams) -> tuple[Version | None, str]:
    if snapshot.release is not None:
        ver = Version.try_parse(snapshot.release.chart_version)
        if ver is not None:
            return ver, f"chart version of release {snapshot.release.name}"
    wl = snapshot.workload("DaemonSet", params.agent_daemonset)
    if wl is not None:
        img = wl.container_image(defaults.AGENT_CONTAINER)
        ver = image_version(img) if img else None
        if ver is not None:
            return ver, "agent image"
    return None, ""


def upgrade_path_supported(snapshot: ClusterSnapshot, params: CheckParams) -> CheckResult:
    """Target is the same or next minor, from the latest patch, and not a downgrade."""
    target = params.target
    if target is None:
        return _skip("no target version given")
    current, source = _current_version(snapshot, params)
    if current is None:
        return _fail("current Cilium version unknown (no release chart version, no agent image)")
    available = parse_all(snapshot.available_chart_versions)
    details = [f"current {current} ({source}), target {target}"]
    if available and target not in available:
        listed = sorted(v for v in available if v.minor_line == target.minor_line)
        details.append(
            "available " + target.minor_str() + ": " + (", ".join(map(str, listed)) or "none")
        )
        return _fail(
            f"target chart version {target} is not available in the chart repository", details
        )
    kind = hop(current, target)
    rel = params.release
    ns = snapshot.namespace
    if kind is Hop.SAME:
        return _pass(f"already at {target}: the upgrade changes no version", details)
    if kind is Hop.PATCH:
        return _pass(f"patch upgrade {current} -> {target}", details)
    if kind is Hop.NEXT_MINOR:
        newest = latest_patch(available, current.major, current.minor)
        if newest is None:
            return _warn(
                f"minor upgrade {current} -> {target}; cannot confirm {current} is the latest"
                f" {current.minor_str()} patch (no chart versions listed)",
                details,
            )
        if current < newest:
            return _fail(
                f"upgrade to {newest} (latest {current.minor_str()} patch) before moving to"
                f" {target.minor_str()}",
                [
                    *details,
                    f"first: helm upgrade {rel} {defaults.CHART_REF} --version {newest} -n {ns}"
                    " -f <values snapshot>",
                ],
            )
        return _pass(
            f"minor upgrade {current} -> {target} from the latest {current.minor_str()} patch",
            details,
        )
    if kind is Hop.SKIPS_MINORS:
        steps = []
        for minor in range(current.minor + 1, target.minor):
            step = latest_patch(available, current.major, minor)
            steps.append(str(step) if step else f"{current.major}.{minor}.x")
        return _fail(
            f"{current} -> {target} skips {len(steps)} minor version(s); only consecutive minors"
            " are supported",
            [*details, "upgrade through " + " -> ".join([str(current), *steps, str(target)])],
        )
    if kind is Hop.MAJOR:
        return _fail(
            f"{current} -> {target} changes the major version: not a supported path", details
        )
    if kind is Hop.DOWNGRADE_SKIPS_MINORS:
        return _fail(f"downgrade {current} -> {target} crosses more than one minor", details)
    if not params.allow_downgrade:
        return _fail(
            f"{current} -> {target} is a downgrade; allow it explicitly to proceed",
            details,
        )
    return _warn(f"downgrade {current} -> {target} (explicitly allowed)", details)


def values_snapshot_matches_live(snapshot: ClusterSnapshot, params: CheckParams) -> CheckResult:
    """The values snapshot exists, parses, is private (0600) and equals ``helm get values``."""
    vs = snapshot.values_snapshot
    get_values = f"helm get values {_release_cmd(params, snapshot)} -o yaml"
    if vs is None:
        return _fail(
            "no values snapshot taken",
            [f"save one: {get_values} > values.yaml; chmod 600 values.yaml"],
        )
    if vs.write_error:
        return _fail(
            f"--cilium-write-snapshot did not write {vs.path}: {vs.write_error}",
            [f"save one: {get_values} > {vs.path}"] if not vs.exists else [],
        )
    if not vs.exists:
        return _fail(
            f"values snapshot {vs.path} does not exist", [f"save one: {get_values} > {vs.path}"]
        )
    if vs.read_error or vs.text is None:
        return _fail(f"values snapshot {vs.path} cannot be read", [vs.read_error or "no content"])
    problems: list[str] = []
    if vs.mode is None:
        problems.append("file mode unknown")
    elif vs.mode & 0o077 or not vs.mode & 0o400:
        problems.append(
            f"mode {vs.mode & 0o777:04o}: the snapshot may hold secrets and must be readable"
            f" by its owner only (chmod 600 {vs.path})"
        )
    parsed = parse_values_text(vs.text)
    if parsed.values is None:
        problems.append(f"does not parse: {parsed.error}")
    elif snapshot.live_values is None:
        problems.append(f"live values of release {params.release} were not collected")
    else:
        diffs = diff_values(snapshot.live_values, parsed.values)
        if diffs:
            problems.append(
                f"{len(diffs)} key(s) differ from the live values (snapshot vs `helm get values`):"
            )
            problems.extend(f"  {d}" for d in diffs)
    if problems:
        return _fail(f"values snapshot {vs.path} not usable", problems)
    count = len(parsed.values or {})
    return _pass(
        f"values snapshot {vs.path} is private and equals the live values ({count} top-level keys)"
    )


def _render_error_lines(text: str) -> list[str]:
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.lstrip().lower().startswith("error")]
    chosen = errors or lines
    return chosen[:20]


def target_chart_renders_with_snapshot(
    snapshot: ClusterSnapshot, params: CheckParams
) -> CheckResult:
    """The target chart renders with the snapshot values; removed values fail here."""
    render = snapshot.target_render
    if render is None:
        return _skip("target chart was not rendered")
    if render.succeeded:
        return _pass(f"chart {render.chart_version} renders with the values snapshot")
    lines = _render_error_lines(render.error) or ["(helm printed no error message)"]
    headline = lines[0].strip()
    if headline.lower().startswith("error:"):
        headline = headline[len("error:") :].strip()
    return _fail(
        f"chart {render.chart_version} does not render with the values snapshot: {headline}",
        [
            *lines,
            "remove or rename the values the new chart rejects (see the upgrade notes of"
            f" {render.chart_version}); do not use --reuse-values across minors",
        ],
    )


# --------------------------------------------------------------------------- pre-flight


def _preflight_install_hint(snapshot: ClusterSnapshot, params: CheckParams) -> str:
    version = params.target_version or "<target>"
    sets = " ".join(f"--set {s}" for s in defaults.PREFLIGHT_SET_VALUES)
    return (
        f"install it: helm install {params.preflight_release} {defaults.CHART_REF}"
        f" --version {version} -n {snapshot.namespace} {sets}"
    )


def _fix_for(reason: Ineligibility) -> str:
    if reason.kind in ("taint", "unschedulable"):
        return defaults.PREFLIGHT_TOLERATE_ALL_FIX
    if reason.kind == "node-selector":
        return f"adjust {defaults.PREFLIGHT_NODE_SELECTOR_VALUE}"
    return f"adjust {defaults.PREFLIGHT_AFFINITY_VALUE}"


@dataclass(frozen=True)
class Coverage:
    """Pre-flight coverage of the nodes running an agent pod."""

    agent_nodes: tuple[str, ...]
    agent_pods_on_eligible: int
    eligible: tuple[str, ...]
    ineligible: tuple[NodeEligibility, ...]
    ready_on_eligible: tuple[str, ...]
    missing: tuple[str, ...]


def preflight_coverage(snapshot: ClusterSnapshot, params: CheckParams) -> Coverage | None:
    """Which agent nodes the pre-flight DaemonSet can run on, and which have a ready pod."""
    ds = snapshot.workload("DaemonSet", defaults.PREFLIGHT_DAEMONSET)
    if ds is None:
        return None
    agent_pods = [
        p for p in _live_pods(snapshot.component_pods(_agent_component(params))) if p.scheduled
    ]
    agent_nodes = sorted({p.node_name for p in agent_pods})
    node_map = {n.name: n for n in snapshot.nodes}
    # the pods per topology domain are the same for every node: count them once
    affinity_counts = affinity_domain_counts(
        ds.scheduling.required_pod_affinity,
        pods=snapshot.pods,
        nodes=node_map,
        pod_namespace=ds.namespace,
    )
    eligible: list[str] = []
    ineligible: list[NodeEligibility] = []
    for name in agent_nodes:
        node = node_map.get(name)
        if node is None:
            eligible.append(name)  # unknown node: expect a pre-flight pod there
            continue
        verdict = evaluate_node(
            ds.scheduling,
            node,
            daemonset=True,
            pods=snapshot.pods,
            nodes=node_map,
            pod_namespace=ds.namespace,
            pod_labels=ds.template_labels,
            affinity_counts=affinity_counts,
        )
        if verdict.eligible:
            eligible.append(name)
        else:
            ineligible.append(verdict)
    pre_pods = _live_pods(snapshot.pods_matching(defaults.PREFLIGHT_SELECTOR))
    ready_nodes = {
        p.node_name for p in pre_pods if p.scheduled and not p.deleting and _preflight_pod_ready(p)
    }
    ready_on_eligible = sorted(n for n in eligible if n in ready_nodes)
    missing = sorted(n for n in eligible if n not in ready_nodes)
    eligible_set = set(eligible)
    return Coverage(
        agent_nodes=tuple(agent_nodes),
        agent_pods_on_eligible=sum(1 for p in agent_pods if p.node_name in eligible_set),
        eligible=tuple(eligible),
        ineligible=tuple(ineligible),
        ready_on_eligible=tuple(ready_on_eligible),
        missing=tuple(missing),
    )


def _preflight_pod_ready(pod: Pod) -> bool:
    # The optional fqdn-precache container never turns Ready (its probe path is
    # misspelled upstream), so readiness is the pre-flight container's own.
    main = pod.container(defaults.PREFLIGHT_CONTAINER)
    if main is not None:
        return main.ready
    return pod.ready


def preflight_covers_agent_nodes(snapshot: ClusterSnapshot, params: CheckParams) -> CheckResult:
    """READY pre-flight pods equal the agent pods on the nodes the pre-flight can run on."""
    coverage = preflight_coverage(snapshot, params)
    if coverage is None:
        return _fail(
            f"pre-flight DaemonSet {defaults.PREFLIGHT_DAEMONSET} not found"
            f" in {snapshot.namespace}",
            [_preflight_install_hint(snapshot, params)],
        )
    if not coverage.agent_nodes:
        return _fail(f"no running agent pods ({defaults.AGENT_SELECTOR}) to compare with")
    pre_pods = _live_pods(snapshot.pods_matching(defaults.PREFLIGHT_SELECTOR))
    pods_by_node: dict[str, list[Pod]] = {}
    for pod in pre_pods:
        pods_by_node.setdefault(pod.node_name, []).append(pod)

    failures: list[str] = []
    for name in coverage.missing:
        pods = pods_by_node.get(name, [])
        if not pods:
            failures.append(f"node {name}: no pre-flight pod")
        for pod in pods:
            failures.append(
                f"node {name}: pre-flight pod {pod.name}: {pod.problem() or 'not ready'}"
            )

    uncovered: list[str] = []
    for verdict in coverage.ineligible:
        fixes = sorted({_fix_for(r) for r in verdict.reasons})
        uncovered.append(f"node {verdict.node}: {verdict.reason_text()} (fix: {'; '.join(fixes)})")

    elsewhere: list[str] = []
    agent_nodes = set(coverage.agent_nodes)
    for pod in sorted(pre_pods, key=lambda p: (p.node_name, p.name)):
        if pod.node_name in agent_nodes:
            continue
        problem = pod.problem()
        if problem:
            elsewhere.append(
                f"node {pod.node_name or '?'} (no agent pod): pre-flight pod {pod.name}: {problem}"
            )

    n_ready = len(coverage.ready_on_eligible)
    total_agents = len(
        [p for p in _live_pods(snapshot.component_pods(_agent_component(params))) if p.scheduled]
    )
    head = (
        f"pre-flight READY {n_ready} for {coverage.agent_pods_on_eligible} agent pods on the"
        f" {len(coverage.eligible)} nodes it can run on ({total_agents} agent pods in all)"
    )
    props = {
        "agent_nodes": str(len(coverage.agent_nodes)),
        "covered_nodes": str(n_ready),
        "uncovered_nodes": ",".join(v.node for v in coverage.ineligible),
    }
    if failures:
        return _fail(head, [*failures, *uncovered, *elsewhere], **props)
    if coverage.ineligible:
        names = ", ".join(v.node for v in coverage.ineligible)
        summary = (
            f"{head}; {len(coverage.ineligible)} agent node(s) cannot run the pre-flight"
            f" and get no image pre-pull: {names}"
        )
        reasons = {v.reason_text() for v in coverage.ineligible}
        if len(reasons) == 1:
            fixes = sorted({_fix_for(r) for v in coverage.ineligible for r in v.reasons})
            summary += f" ({reasons.pop()}; fix: {'; '.join(fixes)})"
        details = [*uncovered, *elsewhere]
        if params.coverage_policy == "strict":
            return _fail(summary + " [strict coverage policy]", details, **props)
        return _warn(summary, details, **props)
    return _pass(f"{head}: every agent node covered", elsewhere, **props)


def preflight_runs_target_image(snapshot: ClusterSnapshot, params: CheckParams) -> CheckResult:
    """Pre-flight DaemonSet and Deployment (template and pods) run the target version's image."""
    target = params.target
    if target is None and snapshot.preflight_release is not None:
        target = Version.try_parse(snapshot.preflight_release.chart_version)
    if target is None:
        return _skip("no target version given")
    ds = snapshot.workload("DaemonSet", defaults.PREFLIGHT_DAEMONSET)
    if ds is None:
        return _fail(
            f"pre-flight DaemonSet {defaults.PREFLIGHT_DAEMONSET} not found",
            [_preflight_install_hint(snapshot, params)],
        )
    entries: list[tuple[str, str, str]] = []
    for comp in defaults.PREFLIGHT_COMPONENTS:
        wl = snapshot.component_workload(comp)
        if wl is None:
            continue
        entries.extend(_component_images(snapshot, wl, comp))
    wrong: list[str] = []
    checked = 0
    for where, _, img in entries:
        if parse_image(img).name not in defaults.CILIUM_VERSIONED_IMAGE_NAMES:
            continue
        checked += 1
        ver = image_version(img)
        if ver != target:
            wrong.append(f"{where}: {img} (expected {target})")
    if wrong:
        return _fail(f"pre-flight does not run {target}: {len(wrong)} container(s) differ", wrong)
    if checked == 0:
        return _fail("no Cilium image found in the pre-flight workloads")
    return _pass(f"pre-flight runs {target} ({checked} containers checked)")


def preflight_deployment_ready(snapshot: ClusterSnapshot, params: CheckParams) -> CheckResult:
    """The pre-flight Deployment that validates policies is READY 1/1."""
    wl = snapshot.workload("Deployment", defaults.PREFLIGHT_DEPLOYMENT)
    if wl is None:
        if snapshot.workload("DaemonSet", defaults.PREFLIGHT_DAEMONSET) is not None:
            return _warn(
                f"pre-flight Deployment {defaults.PREFLIGHT_DEPLOYMENT} absent"
                " (preflight.validateCNPs=false): policies are not validated"
            )
        return _fail(
            f"pre-flight Deployment {defaults.PREFLIGHT_DEPLOYMENT} not found",
            [_preflight_install_hint(snapshot, params)],
        )
    desired = wl.desired or 1
    if wl.ready >= desired and wl.desired > 0:
        return _pass(f"pre-flight Deployment {wl.name} READY {wl.ready}/{wl.desired}")
    pods = _live_pods(snapshot.pods_matching(defaults.PREFLIGHT_DEPLOYMENT_SELECTOR))
    details = _pod_problems(pods) or ["no validator pod found"]
    details.append(
        f"read the validator: kubectl logs -n {snapshot.namespace}"
        f" deployment/{defaults.PREFLIGHT_DEPLOYMENT} -c {defaults.CNP_VALIDATOR_CONTAINER}"
        " --previous"
    )
    return _fail(f"pre-flight Deployment {wl.name} READY {wl.ready}/{wl.desired}", details)


def _report_lines(report: ValidatorLogReport) -> list[str]:
    lines = [f"invalid {p}" for p in report.invalid]
    lines.extend(report.found_invalid)
    lines.extend(report.errors)
    return lines


def cnp_validation_passed(snapshot: ClusterSnapshot, params: CheckParams) -> CheckResult:
    """The cnp-validator logged ``All CCNPs and CNPs valid!`` (current or previous container)."""
    logs: list[tuple[str, ValidatorLogReport]] = []
    if snapshot.validator_log:
        logs.append(("current log", parse_validator_log(snapshot.validator_log)))
    if snapshot.validator_previous_log:
        logs.append(
            ("previous container's log", parse_validator_log(snapshot.validator_previous_log))
        )
    if not logs:
        return _fail(
            "no cnp-validator log collected",
            ["is the pre-flight Deployment running? see preflight_deployment_ready"],
        )
    chosen = next(((src, r) for src, r in logs if r.conclusive), None)
    if chosen is None:
        return _fail(
            "the cnp-validator has not reported a verdict yet",
            [f"{src}: {r.validated_ok} policies validated OK so far" for src, r in logs],
        )
    source, report = chosen
    if report.failed:
        lines = _report_lines(report)
        if any(defaults.CNP_K8S_NOT_CONFIGURED in ln for ln in lines):
            lines.append(
                "kube-proxy-free clusters: install the pre-flight with"
                f" {defaults.PREFLIGHT_API_SERVER_FIX}"
            )
        n = len(report.invalid)
        what = f"{n} invalid polic{'y' if n == 1 else 'ies'}" if n else "validation failed"
        return _fail(
            f"CNP validation failed ({source}): {what}",
            [*lines, "fix or remove these policies, then delete the validator pod to re-run it"],
            invalid_policies=str(n),
        )
    ok = f"{report.validated_ok} policies validated" if report.validated_ok else "no policy errors"
    if report.identity_excluded:
        return _warn(
            f"all CCNPs and CNPs valid ({source}), but some select on identity-excluded labels",
            list(report.excluded_label_warnings),
        )
    if report.policy_warnings:
        return _warn(
            f"all CCNPs and CNPs valid ({source}), with policy warnings",
            list(report.policy_warnings),
        )
    return _pass(f"{defaults.CNP_ALL_VALID} ({source}; {ok})")


# --------------------------------------------------------------------------- post checks


def release_upgraded_to_target(snapshot: ClusterSnapshot, params: CheckParams) -> CheckResult:
    """The release is ``deployed`` at the target chart, one revision after the recorded one."""
    if snapshot.release_error:
        return _release_unreadable(snapshot)
    rel = snapshot.release
    if rel is None:
        return _fail(f"release {params.release} not found in namespace {snapshot.namespace}")
    problems: list[str] = []
    if rel.status != defaults.HELM_STATUS_DEPLOYED:
        problems.append(f"status {rel.status}, expected deployed")
        problems.extend(_release_recovery(snapshot, params, rel.status, rel.revision))
    if params.target_version and not _versions_equal(rel.chart_version, params.target_version):
        problems.append(f"chart version {rel.chart_version}, expected {params.target_version}")
    if params.recorded_revision is not None and rel.revision != params.recorded_revision + 1:
        problems.append(
            f"revision {rel.revision}, expected {params.recorded_revision + 1}"
            f" (one after the recorded pre-upgrade revision {params.recorded_revision})"
        )
    if problems:
        return _fail(f"release {rel.name} not upgraded as intended", problems)
    details = [] if params.recorded_revision is not None else ["no pre-upgrade revision recorded"]
    return _pass(
        f"release {rel.name} deployed at chart {rel.chart_version}, revision {rel.revision}",
        details,
    )


def _on_target(
    snapshot: ClusterSnapshot, params: CheckParams, component: defaults.Component, what: str
) -> CheckResult:
    target = params.target
    if target is None:
        return _skip("no target version given")
    wl, problems, pods, _ = _workload_health(snapshot, component)
    if wl is None:
        return _fail(f"{what} {component.kind} {component.name} not found")
    template = wl.container_image(component.container)
    if template is None or image_version(template) != target:
        problems.append(f"{wl.kind} {wl.name} template runs {template or '?'}, expected {target}")
    for pod in pods:
        c = pod.container(component.container)
        if c is None:
            continue
        if image_version(c.image) != target:
            problems.append(f"{_pod_where(pod)} runs {c.image}, expected {target}")
    if problems:
        return _fail(f"{what} not fully on {target} ({wl.ready}/{wl.desired} ready)", problems)
    return _pass(f"all {len(pods)} {what} pods run {target} and are ready; rollout complete")


def agents_run_target_version(snapshot: ClusterSnapshot, params: CheckParams) -> CheckResult:
    """Every agent pod runs the target image and is ready; the rollout is complete."""
    return _on_target(snapshot, params, _agent_component(params), "agent")


def operator_runs_target_version(snapshot: ClusterSnapshot, params: CheckParams) -> CheckResult:
    """Every operator pod runs the target image and is ready; the rollout is complete."""
    return _on_target(snapshot, params, _operator_component(params), "operator")


def values_preserved(snapshot: ClusterSnapshot, params: CheckParams) -> CheckResult:
    """Live values equal the snapshot plus the intended overrides."""
    parsed = snapshot_values(snapshot)
    if parsed.values is None:
        return _fail(f"values snapshot unusable: {parsed.error}")
    if snapshot.live_values is None:
        return _fail(f"live values of release {params.release} were not collected")
    expected = deep_merge(parsed.values, params.intended_overrides)
    diffs = diff_values(expected, snapshot.live_values)
    n = len(params.intended_overrides)
    if diffs:
        return _fail(
            f"{len(diffs)} value key(s) differ from the snapshot plus {n} intended override(s)",
            [f"{d} (expected vs live)" for d in diffs],
        )
    return _pass(f"live values equal the snapshot plus {n} intended override(s)")


def preflight_removed(snapshot: ClusterSnapshot, params: CheckParams) -> CheckResult:
    """The pre-flight release, its workloads and its pods are gone."""
    left: list[str] = []
    rel = snapshot.preflight_release
    if rel is not None and rel.status != defaults.HELM_STATUS_UNINSTALLED:
        left.append(
            f"release {rel.name} still installed ({rel.status}):"
            f" helm uninstall {rel.name} -n {snapshot.namespace}"
        )
    for comp in defaults.PREFLIGHT_COMPONENTS:
        if snapshot.component_workload(comp) is not None:
            left.append(f"{comp.kind} {comp.name} still present")
        for pod in snapshot.component_pods(comp):
            state = "terminating" if pod.deleting else pod.phase
            left.append(f"{_pod_where(pod)} still present ({state})")
    if left:
        return _fail("pre-flight not cleaned up", left)
    return _pass(f"pre-flight release {params.preflight_release} and its pods are gone")


def agent_restarts_within_limit(snapshot: ClusterSnapshot, params: CheckParams) -> CheckResult:
    """No agent pod restarted more often than allowed since the upgrade."""
    pods = _live_pods(snapshot.component_pods(_agent_component(params)))
    if not pods:
        return _fail("no agent pods found")
    over: list[str] = []
    restarted: list[str] = []
    for pod in sorted(pods, key=lambda p: (p.node_name, p.name)):
        count = max(0, pod.restarts - params.baseline_restarts.get(pod.name, 0))
        if count == 0:
            continue
        reasons = sorted(
            {c.last_termination_reason for c in pod.containers if c.last_termination_reason}
        )
        why = f", last termination: {', '.join(reasons)}" if reasons else ""
        line = f"{_pod_where(pod)}: {count} restart(s) since the upgrade{why}"
        (over if count > params.max_agent_restarts else restarted).append(line)
    limit = params.max_agent_restarts
    if over:
        return _fail(
            f"{len(over)} agent pod(s) restarted more than {limit} time(s) since the upgrade",
            [*over, *restarted],
        )
    return _pass(f"no agent pod restarted more than {limit} time(s) ({len(pods)} pods)", restarted)


# --------------------------------------------------------------------------- registry

Phase = Literal["pre", "post"]
PHASES: tuple[Phase, ...] = ("pre", "post")
CheckFunction = Callable[[ClusterSnapshot, CheckParams], CheckResult]


@dataclass(frozen=True)
class CheckSpec:
    """One registered check. ``needs_cluster`` / ``needs_helm`` make it SKIP when unreachable."""

    phase: Phase
    check_id: str
    func: CheckFunction
    needs_cluster: bool = True
    needs_helm: bool = False

    @property
    def description(self) -> str:
        doc = (self.func.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else self.check_id

    @property
    def node_id(self) -> str:
        return f"{self.phase}::{self.check_id}"


def _spec(
    phase: Phase, func: CheckFunction, *, cluster: bool = True, helm: bool = False
) -> CheckSpec:
    return CheckSpec(phase, func.__name__, func, cluster, helm)


CHECKS: tuple[CheckSpec, ...] = (
    _spec("pre", cluster_reachable_and_access_allowed, cluster=False),
    _spec("pre", helm_client_supported, cluster=False),
    _spec("pre", release_deployed, helm=True),
    _spec("pre", agent_daemonset_healthy),
    _spec("pre", operator_healthy),
    _spec("pre", components_on_one_version),
    _spec("pre", upgrade_path_supported, helm=True),
    _spec("pre", values_snapshot_matches_live, helm=True),
    _spec("pre", target_chart_renders_with_snapshot, cluster=False, helm=True),
    _spec("pre", preflight_covers_agent_nodes),
    _spec("pre", preflight_runs_target_image),
    _spec("pre", preflight_deployment_ready),
    _spec("pre", cnp_validation_passed),
    _spec("post", release_upgraded_to_target, helm=True),
    _spec("post", agents_run_target_version),
    _spec("post", operator_runs_target_version),
    _spec("post", components_on_one_version),
    _spec("post", values_preserved, helm=True),
    _spec("post", preflight_removed, helm=True),
    _spec("post", agent_restarts_within_limit),
)


# the checks that fail, rather than skip, when the release state cannot be read
_REPORT_RELEASE_ERROR: tuple[CheckFunction, ...] = (release_deployed, release_upgraded_to_target)


def checks_for_phase(phase: Phase) -> tuple[CheckSpec, ...]:
    return tuple(c for c in CHECKS if c.phase == phase)


def get_check(phase: Phase, check_id: str) -> CheckSpec:
    for spec in CHECKS:
        if spec.phase == phase and spec.check_id == check_id:
            return spec
    raise KeyError(f"{phase}::{check_id}")


def redactor_for(snapshot: ClusterSnapshot, params: CheckParams) -> Redactor:
    """A redactor for every secret in the snapshot file, the live values and the overrides."""
    return Redactor.from_values(
        snapshot_values(snapshot).values, snapshot.live_values, params.intended_overrides
    )


def run_check(
    spec: CheckSpec,
    snapshot: ClusterSnapshot,
    params: CheckParams,
    redactor: Redactor | None = None,
) -> CheckResult:
    """Run one check: SKIP if what it needs is unreachable, and redact its messages."""
    if spec.needs_cluster and snapshot.api_error:
        summary = _api_failure(
            snapshot.api_error, snapshot.api_status, snapshot.api_no_answer
        ).summary
        result = _skip(f"{summary} (see cluster_reachable_and_access_allowed)")
    elif spec.needs_cluster and snapshot.read_errors:
        result = _skip(
            f"cluster only partly readable ({snapshot.read_errors[0]}); "
            "see cluster_reachable_and_access_allowed"
        )
    elif spec.needs_helm and snapshot.helm_error:
        result = _skip("helm client unusable (see helm_client_supported)")
    elif spec.needs_helm and snapshot.release_error and spec.func not in _REPORT_RELEASE_ERROR:
        result = _skip("release state unreadable (see the release check)")
    else:
        result = spec.func(snapshot, params)
    return result.redacted(redactor or redactor_for(snapshot, params))
