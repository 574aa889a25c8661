"""The CI entry points for users' pipelines: where they live, valid, pinned, using real
options, and a cancel reaching the gate.

* GitHub: ``action.yml`` against the action metadata schema, the reusable workflow and
  the caller example against the workflow schema and with actionlint (shellcheck on
  their ``run:`` scripts), as a user's repository would hold them;
* GitLab: the component's ``spec:inputs`` header checked (and against GitLab's schema),
  its jobs and the caller example's pipeline validated against GitLab's CI schema with
  the inputs interpolated and ``extends:`` resolved;
* shellcheck on every script (``ci/scripts/`` with bash, the component's with sh);
* every ``--cilium-...`` option and ``CILIUM_UPGRADE_...`` variable they use exists;
* a SIGINT/SIGTERM sent to the step's shell reaches pytest (the gate step of the
  action run as GitHub runs it, the GitLab job's script run as a runner runs it).

Each checker is also shown failing on a deliberately broken copy. The steps are run
against a real cluster in tests/sandbox/test_ci_scripts.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from ci_runner import (
    ComponentError,
    Context,
    GitHubJob,
    as_list,
    as_mapping,
    component_documents,
    header_problems,
    include_component,
    job_environment,
    job_script,
    load_yaml,
    pipeline,
    resolve_job,
    workflow_triggers,
)
from kubeconfigs import write_kubeconfig

from pytest_cilium_upgrade.options import OPTIONS

ROOT = Path(__file__).resolve().parents[2]
ACTION = ROOT / "action.yml"
WORKFLOW = ROOT / ".github" / "workflows" / "cilium-upgrade.yml"
GITHUB_CALLER = ROOT / "ci" / "github" / "example-caller.yml"
COMPONENT = ROOT / "templates" / "cilium-upgrade.yml"
GITLAB_CALLER = ROOT / "ci" / "gitlab" / "example-caller.yml"
SCRIPTS = ROOT / "ci" / "scripts"
CI_README = ROOT / "ci" / "README.md"
README = ROOT / "README.md"
KIND_CONFIG = ROOT / "kind-config.yaml"
GITHUB_FILES = (ACTION, WORKFLOW, GITHUB_CALLER)
GITLAB_FILES = (COMPONENT, GITLAB_CALLER)

# The reference callers use for this repository; the account is theirs to fill in.
SELF_WORKFLOW = "OWNER/pytest-cilium-upgrade/.github/workflows/cilium-upgrade.yml@v1"
SELF_ACTION = "OWNER/pytest-cilium-upgrade@v1"
COMPONENT_REF = "$CI_SERVER_FQDN/platform/pytest-cilium-upgrade/cilium-upgrade@1.0.0"
# The gate checkout of the reusable workflow, the local action it runs.
GATE_CHECKOUT = ".cilium-upgrade-gate"

TOOL_TIMEOUT = 120
SIGNAL_TIMEOUT = 60.0
GATE_FLAG = re.compile(r"--(?:no-)?cilium-[a-z0-9]+(?:-[a-z0-9]+)*")
GATE_ENV = re.compile(r"\bCILIUM_UPGRADE_[A-Z0-9_]+")
PINNED = re.compile(r"uses:\s*([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # (v\d+\.\d+\.\d+)\s*$")
DIGEST = re.compile(r"^kindest/node:v\d+\.\d+\.\d+@sha256:[0-9a-f]{64}$")

# Each third-party action at one release, the same commit everywhere.
PINS = {
    "actions/checkout": ("3d3c42e5aac5ba805825da76410c181273ba90b1", "v7.0.1"),
    "actions/setup-python": ("5fda3b95a4ea91299a34e894583c3862153e4b97", "v7.0.0"),
    "actions/upload-artifact": ("043fb46d1a93c77aae656e7c1c64a875d1fc6a0a", "v7.0.1"),
    "azure/setup-helm": ("dda3372f752e03dde6b3237bc9431cdc2f7a02a2", "v5.0.0"),
    "azure/setup-kubectl": ("829323503d1be3d00ca8346e5391ca0b07a9ab0d", "v5.1.0"),
    "helm/kind-action": ("ef37e7f390d99f746eb8b610417061a60e82a6cc", "v1.14.0"),
}


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def tool(name: str) -> str | None:
    """An executable from this interpreter's environment first, then from PATH."""
    return shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)


def replaced(source: str, old: str, new: str) -> str:
    assert old in source, f"{old!r} is not in the file any more: update the broken copy"
    return source.replace(old, new, 1)


def run_tool(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, check=False, timeout=TOOL_TIMEOUT
    )


def steps_of(path: Path, job: str | None = None) -> list[dict[str, object]]:
    data = load_yaml(path)
    if job is None:
        raw = as_mapping(data["runs"], "runs")["steps"]
    else:
        raw = as_mapping(as_mapping(data["jobs"], "jobs")[job], job)["steps"]
    return [as_mapping(step, "step") for step in as_list(raw, "steps")]


def step_by(steps: list[dict[str, object]], **match: str) -> dict[str, object]:
    found = [s for s in steps if all(str(s.get(k, "")).startswith(v) for k, v in match.items())]
    assert len(found) == 1, f"{match}: {len(found)} steps"
    return found[0]


# --------------------------------------------------------------------------- layout


def test_entry_points_sit_where_the_ci_systems_look() -> None:
    assert ACTION.is_file()  # uses: OWNER/REPO@REF reads action.yml at the root
    assert WORKFLOW.is_file()  # reusable workflows run from .github/workflows only
    assert COMPONENT.is_file()  # a component is templates/<name>.yml
    assert "workflow_call" in workflow_triggers(load_yaml(WORKFLOW))
    # ci/ keeps the documentation, the caller examples and the scripts they share
    assert sorted(p.relative_to(ROOT / "ci").as_posix() for p in (ROOT / "ci").rglob("*.*")) == [
        "README.md",
        "github/example-caller.yml",
        "gitlab/example-caller.yml",
        "scripts/gitlab-job.sh",
        "scripts/install-cilium.sh",
        "scripts/install-gate.sh",
        "scripts/run-gate.sh",
    ]


