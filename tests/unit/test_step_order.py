"""The gate's one order under plugins that reorder, deselect or distribute items.

pytest-randomly (in the test set-up, so active here) shuffles the inner runs given a
seed: a performed upgrade still lists and runs its steps in the order of
:data:`~pytest_cilium_upgrade.upgrade.steps.STEPS`, each phase after the one before;
pytest-xdist, ``--lf``, ``--ff``, ``--nf``, ``--sw``, ``-x`` and a ``-k`` or
``--deselect`` that leaves out a step are usage errors naming the option. The
performed upgrade runs against the fakes of :mod:`gate_harness`, with a fake Helm
that changes the fake cluster as the real one would.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from gate_harness import ALL_NODE_IDS, POST_IDS, PRE_NODE_IDS, Gate, collected, new_gate

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.gate.order import REFUSED_OPTIONS
from pytest_cilium_upgrade.gate.settings import Settings
from pytest_cilium_upgrade.phases import UPGRADE_PHASES
from pytest_cilium_upgrade.redact import Redactor
from pytest_cilium_upgrade.upgrade.steps import STEPS, StepFailed, UpgradeFlow

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
SEEDS = (1, 2, 3, 4, 5, 6)
PERFORM = "--cilium-perform-upgrade"
STEP_IDS = [f"cilium-upgrade::{s.id}" for s in STEPS]
RESULT_LINE = re.compile(r"^(cilium-upgrade::\S+) (PASSED|FAILED|SKIPPED|ERROR)\b")


@pytest.fixture
def gate(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Gate:
    return new_gate(pytester, monkeypatch)


# A Helm that changes the fake cluster as the real one would, a Lease that is always
# free and waits that end at once; what the run did goes to files for the test to read.
PERFORMING = """

import pytest

from pytest_cilium_upgrade.marker import GATE_KEY
from pytest_cilium_upgrade.upgrade.steps import UpgradeFlow

CURRENT, TARGET = "{current}", "{target}"
PREFLIGHT = "{preflight}"
BREAK_THE_UPGRADE = {broken}


class FakeCommand:
    def __init__(self, *argv):
        self.argv = argv

    def display(self, redactor):
        return "helm " + " ".join(self.argv)


def _install_command(self, release, chart, version, namespace, **kwargs):
    return FakeCommand("install", release, str(version))


def _upgrade_command(self, release, chart, version, namespace, **kwargs):
    return FakeCommand("upgrade", release, str(version))


def _uninstall_command(self, release, namespace, wait=True, **kwargs):
    return FakeCommand("uninstall", release)


def _rollback_command(self, release, revision, namespace, wait=True, **kwargs):
    return FakeCommand("rollback", release, str(revision))


def _retag(old, new):
    for kind in ("pods", "daemonsets", "deployments"):
        for obj in DATA[kind]:
            spec = obj["spec"] if kind == "pods" else obj["spec"]["template"]["spec"]
            for container in spec["containers"]:
                container["image"] = container["image"].replace(f":v{{old}}", f":v{{new}}")
            for status in obj.get("status", {{}}).get("containerStatuses", []):
                status["image"] = status["image"].replace(f":v{{old}}", f":v{{new}}")


def _set_release(version, revision):
    release = DATA["releases"]["cilium"]
    release["chart"]["metadata"].update(version=version, appVersion=version)
    release["version"] = revision


def _execute(self, command, **kwargs):
    with (HERE / "helm-calls").open("a") as calls:
        calls.write(" ".join(command.argv) + "\\n")
    verb, release = command.argv[0], command.argv[1]
    if verb == "install":
        DATA["releases"][release] = PREFLIGHT_RECORD
    elif verb == "uninstall":
        DATA["releases"].pop(release, None)
        for kind in ("pods", "daemonsets", "deployments"):
            DATA[kind] = [o for o in DATA[kind] if "pre-flight" not in o["metadata"]["name"]]
    elif verb == "upgrade":
        _set_release(TARGET, 4)
        if not BREAK_THE_UPGRADE:
            _retag(CURRENT, TARGET)
    elif verb == "rollback":
        _set_release(CURRENT, 5)
        _retag(TARGET, CURRENT)


