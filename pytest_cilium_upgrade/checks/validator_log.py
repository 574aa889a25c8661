"""The cnp-validator's log (logrus, slog text or JSON lines) and the check that reads it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.checks.params import CheckParams
from pytest_cilium_upgrade.checks.result import CheckResult, _fail, _pass, _warn
from pytest_cilium_upgrade.snapshot.model import ClusterSnapshot

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


# --------------------------------------------------------------------------- check


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
