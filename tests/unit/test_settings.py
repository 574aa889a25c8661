"""Option resolution: precedence, sources, parsing, contradictions and registration."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from pytest_cilium_upgrade import defaults, options
from pytest_cilium_upgrade.checks import CheckParams, IntendedValues
from pytest_cilium_upgrade.gate.session import check_params
from pytest_cilium_upgrade.gate.settings import Settings
from pytest_cilium_upgrade.option_parsers import ParseContext, parse_bool
from pytest_cilium_upgrade.options import OPTIONS
from pytest_cilium_upgrade.versions import Version

pytest_plugins = ["pytester"]

# The options are registered by a local conftest with the installed plugin
# disabled, so these tests see exactly what ``options.register`` adds.
CONFTEST = """
from pytest_cilium_upgrade import options


def pytest_addoption(parser):
    options.register(parser)
"""
NO_PLUGIN = ("-p", "no:cilium_upgrade")

MakeSettings = Callable[..., Settings]
OPTIONS_BY_ATTR = {spec.attr: spec for spec in OPTIONS}


@pytest.fixture
def home(pytester: pytest.Pytester) -> Path:
    path = pytester.path / "home"
    path.mkdir()
    return path


@pytest.fixture
def make_config(pytester: pytest.Pytester) -> Callable[..., pytest.Config]:
    pytester.makeconftest(CONFTEST)

    def make(*args: str) -> pytest.Config:
        return pytester.parseconfig(*NO_PLUGIN, *args)

    return make


@pytest.fixture
def make_settings(make_config: Callable[..., pytest.Config], home: Path) -> MakeSettings:
    def make(*args: str, env: Mapping[str, str] | None = None) -> Settings:
        environ = {"HOME": str(home), **(env or {})}
        return Settings.from_config(make_config(*args), environ)

    return make


def usage_error(make: MakeSettings, *args: str, env: Mapping[str, str] | None = None) -> str:
    with pytest.raises(pytest.UsageError) as info:
        make(*args, env=env)
    return str(info.value)


def pyproject(pytester: pytest.Pytester, **options: str) -> None:
    body = "".join(f'{key} = "{value}"\n' for key, value in options.items())
    pytester.makepyprojecttoml("[tool.pytest.ini_options]\n" + body)


# --------------------------------------------------------------------------- defaults


def test_defaults_without_any_option(
    make_settings: MakeSettings, pytester: pytest.Pytester, home: Path
) -> None:
    s = make_settings()
    root = pytester.path
    assert s.enabled is False
    assert s.phase == "all"
    assert s.phases == ("pre", "post")
    assert s.kubeconfig == str(home / ".kube" / "config")
    assert s.context is None
    assert s.namespace == defaults.DEFAULT_NAMESPACE
    assert s.release == defaults.DEFAULT_RELEASE
    assert s.preflight_release == defaults.DEFAULT_PREFLIGHT_RELEASE
    assert s.chart == defaults.CHART_REF
    assert s.chart_path is None
    assert s.target_version is None
    assert s.allow_downgrade is False
    assert s.values_snapshot == root / "cilium-values.yaml"
    assert s.write_snapshot is False
    assert s.overwrite_snapshot is False
    assert s.preflight_coverage == "warn"
    assert s.max_agent_restarts == 1
    assert s.timeout == 300.0
    assert s.request_timeout == 30.0
    assert s.helm == "helm"
    assert s.summary is None
    assert s.summary_paths == ()
    assert s.state_file == root / ".cilium-upgrade-state.json"
    assert s.github_step_summary is None
    assert set(s.sources.values()) == {"default"}
    assert set(s.sources) == {spec.attr for spec in OPTIONS}


def test_dataclass_defaults_match_the_option_table(tmp_path: Path) -> None:
    hand_made = Settings()
    ctx = ParseContext(tmp_path, {"HOME": str(tmp_path)})
    for spec in OPTIONS:
        if spec.attr in {"kubeconfig", "values_snapshot", "state_file"}:
            continue  # resolved against the rootdir / home only by from_config
        expected = None if spec.default is None else spec.parse(spec.default, ctx)
        assert getattr(hand_made, spec.attr) == expected, spec.flag
    assert hand_made.values_snapshot == Path(str(OPTIONS_BY_ATTR["values_snapshot"].default))
    assert hand_made.state_file == Path(str(OPTIONS_BY_ATTR["state_file"].default))


def test_without_cilium_upgrade_nothing_else_is_required(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        """
        from pytest_cilium_upgrade.gate.settings import Settings

        def test_settings(pytestconfig):
            s = Settings.from_config(pytestconfig, {})
            assert not s.enabled
            assert s.target_version is None

        def test_unrelated():
            pass
        """
    )
    result = pytester.runpytest(*NO_PLUGIN, "-W", "error")
    result.assert_outcomes(passed=2)


def test_cilium_upgrade_alone_is_enough(make_settings: MakeSettings) -> None:
    s = make_settings("--cilium-upgrade")
    assert s.enabled is True
    assert s.sources["enabled"] == "the command line"
    assert s.target_version is None


# --------------------------------------------------------------------------- precedence


@pytest.mark.parametrize(
    ("cli", "env", "ini", "expected", "source"),
    [
        (None, None, None, "all", "default"),
        (None, None, "pre", "pre", "ini option cilium_upgrade_phase in pyproject.toml"),
        (None, "post", "pre", "post", "environment variable CILIUM_UPGRADE_PHASE"),
        ("pre", "post", "all", "pre", "the command line"),
        ("post", None, "pre", "post", "the command line"),
    ],
)
def test_phase_precedence(
    make_settings: MakeSettings,
    pytester: pytest.Pytester,
    cli: str | None,
    env: str | None,
    ini: str | None,
    expected: str,
    source: str,
) -> None:
    if ini is not None:
        pyproject(pytester, cilium_upgrade_phase=ini)
    args = ("--cilium-phase", cli) if cli else ()
    s = make_settings(*args, env={"CILIUM_UPGRADE_PHASE": env} if env else {})
    assert s.phase == expected
    assert s.sources["phase"] == source


def test_precedence_per_option_is_independent(
    make_settings: MakeSettings, pytester: pytest.Pytester
) -> None:
    pyproject(
        pytester,
        cilium_upgrade_namespace="from-ini",
        cilium_upgrade_release="ini-release",
        cilium_upgrade_max_agent_restarts="4",
    )
    s = make_settings(
        "--cilium-release=cli-release",
        env={"CILIUM_UPGRADE_MAX_AGENT_RESTARTS": "2", "CILIUM_UPGRADE_TIMEOUT": "60"},
    )
    assert (s.namespace, s.release, s.max_agent_restarts, s.timeout) == (
        "from-ini",
        "cli-release",
        2,
        60.0,
    )
    assert s.sources["namespace"] == "ini option cilium_upgrade_namespace in pyproject.toml"
    assert s.sources["release"] == "the command line"
    assert s.sources["max_agent_restarts"] == (
        "environment variable CILIUM_UPGRADE_MAX_AGENT_RESTARTS"
    )
    assert s.sources["timeout"] == "environment variable CILIUM_UPGRADE_TIMEOUT"
    assert s.sources["state_file"] == "default"


def test_empty_environment_variable_counts_as_unset(
    make_settings: MakeSettings, pytester: pytest.Pytester
) -> None:
    pyproject(pytester, cilium_upgrade_phase="pre")
    s = make_settings(env={"CILIUM_UPGRADE_PHASE": "  "})
    assert s.phase == "pre"


def test_override_ini_is_an_ini_source(
    make_settings: MakeSettings, pytester: pytest.Pytester
) -> None:
    pyproject(pytester, cilium_upgrade_phase="pre")
    s = make_settings("-o", "cilium_upgrade_phase=post")
    assert s.phase == "post"
    assert s.sources["phase"] == "ini option cilium_upgrade_phase set with --override-ini"


def test_native_toml_values(make_settings: MakeSettings, pytester: pytest.Pytester) -> None:
    if not options._INI_UNIONS:
        pytest.skip("this pytest reads ini options as strings only")
    pytester.makepyprojecttoml(
        """
        [tool.pytest]
        cilium_upgrade_allow_downgrade = true
        cilium_upgrade_max_agent_restarts = 3
        cilium_upgrade_timeout = 90.5
        cilium_upgrade_request_timeout = 10
        """
    )
    s = make_settings()
    assert s.allow_downgrade is True
    assert s.max_agent_restarts == 3
    assert s.timeout == 90.5
    assert s.request_timeout == 10.0


def test_native_toml_value_of_the_wrong_type_names_the_option(
    make_settings: MakeSettings, pytester: pytest.Pytester
) -> None:
    if options._pytest_version() < (9, 0):
        pytest.skip("this pytest has no native TOML configuration")
    pytester.makepyprojecttoml("[tool.pytest]\ncilium_upgrade_namespace = 5\n")
    message = usage_error(make_settings)
    assert message.startswith("--cilium-namespace: ")
    assert "pyproject.toml: config option 'cilium_upgrade_namespace' expects a string" in message


def test_native_toml_bool_of_a_bad_word_names_the_source(
    make_settings: MakeSettings, pytester: pytest.Pytester
) -> None:
    if options._pytest_version() < (9, 0):
        pytest.skip("this pytest has no native TOML configuration")
    pytester.makepyprojecttoml('[tool.pytest]\ncilium_upgrade_write_snapshot = "maybe"\n')
    assert usage_error(make_settings) == (
        "--cilium-write-snapshot: 'maybe' is not a boolean (use 1/0, true/false, yes/no"
        " or on/off) (from ini option cilium_upgrade_write_snapshot in pyproject.toml)"
    )


# --------------------------------------------------------------------------- bad values


def test_bad_value_from_the_environment(make_settings: MakeSettings) -> None:
    message = usage_error(make_settings, env={"CILIUM_UPGRADE_PREFLIGHT_COVERAGE": "loose"})
    assert message == (
        "--cilium-preflight-coverage: 'loose' is not one of warn, strict"
        " (from environment variable CILIUM_UPGRADE_PREFLIGHT_COVERAGE)"
    )


def test_bad_value_from_the_ini_file(
    make_settings: MakeSettings, pytester: pytest.Pytester
) -> None:
    pyproject(pytester, cilium_upgrade_preflight_coverage="loose")
    assert usage_error(make_settings) == (
        "--cilium-preflight-coverage: 'loose' is not one of warn, strict"
        " (from ini option cilium_upgrade_preflight_coverage in pyproject.toml)"
    )


def test_bad_value_from_a_tox_ini(make_settings: MakeSettings, pytester: pytest.Pytester) -> None:
    pytester.makefile(".ini", tox="[pytest]\ncilium_upgrade_timeout = soon\n")
    assert usage_error(make_settings) == (
        "--cilium-timeout: 'soon' is not a number of seconds"
        " (from ini option cilium_upgrade_timeout in tox.ini)"
    )


def test_bad_value_from_the_command_line(make_settings: MakeSettings) -> None:
    assert usage_error(make_settings, "--cilium-phase", "during") == (
        "--cilium-phase: 'during' is not one of pre, post, all (from the command line)"
    )


def test_bad_value_from_an_ini_override(make_settings: MakeSettings) -> None:
    assert usage_error(make_settings, "-o", "cilium_upgrade_max_agent_restarts=-2") == (
        "--cilium-max-agent-restarts: -2 is negative (must be 0 or more)"
        " (from ini option cilium_upgrade_max_agent_restarts set with --override-ini)"
    )


def test_a_bad_value_that_is_overridden_does_not_matter(
    make_settings: MakeSettings, pytester: pytest.Pytester
) -> None:
    pyproject(pytester, cilium_upgrade_phase="sometimes")
    assert make_settings("--cilium-phase=pre").phase == "pre"


def test_every_bad_value_is_reported_at_once(make_settings: MakeSettings) -> None:
    message = usage_error(
        make_settings,
        "--cilium-timeout=0",
        env={"CILIUM_UPGRADE_TARGET_VERSION": "1.16", "CILIUM_UPGRADE_NAMESPACE": "Kube_System"},
    )
    assert message.splitlines() == [
        "--cilium-namespace: 'Kube_System' is not a valid namespace name (lower-case letters,"
        " digits and '-', at most 63 characters) (from environment variable"
        " CILIUM_UPGRADE_NAMESPACE)",
        "--cilium-target-version: '1.16' is not a semantic version (for example 1.16.5 or"
        " v1.16.5) (from environment variable CILIUM_UPGRADE_TARGET_VERSION)",
        "--cilium-timeout: '0' is not a positive number of seconds (from the command line)",
    ]


@pytest.mark.parametrize(
    ("env", "value", "error"),
    [
        ("MAX_AGENT_RESTARTS", "0", None),
        ("MAX_AGENT_RESTARTS", " 7 ", None),
        ("MAX_AGENT_RESTARTS", "1.5", "'1.5' is not a whole number"),
        ("MAX_AGENT_RESTARTS", "many", "'many' is not a whole number"),
        ("MAX_AGENT_RESTARTS", "-1", "-1 is negative (must be 0 or more)"),
        ("TIMEOUT", "2.5", None),
        ("TIMEOUT", "0", "'0' is not a positive number of seconds"),
        ("TIMEOUT", "-3", "'-3' is not a positive number of seconds"),
        ("TIMEOUT", "inf", "'inf' is not a positive number of seconds"),
        ("TIMEOUT", "nan", "'nan' is not a positive number of seconds"),
        ("REQUEST_TIMEOUT", "5m", "'5m' is not a number of seconds"),
        ("RELEASE", "Cilium", "'Cilium' is not a valid Helm release name"),
        ("RELEASE", "c" * 54, "is not a valid Helm release name"),
        ("RELEASE", "cilium-1.16", None),
        ("NAMESPACE", "cilium.system", "is not a valid namespace name"),
        ("TARGET_VERSION", "latest", "'latest' is not a semantic version"),
        ("TARGET_VERSION", "1.16.5-rc.1", None),
    ],
)
def test_value_parsing(
    make_settings: MakeSettings, env: str, value: str, error: str | None
) -> None:
    environ = {"CILIUM_UPGRADE_" + env: value}
    if error is None:
        make_settings(env=environ)
    else:
        message = usage_error(make_settings, env=environ)
        assert error in message
        assert message.endswith(f"(from environment variable CILIUM_UPGRADE_{env})")


def test_target_version_drops_the_v_prefix(make_settings: MakeSettings) -> None:
    s = make_settings("--cilium-target-version", "v1.16.5")
    assert s.target_version == Version(1, 16, 5)
    assert str(s.target_version) == "1.16.5"
    assert s.target_version.minor_str() == "1.16"


def test_choices_are_case_insensitive(make_settings: MakeSettings) -> None:
    s = make_settings(
        env={"CILIUM_UPGRADE_PHASE": "POST", "CILIUM_UPGRADE_PREFLIGHT_COVERAGE": "Strict"}
    )
    assert (s.phase, s.phases, s.preflight_coverage) == ("post", ("post",), "strict")


# --------------------------------------------------------------------------- booleans


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        *((word, True) for word in ("1", "true", "TRUE", "Yes", "on", " On ")),
        *((word, False) for word in ("0", "false", "False", "NO", "off")),
    ],
)
def test_bool_words_from_env_and_ini(
    make_settings: MakeSettings, pytester: pytest.Pytester, raw: str, expected: bool
) -> None:
    assert make_settings(env={"CILIUM_UPGRADE_ALLOW_DOWNGRADE": raw}).allow_downgrade is expected
    pyproject(pytester, cilium_upgrade_allow_downgrade=raw)
    assert make_settings().allow_downgrade is expected


@pytest.mark.parametrize("raw", ["2", "y", "n", "enabled", "truee"])
def test_bad_bool_words(make_settings: MakeSettings, pytester: pytest.Pytester, raw: str) -> None:
    assert usage_error(make_settings, env={"CILIUM_UPGRADE_WRITE_SNAPSHOT": raw}) == (
        f"--cilium-write-snapshot: {raw!r} is not a boolean (use 1/0, true/false, yes/no"
        " or on/off) (from environment variable CILIUM_UPGRADE_WRITE_SNAPSHOT)"
    )
    pyproject(pytester, cilium_upgrade_write_snapshot=raw)
    assert usage_error(make_settings).endswith(
        "(from ini option cilium_upgrade_write_snapshot in pyproject.toml)"
    )


def test_bool_flags_on_the_command_line_beat_env_and_ini(
    make_settings: MakeSettings, pytester: pytest.Pytester
) -> None:
    pyproject(pytester, cilium_upgrade_allow_downgrade="yes")
    assert make_settings().allow_downgrade is True
    s = make_settings("--no-cilium-allow-downgrade", env={"CILIUM_UPGRADE_ALLOW_DOWNGRADE": "1"})
    assert s.allow_downgrade is False
    assert s.sources["allow_downgrade"] == "the command line"
    assert make_settings("--cilium-allow-downgrade").allow_downgrade is True


# --------------------------------------------------------------------------- contradictions


def test_overwrite_snapshot_needs_write_snapshot(make_settings: MakeSettings) -> None:
    env = {"CILIUM_UPGRADE_OVERWRITE_SNAPSHOT": "true"}
    assert usage_error(make_settings, env=env) == (
        "--cilium-overwrite-snapshot (from environment variable"
        " CILIUM_UPGRADE_OVERWRITE_SNAPSHOT) needs --cilium-write-snapshot:"
        " the snapshot is only overwritten when it is written"
    )
    s = make_settings("--cilium-write-snapshot", env=env)
    assert (s.write_snapshot, s.overwrite_snapshot) == (True, True)
    assert not make_settings("--no-cilium-overwrite-snapshot", env=env).overwrite_snapshot


def test_release_and_preflight_release_must_differ(make_settings: MakeSettings) -> None:
    assert usage_error(make_settings, "--cilium-preflight-release", "cilium") == (
        "--cilium-release (from default) and --cilium-preflight-release (from the command"
        " line) are both 'cilium': the pre-flight check must be a release of its own"
    )


def test_request_timeout_within_timeout(make_settings: MakeSettings) -> None:
    env = {"CILIUM_UPGRADE_REQUEST_TIMEOUT": "25"}
    assert usage_error(make_settings, "--cilium-timeout=20", env=env) == (
        "--cilium-request-timeout (from environment variable CILIUM_UPGRADE_REQUEST_TIMEOUT)"
        " is 25 s, longer than --cilium-timeout (from the command line) of 20 s"
    )
    s = make_settings("--cilium-timeout=20", "--cilium-request-timeout=20")
    assert (s.timeout, s.request_timeout) == (20, 20)


def test_default_request_timeout_follows_a_shorter_timeout(make_settings: MakeSettings) -> None:
    s = make_settings("--cilium-timeout=12.5")
    assert (s.timeout, s.request_timeout) == (12.5, 12.5)
    assert s.sources["request_timeout"] == "default"
    assert make_settings("--cilium-timeout=600").request_timeout == 30


def test_output_files_must_differ(make_settings: MakeSettings, pytester: pytest.Pytester) -> None:
    message = usage_error(
        make_settings,
        "--cilium-summary",
        "cilium-values.yaml",
        env={"GITHUB_STEP_SUMMARY": str(pytester.path / ".cilium-upgrade-state.json")},
    )
    target = pytester.path / "cilium-values.yaml"
    assert message.splitlines() == [
        "--cilium-values-snapshot (from default) and --cilium-summary (from the command line)"
        f" are the same file {target}",
        "--cilium-state-file (from default) is $GITHUB_STEP_SUMMARY"
        f" ({pytester.path / '.cilium-upgrade-state.json'}), which receives the summary",
    ]


def test_contradictions_wait_for_valid_values(make_settings: MakeSettings) -> None:
    message = usage_error(
        make_settings, "--cilium-overwrite-snapshot", "--cilium-max-agent-restarts=x"
    )
    assert (
        message == "--cilium-max-agent-restarts: 'x' is not a whole number (from the command line)"
    )


# --------------------------------------------------------------------------- kubeconfig


def test_kubeconfig_from_the_environment_like_the_client(
    make_settings: MakeSettings, pytester: pytest.Pytester
) -> None:
    joined = os.pathsep.join(["a.yaml", "", "/abs/b.yaml"])
    s = make_settings(env={"KUBECONFIG": joined})
    assert s.kubeconfig == os.pathsep.join([str(pytester.path / "a.yaml"), "/abs/b.yaml"])
    assert s.sources["kubeconfig"] == "environment variable KUBECONFIG"


def test_k8s_kubeconfig_of_pytest_kubernetes_is_honoured(
    make_settings: MakeSettings, pytester: pytest.Pytester
) -> None:
    pytest.importorskip("pytest_kubernetes")
    s = make_settings("--k8s-kubeconfig", "kind.yaml", env={"KUBECONFIG": "/elsewhere"})
    assert s.kubeconfig == str(pytester.path / "kind.yaml")
    assert s.sources["kubeconfig"] == "--k8s-kubeconfig (pytest-kubernetes)"

    s = make_settings("--k8s-kubeconfig=kind.yaml", "--k8s-kubeconfig-override=/o.yaml")
    assert s.kubeconfig == "/o.yaml"
    assert s.sources["kubeconfig"] == "--k8s-kubeconfig-override (pytest-kubernetes)"


def test_own_kubeconfig_option_beats_pytest_kubernetes(
    make_settings: MakeSettings, pytester: pytest.Pytester
) -> None:
    pytest.importorskip("pytest_kubernetes")
    s = make_settings("--k8s-kubeconfig=kind.yaml", "--cilium-kubeconfig=/gate.yaml")
    assert s.kubeconfig == "/gate.yaml"
    s = make_settings(
        "--k8s-kubeconfig=kind.yaml", env={"CILIUM_UPGRADE_KUBECONFIG": "~/gate.yaml"}
    )
    assert s.kubeconfig == str(pytester.path / "home" / "gate.yaml")


# --------------------------------------------------------------------------- paths


def test_relative_paths_follow_their_source(
    make_settings: MakeSettings, pytester: pytest.Pytester
) -> None:
    pytester.mkdir("conf")
    pytester.path.joinpath("conf", "custom.ini").write_text(
        "[pytest]\n"
        "cilium_upgrade_values_snapshot = snap/values.yaml\n"
        "cilium_upgrade_helm = bin/helm\n"
        "cilium_upgrade_chart = ./charts/cilium\n",
        encoding="utf-8",
    )
    s = make_settings(
        "-c",
        "conf/custom.ini",
        # the conftest registering the options sits above the ini file's directory
        "--confcutdir",
        str(pytester.path),
        "--cilium-summary=out/summary.md",
        env={"CILIUM_UPGRADE_STATE_FILE": "../state.json"},
    )
    conf = pytester.path / "conf"
    assert s.values_snapshot == conf / "snap" / "values.yaml"
    assert s.helm == str(conf / "bin" / "helm")
    assert s.chart == str(conf / "charts" / "cilium")
    assert s.chart_path == conf / "charts" / "cilium"
    assert s.summary == pytester.path / "out" / "summary.md"
    assert s.state_file == pytester.path.parent / "state.json"
    assert s.sources["values_snapshot"] == "ini option cilium_upgrade_values_snapshot in " + str(
        Path("conf", "custom.ini")
    )


def test_chart_reference_or_directory(
    make_settings: MakeSettings, pytester: pytest.Pytester
) -> None:
    assert make_settings("--cilium-chart=cilium/cilium").chart_path is None
    oci = "oci://quay.io/cilium/charts/cilium"
    assert make_settings(f"--cilium-chart={oci}").chart == oci
    pytester.mkdir("mycharts").joinpath("cilium").mkdir()
    local = make_settings("--cilium-chart=mycharts/cilium")
    assert local.chart_path == pytester.path / "mycharts" / "cilium"


def test_github_step_summary_is_added(make_settings: MakeSettings, tmp_path: Path) -> None:
    step = tmp_path / "step.md"
    s = make_settings("--cilium-summary=own.md", env={"GITHUB_STEP_SUMMARY": str(step)})
    assert s.summary_paths == (s.summary, step)
    assert s.sources["github_step_summary"] == "environment variable GITHUB_STEP_SUMMARY"
    only_step = make_settings(env={"GITHUB_STEP_SUMMARY": str(step)})
    assert only_step.summary_paths == (step,)
    same = make_settings(f"--cilium-summary={step}", env={"GITHUB_STEP_SUMMARY": str(step)})
    assert same.summary_paths == (step,)


# --------------------------------------------------------------------------- outputs


def test_check_params(make_settings: MakeSettings) -> None:
    s = make_settings(
        "--cilium-target-version=v1.17.9",
        "--cilium-allow-downgrade",
        "--cilium-preflight-coverage=strict",
        "--cilium-max-agent-restarts=0",
        "--cilium-release=cni",
        "--cilium-preflight-release=cni-pre",
    )
    params = check_params(
        s,
        recorded_revision=4,
        baseline_restarts={"cilium-abc": 2},
        intended=IntendedValues({"preflight": {"enabled": False}}, 1),
        agent_daemonset="cilium-agent",
    )
    assert params == CheckParams(
        release="cni",
        preflight_release="cni-pre",
        agent_daemonset="cilium-agent",
        target=Version(1, 17, 9),
        allow_downgrade=True,
        coverage_policy="strict",
        max_agent_restarts=0,
        recorded_revision=4,
        intended=IntendedValues({"preflight": {"enabled": False}}, 1),
        baseline_restarts={"cilium-abc": 2},
    )
    assert check_params(Settings()) == CheckParams()


def test_rows_for_the_report(make_settings: MakeSettings) -> None:
    rows = make_settings("--cilium-phase=pre", env={"CILIUM_UPGRADE_CONTEXT": "kind-x"}).rows()
    assert [flag for flag, _, _ in rows] == [spec.flag for spec in OPTIONS]
    by_flag = {flag: (value, source) for flag, value, source in rows}
    assert by_flag["--cilium-phase"] == ("pre", "the command line")
    assert by_flag["--cilium-context"] == ("kind-x", "environment variable CILIUM_UPGRADE_CONTEXT")
    assert by_flag["--cilium-summary"] == ("none", "default")
    assert by_flag["--cilium-allow-downgrade"] == ("false", "default")


def test_settings_are_frozen(make_settings: MakeSettings) -> None:
    s = make_settings()
    with pytest.raises(AttributeError):
        s.phase = "pre"  # type: ignore[misc]
    with pytest.raises(TypeError):
        s.sources["phase"] = "x"  # type: ignore[index]


# --------------------------------------------------------------------------- registration


def test_option_table_naming() -> None:
    for spec in OPTIONS:
        suffix = spec.flag.removeprefix("--cilium-")
        assert spec.flag.startswith("--cilium-")
        assert spec.dest == "cilium_" + suffix.replace("-", "_")
        if spec.flag == "--cilium-upgrade":
            assert (spec.env, spec.ini, spec.attr) == (None, None, "enabled")
            continue
        assert spec.env == "CILIUM_UPGRADE_" + suffix.replace("-", "_").upper()
        assert spec.ini == "cilium_upgrade_" + suffix.replace("-", "_")
        assert spec.attr == suffix.replace("-", "_")
    assert len({spec.attr for spec in OPTIONS}) == len(OPTIONS)
    fields = set(Settings.__dataclass_fields__) - {"sources", "github_step_summary"}
    assert fields == {spec.attr for spec in OPTIONS}


def test_register_adds_one_group_with_explicit_dests() -> None:
    parser = pytest.Parser(_ispytest=True)
    options.register(parser)
    group = parser.getgroup("cilium-upgrade")
    by_dest = {opt.dest: opt for opt in group.options}
    assert list(by_dest) == [spec.dest for spec in OPTIONS]
    for spec in OPTIONS:
        option = by_dest[spec.dest]
        assert option.default is None
        assert tuple(option.names()) == spec.flags
    registered_ini = set(parser._inidict)
    assert {spec.ini for spec in OPTIONS if spec.ini} <= registered_ini
    assert "cilium_upgrade_upgrade" not in registered_ini  # --cilium-upgrade is CLI only


def test_options_do_not_clash_with_pytest_kubernetes(
    pytester: pytest.Pytester, make_config: Callable[..., pytest.Config]
) -> None:
    pytest.importorskip("pytest_kubernetes")
    config = make_config("--k8s-kubeconfig=x", "--cilium-phase=pre")
    assert config.getoption("k8s_kubeconfig") == "x"
    assert config.getoption("cilium_phase") == "pre"


def test_help_lists_the_options(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    result = pytester.runpytest(*NO_PLUGIN, "--help")
    result.stdout.fnmatch_lines(
        [
            "Cilium upgrade gate:",
            "*--cilium-phase=*",
            "*--cilium-allow-downgrade, --no-cilium-allow-downgrade*",
            "*cilium_upgrade_phase*",
        ]
    )


def test_the_installed_plugin_registers_through_settings(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfig()
    if not hasattr(config.option, "cilium_phase"):
        pytest.skip("the installed plugin does not call options.register yet")
    assert config.getoption("cilium_upgrade") is None
    assert Settings.from_config(config, {"HOME": str(pytester.path)}).phase == "all"


def test_parse_bool_directly() -> None:
    assert parse_bool(True) is True
    assert parse_bool(0) is False
    with pytest.raises(ValueError, match="is not a boolean"):
        parse_bool(2)
    with pytest.raises(ValueError, match="is not a boolean"):
        parse_bool(None)


def test_usage_error_is_reported_by_pytest(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeconftest(
        CONFTEST
        + """

