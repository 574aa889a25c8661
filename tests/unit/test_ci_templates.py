"""The CI templates in ci/ for users' pipelines: valid, pinned, and using real options.

The templates need Docker and a network to run, so here they are checked statically:

* the GitHub workflows with actionlint (which runs shellcheck on their ``run:``
  scripts when shellcheck is there), as a user's repository would hold them;
* the GitLab template against GitLab's CI schema (vendored by check-jsonschema) and
  its scripts with shellcheck;
* every ``--cilium-...`` option they use against the plugin's option table;
* the kind cluster they create is the project's ``kind-config.yaml``.

Each checker is also shown failing on a deliberately broken copy.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_cilium_upgrade.options import OPTIONS

ROOT = Path(__file__).resolve().parents[2]
CI = ROOT / "ci"
GITHUB_WORKFLOW = CI / "github" / "cilium-upgrade.yml"
GITHUB_CALLER = CI / "github" / "example-caller.yml"
GITLAB_TEMPLATE = CI / "gitlab" / "cilium-upgrade.gitlab-ci.yml"
CI_README = CI / "README.md"
KIND_CONFIG = ROOT / "kind-config.yaml"
TEMPLATES = (GITHUB_WORKFLOW, GITHUB_CALLER, GITLAB_TEMPLATE)

GITLAB_BASE_JOB = ".cilium-upgrade-kind"
GITLAB_JOBS = (".cilium-upgrade", ".cilium-upgrade-phases", "cilium-upgrade")

TOOL_TIMEOUT = 120
PINNED_TAG = re.compile(r"^[\w.-]+/[\w./-]+@v\d+(\.\d+){0,2}$")
GATE_FLAG = re.compile(r"--(?:no-)?cilium-[a-z0-9]+(?:-[a-z0-9]+)*")


def load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path} is not a YAML mapping"
    return data


def triggers(workflow: dict[Any, Any]) -> Any:
    # YAML 1.1 reads the key "on" as the boolean true.
    return workflow.get("on", workflow.get(True))


def tool(name: str) -> str | None:
    """An executable from this interpreter's environment first, then from PATH."""
    return shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)


def replaced(text: str, old: str, new: str) -> str:
    assert old in text, f"{old!r} is not in the template any more: update the broken copy"
    return text.replace(old, new, 1)


