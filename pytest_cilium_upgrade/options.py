"""Every option of the gate, declared once and resolved once.

:data:`OPTIONS` is the single table of options: :func:`register` adds them to
pytest (command line and ini), :meth:`Settings.from_config` resolves them with
the precedence command line > environment variable > ini option > default, and
:func:`options_table_markdown` renders the table the documentation shows.

A bad value is a :class:`pytest.UsageError` that names the option and where the
value came from, for example::

    --cilium-preflight-coverage: 'loose' is not one of warn, strict
    (from environment variable CILIUM_UPGRADE_PREFLIGHT_COVERAGE)

Relative paths are resolved against the directory their source implies: the
invocation directory for the command line and the environment, the directory
of the ini file for ini options (as pytest does for its ``paths`` ini type) and
the rootdir for defaults. :class:`Settings` therefore holds absolute paths.
"""

from __future__ import annotations

import argparse
import enum
import math
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal

import pytest

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.defaults import (
    COVERAGE_POLICIES,
    DEFAULT_MAX_AGENT_RESTARTS,
    CoveragePolicy,
)
from pytest_cilium_upgrade.versions import Version, VersionError

if TYPE_CHECKING:  # the options load with every pytest run; the checks only for the gate
    from pytest_cilium_upgrade.checks import CheckParams

__all__ = [
    "ENV_PREFIX",
    "GROUP",
    "INI_PREFIX",
    "OPTIONS",
    "OPTIONS_TABLE_END",
    "OPTIONS_TABLE_START",
    "PHASES",
    "OptionSpec",
    "ParseContext",
    "Phase",
    "Settings",
    "main",
    "options_table_markdown",
    "parse_bool",
    "register",
    "replace_options_table",
]

GROUP: Final = "cilium-upgrade"
GROUP_DESCRIPTION: Final = "Cilium upgrade gate"
FLAG_PREFIX: Final = "--cilium-"
ENV_PREFIX: Final = "CILIUM_UPGRADE_"
INI_PREFIX: Final = "cilium_upgrade_"

OPTIONS_TABLE_START: Final = "<!-- options-table:start -->"
OPTIONS_TABLE_END: Final = "<!-- options-table:end -->"

Phase = Literal["pre", "post", "all"]
PHASES: Final[tuple[Phase, ...]] = ("pre", "post", "all")

DEFAULT_PHASE: Final[Phase] = "all"
DEFAULT_VALUES_SNAPSHOT: Final = "cilium-values.yaml"
DEFAULT_STATE_FILE: Final = ".cilium-upgrade-state.json"
DEFAULT_TIMEOUT: Final = 300.0
DEFAULT_REQUEST_TIMEOUT: Final = 30.0
DEFAULT_HELM: Final = "helm"
DEFAULT_KUBECONFIG: Final = "~/.kube/config"

KUBECONFIG_ENV: Final = "KUBECONFIG"
GITHUB_STEP_SUMMARY_ENV: Final = "GITHUB_STEP_SUMMARY"

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})

# Helm's release name rule (a DNS-1123 subdomain of at most 53 characters) and
# the Kubernetes namespace rule (a DNS-1123 label).
_HELM_RELEASE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_HELM_RELEASE_MAX = 53
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_LABEL_MAX = 63
_MINOR = re.compile(r"^\d+\.\d+(\.\d+)?$")
_INTEGER = re.compile(r"^[+-]?\d+$")


def _pytest_version() -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", pytest.__version__)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


# From pytest 9.2 an ini option may take a union of scalar types: TOML-native
# values (``cilium_upgrade_timeout = 60`` under ``[tool.pytest]``) then reach our
# parsers instead of failing pytest's string check, while INI-style files still
# deliver plain strings (the first member). Older pytest reads strings only.
_INI_UNIONS: Final = _pytest_version() >= (9, 2)
IniValue = Literal["text", "bool", "int", "number"]


def _ini_type(value: IniValue) -> Any:
    if not _INI_UNIONS or value == "text":
        return None  # pytest's "string"
    return {"bool": str | bool, "int": str | int, "number": str | int | float}[value]


# --------------------------------------------------------------------------- sources