def test_every_script_a_template_runs_exists() -> None:
    mentioned: set[str] = set()
    for path in (*GITHUB_FILES, *GITLAB_FILES, *SCRIPTS.glob("*.sh")):
        mentioned.update(re.findall(r"ci/scripts/([\w.-]+\.sh)", text(path)))
    assert mentioned == {p.name for p in SCRIPTS.glob("*.sh")}


# --------------------------------------------------------------------------- kind-config.yaml


def test_kind_config_is_a_kube_proxy_free_cluster_without_cni() -> None:
    config = load_yaml(KIND_CONFIG)
    assert (config["kind"], config["apiVersion"]) == ("Cluster", "kind.x-k8s.io/v1alpha4")
    assert config["networking"] == {"disableDefaultCNI": True, "kubeProxyMode": "none"}
    roles = [as_mapping(node, "node")["role"] for node in as_list(config["nodes"], "nodes")]
    assert roles.count("control-plane") == 1
    assert roles.count("worker") >= 1


def test_clusters_are_created_from_kind_config_and_named_as_it_says() -> None:
    name = load_yaml(KIND_CONFIG)["name"]
    inputs = as_mapping(
        as_mapping(workflow_triggers(load_yaml(WORKFLOW))["workflow_call"], "call")["inputs"],
        "inputs",
    )
    assert as_mapping(inputs["cluster-name"], "cluster-name")["default"] == name
    assert as_mapping(inputs["kind-config"], "kind-config")["default"] == ""
    settings = step_by(steps_of(WORKFLOW, "upgrade"), id="settings")
    assert "config=$GITHUB_WORKSPACE/$GATE_CHECKOUT/kind-config.yaml" in str(settings["run"])
    kind = step_by(steps_of(WORKFLOW, "upgrade"), uses="helm/kind-action@")
    assert as_mapping(kind["with"], "with")["config"] == "${{ steps.settings.outputs.kind-config }}"
    header, _ = component_documents(COMPONENT)
    specs = as_mapping(as_mapping(header["spec"], "spec")["inputs"], "inputs")
    assert as_mapping(specs["cluster-name"], "cluster-name")["default"] == name
    assert "config=$GATE_SOURCE/kind-config.yaml" in text(SCRIPTS / "gitlab-job.sh")
    # Cilium reaches the API server at <cluster name>-control-plane:6443
    install = text(SCRIPTS / "install-cilium.sh")
    assert "host=${GATE_API_SERVER_HOST:-$cluster-control-plane}" in install
    assert "port=${GATE_API_SERVER_PORT:-6443}" in install


# --------------------------------------------------------------------------- options


def readme_ci_part() -> str:
    """The README's sections on CI and the quick start against kind."""
    readme = text(README)
    return readme[readme.index("### In CI\n") : readme.index("## Development\n")]


def test_every_gate_option_the_ci_files_use_exists() -> None:
    flags = {flag for spec in OPTIONS for flag in spec.flags}
    envs = {spec.env for spec in OPTIONS if spec.env}
    used_flags: dict[str, set[str]] = {}
    used_envs: dict[str, set[str]] = {}
    paths = (*GITHUB_FILES, *GITLAB_FILES, *SCRIPTS.glob("*.sh"), CI_README)
    sources = {str(path.relative_to(ROOT)): text(path) for path in paths}
    sources["README.md (In CI, Against kind)"] = readme_ci_part()
    for name, source in sources.items():
        for flag in GATE_FLAG.findall(source):
            used_flags.setdefault(flag, set()).add(name)
        for env in GATE_ENV.findall(source):
            used_envs.setdefault(env, set()).add(name)
    assert {"--cilium-upgrade", "--cilium-perform-upgrade", "--cilium-set"} <= used_flags.keys()
    assert "CILIUM_UPGRADE_DRY_RUN" in used_envs
    unknown = {f: sorted(p) for f, p in used_flags.items() if f not in flags}
    unknown.update({e: sorted(p) for e, p in used_envs.items() if e not in envs})
    assert not unknown, f"not defined by pytest_cilium_upgrade.options.OPTIONS: {unknown}"


def test_script_variables_never_collide_with_the_gates_own() -> None:
    # The gate reads every CILIUM_UPGRADE_* variable as an option: the scripts' own
    # inputs are GATE_*, so none of them is taken for an option by accident.
    for path in SCRIPTS.glob("*.sh"):
        assert not GATE_ENV.search(text(path)), path.name


# --------------------------------------------------------------------------- pins


def uses_lines(path: Path) -> Iterator[str]:
    for line in text(path).splitlines():
        if re.match(r"^\s*(- )?uses:", line):
            yield line


def test_third_party_actions_are_pinned_by_commit_with_the_tag_in_a_comment() -> None:
    seen: set[str] = set()
    for path in GITHUB_FILES:
        for line in uses_lines(path):
            ref = line.split("uses:", 1)[1].strip()
            if ref.startswith("./") or ref in (SELF_WORKFLOW, SELF_ACTION):
                continue
            match = PINNED.search(line)
            assert match, f"{path.name}: {line.strip()} is not pinned by commit SHA # vX.Y.Z"
            action, sha, tag = match.groups()
            assert PINS.get(action) == (sha, tag), f"{path.name}: {action}@{sha} # {tag}"
            seen.add(action)
    assert seen == set(PINS)


def test_pin_check_fails_on_a_tag() -> None:
    assert not PINNED.search("      uses: actions/checkout@v7 # v7.0.1")
    assert not PINNED.search(
        "      uses: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1"
    )


# --------------------------------------------------------------------------- the action


def check_jsonschema(schema: str, *paths: Path) -> subprocess.CompletedProcess[str]:
    pytest.importorskip(
        "check_jsonschema",
        reason="check-jsonschema is not installed: install the test extra to validate the"
        " CI files against their schemas",
    )
    argv = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema]
    return run_tool([*argv, *(str(p) for p in paths)])