def _uninstall(self, release, namespace, wait=True, **kwargs):
    _execute(self, FakeCommand("uninstall", release))


def _wait(self, kind, name, label, deadline, selector, *, optional=False):
    return f"{{label}} ready"


# the pre-flight release is not installed yet: install_preflight installs it
PREFLIGHT_RECORD = DATA["releases"].pop(PREFLIGHT)
PATCHES = {{
    (FakeHelm, "install_command"): _install_command,
    (FakeHelm, "upgrade_command"): _upgrade_command,
    (FakeHelm, "uninstall_command"): _uninstall_command,
    (FakeHelm, "rollback_command"): _rollback_command,
    (FakeHelm, "execute"): _execute,
    (FakeHelm, "uninstall"): _uninstall,
    (FakeCluster, "acquire_lease"): lambda self, *args: None,
    (FakeCluster, "release_lease"): lambda self, *args: True,
    (UpgradeFlow, "_wait"): _wait,
}}
ORIGINALS = {{key: getattr(*key, None) for key in PATCHES}}


HARNESS_CONFIGURE, HARNESS_UNCONFIGURE = pytest_configure, pytest_unconfigure


def pytest_configure(config):
    HARNESS_CONFIGURE(config)
    for (owner, name), value in PATCHES.items():
        setattr(owner, name, value)


def pytest_unconfigure(config):
    for (owner, name), value in ORIGINALS.items():
        if value is None:
            delattr(owner, name)
        else:
            setattr(owner, name, value)
    HARNESS_UNCONFIGURE(config)


def pytest_sessionfinish(session):
    gate = session.config.stash.get(GATE_KEY, None)
    if gate is not None and gate.settings.perform_upgrade:
        (HERE / "steps-run").write_text(json.dumps(gate.flow.state.steps_run))
"""


def performing(gate: Gate, *, broken: bool = False) -> None:
    """The gate's fakes answer a performed upgrade; ``broken``: the agents stay old."""
    gate.conftest_extra = PERFORMING.format(
        current=gate.data["releases"][defaults.DEFAULT_RELEASE]["chart"]["metadata"]["version"],
        target=gate.data["chart_versions"][-1],
        preflight=defaults.DEFAULT_PREFLIGHT_RELEASE,
        broken=broken,
    )


def phase_of(node_id: str) -> int:
    return UPGRADE_PHASES.index(node_id.split("::")[1])


def assert_in_gate_order(ids: list[str]) -> None:
    """Phases in order, each phase's steps first and in their order, every step once."""
    assert [i for i in ids if i in STEP_IDS] == STEP_IDS
    assert [phase_of(i) for i in ids] == sorted(phase_of(i) for i in ids)
    for phase in UPGRADE_PHASES:
        kinds = [i in STEP_IDS for i in ids if i.split("::")[1] == phase]
        assert kinds == sorted(kinds, reverse=True), f"a {phase} check before a {phase} step"


def run_order(result: pytest.RunResult) -> list[tuple[str, str]]:
    """(node id, outcome) of each gate item, in the order ``-v`` reported them."""
    return [(m[1], m[2]) for m in (RESULT_LINE.match(line) for line in result.outlines) if m]


# --------------------------------------------------------------------------- pytest-randomly


def test_collect_only_lists_the_steps_in_order_under_randomly(gate: Gate) -> None:
    unshuffled = collected(gate.run("--co", "-q", PERFORM))
    assert_in_gate_order(unshuffled)
    shuffled = 0
    for seed in SEEDS:
        result = gate.run("--co", "-q", PERFORM, randomly_seed=seed)
        assert result.ret == pytest.ExitCode.OK, result.stdout.str() + result.stderr.str()
        ids = collected(result)
        assert_in_gate_order(ids)
        assert sorted(ids) == sorted(unshuffled)
        shuffled += ids != unshuffled
    # the shuffle is real: pytest-randomly reordered the checks within their phases
    assert shuffled >= len(SEEDS) - 1