def steps_using(workflow: dict[str, Any], action: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for job in workflow["jobs"].values():
        for step in job.get("steps", []):
            if str(step.get("uses", "")).startswith(action + "@"):
                found.append(step)
    return found


# --------------------------------------------------------------------------- kind-config.yaml


def test_kind_config_is_a_kube_proxy_free_cluster_without_cni() -> None:
    config = load(KIND_CONFIG)
    assert (config["kind"], config["apiVersion"]) == ("Cluster", "kind.x-k8s.io/v1alpha4")
    assert config["networking"] == {"disableDefaultCNI": True, "kubeProxyMode": "none"}
    roles = [node["role"] for node in config["nodes"]]
    assert roles.count("control-plane") == 1
    assert roles.count("worker") >= 1


def test_github_workflow_creates_the_cluster_from_kind_config() -> None:
    workflow = load(GITHUB_WORKFLOW)
    inputs = triggers(workflow)["workflow_call"]["inputs"]
    assert inputs["kind-config"]["default"] == KIND_CONFIG.name
    # The API server address Cilium is given is <cluster name>-control-plane.
    assert inputs["cluster-name"]["default"] == load(KIND_CONFIG)["name"]
    (kind,) = steps_using(workflow, "helm/kind-action")
    assert kind["with"]["config"] == "${{ inputs.kind-config }}"
    assert kind["with"]["cluster_name"] == "${{ inputs.cluster-name }}"
    text = GITHUB_WORKFLOW.read_text(encoding="utf-8")
    assert '"k8sServiceHost=$KIND_CLUSTER-control-plane" --set k8sServicePort=6443' in text


def test_gitlab_template_creates_the_cluster_from_kind_config() -> None:
    variables = load(GITLAB_TEMPLATE)[GITLAB_BASE_JOB]["variables"]
    assert variables["KIND_CONFIG"] == KIND_CONFIG.name
    assert variables["KIND_CLUSTER"] == load(KIND_CONFIG)["name"]
    text = GITLAB_TEMPLATE.read_text(encoding="utf-8")
    assert '"k8sServiceHost=$KIND_CLUSTER-control-plane" --set k8sServicePort=6443' in text


# --------------------------------------------------------------------------- options


def test_every_gate_option_in_ci_exists() -> None:
    known = {flag for spec in OPTIONS for flag in spec.flags}
    used: dict[str, set[str]] = {}
    for path in (*TEMPLATES, CI_README):
        for flag in GATE_FLAG.findall(path.read_text(encoding="utf-8")):
            used.setdefault(flag, set()).add(str(path.relative_to(ROOT)))
    assert "--cilium-upgrade" in used
    unknown = {flag: sorted(paths) for flag, paths in sorted(used.items()) if flag not in known}
    assert not unknown, (
        "options used in ci/ that pytest_cilium_upgrade.options.OPTIONS does not define: "
        + "; ".join(f"{flag} (in {', '.join(paths)})" for flag, paths in unknown.items())
    )


# --------------------------------------------------------------------------- GitHub Actions


def test_github_actions_are_pinned_by_tag() -> None:
    for path in (GITHUB_WORKFLOW, GITHUB_CALLER):
        for job in load(path)["jobs"].values():
            uses = [step["uses"] for step in job.get("steps", []) if "uses" in step]
            if "uses" in job:
                uses.append(job["uses"])
            for ref in uses:
                if not ref.startswith("./"):
                    assert PINNED_TAG.match(ref), f"{path.name}: {ref} is not pinned by tag"


def test_github_reporting_steps_always_run() -> None:
    steps = load(GITHUB_WORKFLOW)["jobs"]["upgrade"]["steps"]
    by_name = {step["name"]: step for step in steps}
    for name in (
        "Record the cluster state",
        "Publish the JUnit report",
        "Upload the reports",
        "Delete the kind cluster",
    ):
        assert by_name[name]["if"] == "always()", name
    assert by_name["Merge the JUnit reports"]["if"].startswith("${{ always() &&")


def test_github_example_matrix_is_valid_json() -> None:
    for job in load(GITHUB_CALLER)["jobs"].values():
        entries = json.loads(job["with"]["matrix"])
        assert entries
        for entry in entries:
            assert {"from", "to"} <= entry.keys() <= {"from", "to", "node-image"}


@dataclass(frozen=True)
class Lint:
    """A user's repository holding the workflows, and actionlint to check it."""

    root: Path
    actionlint: str
    shellcheck: str | None

    @property
    def workflows(self) -> Path:
        return self.root / ".github" / "workflows"

    def run(self) -> subprocess.CompletedProcess[str]:
        files = sorted(str(p.relative_to(self.root)) for p in self.workflows.glob("*.yml"))
        return subprocess.run(
            [
                self.actionlint,
                "-no-color",
                "-oneline",
                f"-shellcheck={self.shellcheck or ''}",
                "-pyflakes=",
                *files,
            ],
            cwd=self.root,
            capture_output=True,
            text=True,
            check=False,
            timeout=TOOL_TIMEOUT,
        )

    def edit(self, name: str, change: Callable[[str], str]) -> None:
        path = self.workflows / name
        path.write_text(change(path.read_text(encoding="utf-8")), encoding="utf-8")


@pytest.fixture
def lint(tmp_path: Path) -> Lint:
    actionlint = tool("actionlint")
    if actionlint is None:
        pytest.skip(
            f"actionlint is not installed (not in {Path(sys.executable).parent} nor on PATH):"
            " install the test extra to lint the GitHub workflows"
        )
    # GitHub runs reusable workflows from .github/workflows/ only; with a .git directory
    # actionlint finds the project root and checks the caller's inputs against the callee.
    root = tmp_path / "repo"
    workflows = root / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (root / ".git").mkdir()
    for path in (GITHUB_WORKFLOW, GITHUB_CALLER):
        shutil.copy(path, workflows / path.name)
    return Lint(root, actionlint, tool("shellcheck"))


def test_github_workflows_pass_actionlint(lint: Lint) -> None:
    result = lint.run()
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("name", "change", "expected"),
    [
        pytest.param(
            GITHUB_WORKFLOW.name,
            lambda text: replaced(text, "    runs-on: ubuntu-24.04\n", ""),
            '"runs-on" section is missing in job "upgrade"',
            id="job-without-runner",
        ),
        pytest.param(
            GITHUB_WORKFLOW.name,
            lambda text: replaced(text, "${{ inputs.helm-version }}", "${{ inputs.helm-release }}"),
            'property "helm-release" is not defined',
            id="undefined-input",
        ),
        pytest.param(
            GITHUB_CALLER.name,
            lambda text: replaced(
                text, "      mode: phases\n", "      mode: phases\n      modes: x\n"
            ),
            'input "modes" is not defined',
            id="caller-passes-unknown-input",
        ),
        pytest.param(
            GITHUB_CALLER.name,
            lambda text: replaced(text, "      matrix: >-\n", "      matrix-json: >-\n"),
            'input "matrix" is required',
            id="caller-misses-required-input",
        ),
    ],
)
def test_actionlint_fails_on_a_broken_workflow(
    lint: Lint, name: str, change: Callable[[str], str], expected: str
) -> None:
    lint.edit(name, change)
    result = lint.run()
    assert result.returncode == 1, result.stdout + result.stderr
    assert expected in result.stdout


