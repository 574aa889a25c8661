"""The one order of a gate run, whatever other plugins do to the items.

Plugins may reorder, deselect, repeat or distribute pytest items (pytest-randomly
shuffles them as soon as it is installed; pytest-xdist hands them to worker
processes; ``--lf``, ``--ff``, ``--nf`` and ``--sw`` reorder or drop them). The gate
allows what is harmless and refuses the rest:

- the phases always run in their order (``pre`` before ``post``; a performed
  upgrade's ``prepare``, ``pre``, ``upgrade``, ``post``, ``rollback``), and the
  upgrade's steps in the one order of :data:`~pytest_cilium_upgrade.upgrade.steps.STEPS`,
  each once. :func:`order_items` sorts the items so, last among the
  ``pytest_collection_modifyitems`` hooks, and again when collection is finished;
- within a phase the checks may run in any order (each judges the one snapshot of
  its phase), so a shuffle there is left alone;
- :func:`refuse_options` refuses, as a usage error naming the option, distributing
  a gate run (pytest-xdist) and, in a performed upgrade, the options that reorder,
  drop or stop the steps; :func:`refuse_missing_steps` refuses a performed upgrade
  some of whose steps were deselected (``-k``, ``-m``, ``--deselect``).

The steps check their order once more as they run
(:meth:`~pytest_cilium_upgrade.upgrade.steps.UpgradeFlow.run_step`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import pytest

from pytest_cilium_upgrade.gate.items import VIRTUAL_FILE, StepItem, phase_of
from pytest_cilium_upgrade.phases import CHECK_PHASES, UPGRADE_PHASES, Phase
from pytest_cilium_upgrade.upgrade.steps import STEPS

__all__ = [
    "REFUSED_OPTIONS",
    "RefusedOption",
    "order_items",
    "refuse_missing_steps",
    "refuse_options",
    "report_header",
]

PERFORM: Final = "--cilium-perform-upgrade"
_STEP_RANK: Final = {(s.phase, s.name): i for i, s in enumerate(STEPS)}


@dataclass(frozen=True)
class RefusedOption:
    """An option (``dest``) the gate refuses when it is set, and why."""

    dest: str
    flags: str
    why: str
    # True: refused in every gate run; False: only with --cilium-perform-upgrade
    always: bool = False


_REORDERS: Final = "would reorder or leave out steps of the upgrade"
_STOPS: Final = (
    "would stop the run at the first failure, before the pre-flight release is "
    "removed and before a failed upgrade is rolled back"
)
_DISTRIBUTES: Final = (
    "would hand the gate's items to several processes, each with its own snapshot, "
    "state file and summary (and the upgrade's steps to different workers); "
    "run the gate in one process (-n 0 or -p no:xdist)"
)

REFUSED_OPTIONS: Final[tuple[RefusedOption, ...]] = (
    RefusedOption("numprocesses", "-n/--numprocesses (pytest-xdist)", _DISTRIBUTES, True),
    RefusedOption("dist", "--dist (pytest-xdist)", _DISTRIBUTES, True),
    RefusedOption("tx", "--tx (pytest-xdist)", _DISTRIBUTES, True),
    RefusedOption("lf", "--lf/--last-failed", _REORDERS),
    RefusedOption("failedfirst", "--ff/--failed-first", _REORDERS),
    RefusedOption("newfirst", "--nf/--new-first", _REORDERS),
    RefusedOption("stepwise", "--sw/--stepwise", _REORDERS),
    RefusedOption("stepwise_skip", "--sw-skip/--stepwise-skip", _REORDERS),
    RefusedOption("stepwise_reset", "--sw-reset/--stepwise-reset", _REORDERS),
    RefusedOption("maxfail", "-x/--exitfirst/--maxfail", _STOPS),
)


def _is_set(config: pytest.Config, option: RefusedOption) -> bool:
    value = getattr(config.option, option.dest, None)
    if option.dest == "dist":
        return value not in (None, "no")
    return bool(value)


def refuse_options(config: pytest.Config, *, perform: bool) -> None:
    """A usage error for the first option set that would distribute or reorder the gate."""
    if hasattr(config, "workerinput"):
        raise pytest.UsageError(
            f"cilium-upgrade: the gate runs in one process, not in a pytest-xdist worker; "
            f"{_DISTRIBUTES}"
        )
    for option in REFUSED_OPTIONS:
        if not (option.always or perform) or not _is_set(config, option):
            continue
        if option.always:
            raise pytest.UsageError(
                f"{option.flags} cannot be used with --cilium-upgrade: it {option.why}"
            )
        raise pytest.UsageError(
            f"{option.flags} cannot be used with {PERFORM}: it {option.why}. "
            "The performed upgrade runs every step once, in one order"
            + (
                " (-x and --maxfail come from the command line or addopts; "
                "--maxfail=0 turns them off)"
                if option.dest == "maxfail"
                else "; to pick checks, run the phases separately (--cilium-phase pre/post)"
            )
        )


def _upgrade_key(item: pytest.Item) -> tuple[int, int]:
    """Phase, then the steps of the phase in their order before its checks."""
    phase = UPGRADE_PHASES.index(phase_of(item) or "pre")
    if isinstance(item, StepItem):
        return phase, _STEP_RANK[(item.step.phase, item.step.name)]
    return phase, len(STEPS)


def order_items(items: list[pytest.Item], *, perform: bool) -> None:
    """Put the items in the gate's order, in place; a stable sort, idempotent.

    A performed upgrade: every item by phase (unmarked user tests run with ``pre``),
    the steps of a phase first and in their order. Otherwise: the items of a phase
    stay where they are, but the phases run in order (the pre phase writes the state
    the post phase reads). Within a phase, checks keep whatever order they have.
    """
    if perform:
        items.sort(key=_upgrade_key)
        return
    slots = [i for i, item in enumerate(items) if phase_of(item) is not None]
    phased = sorted((items[i] for i in slots), key=_check_phase_index)
    for slot, item in zip(slots, phased, strict=True):
        items[slot] = item


def _check_phase_index(item: pytest.Item) -> int:
    phase = phase_of(item)
    return CHECK_PHASES.index(phase) if phase in CHECK_PHASES else len(CHECK_PHASES)


def _step_id(phase: Phase, name: str) -> str:
    return f"{VIRTUAL_FILE}::{phase}::{name}"


def refuse_missing_steps(
    config: pytest.Config, items: Sequence[pytest.Item], deselected: Sequence[pytest.Item]
) -> None:
    """A performed upgrade runs each of its steps once: a usage error otherwise."""
    found = [(i.step.phase, i.step.name) for i in items if isinstance(i, StepItem)]
    wanted = [(s.phase, s.name) for s in STEPS]
    if found == wanted:
        return
    missing = [_step_id(*s) for s in wanted if s not in found]
    if not missing:
        raise pytest.UsageError(
            f"the steps of {PERFORM} were collected as {', '.join(_step_id(*s) for s in found)}; "
            "they run once each, in their order: a plugin repeats or reorders them"
        )
    dropped = {i.nodeid for i in deselected if isinstance(i, StepItem)}
    options = _selecting_options(config, dropped)
    by = " and ".join(options) if options else "the selection"
    raise pytest.UsageError(
        f"{by} would leave out steps of {PERFORM}: {', '.join(missing)}. "
        "The performed upgrade runs every step; select checks only, or run the phases "
        "separately (--cilium-phase pre/post) to pick checks"
    )


def _selecting_options(config: pytest.Config, dropped: set[str]) -> list[str]:
    """The options that deselect items, as given."""
    named: list[str] = []
    keyword = config.getoption("keyword", "")
    if keyword:
        named.append(f"-k {keyword!r}")
    markexpr = config.getoption("markexpr", "")
    if markexpr:
        named.append(f"-m {markexpr!r}")
    for prefix in config.getoption("deselect", None) or ():
        if any(d.startswith(prefix) for d in dropped):  # as pytest matches them
            named.append(f"--deselect {prefix}")
    if getattr(config.option, "lf", False):
        named.append("--lf")
    return named


def report_header(config: pytest.Config, *, perform: bool) -> str | None:
    """A line saying what a plugin that shuffles items does to a gate run."""
    if not config.pluginmanager.hasplugin("randomly"):
        return None
    if perform:
        return (
            "cilium-upgrade: pytest-randomly may shuffle the checks within a phase; "
            "the phases and the upgrade's steps keep their order"
        )
    return "cilium-upgrade: pytest-randomly may shuffle the checks within a phase; pre runs first"