@pytest.mark.parametrize("broken", [False, True], ids=["upgrade-passes", "rolled-back"])
def test_performed_upgrade_runs_its_steps_in_order_under_randomly(gate: Gate, broken: bool) -> None:
    gate.pytester.makepyfile(
        test_user="""
        import pytest

        @pytest.mark.cilium_upgrade(phase="post")
        def test_user_post(cilium_snapshot):
            pass

        @pytest.mark.cilium_upgrade(phase="pre")
        def test_user_pre(cilium_snapshot):
            pass

        def test_unmarked():
            pass
        """
    )
    performing(gate, broken=broken)
    for seed in SEEDS:
        calls = gate.path / "helm-calls"
        calls.unlink(missing_ok=True)
        result = gate.run(PERFORM, "-v", "test_user.py", randomly_seed=seed)
        out = result.stdout.str()
        assert f"Using --randomly-seed={seed}" in out
        assert "pytest-randomly may shuffle the checks within a phase" in out
        ran = run_order(result)
        assert_in_gate_order([node for node, _ in ran])
        user = [line.split()[0] for line in result.outlines if line.startswith("test_user.py::")]
        assert sorted(user) == sorted(
            f"test_user.py::{t}" for t in ("test_unmarked", "test_user_post", "test_user_pre")
        )
        # what ran, in the order it ran, as the flow saw it and as Helm saw it
        assert json.loads((gate.path / "steps-run").read_text()) == [s.id for s in STEPS]
        helm = calls.read_text().splitlines()
        outcome = dict(ran)
        if broken:
            assert result.ret == pytest.ExitCode.TESTS_FAILED, out
            assert [c.split()[0] for c in helm] == ["install", "uninstall", "upgrade", "rollback"]
            assert outcome["cilium-upgrade::rollback::helm_rollback"] == "PASSED"
            assert outcome["cilium-upgrade::post::agents_run_target_version"] == "FAILED"
        else:
            assert result.ret == pytest.ExitCode.OK, out
            assert [c.split()[0] for c in helm] == ["install", "uninstall", "upgrade"]
            assert {o for n, o in ran if "::rollback::" not in n} == {"PASSED"}
            assert {o for n, o in ran if "::rollback::" in n} == {"SKIPPED"}


def test_check_only_runs_keep_pre_before_post_and_may_shuffle_checks(gate: Gate) -> None:
    gate.pytester.makepyfile(
        test_user="""
        import pytest

        @pytest.mark.cilium_upgrade(phase="post")
        def test_user_post(cilium_snapshot):
            pass

        @pytest.mark.cilium_upgrade(phase="pre")
        def test_user_pre(cilium_snapshot):
            pass
        """
    )
    expected = [*ALL_NODE_IDS, "test_user.py::test_user_post", "test_user.py::test_user_pre"]
    orders = set()
    for seed in SEEDS:
        ids = collected(gate.run("--co", "-q", "test_user.py", randomly_seed=seed))
        assert sorted(ids) == sorted(expected)
        post = [i for i in ids if "::post::" in i or i.endswith("_post")]
        pre = [i for i in ids if i not in post]
        assert max(ids.index(i) for i in pre) < min(ids.index(i) for i in post), ids
        orders.add(tuple(ids))
    assert len(orders) > 1  # within a phase, the checks are shuffled: they are independent

    # -k, -m and --deselect narrow the checks as without the shuffle
    dropped = PRE_NODE_IDS[2]
    ids = collected(gate.run("--co", "-q", "--deselect", dropped, randomly_seed=SEEDS[0]))
    assert sorted(ids) == sorted(n for n in ALL_NODE_IDS if n != dropped)
    ids = collected(gate.run("--co", "-q", "-k", "preflight", randomly_seed=SEEDS[1]))
    assert sorted(ids) == sorted(n for n in ALL_NODE_IDS if "preflight" in n.rsplit("::", 1)[1])
    result = gate.run("--cilium-phase=post", "-m", "cilium_upgrade", randomly_seed=SEEDS[2])
    assert result.parseoutcomes().keys() <= {"passed", "failed", "skipped"}
    assert sum(result.parseoutcomes().values()) == len(POST_IDS)


