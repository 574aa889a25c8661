"""Every option of the gate, declared once: the table, and its registration with pytest.

:data:`OPTIONS` is the single table of options: :func:`register` adds them to
pytest (command line and ini), :class:`pytest_cilium_upgrade.gate.settings.Settings`
resolves them with the precedence command line > environment variable > ini
option > default, and :mod:`pytest_cilium_upgrade.tools.options_doc` renders the
table the documentation shows. What an option is (:class:`OptionSpec`, where a value
came from) is said in :mod:`pytest_cilium_upgrade.option_spec`; the values are parsed
by :mod:`pytest_cilium_upgrade.option_parsers`.

Every pytest run of an environment that has the plugin installed loads this module
(the entry point registers the options), so it stays light.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from typing import Any, Final, Literal

import pytest

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.defaults import (
    COVERAGE_POLICIES,
    DEFAULT_MAX_AGENT_RESTARTS,
    VALUES_CHECK_POLICIES,
)
from pytest_cilium_upgrade.option_parsers import (
    choice_of,
    parse_bool,
    parse_chart,
    parse_chart_repo,
    parse_executable,
    parse_kubeconfig,
    parse_minor_version,
    parse_namespace,
    parse_non_negative_int,
    parse_path,
    parse_paths,
    parse_positive_seconds,
    parse_release,
    parse_set_values,
    parse_text,
    parse_version,
)
from pytest_cilium_upgrade.option_spec import IniValue, OptionSpec, Source, SourceKind, option

__all__ = [
    "DEFAULT_PHASE",
    "GITHUB_STEP_SUMMARY_ENV",
    "GROUP",
    "KUBECONFIG_ENV",
    "OPTIONS",
    "OPTIONS_BY_ATTR",
    "PHASE_CHOICES",
    "PhaseChoice",
    "register",
]

GROUP: Final = "cilium-upgrade"
GROUP_DESCRIPTION: Final = "Cilium upgrade gate"

# The values of --cilium-phase: which check phases a run covers.
PhaseChoice = Literal["pre", "post", "all"]
PHASE_CHOICES: Final[tuple[PhaseChoice, ...]] = ("pre", "post", "all")

DEFAULT_PHASE: Final[PhaseChoice] = "all"
DEFAULT_VALUES_SNAPSHOT: Final = "cilium-values.yaml"
DEFAULT_STATE_FILE: Final = ".cilium-upgrade-state.json"
DEFAULT_TIMEOUT: Final = 300.0
DEFAULT_REQUEST_TIMEOUT: Final = 30.0
DEFAULT_HELM: Final = "helm"
DEFAULT_KUBECONFIG: Final = "~/.kube/config"

KUBECONFIG_ENV: Final = "KUBECONFIG"
GITHUB_STEP_SUMMARY_ENV: Final = "GITHUB_STEP_SUMMARY"


# --------------------------------------------------------------------------- the table


def _kubeconfig_fallback(
    config: pytest.Config, environ: Mapping[str, str]
) -> tuple[object, Source] | None:
    """pytest-kubernetes' kubeconfig options, then $KUBECONFIG (as the client reads it)."""
    here = config.invocation_params.dir
    for dest, flag in (
        ("k8s_kubeconfig_override", "--k8s-kubeconfig-override"),
        ("k8s_kubeconfig", "--k8s-kubeconfig"),
    ):
        value = config.getoption(dest, default=None)
        if isinstance(value, str) and value.strip():
            return value, Source(SourceKind.FALLBACK, f"{flag} (pytest-kubernetes)", here)
    value = environ.get(KUBECONFIG_ENV, "")
    if value.strip():
        return value, Source(SourceKind.FALLBACK, f"environment variable {KUBECONFIG_ENV}", here)
    return None