from pytest_cilium_upgrade.gate.settings import Settings


def pytest_configure(config):
    Settings.from_config(config)
"""
    )
    pytester.makepyfile("def test_never_runs(): pass")
    monkeypatch.setenv("CILIUM_UPGRADE_PREFLIGHT_COVERAGE", "loose")
    result = pytester.runpytest(*NO_PLUGIN)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: --cilium-preflight-coverage: 'loose' is not one of warn, strict"
            " (from environment variable CILIUM_UPGRADE_PREFLIGHT_COVERAGE)"
        ]
    )


# --------------------------------------------------------------------------- the scripted upgrade


def test_repeatable_upgrade_options_from_each_source(
    make_settings: MakeSettings, pytester: pytest.Pytester
) -> None:
    s = make_settings(
        "--cilium-perform-upgrade",
        "--cilium-target-version=1.16.5",
        "--cilium-set=a.b=1",
        "--cilium-set=c=x,y",
        "--cilium-values-file=extra.yaml",
    )
    assert s.set == ("a.b=1", "c=x,y")
    assert s.values_file == (pytester.path / "extra.yaml",)
    env = {
        "CILIUM_UPGRADE_SET": "k=v\n  m=n  \n",
        "CILIUM_UPGRADE_PERFORM_UPGRADE": "yes",
        "CILIUM_UPGRADE_TARGET_VERSION": "v1.16.5",
    }
    assert make_settings(env=env).set == ("k=v", "m=n")
    assert make_settings().set == ()


def test_bad_set_item_names_the_option(make_settings: MakeSettings) -> None:
    message = usage_error(
        make_settings,
        "--cilium-perform-upgrade",
        "--cilium-target-version=1.16.5",
        "--cilium-set=novalue",
    )
    assert message.startswith("--cilium-set: 'novalue' is not KEY=VALUE")
    assert "(from the command line)" in message


def test_perform_upgrade_needs_a_target_and_every_phase(make_settings: MakeSettings) -> None:
    assert "needs --cilium-target-version" in usage_error(make_settings, "--cilium-perform-upgrade")
    message = usage_error(
        make_settings,
        "--cilium-perform-upgrade",
        "--cilium-target-version=1.16.5",
        "--cilium-phase=pre",
    )
    assert "runs every phase" in message


@pytest.mark.parametrize("option", ["--cilium-dry-run", "--cilium-keep-preflight"])
def test_upgrade_only_options_need_perform_upgrade(
    make_settings: MakeSettings, option: str
) -> None:
    assert "only applies with --cilium-perform-upgrade" in usage_error(make_settings, option)
    assert "only applies with" in usage_error(make_settings, option, "--cilium-phase=post")


@pytest.mark.parametrize(
    "option",
    ["--cilium-set=a=b", "--cilium-values-file=x.yaml", "--cilium-upgrade-compatibility=1.14"],
)
def test_the_upgrades_values_go_with_a_performed_upgrade_or_a_single_phase(
    make_settings: MakeSettings, option: str
) -> None:
    # pre renders the target with them and records them; post judges the values by them
    for phase in ("pre", "post"):
        make_settings(option, f"--cilium-phase={phase}")
    make_settings(option, "--cilium-perform-upgrade", "--cilium-target-version=1.16.5")
    # pre and post in one run have no upgrade between them to add the values
    message = usage_error(make_settings, option)
    assert "describes the upgrade" in message
    assert "--cilium-phase pre or post" in message


def test_upgrade_compatibility_is_a_version(make_settings: MakeSettings) -> None:
    base = ("--cilium-perform-upgrade", "--cilium-target-version=1.16.5")
    assert (
        make_settings(*base, "--cilium-upgrade-compatibility=v1.14").upgrade_compatibility == "1.14"
    )
    assert "is not a Cilium version" in usage_error(
        make_settings, *base, "--cilium-upgrade-compatibility=latest"
    )