# --------------------------------------------------------------------------- refused options


REFUSALS: list[tuple[list[str], str]] = [
    (["-n", "2"], "-n/--numprocesses (pytest-xdist) cannot be used with --cilium-upgrade"),
    (["--dist=loadscope"], "--dist (pytest-xdist) cannot be used with --cilium-upgrade"),
    (["--lf"], "--lf/--last-failed cannot be used with --cilium-perform-upgrade"),
    (["--ff"], "--ff/--failed-first cannot be used with --cilium-perform-upgrade"),
    (["--nf"], "--nf/--new-first cannot be used with --cilium-perform-upgrade"),
    (["--sw"], "--sw/--stepwise cannot be used with --cilium-perform-upgrade"),
    (["--sw-skip"], "--sw-skip/--stepwise-skip cannot be used with --cilium-perform-upgrade"),
    (["-x"], "-x/--exitfirst/--maxfail cannot be used with --cilium-perform-upgrade"),
    (["--maxfail=3"], "-x/--exitfirst/--maxfail cannot be used with --cilium-perform-upgrade"),
    (
        ["-k", "not helm_upgrade"],
        "-k 'not helm_upgrade' would leave out steps of --cilium-perform-upgrade: "
        "cilium-upgrade::upgrade::helm_upgrade.",
    ),
    (
        ["--deselect", "cilium-upgrade::upgrade::wait_rollout"],
        "--deselect cilium-upgrade::upgrade::wait_rollout would leave out steps of "
        "--cilium-perform-upgrade: cilium-upgrade::upgrade::wait_rollout.",
    ),
    (
        ["-m", "not cilium_upgrade"],
        "-m 'not cilium_upgrade' would leave out steps of --cilium-perform-upgrade: "
        + ", ".join(STEP_IDS),
    ),
    (
        ["-k", "values"],
        "-k 'values' would leave out steps of --cilium-perform-upgrade: "
        + ", ".join(i for i in STEP_IDS if not i.endswith("snapshot_values")),
    ),
]


@pytest.mark.parametrize(
    ("args", "message"), REFUSALS, ids=[" ".join(args) for args, _ in REFUSALS]
)
def test_reordering_or_dropping_steps_is_a_usage_error(
    gate: Gate, args: list[str], message: str
) -> None:
    performing(gate)
    for extra in ([], ["--co"]):
        result = gate.run(PERFORM, *extra, *args)
        err = result.stderr.str()
        assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + err
        assert f"ERROR: {message}" in err
        assert "Traceback" not in result.stdout.str() + err
        assert not (gate.path / "helm-calls").exists()


def test_a_performed_upgrade_may_leave_out_checks(gate: Gate) -> None:
    performing(gate)
    dropped = "cilium-upgrade::pre::cnp_validation_passed"
    for args in (["-k", "not cnp_validation"], ["--deselect", dropped]):
        result = gate.run(PERFORM, "--co", "-q", *args, randomly_seed=SEEDS[0])
        assert result.ret == pytest.ExitCode.OK, result.stderr.str()
        ids = collected(result)
        assert dropped not in ids
        assert_in_gate_order(ids)


def test_distributing_a_check_only_run_is_a_usage_error(gate: Gate) -> None:
    result = gate.run("--cilium-phase=pre", "-n", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: -n/--numprocesses (pytest-xdist) cannot be used with --cilium-upgrade: *"
            "run the gate in one process (-n 0 or -p no:xdist)"
        ]
    )
    # -n 0 distributes nothing
    assert gate.run("--cilium-phase=pre", "-n", "0").ret == pytest.ExitCode.OK


def test_check_only_runs_keep_last_failed_and_stepwise(gate: Gate) -> None:
    gate.data["logs"] = {}  # cnp_validation_passed fails
    first = gate.run("--cilium-phase=pre")
    assert first.ret == pytest.ExitCode.TESTS_FAILED
    again = gate.run("--cilium-phase=pre", "--lf", "-q")
    again.assert_outcomes(failed=1, deselected=len(PRE_NODE_IDS) - 1)
    stepwise = gate.run("--cilium-phase=pre", "--sw", "-x")
    assert stepwise.ret == pytest.ExitCode.TESTS_FAILED


# --------------------------------------------------------------------------- at run time


def test_a_plugin_reordering_after_the_gate_meets_the_run_time_check(gate: Gate) -> None:
    performing(gate)
    gate.conftest_extra += """

@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session):
    session.items.reverse()
"""
    result = gate.run(PERFORM, "-v", "-rf")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    ran = run_order(result)
    assert [n for n, _ in ran if n in STEP_IDS] == STEP_IDS[::-1]
    outcome = dict(ran)
    assert outcome[STEP_IDS[0]] == "PASSED"  # snapshot_values needs no step before it
    assert {outcome[i] for i in STEP_IDS[1:]} == {"FAILED"}
    out = result.stdout.str()
    assert (
        "refusing to run upgrade::helm_upgrade before prepare::snapshot_values, "
        "prepare::install_preflight, prepare::wait_preflight, upgrade::uninstall_preflight: "
        "the steps of the upgrade run in one order"
    ) in out
    assert "refusing to check post before prepare::snapshot_values" in out
    # nothing was installed, upgraded or rolled back
    assert not (gate.path / "helm-calls").exists()
    assert json.loads((gate.path / "steps-run").read_text()) == [STEPS[0].id]


def flow() -> UpgradeFlow:
    return UpgradeFlow(
        Settings(), kube=None, helm=None, chart=None, progress=print, redactor=Redactor
    )


def test_a_step_refuses_to_run_before_the_steps_before_it_or_twice() -> None:
    f = flow()
    with pytest.raises(
        StepFailed,
        match=r"refusing to run upgrade::helm_upgrade before "
        r"prepare::snapshot_values, .*upgrade::uninstall_preflight: ",
    ):
        f.run_step(STEPS[4])
    assert f.state.steps_run == []
    f.state.steps_run = [s.id for s in STEPS[:4]]
    with pytest.raises(StepFailed, match="refusing to run prepare::wait_preflight again"):
        f.run_step(STEPS[2])
    # in order, the step itself runs (here: it finds no cluster)
    with pytest.raises(StepFailed, match="cluster or helm not usable"):
        f.run_step(STEPS[4])
    assert f.state.steps_run == [s.id for s in STEPS[:5]]


def test_checks_wait_for_the_steps_of_their_phase_and_before() -> None:
    f = flow()
    assert f.steps_pending_for("pre") == [s.id for s in STEPS if s.phase == "prepare"]
    f.state.steps_run = [s.id for s in STEPS if s.phase in ("prepare", "upgrade")]
    assert f.steps_pending_for("pre") == []
    assert f.steps_pending_for("post") == []
    assert f.steps_pending_for("rollback") == [s.id for s in STEPS if s.phase == "rollback"]


# --------------------------------------------------------------------------- documentation


def test_reliability_doc_lists_the_refused_options() -> None:
    text = (ROOT / "docs" / "reliability.md").read_text()
    section = text.split("## Order of the items", 1)[1].split("\n## ", 1)[0]
    first_cells = re.findall(r"^\| (`[^|]+) \|", section, flags=re.MULTILINE)
    named = [flag for cell in first_cells for flag in re.findall(r"`([^`]+)`", cell)]
    assert named == ["-k", "-m", "--deselect", *(o.flags.split(" (")[0] for o in REFUSED_OPTIONS)]
    assert "pytest-randomly" in section
    readme = (ROOT / "README.md").read_text()
    assert "pytest-randomly" in readme
    assert "pytest-xdist" in readme