OPTIONS: Final[tuple[OptionSpec, ...]] = (
    option(
        "upgrade",
        "Enable the gate: collect and run the built-in Cilium upgrade checks.",
        parse_bool,
        False,
        attr="enabled",
        kind="enable",
        cli_only=True,
    ),
    option(
        "phase",
        "Which checks to run: those before the upgrade, those after it, or both.",
        choice_of(PHASE_CHOICES),
        DEFAULT_PHASE,
        choices=PHASE_CHOICES,
        metavar="{" + ",".join(PHASE_CHOICES) + "}",
    ),
    option(
        "kubeconfig",
        "Kubeconfig of the cluster under test: a file, or several separated as in $KUBECONFIG.",
        parse_kubeconfig,
        DEFAULT_KUBECONFIG,
        metavar="PATH",
        default_doc=(
            "`--k8s-kubeconfig-override` or `--k8s-kubeconfig` (pytest-kubernetes) if given,"
            " else `$KUBECONFIG`, else `~/.kube/config`"
        ),
        fallback=_kubeconfig_fallback,
    ),
    option(
        "context",
        "Kubeconfig context to use.",
        parse_text,
        None,
        metavar="NAME",
        default_doc="the kubeconfig's current context",
    ),
    option(
        "namespace",
        "Namespace of the Cilium and pre-flight Helm releases.",
        parse_namespace,
        defaults.DEFAULT_NAMESPACE,
        metavar="NAME",
    ),
    option(
        "release",
        "Helm release of Cilium.",
        parse_release,
        defaults.DEFAULT_RELEASE,
        metavar="NAME",
    ),
    option(
        "preflight-release",
        "Helm release the pre-flight check is installed as.",
        parse_release,
        defaults.DEFAULT_PREFLIGHT_RELEASE,
        metavar="NAME",
    ),
    option(
        "chart",
        "Chart to upgrade to: a repository reference such as cilium/cilium, an oci://"
        " reference, or a chart directory or archive.",
        parse_chart,
        defaults.CHART_REF,
        metavar="CHART",
    ),
    option(
        "chart-repo",
        "URL of the chart repository to take the chart from (a mirror, say):"
        " --cilium-chart then names the chart in it (cilium, or cilium/cilium)."
        " Every helm command names the repository itself (--repo URL), so its index"
        " is always current and your helm repositories are left unchanged.",
        parse_chart_repo,
        None,
        metavar="URL",
    ),
    option(
        "target-version",
        "Chart version to upgrade to (semantic version, optional v prefix)."
        " Checks that need it are skipped without it.",
        parse_version,
        None,
        metavar="VERSION",
    ),
    option(
        "allow-downgrade",
        "Accept a target version older than the running one.",
        parse_bool,
        False,
        kind="bool",
    ),
    option(
        "values-snapshot",
        "File holding the release's values saved before the upgrade"
        " (sensitive: it may contain keys and certificates).",
        parse_path,
        DEFAULT_VALUES_SNAPSHOT,
        metavar="PATH",
    ),
    option(
        "write-snapshot",
        "Write the values snapshot from the live release's values.",
        parse_bool,
        False,
        kind="bool",
    ),
    option(
        "overwrite-snapshot",
        "Replace an existing values snapshot when writing it (needs --cilium-write-snapshot).",
        parse_bool,
        False,
        kind="bool",
    ),
    option(
        "preflight-coverage",
        "What agent nodes the pre-flight cannot run on mean: a warning (warn)"
        " or a failure (strict).",
        choice_of(COVERAGE_POLICIES),
        "warn",
        choices=COVERAGE_POLICIES,
        metavar="{" + ",".join(COVERAGE_POLICIES) + "}",
    ),
    option(
        "values-check",
        "What values set for the release that the target chart no longer defines"
        " (not in its values.yaml or values.schema.json) mean: a warning (warn) or a"
        " failure (strict).",
        choice_of(VALUES_CHECK_POLICIES),
        "warn",
        choices=VALUES_CHECK_POLICIES,
        metavar="{" + ",".join(VALUES_CHECK_POLICIES) + "}",
    ),
    option(
        "max-agent-restarts",
        "Restarts per agent pod tolerated after the upgrade (0 or more).",
        parse_non_negative_int,
        str(DEFAULT_MAX_AGENT_RESTARTS),
        metavar="N",
        ini_value="int",
    ),
    option(
        "timeout",
        "Seconds to wait for workloads to become ready (more than 0).",
        parse_positive_seconds,
        "300",
        metavar="SECONDS",
        ini_value="number",
    ),
    option(
        "request-timeout",
        "Seconds allowed for each Kubernetes API request (more than 0, at most --cilium-timeout).",
        parse_positive_seconds,
        "30",
        metavar="SECONDS",
        ini_value="number",
    ),
    option(
        "helm",
        "Helm 3 or 4 binary: a name looked up on PATH, or a path.",
        parse_executable,
        DEFAULT_HELM,
        metavar="PATH",
    ),
    option(
        "summary",
        "Write a Markdown summary to this file"
        " ($GITHUB_STEP_SUMMARY is written as well when it is set).",
        parse_path,
        None,
        metavar="PATH",
    ),
    option(
        "state-file",
        "File that carries what the pre phase recorded to the post phase.",
        parse_path,
        DEFAULT_STATE_FILE,
        metavar="PATH",
    ),
    option(
        "perform-upgrade",
        "Run the whole gated upgrade: save the values, install the pre-flight release,"
        " wait, pre checks, uninstall the pre-flight, helm upgrade, wait, post checks,"
        " and roll back when the upgrade or a post check fails (needs"
        " --cilium-target-version).",
        parse_bool,
        False,
        kind="bool",
    ),
    option(
        "dry-run",
        "With --cilium-perform-upgrade: print the plan and the exact helm commands,"
        " change nothing.",
        parse_bool,
        False,
        kind="bool",
    ),
    option(
        "keep-preflight",
        "Leave the pre-flight release installed after the pre checks (for debugging).",
        parse_bool,
        False,
        kind="bool",
    ),
    option(
        "values-file",
        "Extra values file for helm upgrade, after the snapshot (repeatable; one per"
        " line in the environment or ini). With --cilium-perform-upgrade, or with"
        " --cilium-phase pre and post around your own upgrade: pre renders the target"
        " with it and records it for post.",
        parse_paths,
        "",
        kind="list",
        metavar="PATH",
        default_doc="none",
    ),
    option(
        "set",
        "Extra KEY=VALUE for helm upgrade --set, applied last (repeatable; one per line"
        " in the environment or ini). Used as --cilium-values-file is.",
        parse_set_values,
        "",
        kind="list",
        metavar="KEY=VALUE",
        default_doc="none",
    ),
    option(
        "upgrade-compatibility",
        "Passed to the upgrade as upgradeCompatibility: the Cilium version first"
        " installed in the cluster, whose defaults to keep.",
        parse_minor_version,
        None,
        metavar="VERSION",
        default_doc="none",
    ),
)

OPTIONS_BY_ATTR: Final = {spec.attr: spec for spec in OPTIONS}


# --------------------------------------------------------------------------- registration


def _pytest_version() -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", pytest.__version__)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


# From pytest 9.2 an ini option may take a union of scalar types: TOML-native
# values (``cilium_upgrade_timeout = 60`` under ``[tool.pytest]``) then reach our
# parsers instead of failing pytest's string check, while INI-style files still
# deliver plain strings (the first member). Older pytest reads strings only.
_INI_UNIONS: Final = _pytest_version() >= (9, 2)


def _ini_type(value: IniValue) -> Any:
    if not _INI_UNIONS or value == "text":
        return None  # pytest's "string"
    return {"bool": str | bool, "int": str | int, "number": str | int | float}[value]


def register(parser: pytest.Parser) -> None:
    """Add every option to the ``cilium-upgrade`` group and its ini key (if it has one).

    Command-line defaults are ``None`` so that the resolver
    (:meth:`pytest_cilium_upgrade.gate.settings.Settings.from_config`) can tell an
    option that was not given from one given with its default value.
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