def test_actionlint_runs_shellcheck_on_the_scripts(lint: Lint) -> None:
    if lint.shellcheck is None:
        pytest.skip("shellcheck is not installed: the run: scripts are linted without it")
    lint.edit(
        GITHUB_WORKFLOW.name,
        lambda text: replaced(
            text,
            'run: kind delete cluster --name "$KIND_CLUSTER"',
            "run: kind delete cluster --name $KIND_CLUSTER",
        ),
    )
    result = lint.run()
    assert result.returncode == 1, result.stdout + result.stderr
    assert "SC2086" in result.stdout


# --------------------------------------------------------------------------- GitLab CI


def resolve_extends(template: dict[Any, Any], name: str) -> dict[Any, Any]:
    """A job with its ``extends:`` chain merged in as GitLab does (hashes deeply)."""

    def merge(base: dict[Any, Any], override: dict[Any, Any]) -> dict[Any, Any]:
        out = copy.deepcopy(base)
        for key, value in override.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
        return out

    job = template[name]
    if "extends" not in job:
        return copy.deepcopy(job)
    own = {key: value for key, value in job.items() if key != "extends"}
    return merge(resolve_extends(template, job["extends"]), own)


def check_gitlab_schema(path: Path, workdir: Path) -> subprocess.CompletedProcess[str]:
    """Validate the template, and each of its jobs with extends resolved.

    The schema accepts anything under a hidden key (``.name``), so the hidden jobs
    are checked as the visible jobs that extend them: ``cilium-upgrade`` and one
    job per hidden job, written to ``workdir/resolved.gitlab-ci.yml``.
    """
    pytest.importorskip(
        "check_jsonschema",
        reason="check-jsonschema is not installed: install the test extra to validate the"
        " GitLab template against GitLab's CI schema",
    )
    template = yaml.safe_load(path.read_text(encoding="utf-8"))
    resolved = {name.lstrip("."): resolve_extends(template, name) for name in GITLAB_JOBS}
    resolved_path = workdir / "resolved.gitlab-ci.yml"
    resolved_path.write_text(yaml.safe_dump(resolved, sort_keys=False), encoding="utf-8")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.gitlab-ci",
            str(path),
            str(resolved_path),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=TOOL_TIMEOUT,
    )