def test_action_metadata_matches_the_action_schema() -> None:
    result = check_jsonschema("vendor.github-actions", ACTION)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param("  using: composite\n", "  using: compose\n", "using", id="runner"),
        pytest.param(
            "      shell: bash\n      env:\n        GATE_SOURCE",
            "      env:\n        GATE_SOURCE",
            "shell",
            id="run-step-without-shell",
        ),
    ],
)
def test_action_schema_check_fails_on_a_broken_copy(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    broken = tmp_path / "action.yml"
    broken.write_text(replaced(text(ACTION), old, new), encoding="utf-8")
    result = check_jsonschema("vendor.github-actions", broken)
    assert result.returncode == 1, result.stdout + result.stderr
    assert expected in result.stdout + result.stderr


def test_action_steps_exec_the_shared_scripts() -> None:
    steps = steps_of(ACTION)
    install = step_by(steps, id="install")
    gate = step_by(steps, id="gate")
    assert install["run"] == 'exec bash "$GITHUB_ACTION_PATH/ci/scripts/install-gate.sh"'
    # exec: the step's shell becomes the script, which becomes pytest (see the tests below)
    assert gate["run"] == 'exec bash "$GITHUB_ACTION_PATH/ci/scripts/run-gate.sh"'
    assert re.search(r'^exec "\$python" "\$\{args\[@\]\}"', text(SCRIPTS / "run-gate.sh"), re.M)
    assert as_mapping(install["env"], "env") == {"GATE_SOURCE": "${{ github.action_path }}"}
    for step in steps:
        if "run" in step:
            assert step["shell"] == "bash"
            assert "${{" not in str(step["run"]), "inputs go through env:, never into a script"


def test_action_inputs_all_reach_the_gate() -> None:
    action = load_yaml(ACTION)
    inputs = set(as_mapping(action["inputs"], "inputs"))
    runs = yaml.safe_dump(action["runs"])
    assert inputs == set(re.findall(r"inputs\.([\w-]+)", runs))
    script = text(SCRIPTS / "run-gate.sh")
    gate_env = as_mapping(step_by(steps_of(ACTION), id="gate")["env"], "env")
    for name in gate_env:
        assert f"${{{name}" in script or f"${name}" in script, f"run-gate.sh ignores {name}"


def test_action_uploads_the_report_and_never_the_values_snapshot() -> None:
    upload = step_by(steps_of(ACTION), uses="actions/upload-artifact@")
    paths = str(as_mapping(upload["with"], "with")["path"]).splitlines()
    assert paths == ["${{ steps.gate.outputs.junit }}", "${{ steps.gate.outputs.summary }}"]
    assert str(upload["if"]).startswith("always()")  # also after a failure or a cancel
    # the snapshot defaults outside the report directory, and is refused inside it
    script = text(SCRIPTS / "run-gate.sh")
    assert 'report_dir=$(from_workspace "${GATE_REPORT_DIR:-$home/report-$mode}")' in script
    assert 'snapshot=$(from_workspace "${GATE_VALUES_SNAPSHOT:-$home/cilium-values.yaml}")' in (
        script
    )
    assert 'if [[ $snapshot == "$report_dir"/* ]]; then' in script


# --------------------------------------------------------------------------- the workflows


def test_workflows_match_the_workflow_schema() -> None:
    result = check_jsonschema("vendor.github-workflows", WORKFLOW, GITHUB_CALLER)
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflow_schema_check_fails_on_a_broken_copy(tmp_path: Path) -> None:
    broken = tmp_path / "workflow.yml"
    broken.write_text(
        replaced(text(WORKFLOW), "        type: boolean\n", "        type: bool\n"),
        encoding="utf-8",
    )
    result = check_jsonschema("vendor.github-workflows", broken)
    assert result.returncode == 1, result.stdout + result.stderr


@dataclass(frozen=True)
class Lint:
    """A user's repository holding the workflows and the action, and actionlint."""

    root: Path
    actionlint: str
    shellcheck: str | None

    @property
    def workflows(self) -> Path:
        return self.root / ".github" / "workflows"

    def run(self) -> subprocess.CompletedProcess[str]:
        files = sorted(str(p.relative_to(self.root)) for p in self.workflows.glob("*.yml"))
        shellcheck = f"-shellcheck={self.shellcheck or ''}"
        argv = [self.actionlint, "-no-color", "-oneline", shellcheck, "-pyflakes=", *files]
        return run_tool(argv, cwd=self.root)

    def edit(self, relative: str, change: Callable[[str], str]) -> None:
        path = self.root / relative
        path.write_text(change(path.read_text(encoding="utf-8")), encoding="utf-8")


@pytest.fixture
def lint(tmp_path: Path) -> Lint:
    actionlint = tool("actionlint")
    if actionlint is None:
        pytest.skip(
            f"actionlint is not installed (not in {Path(sys.executable).parent} nor on PATH):"
            " install the test extra to lint the GitHub workflows"
        )
    # With a .git directory actionlint finds the project root and checks the calls of
    # the reusable workflow and of the local actions against their declared inputs.
    root = tmp_path / "repo"
    root.mkdir()
    (root / ".git").mkdir()
    shutil.copy(ACTION, root / "action.yml")
    (root / GATE_CHECKOUT).mkdir()
    shutil.copy(ACTION, root / GATE_CHECKOUT / "action.yml")
    workflows = root / ".github" / "workflows"
    workflows.mkdir(parents=True)
    shutil.copy(WORKFLOW, workflows / WORKFLOW.name)
    # The caller's references to this repository, as the same repository's own.
    caller = replaced(text(GITHUB_CALLER), SELF_WORKFLOW, "./.github/workflows/cilium-upgrade.yml")
    caller = replaced(caller, SELF_ACTION, "./")
    (workflows / GITHUB_CALLER.name).write_text(caller, encoding="utf-8")
    return Lint(root, actionlint, tool("shellcheck"))


def test_workflows_pass_actionlint(lint: Lint) -> None:
    result = lint.run()
    assert result.returncode == 0, result.stdout + result.stderr


CALLER = f".github/workflows/{GITHUB_CALLER.name}"
CALLED = f".github/workflows/{WORKFLOW.name}"


@pytest.mark.parametrize(
    ("relative", "old", "new", "expected"),
    [
        pytest.param(
            CALLED,
            "    runs-on: ${{",
            "    runs_on: ${{",
            '"runs-on" section is missing in job "upgrade"',
            id="job-without-runner",
        ),
        pytest.param(
            CALLED,
            "${{ inputs.helm-version }}",
            "${{ inputs.helm-release }}",
            'property "helm-release" is not defined',
            id="undefined-input",
        ),
        pytest.param(
            CALLED,
            "          mode: perform\n",
            "          mode: perform\n          phase: pre\n",
            'input "phase" is not defined in action',
            id="workflow-passes-unknown-action-input",
        ),
        pytest.param(
            CALLER,
            "      node-image: ${{ matrix.node-image }}\n",
            "      node-image: ${{ matrix.node-image }}\n      node_image: x\n",
            'input "node_image" is not defined',
            id="caller-passes-unknown-input",
        ),
        pytest.param(
            CALLER,
            "      from-version: ${{ matrix.from }}\n",
            "",
            'input "from-version" is required',
            id="caller-misses-required-input",
        ),
        pytest.param(
            CALLER,
            '          target-version: "1.19.6"\n',
            '          target_version: "1.19.6"\n',
            'input "target_version" is not defined in action',
            id="caller-passes-unknown-action-input",
        ),
        pytest.param(
            CALLED,
            '"$RUNNER_TEMP/cilium-upgrade-cluster/cluster-state.txt"',
            "$RUNNER_TEMP/cilium-upgrade-cluster/cluster-state.txt",
            "SC2086",
            id="shellcheck-unquoted-variable",
        ),
    ],
)
def test_actionlint_fails_on_a_broken_workflow(
    lint: Lint, relative: str, old: str, new: str, expected: str
) -> None:
    if expected.startswith("SC") and lint.shellcheck is None:
        pytest.skip("shellcheck is not installed: the run: scripts are linted without it")
    lint.edit(relative, lambda source: replaced(source, old, new))
    result = lint.run()
    assert result.returncode == 1, result.stdout + result.stderr
    assert expected in result.stdout


def test_node_images_are_pinned_by_digest_and_kubectl_follows_them() -> None:
    caller = load_yaml(GITHUB_CALLER)
    kind_job = as_mapping(as_mapping(caller["jobs"], "jobs")["kind"], "kind")
    matrix = as_mapping(as_mapping(kind_job["strategy"], "strategy")["matrix"], "matrix")
    entries = [as_mapping(e, "entry") for e in as_list(matrix["include"], "include")]
    assert len(entries) >= 2
    for entry in entries:
        assert {"from", "to", "node-image"} == entry.keys()
        assert DIGEST.match(str(entry["node-image"])), entry
    inputs = as_mapping(
        as_mapping(workflow_triggers(load_yaml(WORKFLOW))["workflow_call"], "call")["inputs"],
        "inputs",
    )
    assert DIGEST.match(str(as_mapping(inputs["node-image"], "node-image")["default"]))
    assert as_mapping(inputs["kubectl-version"], "kubectl-version")["default"] == ""
    header, _ = component_documents(COMPONENT)
    specs = as_mapping(as_mapping(header["spec"], "spec")["inputs"], "inputs")
    assert DIGEST.match(str(as_mapping(specs["node-image"], "node-image")["default"]))
    gitlab_job = as_mapping(load_yaml(GITLAB_CALLER)["cilium-upgrade-kind"], "job")
    gitlab_matrix = as_mapping(gitlab_job["parallel"], "parallel")["matrix"]
    for item in as_list(gitlab_matrix, "matrix"):
        assert DIGEST.match(str(as_mapping(item, "entry")["GATE_NODE_IMAGE"]))


def test_kubectl_version_comes_from_the_node_image(tmp_path: Path) -> None:
    settings = step_by(steps_of(WORKFLOW, "upgrade"), id="settings")
    job = GitHubJob(tmp_path / "ws", tmp_path / "temp", dict(os.environ), uses={})
    job.workspace.mkdir()
    job.env["GATE_CHECKOUT"] = GATE_CHECKOUT
    inputs: dict[str, object] = {
        "from-version": "1.18.12",
        "to-version": "1.19.6",
        "node-image": "kindest/node:v1.34.8@sha256:" + "0" * 64,
        "kubectl-version": "",
        "kind-config": "",
        "artifact-name": "",
    }
    result = job.run_step(settings, Context({"inputs": inputs, "runner": {}, "github": {}}))
    assert result.outputs == {
        "kubectl-version": "v1.34.8",
        "kind-config": f"{job.workspace}/{GATE_CHECKOUT}/kind-config.yaml",
        "artifact-name": "cilium-upgrade-1.18.12-to-1.19.6-k8s-v1.34.8",
    }, result.log
    inputs["node-image"] = "registry.local/node:latest"
    result = job.run_step(settings, Context({"inputs": inputs, "runner": {}, "github": {}}))
    assert result.outcome == "failure"
    assert "set kubectl-version" in result.log


def test_caller_example_runs_one_upgrade_per_branch_at_a_time() -> None:
    caller = load_yaml(GITHUB_CALLER)
    concurrency = as_mapping(caller["concurrency"], "concurrency")
    assert concurrency["group"] == "cilium-upgrade-${{ github.ref }}"
    jobs = as_mapping(caller["jobs"], "jobs")
    staging = as_mapping(as_mapping(jobs["staging"], "staging")["concurrency"], "concurrency")
    assert staging == {"group": "cilium-upgrade-staging", "cancel-in-progress": False}
    assert as_mapping(jobs["kind"], "kind")["uses"] == SELF_WORKFLOW
    assert caller["permissions"] == {"contents": "read"}


# --------------------------------------------------------------------------- GitLab

REQUIRED = {"to-version": "1.19.6", "gate-repository": "vendor/pytest-cilium-upgrade"}


def gitlab_schema(config: dict[str, object], workdir: Path) -> subprocess.CompletedProcess[str]:
    """Validate a pipeline, each visible job with its ``extends:`` resolved (the schema
    accepts anything under a hidden key)."""
    resolved: dict[str, object] = {}
    for name, value in config.items():
        if name in ("include", "stages", "variables", "default", "workflow", "spec"):
            resolved[name] = value
        elif not name.startswith("."):
            resolved[name] = resolve_job(config, name)
    path = workdir / f"resolved-{len(list(workdir.glob('resolved-*')))}.gitlab-ci.yml"
    path.write_text(yaml.safe_dump(resolved, sort_keys=False), encoding="utf-8")
    return check_jsonschema("vendor.gitlab-ci", path)


def test_component_header_matches_the_schema_and_declares_what_is_used(tmp_path: Path) -> None:
    header, _ = component_documents(COMPONENT)
    assert header_problems(header, text(COMPONENT).split("\n---\n", 1)[1]) == []
    path = tmp_path / "header.yml"
    path.write_text(yaml.safe_dump(header), encoding="utf-8")
    result = check_jsonschema("vendor.gitlab-ci", path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param("      default: 1h\n", "      defualt: 1h\n", "unknown keys", id="typo"),
        pytest.param(
            "  stage: $[[ inputs.stage ]]\n",
            "  stage: $[[ inputs.stages ]]\n",
            "stages: used but not declared",
            id="undeclared",
        ),
        pytest.param(
            "  stage: $[[ inputs.stage ]]\n",
            "  stage: test\n",
            "stage: declared but never used",
            id="unused",
        ),
        pytest.param(
            "      default: kind\n",
            "      default: docker\n",
            "not in the options",
            id="default-not-an-option",
        ),
    ],
)
def test_component_header_check_fails_on_a_broken_copy(old: str, new: str, expected: str) -> None:
    header_text, body = replaced(text(COMPONENT), old, new).split("\n---\n", 1)
    header = as_mapping(yaml.safe_load(header_text), "header")
    problems = header_problems(header, body)
    assert any(expected in p for p in problems), problems


