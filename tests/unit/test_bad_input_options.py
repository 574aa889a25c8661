"""Bad input in the options and the files they name: timeouts, the kubeconfig, the state
file, the chart and the values files. Each ends with one line naming the option or the
file, before anything is read from the cluster where it can be told at start-up.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from bad_input_fakes import Case, Env, FakeApi, api, doc_rows, run_case, write_kubeconfig

pytest_plugins = ["pytester"]
__all__ = ["api"]  # the fixture, for the tests below

USAGE = 4  # pytest's exit status for a usage error
PRE = ("--cilium-phase=pre", "-k", "cluster_reachable")
POST = ("--cilium-phase=post",)
DRY_RUN = ("--cilium-perform-upgrade", "--cilium-dry-run", "--cilium-target-version=1.16.15")


def _kubeconfig(text: str) -> Callable[[Env], list[str]]:
    def prepare(env: Env) -> list[str]:
        return [f"--cilium-kubeconfig={env.file('kubeconfig-bad', text)}"]

    return prepare


def _state(data: object) -> Callable[[Env], list[str]]:
    def prepare(env: Env) -> list[str]:
        text = data if isinstance(data, str) else json.dumps(data)
        return [f"--cilium-state-file={env.file('state-bad.json', text)}"]

    return prepare


def _file_arg(option: str, name: str, text: str | None) -> Callable[[Env], list[str]]:
    """``option`` naming a file ``name`` of the run (``text`` None: a directory)."""

    def prepare(env: Env) -> list[str]:
        target = env.path / name
        if text is None:
            target.mkdir()
        else:
            target.write_text(text)
        return [f"{option}={target}"]

    return prepare


STATE = {
    "version": 1,
    "namespace": "kube-system",
    "release": "cilium",
    "revision": 3,
    "chart_version": "1.15.18",
    "target_version": "1.16.15",
    "agent_restarts": {},
}

CL = "(from the command line)"
CASES = (
    Case(
        "request-timeout-too-large",
        "`--cilium-request-timeout=1e10`",
        f"ERROR: --cilium-request-timeout: '1e10' is more than a week (604800 seconds) {CL}",
        exit=USAGE,
        args=("--cilium-request-timeout=1e10",),
    ),
    Case(
        "timeout-too-large",
        "`--cilium-timeout=9999999`",
        f"ERROR: --cilium-timeout: '9999999' is more than a week (604800 seconds) {CL}",
        exit=USAGE,
        args=("--cilium-timeout=9999999",),
    ),
    Case(
        "timeout-not-a-number",
        "`--cilium-timeout=soon`",
        f"ERROR: --cilium-timeout: 'soon' is not a number of seconds {CL}",
        exit=USAGE,
        args=("--cilium-timeout=soon",),
    ),
    Case(
        "timeout-zero",
        "`--cilium-timeout=0`",
        f"ERROR: --cilium-timeout: '0' is not a positive number of seconds {CL}",
        exit=USAGE,
        args=("--cilium-timeout=0",),
    ),
    Case(
        "request-timeout-nan",
        "`--cilium-request-timeout=nan`",
        f"ERROR: --cilium-request-timeout: 'nan' is not a positive number of seconds {CL}",
        exit=USAGE,
        args=("--cilium-request-timeout=nan",),
    ),
    Case(
        "kubeconfig-yaml-list",
        "`--cilium-phase=pre --cilium-kubeconfig=<path>`, a YAML list",
        "cannot read kubeconfig <dir>/kubeconfig-bad: it holds a YAML list, not a kubeconfig"
        " (a mapping with clusters, contexts and users)",
        args=PRE,
        prepare=_kubeconfig("- clusters\n- users\n"),
    ),
    Case(
        "kubeconfig-yaml-scalar",
        "`--cilium-phase=pre --cilium-kubeconfig=<path>`, a YAML string",
        "cannot read kubeconfig <dir>/kubeconfig-bad: it holds a YAML str scalar, not a"
        " kubeconfig (a mapping with clusters, contexts and users)",
        args=PRE,
        prepare=_kubeconfig("https://10.0.0.1:6443\n"),
    ),
    Case(
        "kubeconfig-empty",
        "`--cilium-phase=pre --cilium-kubeconfig=<path>`, an empty file",
        "cannot use kubeconfig <dir>/kubeconfig-bad: Invalid kube-config."
        " <dir>/kubeconfig-bad file is empty",
        args=PRE,
        prepare=_kubeconfig(""),
    ),
    Case(
        "state-file-of-other-types",
        "`--cilium-phase=post --cilium-state-file=<path>`, its `revision` a string",
        f"ERROR: --cilium-state-file {CL}: state file <dir>/state-bad.json is malformed:"
        " revision is a str; run the pre phase again",
        exit=USAGE,
        args=POST,
        prepare=_state({**STATE, "revision": "three"}),
    ),
    Case(
        "state-file-restarts-of-other-types",
        "`--cilium-phase=post --cilium-state-file=<path>`, a restart count a string",
        f"ERROR: --cilium-state-file {CL}: state file <dir>/state-bad.json is malformed:"
        " agent_restarts is not a mapping of pod names to restart counts; run the pre phase"
        " again",
        exit=USAGE,
        args=POST,
        prepare=_state({**STATE, "agent_restarts": {"cilium-x": "many"}}),
    ),
    Case(
        "state-file-not-json",
        "`--cilium-phase=post --cilium-state-file=<path>`, not JSON",
        f"ERROR: --cilium-state-file {CL}: cannot read state file <dir>/state-bad.json:"
        " Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        exit=USAGE,
        args=POST,
        prepare=_state("{not json"),
    ),
    Case(
        "state-file-of-another-tool",
        "`--cilium-phase=post --cilium-state-file=<path>`, another tool's JSON",
        f"ERROR: --cilium-state-file {CL}: state file <dir>/state-bad.json is not a"
        " pytest-cilium-upgrade state file",
        exit=USAGE,
        args=POST,
        prepare=_state({"apiVersion": "v1", "kind": "Config"}),
    ),
    Case(
        "chart-path-missing",
        "`--cilium-chart=/nonexistent/charts`",
        f"ERROR: --cilium-chart {CL}: chart path /nonexistent/charts does not exist",
        exit=USAGE,
        args=("--cilium-chart=/nonexistent/charts",),
    ),
    Case(
        "chart-plain-file",
        "`--cilium-chart=<path>`, a text file",
        f"ERROR: --cilium-chart {CL}: chart path <dir>/notes.txt is a file but not a packaged"
        " chart (.tgz)",
        exit=USAGE,
        prepare=_file_arg("--cilium-chart", "notes.txt", "not a chart\n"),
    ),
    Case(
        "chart-nonsense",
        "`--cilium-chart=nonsense`",
        f"ERROR: --cilium-chart {CL}: chart source 'nonsense' is neither a Helm repo chart"
        " reference (<repo>/<chart>, e.g. cilium/cilium) nor an existing chart directory or .tgz",
        exit=USAGE,
        args=("--cilium-chart=nonsense",),
    ),
    Case(
        "chart-empty-directory",
        "`--cilium-chart=<path>`, an empty directory",
        f"ERROR: --cilium-chart {CL}: chart directory <dir>/charts holds no chart versions:"
        " expected <dir>/charts/<version>/Chart.yaml",
        exit=USAGE,
        prepare=_file_arg("--cilium-chart", "charts", None),
    ),
    Case(
        "chart-tgz-not-a-chart",
        "`--cilium-chart=<path>.tgz`, a text file",
        f"ERROR: --cilium-chart {CL}: <dir>/cilium-1.16.15.tgz is not a packaged Helm chart:"
        " file could not be opened successfully:",
        exit=USAGE,
        prepare=_file_arg("--cilium-chart", "cilium-1.16.15.tgz", "plain text\n"),
    ),
    Case(
        "dry-run-values-file-missing",
        f"`{' '.join(DRY_RUN)} --cilium-values-file=/nonexistent/extra.yaml`",
        f"ERROR: --cilium-values-file {CL}: cannot read values file /nonexistent/extra.yaml:"
        " No such file or directory",
        exit=USAGE,
        args=(*DRY_RUN, "--cilium-values-file=/nonexistent/extra.yaml"),
    ),
    Case(
        "dry-run-values-file-malformed",
        f"`{' '.join(DRY_RUN)} --cilium-values-file=<path>`, not YAML",
        f"ERROR: --cilium-values-file {CL}: values file <dir>/extra.yaml is not valid YAML at"
        " line 2, column 1",
        exit=USAGE,
        args=DRY_RUN,
        prepare=_file_arg("--cilium-values-file", "extra.yaml", "hubble: [unclosed\n"),
    ),
    Case(
        "dry-run-kubeconfig-missing",
        f"`{' '.join(DRY_RUN)} --cilium-kubeconfig=/nonexistent/kubeconfig`",
        "cluster or helm not usable: cannot use kubeconfig /nonexistent/kubeconfig: Invalid"
        " kube-config file. No configuration found.",
        args=(*DRY_RUN, "--cilium-kubeconfig=/nonexistent/kubeconfig"),
    ),
    Case(
        "values-file-a-list",
        "`--cilium-perform-upgrade --cilium-target-version=1.16.15 --cilium-values-file=<path>`,"
        " a YAML list",
        f"ERROR: --cilium-values-file {CL}: values file <dir>/extra.yaml holds a list, not a"
        " mapping of values",
        exit=USAGE,
        args=("--cilium-perform-upgrade", "--cilium-target-version=1.16.15"),
        prepare=_file_arg("--cilium-values-file", "extra.yaml", "- hubble\n- relay\n"),
    ),
    Case(
        "max-agent-restarts-negative",
        "`--cilium-max-agent-restarts=-1`",
        f"ERROR: --cilium-max-agent-restarts: -1 is negative (must be 0 or more) {CL}",
        exit=USAGE,
        args=("--cilium-max-agent-restarts=-1",),
    ),
    Case(
        "preflight-coverage-unknown",
        "`--cilium-preflight-coverage=loose`",
        f"ERROR: --cilium-preflight-coverage: 'loose' is not one of warn, strict {CL}",
        exit=USAGE,
        args=("--cilium-preflight-coverage=loose",),
    ),
    Case(
        "target-version-partial",
        "`--cilium-target-version=1.16`",
        "ERROR: --cilium-target-version: '1.16' is not a semantic version (for example 1.16.5"
        f" or v1.16.5) {CL}",
        exit=USAGE,
        args=("--cilium-target-version=1.16",),
    ),
)


@pytest.fixture
def env(api: FakeApi, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Env:
    monkeypatch.delenv("HELM_DRIVER", raising=False)
    return Env(api, Path(pytester.path), monkeypatch)


def test_the_reliability_doc_lists_every_case() -> None:
    assert doc_rows("Bad input: options and the files they name") == [c.row for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_options_and_files_get_one_clear_line(
    case: Case, env: Env, pytester: pytest.Pytester
) -> None:
    write_kubeconfig(env.path / "kubeconfig", env.api.url)
    outcome = run_case(case, pytester, env)
    if case.exit == USAGE:
        assert env.api.requests == []  # refused before the cluster is read
    else:
        failed = [ln for ln in outcome.text.splitlines() if ln.startswith("FAILED ")]
        assert len(failed) >= 1, outcome.text
    if case.id.startswith("kubeconfig-"):
        # headlined by the cause, not as an API server that is away
        assert "\nkubeconfig not usable\n" in outcome.text, outcome.text
        assert "cluster unreachable" not in outcome.text
