"""What the checks need besides the snapshot."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.versions import Version

# defined beside the options' other defaults, which must load without the checks
CoveragePolicy = defaults.CoveragePolicy
COVERAGE_POLICIES = defaults.COVERAGE_POLICIES
DEFAULT_MAX_AGENT_RESTARTS = defaults.DEFAULT_MAX_AGENT_RESTARTS
ValuesCheckPolicy = defaults.ValuesCheckPolicy
VALUES_CHECK_POLICIES = defaults.VALUES_CHECK_POLICIES


@dataclass(frozen=True)
class IntendedValues:
    """The user-supplied values the release is to have after the upgrade, as Helm computes
    them from the values snapshot, the upgrade's values files and ``--set`` items: what
    ``helm get values`` prints after ``helm upgrade -f SNAPSHOT -f FILE... --set ITEM...``.

    ``values`` is None when Helm could not compute them (``error`` says why, naming no
    value); it may hold secrets and is never shown. ``overrides`` counts the values files
    and ``--set`` items; ``origin`` says where they came from.
    """

    values: Mapping[str, Any] | None = field(default=None, repr=False)
    overrides: int = 0
    origin: str = ""
    error: str = ""


@dataclass(frozen=True)
class CheckParams:
    """What the checks need besides the snapshot (resolved from the plugin's settings).

    ``target`` is the chart version to upgrade to, parsed once by the caller (None:
    the checks that need it skip). ``recorded_revision`` and ``baseline_restarts``
    come from the pre-upgrade snapshot; ``intended`` are the values the release is to
    have when the upgrade adds values files or ``--set`` items to the snapshot (None:
    the snapshot's own); ``expected_images`` (component name ->
    image) are optional pins, e.g. taken from the rendered target chart, for
    components with their own version scheme such as Envoy.
    """

    release: str = defaults.DEFAULT_RELEASE
    preflight_release: str = defaults.DEFAULT_PREFLIGHT_RELEASE
    agent_daemonset: str = defaults.AGENT_DAEMONSET
    operator_deployment: str = defaults.OPERATOR_DEPLOYMENT
    target: Version | None = None
    allow_downgrade: bool = False
    coverage_policy: CoveragePolicy = "warn"
    # what values the target chart no longer defines mean (warn, or strict: a failure)
    values_check: ValuesCheckPolicy = "warn"
    max_agent_restarts: int = DEFAULT_MAX_AGENT_RESTARTS
    recorded_revision: int | None = None
    intended: IntendedValues | None = None
    baseline_restarts: Mapping[str, int] = field(default_factory=dict)
    expected_images: Mapping[str, str] = field(default_factory=dict)
    required_access: tuple[defaults.AccessRequirement, ...] = defaults.REQUIRED_ACCESS

    def __post_init__(self) -> None:
        if self.coverage_policy not in COVERAGE_POLICIES:
            raise ValueError(
                f"coverage policy must be one of {', '.join(COVERAGE_POLICIES)},"
                f" not {self.coverage_policy!r}"
            )
        if self.values_check not in VALUES_CHECK_POLICIES:
            raise ValueError(
                f"values check policy must be one of {', '.join(VALUES_CHECK_POLICIES)},"
                f" not {self.values_check!r}"
            )
        if self.max_agent_restarts < 0:
            raise ValueError("max agent restarts must not be negative")

    @property
    def target_version(self) -> str | None:
        """The target as text (``1.16.5``), or None without one."""
        return None if self.target is None else str(self.target)