def test_component_schema_check_fails_on_a_bad_input_type(tmp_path: Path) -> None:
    header_text = text(COMPONENT).split("\n---\n", 1)[0]
    path = tmp_path / "header.yml"
    path.write_text(replaced(header_text, "type: array", "type: list"), encoding="utf-8")
    result = check_jsonschema("vendor.gitlab-ci", path)
    assert result.returncode == 1, result.stdout + result.stderr


@pytest.mark.parametrize("cluster", ["kind", "kubeconfig"])
def test_component_jobs_match_gitlab_schema(tmp_path: Path, cluster: str) -> None:
    config = include_component(COMPONENT, {**REQUIRED, "cluster": cluster})
    # one job, named by the input, and the hidden jobs it extends: nothing else runs
    assert sorted(config) == [
        ".cilium-upgrade-kind",
        ".cilium-upgrade-kubeconfig",
        "cilium-upgrade",
    ]
    job = resolve_job(config, "cilium-upgrade")
    assert "services" in job if cluster == "kind" else "services" not in job
    for name, raw in config.items():
        assert "before_script" not in as_mapping(raw, name), f"{name}: set-up belongs in script"
    result = gitlab_schema(config, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_component_job_is_the_one_asked_for() -> None:
    config = include_component(COMPONENT, {**REQUIRED, "job-name": "upgrade-prod", "stage": "x"})
    job = resolve_job(config, "upgrade-prod")
    assert job["stage"] == "x"
    assert job["tags"] == []
    variables = as_mapping(job["variables"], "variables")
    assert variables["GATE_TARGET_VERSION"] == "1.19.6"
    assert variables["GATE_CLUSTER"] == "kind"
    script = job_script(job)
    assert "GATE_STRICT_COVERAGE=false\n" in script
    assert "GATE_DRY_RUN=false\n" in script
    assert script.rstrip().endswith('exec bash "$GATE_SOURCE/ci/scripts/gitlab-job.sh"')


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        pytest.param({"to-version": "1.19.6"}, "gate-repository: required value", id="required"),
        pytest.param({**REQUIRED, "cluster": "docker"}, "not in the options", id="option"),
        pytest.param({**REQUIRED, "to-version": "latest"}, "does not match", id="regex"),
        pytest.param({**REQUIRED, "dry-run": "yes"}, "not a boolean", id="type"),
        pytest.param({**REQUIRED, "stages": "x"}, "stages: unknown input", id="unknown"),
    ],
)
def test_component_refuses_inputs_as_gitlab_does(inputs: dict[str, object], expected: str) -> None:
    with pytest.raises(ComponentError, match=expected):
        include_component(COMPONENT, inputs)


