"""The cnp-validator's log and the check that reads it.

The pre-flight Deployment's ``cnp-validator`` container runs ``cilium preflight
validate-cnp`` (``cilium-dbg`` from 1.15). It logs one line per policy, then a verdict:

* 1.12 to 1.17, logrus text; the policy is a field named after its kind, fields
  sorted by key::

    time="2026-12-04T16:35:15Z" level=error msg="Unexpected validation error" \
CiliumNetworkPolicy=team-a/cnp-update error="spec.labels[0]: Invalid value: ..."

  (``CiliumClusterwideNetworkPolicy=<name>`` for a CCNP).
* 1.16 and 1.17 also print the hive's start and stop lines through Go's default
  logger, without ``level=`` or ``msg=``::

    2026/12/04 16:30:32 ERROR Start hook failed function="..." \
error="Found invalid CiliumNetworkPolicy"

* 1.18 to 1.20, slog text; the error comes before the policy::

    time=2026-12-04T16:28:34.762639776Z level=error msg="Unexpected validation error" \
subsys=cilium-dbg error="..." type=CiliumNetworkPolicy name=team-a/cnp-update

The validator package explains some failures in a line of its own, before the
policy's ``Unexpected validation error``, naming the policy by its bare name
(``ciliumNetworkPolicyName=<name>``, ``ciliumClusterwideNetworkPolicyName=<name>``):
such notes are attached to that policy. A note no failure follows is a warning (the
1.12.0 to 1.12.4 wildcard-selector warning on a CCNP that passes).

A run ends with ``All CCNPs and CNPs valid!``, or with ``Found invalid <Kind>`` (which
names only the first kind with an invalid policy) and exit status 1 (up to 1.17) or
255 (from 1.18), or with the error that stopped it, which the hive repeats up to four
times (``Start hook failed``, ``Failed to start hive``, ``failed to start: ...``).
JSON lines (``--log-opt format=json``, which the chart never sets) are read as well.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.checks.params import CheckParams
from pytest_cilium_upgrade.checks.result import CheckResult, _fail, _pass, _warn
from pytest_cilium_upgrade.snapshot.model import ClusterSnapshot, ContainerStatus

_LOGFMT = re.compile(r'(?P<key>[A-Za-z_][\w.\-]*)=(?P<value>"(?:[^"\\]|\\.)*"|\S*)')
# Go's default logger (log + slog's default handler): date, time, LEVEL, bare message.
_GO_LOG = re.compile(
    r"^(?P<time>\d{4}/\d\d/\d\d \d\d:\d\d:\d\d(?:\.\d+)?) "
    r"(?P<level>DEBUG|INFO|WARN|ERROR)(?:[+-]\d+)? (?P<rest>.*)$"
)
_FIRST_KEY = re.compile(r"(?:^|\s)(?=[A-Za-z_][\w.\-]*=)")
_FOUND_INVALID = re.compile(re.escape(defaults.CNP_FOUND_INVALID) + r" \w+")
_ERROR_LEVELS = ("error", "fatal", "panic", "err", "crit", "critical")
_WARN_LEVELS = ("warn", "warning")


def _logfmt(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for match in _LOGFMT.finditer(text):
        value = match.group("value")
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            try:
                value = json.loads(value)
            except ValueError:
                value = value[1:-1]
        fields.setdefault(match.group("key"), value)
    return fields


def parse_log_fields(line: str) -> dict[str, str]:
    """Fields of one log line: logrus/slog text, Go's default logger, or JSON.

    A line of Go's default logger (``2026/12/04 16:30:32 ERROR Start hook failed
    error=...``) gives ``time``, ``level`` (lower case) and ``msg`` (the text before
    the first ``key=``) besides its own fields.
    """
    stripped = line.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except ValueError:
            data = None
        if isinstance(data, dict):
            return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
    go = _GO_LOG.match(stripped)
    if go is not None:
        rest = go.group("rest")
        first = _FIRST_KEY.search(rest)
        cut = first.start() if first is not None else len(rest)
        fields = {
            "time": go.group("time"),
            "level": go.group("level").lower(),
            "msg": rest[:cut].strip(),
        }
        for key, value in _logfmt(rest[cut:]).items():
            fields.setdefault(key, value)
        return fields
    return _logfmt(stripped)


@dataclass(frozen=True)
class InvalidPolicy:
    """A policy the validator refused: its kind, namespace (CNPs), name and error.

    ``notes`` are what the validator package logged about it before the error.
    """

    kind: str
    namespace: str
    name: str
    error: str
    notes: tuple[str, ...] = ()

    @property
    def qualified_name(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    def __str__(self) -> str:
        kind = self.kind or "policy"
        name = f" {self.qualified_name}" if self.qualified_name else ""
        return f"{kind}{name}: {self.error or 'invalid'}"


@dataclass(frozen=True)
class PolicyNote:
    """A line of the validator package about one policy, named by its bare name."""

    kind: str
    name: str
    level: str
    message: str

    def __str__(self) -> str:
        where = " (namespace not logged)" if self.kind == defaults.CNP_KIND else ""
        once = (
            " (logged once per run: later policies of the same kind may be concerned too)"
            if any(mark in self.message for mark in defaults.CNP_ONCE_PER_RUN_NOTES)
            else ""
        )
        return f"{self.kind} {self.name}{where}: {self.message}{once}"


@dataclass(frozen=True)
class ValidatorLogReport:
    """What one cnp-validator container log says."""

    all_valid: bool = False
    identity_excluded: bool = False
    validated_ok: int = 0
    invalid: tuple[InvalidPolicy, ...] = ()
    found_invalid: tuple[str, ...] = ()
    # the errors that stopped the run, each once
    errors: tuple[str, ...] = ()
    excluded_label_warnings: tuple[str, ...] = ()
    # notes on policies that did not fail, and other warnings about policies
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


def _policy(fields: dict[str, str]) -> tuple[str, str, str]:
    """(kind, namespace, name) of a per-policy line; empty strings when not named."""
    for kind in defaults.CNP_KINDS:
        if kind in fields:
            logged = fields[kind]
            break
    else:
        kind = fields.get(defaults.CNP_TYPE_FIELD, "")
        logged = fields.get(defaults.CNP_NAME_FIELD, "")
    namespace, _, name = logged.rpartition("/")
    return kind, namespace, name


def _note(fields: dict[str, str], level: str, msg: str) -> PolicyNote | None:
    for key, kind in defaults.CNP_NOTE_NAME_FIELDS.items():
        if key in fields:
            return PolicyNote(kind, fields[key], level, msg)
    return None


def _run_error(msg: str, error: str) -> tuple[str, str]:
    """(cause, text) of a line that says why the run stopped; hive wrappers give the cause."""
    if msg.startswith(defaults.CNP_FAILED_TO_START):
        cause = msg.removeprefix(defaults.CNP_FAILED_TO_START)
        return cause, cause
    if msg in defaults.CNP_RUN_ERROR_WRAPPERS:
        return (error, error) if error else (msg, msg)
    if error:
        return error, f"{msg}: {error}"
    return msg, msg


def parse_validator_log(text: str) -> ValidatorLogReport:
    """Classify the lines of a ``cilium preflight validate-cnp`` log (any version's format)."""
    all_valid = excluded = False
    ok = 0
    invalid: list[InvalidPolicy] = []
    found: list[str] = []
    errors: dict[str, str] = {}  # cause -> text: each cause once, as first logged
    excluded_warnings: list[str] = []
    pending: list[PolicyNote] = []
    other_warnings: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        fields = parse_log_fields(line)
        msg = fields.get("msg") or fields.get("message") or line
        level = fields.get("level", "").lower()
        error = next((fields[k] for k in defaults.CNP_ERROR_FIELDS if fields.get(k)), "")
        note = _note(fields, level, msg)
        if defaults.CNP_ALL_VALID_IDENTITY_EXCLUDED in line or (
            defaults.CNP_IDENTITY_EXCLUDED_SUMMARY in msg
        ):
            excluded = True
        elif defaults.CNP_ALL_VALID in line:
            all_valid = True
        elif defaults.CNP_UNEXPECTED_VALIDATION_ERROR in msg or defaults.CNP_UNABLE_TO_PARSE in msg:
            kind, namespace, name = _policy(fields)
            mine = [n for n in pending if n.name == name and (not kind or n.kind == kind)]
            pending = [n for n in pending if n not in mine]
            invalid.append(
                InvalidPolicy(kind, namespace, name, error or msg, tuple(n.message for n in mine))
            )
        elif defaults.CNP_VALIDATION_OK in msg:
            ok += 1
        elif defaults.CNP_EXCLUDED_LABEL_WARNING in msg:
            kind, namespace, name = _policy(fields)
            label = fields.get("labels") or error.rpartition(": ")[2]
            who = f"{namespace}/{name}" if namespace else name
            excluded_warnings.append(
                f"{kind or 'policy'} {who}: selects on label {label} excluded from identities"
            )
        elif note is not None:
            pending.append(note)
        elif defaults.CNP_FOUND_INVALID in msg or defaults.CNP_FOUND_INVALID in error:
            match = _FOUND_INVALID.search(msg) or _FOUND_INVALID.search(error)
            found.append(match.group(0) if match else msg)
        elif level in _ERROR_LEVELS or defaults.CNP_K8S_NOT_CONFIGURED in line:
            cause, shown = _run_error(msg, error)
            errors.setdefault(cause, shown)
        elif level in _WARN_LEVELS and "polic" in msg.lower():
            other_warnings.append(msg)
    return ValidatorLogReport(
        all_valid=all_valid,
        identity_excluded=excluded,
        validated_ok=ok,
        invalid=tuple(invalid),
        found_invalid=tuple(dict.fromkeys(found)),
        errors=tuple(errors.values()),
        excluded_label_warnings=tuple(excluded_warnings),
        policy_warnings=(*(str(n) for n in pending), *other_warnings),
    )


# --------------------------------------------------------------------------- check


def _report_lines(report: ValidatorLogReport) -> list[str]:
    lines: list[str] = []
    for policy in report.invalid:
        lines.append(f"invalid {policy}")
        lines.extend(f"  validator: {note}" for note in policy.notes)
    lines.extend(f"validator's verdict: {found}" for found in report.found_invalid)
    lines.extend(report.errors)
    lines.extend(f"warning: {w}" for w in report.policy_warnings)
    return lines


def _policies(n: int) -> str:
    return f"{n} polic{'y' if n == 1 else 'ies'}"


def _validator_container(snapshot: ClusterSnapshot) -> ContainerStatus | None:
    """The cnp-validator container whose logs the snapshot holds (first live pod)."""
    for pod in snapshot.pods_matching(defaults.PREFLIGHT_DEPLOYMENT_SELECTOR):
        if pod.terminal:
            continue
        container = pod.container(defaults.CNP_VALIDATOR_CONTAINER)
        if container is not None:
            return container
    return None


def _killed_hint(container: ContainerStatus | None) -> list[str]:
    if container is None or container.last_termination_exit_code != defaults.SIGKILL_EXIT_STATUS:
        return []
    return [
        f"the previous container was killed (exit status {defaults.SIGKILL_EXIT_STATUS})"
        " before it reported: charts up to"
        f" {defaults.CNP_LIVENESS_PROBE_LAST_CHART} give the cnp-validator a liveness"
        " probe that kills a validation still running after about 15 s (many policies),"
        " or it ran out of memory"
    ]


def cnp_validation_passed(snapshot: ClusterSnapshot, params: CheckParams) -> CheckResult:
    """The cnp-validator logged ``All CCNPs and CNPs valid!`` (current or previous container).

    Otherwise each invalid policy is named with its kind, namespace and name, the
    validator's error and its notes on it; an error that stopped the run is listed once.
    Warnings of a passing run make a WARN.
    """
    previous_source = "previous container's log"
    logs: list[tuple[str, ValidatorLogReport]] = []
    if snapshot.validator_log:
        logs.append(("current log", parse_validator_log(snapshot.validator_log)))
    if snapshot.validator_previous_log:
        logs.append((previous_source, parse_validator_log(snapshot.validator_previous_log)))
    if not logs:
        return _fail(
            "no cnp-validator log collected",
            ["is the pre-flight Deployment running? see preflight_deployment_ready"],
        )
    container = _validator_container(snapshot)
    chosen = next(((src, r) for src, r in logs if r.conclusive), None)
    if chosen is None:
        return _fail(
            "the cnp-validator has not reported a verdict yet",
            [
                *(f"{src}: {_policies(r.validated_ok)} validated OK so far" for src, r in logs),
                *(_killed_hint(container) if snapshot.validator_previous_log else []),
            ],
        )
    source, report = chosen
    where = source
    if (
        source == previous_source
        and container is not None
        and container.last_termination_exit_code is not None
    ):
        where = f"{source}, exit status {container.last_termination_exit_code}"
    if report.failed:
        lines = _report_lines(report)
        if any(defaults.CNP_K8S_NOT_CONFIGURED in ln for ln in lines):
            lines.append(
                "kube-proxy-free clusters: install the pre-flight with"
                f" {defaults.PREFLIGHT_API_SERVER_FIX}"
            )
        n = len(report.invalid)
        what = f"{n} invalid polic{'y' if n == 1 else 'ies'}" if n else "validation failed"
        fix = (
            "fix or remove these policies, then delete the validator pod to re-run it"
            if report.invalid or report.found_invalid
            else "fix the cause, then delete the validator pod to re-run it"
        )
        return _fail(
            f"CNP validation failed ({where}): {what}",
            [*lines, fix],
            invalid_policies=str(n),
        )
    ok = f"{_policies(report.validated_ok)} validated"
    if report.identity_excluded:
        return _warn(
            f"all CCNPs and CNPs valid ({where}), but some select on identity-excluded labels",
            [*report.excluded_label_warnings, *report.policy_warnings],
        )
    if report.policy_warnings:
        return _warn(
            f"all CCNPs and CNPs valid ({where}; {ok}), with validator warnings",
            list(report.policy_warnings),
        )
    return _pass(f"{defaults.CNP_ALL_VALID} ({where}; {ok})")
