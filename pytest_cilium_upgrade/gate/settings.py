"""The gate's settings: every option of :data:`pytest_cilium_upgrade.options.OPTIONS`,
resolved once per run.

:meth:`Settings.from_config` resolves each option with the precedence command line >
environment variable > ini option > default (with a fallback, where the table names
one, between the ini option and the default).

A bad value is a :class:`pytest.UsageError` that names the option and where the
value came from, for example::

    --cilium-preflight-coverage: 'loose' is not one of warn, strict
    (from environment variable CILIUM_UPGRADE_PREFLIGHT_COVERAGE)

Relative paths are resolved against the directory their source implies: the
invocation directory for the command line and the environment, the directory
of the ini file for ini options (as pytest does for its ``paths`` ini type) and
the rootdir for defaults. :class:`Settings` therefore holds absolute paths, and
the target version parsed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.defaults import (
    DEFAULT_MAX_AGENT_RESTARTS,
    CoveragePolicy,
    ValuesCheckPolicy,
)
from pytest_cilium_upgrade.option_parsers import ParseContext, absolute_path
from pytest_cilium_upgrade.option_spec import OptionSpec, Source, SourceKind
from pytest_cilium_upgrade.options import (
    DEFAULT_HELM,
    DEFAULT_KUBECONFIG,
    DEFAULT_PHASE,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_STATE_FILE,
    DEFAULT_TIMEOUT,
    DEFAULT_VALUES_SNAPSHOT,
    GITHUB_STEP_SUMMARY_ENV,
    KUBECONFIG_ENV,
    OPTIONS,
    OPTIONS_BY_ATTR,
    PhaseChoice,
)
from pytest_cilium_upgrade.phases import Phase
from pytest_cilium_upgrade.versions import Version

__all__ = ["Settings"]


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
    phase: PhaseChoice = DEFAULT_PHASE
    kubeconfig: str = field(default_factory=_default_kubeconfig)
    context: str | None = None
    namespace: str = defaults.DEFAULT_NAMESPACE
    release: str = defaults.DEFAULT_RELEASE
    preflight_release: str = defaults.DEFAULT_PREFLIGHT_RELEASE
    chart: str = defaults.CHART_REF
    chart_repo: str | None = None
    target_version: Version | None = None
    allow_downgrade: bool = False
    values_snapshot: Path = Path(DEFAULT_VALUES_SNAPSHOT)
    write_snapshot: bool = False
    overwrite_snapshot: bool = False
    preflight_coverage: CoveragePolicy = "warn"
    values_check: ValuesCheckPolicy = "warn"
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
    def phases(self) -> tuple[Phase, ...]:
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
            values["github_step_summary"] = absolute_path(
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
            return f"{OPTIONS_BY_ATTR[attr].flag} (from {self.source_of(attr)})"

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
        for attr in ("dry_run", "keep_preflight"):
            if getattr(self, attr) and not self.perform_upgrade:
                problems.append(f"{opt(attr)} only applies with --cilium-perform-upgrade")
        # what the upgrade adds to the snapshot: the gate's own upgrade, or the user's
        # between a pre and a post run (pre renders with them and records them for post)
        for attr in ("values_file", "set", "upgrade_compatibility"):
            if getattr(self, attr) and not self.perform_upgrade and self.phase == "all":
                problems.append(
                    f"{opt(attr)} describes the upgrade: it applies with"
                    " --cilium-perform-upgrade, or with --cilium-phase pre or post around"
                    " your own helm upgrade"
                )
        if self.chart_repo is not None and (
            self.chart_path is not None or self.chart.startswith("oci://")
        ):
            problems.append(
                f"{opt('chart_repo')} is the repository of a chart name such as cilium/cilium;"
                f" {opt('chart')} {self.chart} is no chart of a repository: give one or the other"
            )
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

    def raw(self, spec: OptionSpec) -> tuple[object, Source]:
        value = self.config.getoption(spec.dest, default=None)
        if value is not None:
            return value, Source(SourceKind.CLI, "the command line", self.here)
        if spec.env:
            env_value = self.environ.get(spec.env, "")
            if env_value.strip():
                return env_value, Source(
                    SourceKind.ENV, f"environment variable {spec.env}", self.here
                )
        if spec.ini:
            try:
                ini_value = self.config.getini(spec.ini)
            except pytest.UsageError as exc:  # a TOML value of a type the option never takes
                raise pytest.UsageError(f"{spec.flag}: {exc}") from exc
            if not _unset(ini_value):
                base = self.inipath.parent if self.inipath is not None else self.here
                if spec.ini in self.ini_overrides or self.inipath is None:
                    where = f"ini option {spec.ini} set with --override-ini"
                else:
                    where = f"ini option {spec.ini} in {self._ini_file()}"
                return ini_value, Source(SourceKind.INI, where, base)
        if spec.fallback is not None:
            found = spec.fallback(self.config, self.environ)
            if found is not None:
                return found
        return spec.default, Source(SourceKind.DEFAULT, "default", self.config.rootpath)


def _unset(value: object) -> bool:
    # Older pytest returns "" or [] for an unset ini option registered without a default.
    return value is None or value == [] or (isinstance(value, str) and not value.strip())