def gitlab_caller_pipeline() -> dict[str, object]:
    """The example's pipeline: each include of the component with its inputs, then the
    example's own keys merged over the included jobs."""
    own = load_yaml(GITLAB_CALLER)
    includes = []
    for raw in as_list(own["include"], "include"):
        include = as_mapping(raw, "include")
        assert include["component"] == COMPONENT_REF
        includes.append(include_component(COMPONENT, as_mapping(include["inputs"], "inputs")))
    return pipeline(includes, own)


def test_gitlab_caller_example_matches_gitlab_schema(tmp_path: Path) -> None:
    config = gitlab_caller_pipeline()
    assert {"cilium-upgrade-kind", "cilium-upgrade-staging"} <= config.keys()
    result = gitlab_schema(config, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    staging = resolve_job(config, "cilium-upgrade-staging")
    variables = as_mapping(staging["variables"], "variables")
    assert variables["GATE_CLUSTER"] == "kubeconfig"
    assert variables["CILIUM_UPGRADE_DRY_RUN"] == "true"
    assert "services" not in staging
    # the matrix sets variables the job has, which each entry's values replace
    kind = resolve_job(config, "cilium-upgrade-kind")
    kind_variables = as_mapping(kind["variables"], "variables")
    matrix = as_list(as_mapping(kind["parallel"], "parallel")["matrix"], "matrix")
    for entry in matrix:
        assert set(as_mapping(entry, "entry")) <= set(kind_variables)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            "    when: always\n",
            "    when: sometimes\n",
            "'sometimes' is not one of",
            id="artifacts-when",
        ),
        pytest.param(
            "      - cilium-upgrade-report/\n",
            "      cilium-upgrade-report: yes\n",
            "artifacts.paths",
            id="artifact-paths-not-a-list",
        ),
        pytest.param(
            "  interruptible: true\n",
            "  interruptible: yes please\n",
            "interruptible",
            id="interruptible-not-a-boolean",
        ),
    ],
)
def test_gitlab_schema_check_fails_on_a_broken_component(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    broken = tmp_path / COMPONENT.name
    broken.write_text(replaced(text(COMPONENT), old, new), encoding="utf-8")
    result = gitlab_schema(include_component(broken, REQUIRED), tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert expected in result.stdout + result.stderr


# --------------------------------------------------------------------------- shellcheck


def shellcheck(shell: str, script: str) -> subprocess.CompletedProcess[str]:
    checker = tool("shellcheck")
    if checker is None:
        pytest.skip("shellcheck is not installed: install the test extra to check the scripts")
    return subprocess.run(
        [checker, f"--shell={shell}", "--format=gcc", "-"],
        input=script,
        capture_output=True,
        text=True,
        check=False,
        timeout=TOOL_TIMEOUT,
    )


@pytest.mark.parametrize("script", sorted(p.name for p in SCRIPTS.glob("*.sh")))
def test_scripts_pass_shellcheck(script: str) -> None:
    source = text(SCRIPTS / script)
    assert source.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail\n" in source
    result = shellcheck("bash", source)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("key", ["script", "after_script"])
@pytest.mark.parametrize("cluster", ["kind", "kubeconfig"])
def test_component_scripts_pass_shellcheck_as_sh(key: str, cluster: str) -> None:
    config = include_component(COMPONENT, {**REQUIRED, "cluster": cluster})
    result = shellcheck("sh", job_script(resolve_job(config, "cilium-upgrade"), key))
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_fails_on_an_unquoted_variable() -> None:
    source = replaced(text(SCRIPTS / "run-gate.sh"), 'cd "$workdir"', "cd $workdir")
    result = shellcheck("bash", source)
    assert result.returncode == 1
    assert "SC2086" in result.stdout


# --------------------------------------------------------------------------- README


def test_readme_installs_what_exists() -> None:
    readme = readme_ci_part()
    assert "git+<this repository>" not in readme
    assert "not published on PyPI" in readme
    block = readme.split("<!-- quickstart:start -->", 1)[1].split("<!-- quickstart:end -->")[0]
    assert "helm repo add cilium https://helm.cilium.io/" in block
    assert "--set kubeProxyReplacement=true" in block
    assert "--set k8sServiceHost=cilium-upgrade-control-plane --set k8sServicePort=6443" in block
    assert "pip install /path/to/pytest-cilium-upgrade" in block
    assert "--cilium-perform-upgrade --cilium-dry-run" in block
    for path in (ACTION, WORKFLOW, COMPONENT, GITHUB_CALLER, GITLAB_CALLER):
        assert "pip install pytest-cilium-upgrade" not in text(path)


# --------------------------------------------------------------------------- cancel

SLOW_TEST = """\
import os
import pathlib
import time


def test_slow():
    pathlib.Path(os.environ["CI_TEST_MARKER"]).write_text("running")
    time.sleep(60)
"""


@dataclass
class Cancel:
    """A pytest run of the gate with a slow test of the user's after the gate's items:
    the cancel comes while that test runs."""

    tmp: Path
    marker: Path
    slow_test: Path
    kubeconfig: Path

    def env(self) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("CILIUM_UPGRADE_", "GATE_"))
        }
        env.pop("KUBECONFIG", None)
        env["CI_TEST_MARKER"] = str(self.marker)
        env["PYTEST_CILIUM_UPGRADE_CACHE"] = str(self.tmp / "cache")
        return env

    @contextlib.contextmanager
    def started(
        self, argv: list[str], env: dict[str, str], cwd: Path
    ) -> Iterator[subprocess.Popen[str]]:
        """The job's shell, in a process group of its own, ended whatever happens."""
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()

    def wait_for_the_test(self, proc: subprocess.Popen[str]) -> None:
        deadline = time.monotonic() + SIGNAL_TIMEOUT
        while not self.marker.exists():
            if proc.poll() is not None:
                out, _ = proc.communicate()
                pytest.fail(f"the run ended ({proc.returncode}) before the slow test:\n{out}")
            assert time.monotonic() < deadline, "the slow test never started"
            time.sleep(0.1)

    def cancel(
        self, proc: subprocess.Popen[str], signum: int, timeout: float = SIGNAL_TIMEOUT
    ) -> str:
        """Signal the job's shell (only it, as the runners do) while the slow test runs,
        and wait for the run to end."""
        self.wait_for_the_test(proc)
        os.kill(proc.pid, signum)
        out, _ = proc.communicate(timeout=timeout)
        return out