def test_gitlab_template_matches_gitlab_schema(tmp_path: Path) -> None:
    result = check_gitlab_schema(GITLAB_TEMPLATE, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            lambda text: replaced(text, "    when: always\n", "    when: sometimes\n"),
            "'sometimes' is not one of",
            id="artifacts-when",
        ),
        pytest.param(
            lambda text: replaced(
                text, "      - cilium-upgrade-report/\n", "      cilium-upgrade-report: yes\n"
            ),
            "artifacts.paths",
            id="artifact-paths-not-a-list",
        ),
        pytest.param(
            lambda text: replaced(text, "  timeout: 1h\n", "  timeout: [1h]\n"),
            "timeout",
            id="timeout-not-a-duration",
        ),
        pytest.param(
            lambda text: replaced(
                text, "  parallel:\n    matrix:\n", "  parallel:\n    matrices:\n"
            ),
            "parallel",
            id="parallel-matrix-misspelt",
        ),
    ],
)
def test_gitlab_schema_check_fails_on_a_broken_template(
    tmp_path: Path, change: Callable[[str], str], expected: str
) -> None:
    broken = tmp_path / GITLAB_TEMPLATE.name
    broken.write_text(change(GITLAB_TEMPLATE.read_text(encoding="utf-8")), encoding="utf-8")
    result = check_gitlab_schema(broken, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert expected in result.stdout + result.stderr


def test_gitlab_jobs_extend_jobs_of_the_template() -> None:
    template = load(GITLAB_TEMPLATE)
    for name in GITLAB_JOBS:
        job, seen = template[name], [name]
        while "extends" in job:
            parent = job["extends"]
            assert parent in template, f"{seen[-1]} extends {parent}, which is not in the template"
            seen.append(parent)
            job = template[parent]
        assert seen[-1] == GITLAB_BASE_JOB
    base = template[GITLAB_BASE_JOB]
    assert base["artifacts"]["when"] == "always"
    assert base["artifacts"]["reports"]["junit"] == "cilium-upgrade-report/junit.xml"
    for entry in template["cilium-upgrade"]["parallel"]["matrix"]:
        assert {"CILIUM_FROM", "CILIUM_TO"} <= entry.keys()


def gitlab_scripts(template: dict[str, Any]) -> dict[str, str]:
    """Each job's shell session as the runner runs it: before_script then script."""
    base = template[GITLAB_BASE_JOB]
    scripts = {"after_script": "\n".join(base["after_script"])}
    for name in (".cilium-upgrade", ".cilium-upgrade-phases"):
        scripts[name] = "\n".join([*base["before_script"], *template[name]["script"]])
    return scripts


def shellcheck_sh(script: str) -> subprocess.CompletedProcess[str]:
    shellcheck = tool("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed: install the test extra to check the scripts")
    return subprocess.run(
        # SC2329: the shared before_script defines gate and gate_perform; each job calls one.
        [shellcheck, "--shell=sh", "--format=gcc", "--exclude=SC2329", "-"],
        input=script,
        capture_output=True,
        text=True,
        check=False,
        timeout=TOOL_TIMEOUT,
    )


def test_gitlab_scripts_pass_shellcheck() -> None:
    for name, script in gitlab_scripts(load(GITLAB_TEMPLATE)).items():
        result = shellcheck_sh(script)
        assert result.returncode == 0, f"{name}:\n{result.stdout}{result.stderr}"


def test_shellcheck_fails_on_an_unquoted_variable() -> None:
    text = replaced(
        GITLAB_TEMPLATE.read_text(encoding="utf-8"),
        'kind delete cluster --name "$KIND_CLUSTER" || true',
        "kind delete cluster --name $KIND_CLUSTER || true",
    )
    script = gitlab_scripts(yaml.safe_load(text))["after_script"]
    result = shellcheck_sh(script)
    assert result.returncode == 1
    assert "SC2086" in result.stdout