class SourceKind(enum.Enum):
    """Where a resolved value came from."""

    CLI = "command line"
    ENV = "environment"
    INI = "ini"
    FALLBACK = "fallback"
    DEFAULT = "default"


@dataclass(frozen=True)
class _Source:
    kind: SourceKind
    description: str
    # Relative paths from this source are taken relative to this directory.
    base: Path


@dataclass(frozen=True)
class ParseContext:
    """What a parser may need besides the raw value."""

    base: Path
    environ: Mapping[str, str]


Parser = Callable[[object, ParseContext], Any]
Fallback = Callable[[pytest.Config, Mapping[str, str]], tuple[object, _Source] | None]


# --------------------------------------------------------------------------- parsers
# Each parser takes a raw value (a string from the command line, the environment
# or an INI-style file; a bool, int or float from native TOML) and returns the
# typed value, or raises ValueError with a message that does not repeat the
# option's name (the caller adds the name and the source).


def _type_name(raw: object) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number"}.get(
        type(raw), type(raw).__name__
    )


def _text(raw: object) -> str:
    if not isinstance(raw, str):
        raise ValueError(f"expected text, got {_type_name(raw)} {raw!r}")
    value = raw.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


def parse_bool(raw: object, ctx: ParseContext | None = None) -> bool:
    """1/0, true/false, yes/no, on/off in any case (and TOML booleans)."""
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str):
        value = raw.strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
    raise ValueError(f"{raw!r} is not a boolean (use 1/0, true/false, yes/no or on/off)")


def _choice(choices: Sequence[str]) -> Parser:
    def parse(raw: object, ctx: ParseContext) -> str:
        value = _text(raw).lower()
        if value not in choices:
            raise ValueError(f"{raw!r} is not one of {', '.join(choices)}")
        return value

    return parse


def _namespace(raw: object, ctx: ParseContext) -> str:
    value = _text(raw)
    if len(value) > _DNS_LABEL_MAX or not _DNS_LABEL.match(value):
        raise ValueError(
            f"{value!r} is not a valid namespace name (lower-case letters, digits and '-',"
            f" at most {_DNS_LABEL_MAX} characters)"
        )
    return value


def _release(raw: object, ctx: ParseContext) -> str:
    value = _text(raw)
    if len(value) > _HELM_RELEASE_MAX or not _HELM_RELEASE.match(value):
        raise ValueError(
            f"{value!r} is not a valid Helm release name (lower-case letters, digits, '-'"
            f" and '.', at most {_HELM_RELEASE_MAX} characters)"
        )
    return value


def _plain_text(raw: object, ctx: ParseContext) -> str:
    return _text(raw)


def _version(raw: object, ctx: ParseContext) -> str:
    value = _text(raw)
    try:
        return str(Version.parse(value))
    except VersionError:
        raise ValueError(
            f"{value!r} is not a semantic version (for example 1.16.5 or v1.16.5)"
        ) from None


def _non_negative_int(raw: object, ctx: ParseContext) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ValueError(f"expected a whole number, got {_type_name(raw)} {raw!r}")
    if isinstance(raw, str):
        if not _INTEGER.match(raw.strip()):
            raise ValueError(f"{raw!r} is not a whole number")
        raw = int(raw.strip())
    if raw < 0:
        raise ValueError(f"{raw} is negative (must be 0 or more)")
    return raw


def _positive_seconds(raw: object, ctx: ParseContext) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ValueError(f"expected a number of seconds, got {_type_name(raw)} {raw!r}")
    if isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError(f"{raw!r} is not a number of seconds") from None
    else:
        value = float(raw)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{raw!r} is not a positive number of seconds")
    return value


def _expand_home(text: str, environ: Mapping[str, str]) -> str:
    if text == "~" or text.startswith("~/") or text.startswith("~" + os.sep):
        home = environ.get("HOME")
        if home:
            return home + text[1:]
    return os.path.expanduser(text)


def _absolute(text: str, ctx: ParseContext) -> Path:
    path = Path(_expand_home(text, ctx.environ))
    if not path.is_absolute():
        path = ctx.base / path
    return Path(os.path.normpath(path))


def _path(raw: object, ctx: ParseContext) -> Path:
    return _absolute(_text(raw), ctx)