@pytest.fixture
def cancel(tmp_path: Path) -> Cancel:
    slow = tmp_path / "user-tests" / "test_slow.py"
    slow.parent.mkdir()
    slow.write_text(SLOW_TEST, encoding="utf-8")
    return Cancel(tmp_path, tmp_path / "marker", slow, write_kubeconfig(tmp_path / "kubeconfig"))


def action_gate_step(
    cancel: Cancel, run: str | None = None
) -> tuple[GitHubJob, Context, dict[str, object]]:
    """The action's gate step, as GitHub gives it to bash, with the tool installation
    replaced by this interpreter (which has the gate)."""
    job = GitHubJob(cancel.tmp / "workspace", cancel.tmp / "runner-temp", cancel.env(), uses={})
    job.workspace.mkdir()
    step = dict(step_by(steps_of(ACTION), id="gate"))
    if run is not None:
        step["run"] = run
    defaults = {
        k: str(as_mapping(v, k).get("default", ""))
        for k, v in as_mapping(load_yaml(ACTION)["inputs"], "inputs").items()
    }
    inputs = {
        **defaults,
        "mode": "perform",
        "target-version": "1.16.15",
        "kubeconfig": str(cancel.kubeconfig),
        "pytest-args": f"'{cancel.slow_test}' -p no:randomly",
    }
    context = Context(
        {
            "inputs": inputs,
            "steps": {"install": {"outputs": {"python": sys.executable}}},
            "github": {"action_path": str(ROOT)},
            "runner": {"temp": str(job.temp)},
        }
    )
    return job, context, step


def junit_classnames(path: Path) -> set[str]:
    return {
        str(case.get("classname"))
        for case in ET.parse(path).getroot().iter("testcase")  # noqa: S314
    }


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_cancel_of_the_action_step_reaches_pytest(cancel: Cancel, signum: int) -> None:
    job, context, step = action_gate_step(cancel)
    prepared = job.prepare(step, context, extra_env={"GITHUB_ACTION_PATH": str(ROOT)})
    with cancel.started(prepared.argv, prepared.env, prepared.cwd) as proc:
        out = cancel.cancel(proc, signum)
    assert proc.returncode == 2, out  # pytest's "interrupted"
    assert "KeyboardInterrupt" in out
    outputs = job.finish(prepared, proc.returncode, out).outputs
    junit = Path(outputs["junit"])
    assert junit.is_file(), out  # written on the way out
    assert {"cilium-upgrade.prepare", "cilium-upgrade.pre"} <= junit_classnames(junit)
    summary = Path(outputs["summary"]).read_text(encoding="utf-8")
    assert "Cilium upgrade gate" in summary
    assert prepared.summary_file.read_text(encoding="utf-8") == summary  # the job's summary


def test_without_exec_the_cancel_stops_at_the_shell(cancel: Cancel) -> None:
    """The same step with the script run as a child of the step's shell: the signal
    never reaches pytest (what the test above would catch)."""
    run = 'bash "$GITHUB_ACTION_PATH/ci/scripts/run-gate.sh"'
    job, context, step = action_gate_step(cancel, run=run)
    prepared = job.prepare(step, context, extra_env={"GITHUB_ACTION_PATH": str(ROOT)})
    with cancel.started(prepared.argv, prepared.env, prepared.cwd) as proc:
        with pytest.raises(subprocess.TimeoutExpired):
            cancel.cancel(proc, signal.SIGINT, timeout=3)
        assert proc.poll() is None, "the run ended: the signal did reach pytest"
        assert not (job.temp / "cilium-upgrade" / "report-perform" / "junit.xml").exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_cancel_of_the_gitlab_job_reaches_pytest(cancel: Cancel, signum: int) -> None:
    for needed in ("bash", "curl", "git", "python3"):
        if shutil.which(needed) is None:
            pytest.skip(f"{needed} is not installed: the job's script would install it")
    bin_dir = cancel.tmp / "bin"
    bin_dir.mkdir()
    fake_helm = bin_dir / "helm"  # stands in for the image's helm; no cluster is reached
    fake_helm.write_text("#!/bin/sh\necho v3.22.0\n", encoding="utf-8")
    fake_helm.chmod(0o755)
    project = cancel.tmp / "project"
    project.mkdir()
    config = include_component(
        COMPONENT,
        {
            "cluster": "kubeconfig",
            "to-version": "1.16.15",
            "gate-repository": str(ROOT),
            "pytest-args": f"'{cancel.slow_test}'",
        },
    )
    job = resolve_job(config, "cilium-upgrade")
    runner_env = cancel.env()
    runner_env.update(
        {
            "PATH": f"{bin_dir}{os.pathsep}{runner_env['PATH']}",
            "CI": "true",
            "GITLAB_CI": "true",
            "CI_PROJECT_DIR": str(project),
            "KUBECONFIG": str(cancel.kubeconfig),
            # an image that has the gate already: its installation is skipped
            "GATE_PYTHON": sys.executable,
        }
    )
    env = job_environment(job, runner_env, {"GATE_HOME": str(cancel.tmp / "gate-home")})
    script = cancel.tmp / "job.sh"
    script.write_text(job_script(job), encoding="utf-8")
    with cancel.started(["sh", str(script)], env, project) as proc:
        out = cancel.cancel(proc, signum)
    assert proc.returncode == 2, out
    assert "KeyboardInterrupt" in out
    junit = project / "cilium-upgrade-report" / "junit.xml"
    assert junit.is_file(), out
    assert "cilium-upgrade.prepare" in junit_classnames(junit)
    assert sorted(p.name for p in junit.parent.iterdir()) == ["junit.xml", "summary.md"]


# --------------------------------------------------------------------------- run-gate.sh

RECORDER = """\
#!/bin/sh
# The gate's python, recording the command it was given (python -c runs for real).
if [ "$1" = "-c" ]; then exec {python} "$@"; fi
exec {python} -c 'import json, os, sys
json.dump({{"argv": sys.argv[1:], "cwd": os.getcwd()}}, open(os.environ["RECORD"], "w"))' "$@"
"""