def _items(raw: object) -> list[str]:
    """A repeatable option: a list (command line, ini lines) or one item per line (env)."""
    if isinstance(raw, list | tuple):
        items = [str(item) for item in raw]
    elif raw is None or (isinstance(raw, str) and not raw.strip()):
        items = []
    else:
        items = _text(raw).splitlines()
    return [item.strip() for item in items if item.strip()]


def _paths(raw: object, ctx: ParseContext) -> tuple[Path, ...]:
    return tuple(_absolute(item, ctx) for item in _items(raw))


def _set_values(raw: object, ctx: ParseContext) -> tuple[str, ...]:
    values = _items(raw)
    for item in values:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{item!r} is not KEY=VALUE (as helm --set takes it)")
    return tuple(values)


def _minor_version(raw: object, ctx: ParseContext) -> str:
    value = _text(raw).removeprefix("v")
    if not _MINOR.match(value):
        raise ValueError(f"{raw!r} is not a Cilium version such as 1.14 or 1.14.3")
    return value


def _kubeconfig(raw: object, ctx: ParseContext) -> str:
    """One file or a list separated like $KUBECONFIG; empty entries are ignored."""
    parts = [p.strip() for p in _text(raw).split(os.pathsep) if p.strip()]
    if not parts:
        raise ValueError(f"{raw!r} names no file")
    return os.pathsep.join(str(_absolute(p, ctx)) for p in parts)


def _looks_like_path(text: str) -> bool:
    return text.startswith(("/", "./", "../", "~", "." + os.sep, ".." + os.sep)) or (
        os.altsep is not None and text.startswith(os.altsep)
    )


def _chart(raw: object, ctx: ParseContext) -> str:
    """A repository reference stays as it is; a local chart becomes an absolute path.

    Like Helm, an existing local directory or archive wins over a repository
    reference of the same spelling.
    """
    value = _text(raw)
    if "://" in value:
        return value
    if _looks_like_path(value) or os.path.exists(ctx.base / _expand_home(value, ctx.environ)):
        return str(_absolute(value, ctx))
    return value


def _executable(raw: object, ctx: ParseContext) -> str:
    """A bare name is looked up on PATH; anything with a directory part is a path."""
    value = _text(raw)
    if os.sep in value or (os.altsep is not None and os.altsep in value):
        return str(_absolute(value, ctx))
    return value


# --------------------------------------------------------------------------- the table

OptionKind = Literal["enable", "bool", "value", "list"]


@dataclass(frozen=True)
class OptionSpec:
    """One option: its command-line flag, environment variable, ini key and parser.

    ``default`` is a raw value run through ``parse`` like any other (relative to
    the rootdir); ``None`` means the setting is unset. ``fallback`` is consulted
    between the ini option and the default.
    """

    flag: str
    dest: str
    attr: str
    help: str
    parse: Parser
    default: object
    env: str | None
    ini: str | None
    kind: OptionKind = "value"
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    default_doc: str | None = None
    fallback: Fallback | None = None
    # The TOML-native value types the ini option accepts besides strings.
    ini_value: IniValue = "text"

    @property
    def flags(self) -> tuple[str, ...]:
        """Every spelling on the command line (``--no-...`` for booleans)."""
        if self.kind == "bool":
            return (self.flag, "--no-" + self.flag.removeprefix("--"))
        return (self.flag,)

    def describe(self) -> str:
        """The help text with the choices spelled out."""
        text = self.help
        if self.choices:
            text += " One of " + ", ".join(f"`{c}`" for c in self.choices) + "."
        return text

    def default_text(self) -> str:
        if self.default_doc is not None:
            return self.default_doc
        if self.default is None:
            return "none"
        if isinstance(self.default, bool):
            return f"`{str(self.default).lower()}`"
        return f"`{self.default}`"


def _option(
    name: str,
    help: str,
    parse: Parser,
    default: object,
    *,
    attr: str | None = None,
    kind: OptionKind = "value",
    choices: tuple[str, ...] = (),
    metavar: str | None = None,
    default_doc: str | None = None,
    fallback: Fallback | None = None,
    cli_only: bool = False,
    ini_value: IniValue = "text",
) -> OptionSpec:
    suffix = name.replace("-", "_")
    return OptionSpec(
        flag=FLAG_PREFIX + name,
        dest="cilium_" + suffix,
        attr=attr or suffix,
        help=help,
        parse=parse,
        default=default,
        env=None if cli_only else ENV_PREFIX + suffix.upper(),
        ini=None if cli_only else INI_PREFIX + suffix,
        kind=kind,
        choices=choices,
        metavar=metavar,
        default_doc=default_doc,
        fallback=fallback,
        ini_value="bool" if kind != "value" else ini_value,
    )


def _kubeconfig_fallback(
    config: pytest.Config, environ: Mapping[str, str]
) -> tuple[object, _Source] | None:
    """pytest-kubernetes' kubeconfig options, then $KUBECONFIG (as the client reads it)."""
    here = config.invocation_params.dir
    for dest, flag in (
        ("k8s_kubeconfig_override", "--k8s-kubeconfig-override"),
        ("k8s_kubeconfig", "--k8s-kubeconfig"),
    ):
        value = config.getoption(dest, default=None)
        if isinstance(value, str) and value.strip():
            return value, _Source(SourceKind.FALLBACK, f"{flag} (pytest-kubernetes)", here)
    value = environ.get(KUBECONFIG_ENV, "")
    if value.strip():
        return value, _Source(SourceKind.FALLBACK, f"environment variable {KUBECONFIG_ENV}", here)
    return None


OPTIONS: Final[tuple[OptionSpec, ...]] = (
    _option(
        "upgrade",
        "Enable the gate: collect and run the built-in Cilium upgrade checks.",
        parse_bool,
        False,
        attr="enabled",
        kind="enable",
        cli_only=True,
    ),
    _option(
        "phase",
        "Which checks to run: those before the upgrade, those after it, or both.",
        _choice(PHASES),
        DEFAULT_PHASE,
        choices=PHASES,
        metavar="{" + ",".join(PHASES) + "}",
    ),
    _option(
        "kubeconfig",
        "Kubeconfig of the cluster under test: a file, or several separated as in $KUBECONFIG.",
        _kubeconfig,
        DEFAULT_KUBECONFIG,
        metavar="PATH",
        default_doc=(
            "`--k8s-kubeconfig-override` or `--k8s-kubeconfig` (pytest-kubernetes) if given,"
            " else `$KUBECONFIG`, else `~/.kube/config`"
        ),
        fallback=_kubeconfig_fallback,
    ),
    _option(
        "context",
        "Kubeconfig context to use.",
        _plain_text,
        None,
        metavar="NAME",
        default_doc="the kubeconfig's current context",
    ),
    _option(
        "namespace",
        "Namespace of the Cilium and pre-flight Helm releases.",
        _namespace,
        defaults.DEFAULT_NAMESPACE,
        metavar="NAME",
    ),
    _option(
        "release",
        "Helm release of Cilium.",
        _release,
        defaults.DEFAULT_RELEASE,
        metavar="NAME",
    ),
    _option(
        "preflight-release",
        "Helm release the pre-flight check is installed as.",
        _release,
        defaults.DEFAULT_PREFLIGHT_RELEASE,
        metavar="NAME",
    ),
    _option(
        "chart",
        "Chart to upgrade to: a repository reference such as cilium/cilium,"
        " or a chart directory or archive.",
        _chart,
        defaults.CHART_REF,
        metavar="CHART",
    ),
    _option(
        "target-version",
        "Chart version to upgrade to (semantic version, optional v prefix)."
        " Checks that need it are skipped without it.",
        _version,
        None,
        metavar="VERSION",
    ),
    _option(
        "allow-downgrade",
        "Accept a target version older than the running one.",
        parse_bool,
        False,
        kind="bool",
    ),
    _option(
        "values-snapshot",
        "File holding the release's values saved before the upgrade"
        " (sensitive: it may contain keys and certificates).",
        _path,
        DEFAULT_VALUES_SNAPSHOT,
        metavar="PATH",
    ),
    _option(
        "write-snapshot",
        "Write the values snapshot from the live release's values.",
        parse_bool,
        False,
        kind="bool",
    ),
    _option(
        "overwrite-snapshot",
        "Replace an existing values snapshot when writing it (needs --cilium-write-snapshot).",
        parse_bool,
        False,
        kind="bool",
    ),
    _option(
        "preflight-coverage",
        "What agent nodes the pre-flight cannot run on mean: a warning (warn)"
        " or a failure (strict).",
        _choice(COVERAGE_POLICIES),
        "warn",
        choices=COVERAGE_POLICIES,
        metavar="{" + ",".join(COVERAGE_POLICIES) + "}",
    ),
    _option(
        "max-agent-restarts",
        "Restarts per agent pod tolerated after the upgrade (0 or more).",
        _non_negative_int,
        str(DEFAULT_MAX_AGENT_RESTARTS),
        metavar="N",
        ini_value="int",
    ),
    _option(
        "timeout",
        "Seconds to wait for workloads to become ready (more than 0).",
        _positive_seconds,
        "300",
        metavar="SECONDS",
        ini_value="number",
    ),
    _option(
        "request-timeout",
        "Seconds allowed for each Kubernetes API request (more than 0, at most --cilium-timeout).",
        _positive_seconds,
        "30",
        metavar="SECONDS",
        ini_value="number",
    ),
    _option(
        "helm",
        "Helm 3 or 4 binary: a name looked up on PATH, or a path.",
        _executable,
        DEFAULT_HELM,
        metavar="PATH",
    ),
    _option(
        "summary",
        "Write a Markdown summary to this file"
        " ($GITHUB_STEP_SUMMARY is written as well when it is set).",
        _path,
        None,
        metavar="PATH",
    ),
    _option(
        "state-file",
        "File that carries what the pre phase recorded to the post phase.",
        _path,
        DEFAULT_STATE_FILE,
        metavar="PATH",
    ),
    _option(
        "perform-upgrade",
        "Run the whole gated upgrade: save the values, install the pre-flight release,"
        " wait, pre checks, uninstall the pre-flight, helm upgrade, wait, post checks,"
        " and roll back when the upgrade or a post check fails (needs"
        " --cilium-target-version).",
        parse_bool,
        False,
        kind="bool",
    ),
    _option(
        "dry-run",
        "With --cilium-perform-upgrade: print the plan and the exact helm commands,"
        " change nothing.",
        parse_bool,
        False,
        kind="bool",
    ),
    _option(
        "keep-preflight",
        "Leave the pre-flight release installed after the pre checks (for debugging).",
        parse_bool,
        False,
        kind="bool",
    ),
    _option(
        "values-file",
        "Extra values file for helm upgrade, after the snapshot (repeatable; one per"
        " line in the environment or ini).",
        _paths,
        "",
        kind="list",
        metavar="PATH",
        default_doc="none",
    ),
    _option(
        "set",
        "Extra KEY=VALUE for helm upgrade --set, applied last (repeatable; one per line"
        " in the environment or ini).",
        _set_values,
        "",
        kind="list",
        metavar="KEY=VALUE",
        default_doc="none",
    ),
    _option(
        "upgrade-compatibility",
        "Passed to the upgrade as upgradeCompatibility: the Cilium version first"
        " installed in the cluster, whose defaults to keep.",
        _minor_version,
        None,
        metavar="VERSION",
        default_doc="none",
    ),
)

_BY_ATTR: Final = {spec.attr: spec for spec in OPTIONS}


# --------------------------------------------------------------------------- registration


def register(parser: pytest.Parser) -> None:
    """Add every option to the ``cilium-upgrade`` group and its ini key (if it has one).

    Command-line defaults are ``None`` so that :meth:`Settings.from_config` can
    tell an option that was not given from one given with its default value.
    """
    group = parser.getgroup(GROUP, GROUP_DESCRIPTION)
    for spec in OPTIONS:
        help_text = spec.help
        if spec.env:
            help_text += f" Environment: {spec.env}."
        kwargs: dict[str, Any] = {"dest": spec.dest, "default": None, "help": help_text}
        if spec.kind == "enable":
            kwargs["action"] = "store_true"
        elif spec.kind == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        elif spec.kind == "list":
            kwargs["action"] = "append"
            kwargs["metavar"] = spec.metavar
        elif spec.metavar:
            kwargs["metavar"] = spec.metavar
        group.addoption(spec.flag, **kwargs)
        if spec.ini:
            ini_type: Any = "linelist" if spec.kind == "list" else _ini_type(spec.ini_value)
            parser.addini(spec.ini, f"{spec.help} (see {spec.flag})", type=ini_type, default=None)


# --------------------------------------------------------------------------- settings


def _default_kubeconfig() -> str:
    return os.environ.get(KUBECONFIG_ENV) or os.path.expanduser(DEFAULT_KUBECONFIG)


@dataclass(frozen=True)
class Settings:
    """Every option of the gate, typed and validated.

    Built by :meth:`from_config`; the field defaults mirror :data:`OPTIONS` so that
    ``Settings(...)`` can be written by hand, but only ``from_config`` resolves
    relative paths and records :attr:`sources`.
    """

    enabled: bool = False
    phase: Phase = DEFAULT_PHASE
    kubeconfig: str = field(default_factory=_default_kubeconfig)
    context: str | None = None
    namespace: str = defaults.DEFAULT_NAMESPACE
    release: str = defaults.DEFAULT_RELEASE
    preflight_release: str = defaults.DEFAULT_PREFLIGHT_RELEASE
    chart: str = defaults.CHART_REF
    target_version: str | None = None
    allow_downgrade: bool = False
    values_snapshot: Path = Path(DEFAULT_VALUES_SNAPSHOT)
    write_snapshot: bool = False
    overwrite_snapshot: bool = False
    preflight_coverage: CoveragePolicy = "warn"
    max_agent_restarts: int = DEFAULT_MAX_AGENT_RESTARTS
    timeout: float = DEFAULT_TIMEOUT
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    helm: str = DEFAULT_HELM
    summary: Path | None = None
    state_file: Path = Path(DEFAULT_STATE_FILE)
    perform_upgrade: bool = False
    dry_run: bool = False
    keep_preflight: bool = False
    values_file: tuple[Path, ...] = ()
    set: tuple[str, ...] = ()
    upgrade_compatibility: str | None = None
    # Not an option: GitHub Actions' step summary file, written in addition to ``summary``.
    github_step_summary: Path | None = None
    # attribute name -> where its value came from ("the command line",
    # "environment variable CILIUM_UPGRADE_PHASE", "ini option ... in pyproject.toml",
    # "default", ...).
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    # ----------------------------------------------------------------- derived

    @property
    def target(self) -> Version | None:
        return Version.try_parse(self.target_version)

    @property
    def phases(self) -> tuple[Literal["pre", "post"], ...]:
        """The phases to run, in order."""
        if self.phase == "pre":
            return ("pre",)
        if self.phase == "post":
            return ("post",)
        return ("pre", "post")

    @property
    def chart_path(self) -> Path | None:
        """The local chart (directory or archive), or None for a repository reference."""
        return Path(self.chart) if os.path.isabs(self.chart) else None

    @property
    def summary_paths(self) -> tuple[Path, ...]:
        """Every file the Markdown summary goes to (none, one or two)."""
        paths: list[Path] = []
        for path in (self.summary, self.github_step_summary):
            if path is not None and path not in paths:
                paths.append(path)
        return tuple(paths)

    def source_of(self, attr: str) -> str:
        return self.sources.get(attr, "default")

    def rows(self) -> list[tuple[str, str, str]]:
        """``(flag, value, source)`` for every option, for a report."""
        out: list[tuple[str, str, str]] = []
        for spec in OPTIONS:
            value = getattr(self, spec.attr)
            if value is None:
                shown = "none"
            elif isinstance(value, bool):
                shown = str(value).lower()
            else:
                shown = str(value)
            out.append((spec.flag, shown, self.source_of(spec.attr)))
        return out

    def check_params(
        self,
        *,
        recorded_revision: int | None = None,
        intended_overrides: Mapping[str, Any] | None = None,
        baseline_restarts: Mapping[str, int] | None = None,
        expected_images: Mapping[str, str] | None = None,
        agent_daemonset: str = defaults.AGENT_DAEMONSET,
        operator_deployment: str = defaults.OPERATOR_DEPLOYMENT,
        required_access: tuple[defaults.AccessRequirement, ...] = defaults.REQUIRED_ACCESS,
    ) -> CheckParams:
        """The checks' parameters: options from here, the rest from the caller."""
        from pytest_cilium_upgrade.checks import CheckParams

        return CheckParams(
            release=self.release,
            preflight_release=self.preflight_release,
            agent_daemonset=agent_daemonset,
            operator_deployment=operator_deployment,
            target_version=self.target_version,
            allow_downgrade=self.allow_downgrade,
            coverage_policy=self.preflight_coverage,
            max_agent_restarts=self.max_agent_restarts,
            recorded_revision=recorded_revision,
            intended_overrides=dict(intended_overrides or {}),
            baseline_restarts=dict(baseline_restarts or {}),
            expected_images=dict(expected_images or {}),
            required_access=required_access,
        )

    # ----------------------------------------------------------------- resolution

    @classmethod
    def from_config(
        cls, config: pytest.Config, environ: Mapping[str, str] = os.environ
    ) -> Settings:
        """Resolve every option: command line > environment > ini > default.

        Raises :class:`pytest.UsageError` listing every bad value (with the option
        and its source) or, when each value is fine on its own, every
        contradiction between options.
        """
        resolver = _Resolver(config, environ)
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        errors: list[str] = []
        for spec in OPTIONS:
            raw, source = resolver.raw(spec)
            sources[spec.attr] = source.description
            if raw is None:
                values[spec.attr] = None  # unset, and no default
                continue
            try:
                values[spec.attr] = spec.parse(raw, ParseContext(source.base, environ))
            except ValueError as exc:
                errors.append(f"{spec.flag}: {exc} (from {source.description})")
        if errors:
            raise pytest.UsageError("\n".join(errors))

        # A default per-request timeout never outlasts a shorter overall timeout.
        if sources["request_timeout"] == "default":
            values["request_timeout"] = min(values["request_timeout"], values["timeout"])

        step_summary = environ.get(GITHUB_STEP_SUMMARY_ENV, "").strip()
        if step_summary:
            values["github_step_summary"] = _absolute(
                step_summary, ParseContext(config.invocation_params.dir, environ)
            )
            sources["github_step_summary"] = f"environment variable {GITHUB_STEP_SUMMARY_ENV}"

        settings = cls(**values, sources=MappingProxyType(sources))
        problems = settings.contradictions()
        if problems:
            raise pytest.UsageError("\n".join(problems))
        return settings

    def contradictions(self) -> list[str]:
        """Options that are fine on their own but not together."""

        def opt(attr: str) -> str:
            return f"{_BY_ATTR[attr].flag} (from {self.source_of(attr)})"

        problems: list[str] = []
        if self.overwrite_snapshot and not (self.write_snapshot or self.perform_upgrade):
            problems.append(
                f"{opt('overwrite_snapshot')} needs --cilium-write-snapshot:"
                " the snapshot is only overwritten when it is written"
            )
        if self.perform_upgrade and self.target_version is None:
            problems.append(
                f"{opt('perform_upgrade')} needs --cilium-target-version: the version to upgrade to"
            )
        if self.perform_upgrade and self.phase != "all":
            problems.append(
                f"{opt('perform_upgrade')} runs every phase; it cannot be combined with"
                f" {opt('phase')} {self.phase!r}"
            )
        for attr in ("dry_run", "keep_preflight", "values_file", "set", "upgrade_compatibility"):
            if getattr(self, attr) and not self.perform_upgrade:
                problems.append(f"{opt(attr)} only applies with --cilium-perform-upgrade")
        if self.release == self.preflight_release:
            problems.append(
                f"{opt('release')} and {opt('preflight_release')} are both {self.release!r}:"
                " the pre-flight check must be a release of its own"
            )
        if self.request_timeout > self.timeout:
            problems.append(
                f"{opt('request_timeout')} is {self.request_timeout:g} s, longer than"
                f" {opt('timeout')} of {self.timeout:g} s"
            )
        files = [
            ("values_snapshot", self.values_snapshot),
            ("state_file", self.state_file),
            ("summary", self.summary),
        ]
        for i, (attr_a, path_a) in enumerate(files):
            for attr_b, path_b in files[i + 1 :]:
                if path_a is not None and path_a == path_b:
                    problems.append(f"{opt(attr_a)} and {opt(attr_b)} are the same file {path_a}")
        if self.github_step_summary is not None:
            for attr in ("values_snapshot", "state_file"):
                if getattr(self, attr) == self.github_step_summary:
                    problems.append(
                        f"{opt(attr)} is ${GITHUB_STEP_SUMMARY_ENV} ({self.github_step_summary}),"
                        " which receives the summary"
                    )
        return problems


class _Resolver:
    """Finds the raw value of an option and where it came from."""

    def __init__(self, config: pytest.Config, environ: Mapping[str, str]) -> None:
        self.config = config
        self.environ = environ
        self.here = config.invocation_params.dir
        self.inipath = config.inipath
        overrides = config.getoption("override_ini", default=None) or []
        self.ini_overrides = {str(item).split("=", 1)[0].strip() for item in overrides}

    def _ini_file(self) -> str:
        assert self.inipath is not None
        try:
            return str(self.inipath.relative_to(self.here))
        except ValueError:
            return str(self.inipath)

    def raw(self, spec: OptionSpec) -> tuple[object, _Source]:
        value = self.config.getoption(spec.dest, default=None)
        if value is not None:
            return value, _Source(SourceKind.CLI, "the command line", self.here)
        if spec.env:
            env_value = self.environ.get(spec.env, "")
            if env_value.strip():
                return env_value, _Source(
                    SourceKind.ENV, f"environment variable {spec.env}", self.here
                )
        if spec.ini:
            try:
                ini_value = self.config.getini(spec.ini)
            except pytest.UsageError as exc:  # a TOML value of a type the option never takes
                raise pytest.UsageError(f"{spec.flag}: {exc}") from None
            if not _unset(ini_value):
                base = self.inipath.parent if self.inipath is not None else self.here
                if spec.ini in self.ini_overrides or self.inipath is None:
                    where = f"ini option {spec.ini} set with --override-ini"
                else:
                    where = f"ini option {spec.ini} in {self._ini_file()}"
                return ini_value, _Source(SourceKind.INI, where, base)
        if spec.fallback is not None:
            found = spec.fallback(self.config, self.environ)
            if found is not None:
                return found
        return spec.default, _Source(SourceKind.DEFAULT, "default", self.config.rootpath)


def _unset(value: object) -> bool:
    # Older pytest returns "" or [] for an unset ini option registered without a default.
    return value is None or value == [] or (isinstance(value, str) and not value.strip())


# --------------------------------------------------------------------------- documentation


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def options_table_markdown() -> str:
    """The Markdown table of every option (ends with a newline)."""
    lines = [
        "| Option | Environment variable | ini key | Default | Meaning |",
        "|---|---|---|---|---|",
    ]
    for spec in OPTIONS:
        flags = " / ".join(f"`{flag}`" for flag in spec.flags)
        env = f"`{spec.env}`" if spec.env else "—"
        ini = f"`{spec.ini}`" if spec.ini else "—"
        cells = (flags, env, ini, spec.default_text(), spec.describe())
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def replace_options_table(text: str) -> str:
    """``text`` with the part between the options-table markers replaced by the table."""
    start = text.find(OPTIONS_TABLE_START)
    end = text.find(OPTIONS_TABLE_END)
    if start < 0 or end < start:
        raise ValueError(f"no {OPTIONS_TABLE_START} ... {OPTIONS_TABLE_END} section")
    head = text[: start + len(OPTIONS_TABLE_START)]
    return head + "\n" + options_table_markdown() + text[end:]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pytest_cilium_upgrade.options --markdown [--update FILE ...]``."""
    parser = argparse.ArgumentParser(
        prog="python -m pytest_cilium_upgrade.options",
        description="Print or update the Markdown table of the gate's options.",
    )
    parser.add_argument("--markdown", action="store_true", help="print the options table")
    parser.add_argument(
        "--update",
        action="append",
        default=[],
        metavar="FILE",
        help=f"rewrite the table between {OPTIONS_TABLE_START} and {OPTIONS_TABLE_END} in FILE",
    )
    args = parser.parse_args(argv)
    if not args.markdown and not args.update:
        parser.error("nothing to do: pass --markdown and/or --update FILE")
    if args.markdown:
        sys.stdout.write(options_table_markdown())
    for name in args.update:
        path = Path(name)
        try:
            path.write_text(replace_options_table(path.read_text(encoding="utf-8")), "utf-8")
        except (OSError, ValueError) as exc:
            parser.error(f"{name}: {exc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