@dataclass
class Gate:
    """run-gate.sh with a recording python: what it would run, and where."""

    tmp: Path

    @property
    def workspace(self) -> Path:
        return self.tmp / "workspace"

    @property
    def home(self) -> Path:
        return self.tmp / "home"

    def run(self, **inputs: str) -> tuple[subprocess.CompletedProcess[str], list[str], Path]:
        python = self.tmp / "python"
        python.write_text(RECORDER.format(python=sys.executable), encoding="utf-8")
        python.chmod(0o755)
        record = self.tmp / "record.json"
        record.unlink(missing_ok=True)
        self.workspace.mkdir(exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GATE_", "GITHUB_"))}
        env.update(
            {
                "RECORD": str(record),
                "GATE_PYTHON": str(python),
                "GATE_HOME": str(self.home),
                "GATE_WORKSPACE": str(self.workspace),
                "GITHUB_OUTPUT": str(self.tmp / "output"),
            }
        )
        env.update({f"GATE_{k.upper()}": v for k, v in inputs.items()})
        result = subprocess.run(
            ["bash", str(SCRIPTS / "run-gate.sh")],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=TOOL_TIMEOUT,
            cwd=self.tmp,
        )
        if not record.exists():
            return result, [], self.tmp
        data = json.loads(record.read_text(encoding="utf-8"))
        return result, [str(a) for a in data["argv"]], Path(data["cwd"])


@pytest.fixture
def gate(tmp_path: Path) -> Gate:
    return Gate(tmp_path)


def test_run_gate_turns_the_inputs_into_the_gates_options(gate: Gate) -> None:
    (gate.workspace / "charts" / "cilium").mkdir(parents=True)
    result, argv, cwd = gate.run(
        mode="perform",
        target_version="1.19.6",
        chart="charts/cilium",
        values_files="cilium/values.yaml\n\n  /etc/cilium/prod.yaml  \n",
        set="hubble.relay.enabled=true\n  encryption.ipsec.key=s3cr3t,x=y\n",
        upgrade_compatibility="1.18",
        strict_coverage="true",
        dry_run="True",
        kubeconfig="kube/config",
        kube_context="staging",
        namespace="cilium",
        release="cni",
        pytest_args="""-k "not envoy and not relay" --cilium-timeout=600 'a b'""",
    )
    assert result.returncode == 0, result.stderr
    home, ws = gate.home, gate.workspace
    assert argv == [
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "--cilium-upgrade",
        "--cilium-perform-upgrade",
        "--cilium-target-version=1.19.6",
        f"--cilium-chart={ws}/charts/cilium",
        f"--cilium-values-file={ws}/cilium/values.yaml",
        "--cilium-values-file=/etc/cilium/prod.yaml",
        "--cilium-set=hubble.relay.enabled=true",
        "--cilium-set=encryption.ipsec.key=s3cr3t,x=y",
        "--cilium-upgrade-compatibility=1.18",
        "--cilium-preflight-coverage=strict",
        "--cilium-dry-run",
        f"--cilium-kubeconfig={ws}/kube/config",
        "--cilium-context=staging",
        "--cilium-namespace=cilium",
        "--cilium-release=cni",
        f"--cilium-values-snapshot={home}/cilium-values.yaml",
        f"--cilium-state-file={home}/cilium-upgrade-state.json",
        f"--junitxml={home}/report-perform/junit.xml",
        f"--cilium-summary={home}/report-perform/summary.md",
        "-k",
        "not envoy and not relay",
        "--cilium-timeout=600",
        "a b",
    ]
    # an empty directory of its own, with an empty configuration
    assert cwd == home / "run"
    assert (cwd / "pytest.ini").read_text(encoding="utf-8") == "[pytest]\n"
    # the values of --cilium-set never reach the log
    assert "s3cr3t" not in result.stdout + result.stderr
    assert "--cilium-set=encryption.ipsec.key=<redacted>" in result.stderr
    outputs = (gate.tmp / "output").read_text(encoding="utf-8").splitlines()
    assert outputs == [
        f"report-dir={home}/report-perform",
        f"junit={home}/report-perform/junit.xml",
        f"summary={home}/report-perform/summary.md",
        f"values-snapshot={home}/cilium-values.yaml",
        f"state-file={home}/cilium-upgrade-state.json",
    ]


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        pytest.param({"mode": "pre"}, ["--cilium-phase=pre", "--cilium-write-snapshot"], id="pre"),
        pytest.param(
            {"mode": "pre", "write_snapshot": "false"}, ["--cilium-phase=pre"], id="no-snap"
        ),
        pytest.param({"mode": "post"}, ["--cilium-phase=post"], id="post"),
        pytest.param(
            {"chart": "oci://quay.io/cilium/charts/cilium"}, ["--cilium-perform-upgrade"], id="oci"
        ),
    ],
)
def test_run_gate_modes(gate: Gate, inputs: dict[str, str], expected: list[str]) -> None:
    result, argv, _ = gate.run(**inputs)
    assert result.returncode == 0, result.stderr
    assert argv[5 : 5 + len(expected)] == expected
    assert argv[:5] == ["-m", "pytest", "-p", "no:cacheprovider", "--cilium-upgrade"]
    chart = next(a for a in argv if a.startswith("--cilium-chart="))
    assert chart == "--cilium-chart=" + inputs.get("chart", "cilium/cilium")
    mode = inputs.get("mode", "perform")
    assert f"--junitxml={gate.home}/report-{mode}/junit.xml" in argv


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        pytest.param({"mode": "upgrade"}, "GATE_MODE must be perform, pre or post", id="mode"),
        pytest.param({"dry_run": "yes"}, "GATE_DRY_RUN must be true or false", id="bool"),
        pytest.param(
            {"pytest_args": "-k 'unclosed"}, "pytest-args: No closing quotation", id="quote"
        ),
        pytest.param(
            {"report_dir": "reports", "values_snapshot": "reports/values.yaml"},
            "must not be in the report directory",
            id="snapshot-in-report",
        ),
    ],
)
def test_run_gate_refuses_bad_inputs(gate: Gate, inputs: dict[str, str], expected: str) -> None:
    result, argv, _ = gate.run(**inputs)
    assert result.returncode == 2
    assert argv == []  # pytest never started
    assert expected in result.stderr


def test_run_gate_never_evaluates_pytest_args(gate: Gate) -> None:
    canary = gate.tmp / "evaluated"
    result, argv, _ = gate.run(pytest_args=f"$(touch {canary}) `touch {canary}` ; touch {canary}")
    assert result.returncode == 0, result.stderr
    assert not canary.exists()
    words = ["$(touch", f"{canary})", "`touch", f"{canary}`", ";", "touch", str(canary)]
    assert argv[-7:] == words  # words, passed on as they are


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        pytest.param(
            {"GATE_CLUSTER": "kind", "GATE_MODE": "pre"}, "only mode perform", id="kind-pre"
        ),
        pytest.param({"GATE_CLUSTER": "eks"}, "cluster must be kind or kubeconfig", id="cluster"),
        pytest.param(
            {"GATE_CLUSTER": "kind", "GATE_MODE": "perform"},
            "cluster kind needs Docker: a privileged Docker executor",
            id="no-docker",
        ),
    ],
)
def test_gitlab_job_refuses_what_cannot_work(
    tmp_path: Path, variables: dict[str, str], expected: str
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("helm", "echo v3.22.0"), ("kind", "exit 0"), ("kubectl", "exit 0")):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
        (bin_dir / name).chmod(0o755)
    (bin_dir / "docker").write_text("#!/bin/sh\nexit 1\n", encoding="utf-8")  # no daemon
    (bin_dir / "docker").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATE_")}
    env.update(
        {
            "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}",
            "GATE_HOME": str(tmp_path / "home"),
            "GATE_PYTHON": sys.executable,
            "CI_PROJECT_DIR": str(tmp_path),
            **variables,
        }
    )
    result = subprocess.run(
        ["bash", str(SCRIPTS / "gitlab-job.sh")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=TOOL_TIMEOUT,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr
