"""The CI entry points run as the runners run them, against the sandbox.

* GitHub: the caller example's first matrix job through the reusable workflow
  (``.github/workflows/cilium-upgrade.yml``) and the action (``action.yml``): every
  ``run:`` step with the inputs and environment GitHub gives it, under
  ``bash --noprofile --norc -e -o pipefail``; the installation of the gate is the real
  one (pip from a copy of the repository).
* GitLab: the caller example's job on an existing cluster (``cluster: kubeconfig``)
  through the component (``templates/cilium-upgrade.yml``): its script as one ``sh``
  session, fetching the gate from a Git repository and installing it, a dry run (the
  example's default) and then the upgrade, and its ``after_script``.
* The README's quick start, command by command.

The sandbox stands in for what a runner would set up with network access: kind (the
sandbox's nodes come from the same kind-config.yaml), the tool-installation actions
(its helm and kubectl are on PATH), and https://helm.cilium.io/ (the real chart
archives served as a Helm repository on 127.0.0.1, ``cilium_chart_repo``). The examples'
own versions are installed and upgraded. Each test works in a namespace of its own and
passes short waits with ``pytest-args``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from cilium_sandbox.chart_repo import ChartRepository
from cilium_sandbox.cluster import Sandbox
from cilium_sandbox.faults import ContainerLogs
from junit_report import junit_verdicts

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from ci_runner import (
    Context,
    GitHubJob,
    as_list,
    as_mapping,
    include_component,
    job_environment,
    job_script,
    load_yaml,
    pipeline,
    render,
    resolve_job,
)

pytestmark = pytest.mark.sandbox

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "cilium-upgrade.yml"
GITHUB_CALLER = ROOT / "ci" / "github" / "example-caller.yml"
COMPONENT = ROOT / "templates" / "cilium-upgrade.yml"
GITLAB_CALLER = ROOT / "ci" / "gitlab" / "example-caller.yml"
SCRIPTS = ROOT / "ci" / "scripts"
README = ROOT / "README.md"

VALID = 'level=info msg="All CCNPs and CNPs valid!" subsys=preflight'
SHORT_WAITS = "--cilium-timeout=60 --cilium-request-timeout=10"
GATE_CHECKOUT = ".cilium-upgrade-gate"
RUN_TIMEOUT = 900


def history(sandbox: Sandbox, namespace: str) -> list[tuple[int, str, str]]:
    out = sandbox.helm(3, "history", "cilium", "-n", namespace, "-o", "json").stdout
    return [(e["revision"], e["chart"], e["status"]) for e in json.loads(out)]


def releases(sandbox: Sandbox, namespace: str) -> list[str]:
    return sandbox.helm(3, "list", "-a", "-q", "-n", namespace).stdout.split()


# The upgrade of the examples and of the README's quick start.
FROM, TO = "1.18.12", "1.19.6"
UPGRADED = [(1, f"cilium-{FROM}", "superseded"), (2, f"cilium-{TO}", "deployed")]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A copy of the repository's files (what a checkout of it holds)."""
    copy = tmp_path / "source"
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError):  # not a Git work tree
        ignored = shutil.ignore_patterns(".*", "__pycache__", "*.egg-info", "build", "reports")
        shutil.copytree(ROOT, copy, ignore=ignored)
        return copy
    for name in filter(None, listed.split("\0")):
        path = ROOT / name
        if path.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, copy / name)
    return copy


@dataclass
class Runner:
    """What a runner's machine gives a job here: the sandbox's kubectl and helm on
    PATH and its kubeconfig, a Helm home of its own, and a namespace."""

    sandbox: Sandbox
    namespace: str
    tmp: Path
    repo_url: str
    bin_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.bin_dir = self.tmp / "runner-bin"
        self.bin_dir.mkdir()
        # the python3 actions/setup-python (or the image) would provide
        (self.bin_dir / "python3").symlink_to(sys.executable)

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in self.sandbox.env().items()
            if not k.startswith(("CILIUM_UPGRADE_", "GATE_", "GITHUB_", "RUNNER_", "CI_"))
        }
        env["PATH"] = os.pathsep.join([str(self.bin_dir), env["PATH"]])
        helm = self.tmp / "helm-home"
        env.update(
            {
                "HOME": str(self.tmp / "home"),
                "HELM_CONFIG_HOME": str(helm / "config"),
                "HELM_CACHE_HOME": str(helm / "cache"),
                "HELM_DATA_HOME": str(helm / "data"),
                "HELM_REPOSITORY_CONFIG": str(helm / "config" / "repositories.yaml"),
                "HELM_REPOSITORY_CACHE": str(helm / "cache" / "repository"),
                "PYTEST_CILIUM_UPGRADE_CACHE": str(self.tmp / "gate-cache"),
                "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                # pip's cache stays the machine's: the gate's dependencies are fetched once
                "PIP_CACHE_DIR": os.environ.get(
                    "PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip")
                ),
            }
        )
        (self.tmp / "home").mkdir(exist_ok=True)
        return env

    def server(self) -> tuple[str, str]:
        """The sandbox's API server address, where kind's would be
        (<cluster>-control-plane:6443)."""
        config = yaml.safe_load(self.sandbox.kubeconfig.read_text(encoding="utf-8"))
        url = urlsplit(config["clusters"][0]["cluster"]["server"])
        return str(url.hostname), str(url.port)


@pytest.fixture
def runner(
    faults: Sandbox, namespace: str, tmp_path: Path, cilium_chart_repo: ChartRepository
) -> Runner:
    # (the namespace fixture uninstalls the releases, whose cluster-scoped objects would
    # outlive the namespace)
    faults.set_logs(ContainerLogs(namespace, "cnp-validator", current=[VALID]))
    return Runner(faults, namespace, tmp_path, cilium_chart_repo.url)


def write_values(project: Path) -> None:
    (project / "cilium").mkdir(parents=True)
    (project / "cilium" / "values.yaml").write_text(
        "hubble:\n  relay:\n    enabled: false\n", encoding="utf-8"
    )
    (project / "cilium" / "staging.yaml").write_text("debug:\n  enabled: true\n", encoding="utf-8")


def run_script(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


# --------------------------------------------------------------------------- GitHub


def test_github_example_runs_the_workflow_and_the_action(runner: Runner, source: Path) -> None:
    caller = load_yaml(GITHUB_CALLER)
    kind_job = as_mapping(as_mapping(caller["jobs"], "jobs")["kind"], "kind")
    strategy = as_mapping(kind_job["strategy"], "strategy")
    entry = as_mapping(
        as_list(as_mapping(strategy["matrix"], "matrix")["include"], "include")[0], "entry"
    )
    assert (entry["from"], entry["to"]) == (FROM, TO)
    caller_context = Context({"matrix": entry, "github": {}, "secrets": {}, "inputs": {}})
    with_inputs = {
        key: render(value, caller_context)
        for key, value in as_mapping(kind_job["with"], "with").items()
    }
    with_inputs.update({"chart-repository": runner.repo_url, "namespace": runner.namespace})
    with_inputs["pytest-args"] = SHORT_WAITS

    workspace = runner.tmp / "workspace"
    write_values(workspace)
    shutil.copytree(source, workspace / GATE_CHECKOUT)  # what the gate's checkout holds

    def checkout(ref: str, inputs: dict[str, str]) -> dict[str, str]:
        return {}

    def setup_python(ref: str, inputs: dict[str, str]) -> dict[str, str]:
        assert inputs["python-version"] == "3.12"
        return {}  # python3 is on PATH already

    uploads: list[dict[str, str]] = []

    def upload(ref: str, inputs: dict[str, str]) -> dict[str, str]:
        for path in inputs["path"].split():
            assert Path(path).is_file(), f"{inputs['name']}: {path} is missing"
        uploads.append(inputs)
        return {}

    def tool(ref: str, inputs: dict[str, str]) -> dict[str, str]:
        return {}  # the sandbox's kubectl and helm, and the sandbox for kind

    job = GitHubJob(
        workspace,
        runner.tmp / "runner-temp",
        runner.env(),
        uses={
            "actions/checkout": checkout,
            "actions/setup-python": setup_python,
            "actions/upload-artifact": upload,
            "azure/setup-helm": tool,
            "azure/setup-kubectl": tool,
            "helm/kind-action": tool,
        },
        extra_contexts={
            "job": {"workflow_repository": "OWNER/pytest-cilium-upgrade", "workflow_sha": "0" * 40}
        },
    )
    job.temp.mkdir()
    job.run_workflow_job(WORKFLOW, "upgrade", with_inputs)
    logs = job.logs()
    assert not job.failed, logs
    assert [s.outcome for s in job.steps_run if s.outcome != "success"] == [], logs

    # the steps the sandbox replaced were asked for what a runner would do
    calls = dict(job.uses_calls)
    checkouts = [i for r, i in job.uses_calls if r.startswith("actions/checkout@")]
    assert checkouts[1] == {
        "repository": "OWNER/pytest-cilium-upgrade",
        "ref": "0" * 40,
        "path": GATE_CHECKOUT,
        "persist-credentials": "false",
    }
    kind = next(i for r, i in calls.items() if r.startswith("helm/kind-action@"))
    assert kind["config"] == f"{workspace}/{GATE_CHECKOUT}/kind-config.yaml"
    assert kind["node_image"] == entry["node-image"]
    assert kind["cluster_name"] == "cilium-upgrade"
    kubectl = next(i for r, i in calls.items() if r.startswith("azure/setup-kubectl@"))
    assert kubectl == {"version": "v1.34.8"}

    # Cilium was installed kube-proxy-free, then upgraded by the gate
    assert history(runner.sandbox, runner.namespace) == UPGRADED
    assert releases(runner.sandbox, runner.namespace) == ["cilium"]
    values = yaml.safe_load(
        runner.sandbox.helm(
            3, "get", "values", "cilium", "-n", runner.namespace, "-a", "-o", "yaml"
        ).stdout
    )
    assert values["kubeProxyReplacement"] is True
    assert values["k8sServiceHost"] == "cilium-upgrade-control-plane"
    assert values["hubble"]["relay"]["enabled"] is True  # the example's set, applied last

    # the report: uploaded with the summary only; the job's summary page has the table
    report = job.temp / "cilium-upgrade" / "report-perform"
    name = f"cilium-upgrade-{FROM}-to-{TO}-k8s-v1.34.8"
    assert uploads[0]["name"] == name
    assert uploads[0]["path"].splitlines() == [f"{report}/junit.xml", f"{report}/summary.md"]
    assert uploads[1]["name"] == f"{name}-cluster-state"
    state = Path(uploads[1]["path"]).read_text(encoding="utf-8")
    assert f"cilium-{TO}" in state
    verdicts = junit_verdicts(report / "junit.xml", whole_failure=False)
    assert {v for v in verdicts.values() if not v.startswith("skipped")} == {"passed"}
    assert verdicts["cilium-upgrade.upgrade::helm_upgrade"] == "passed"
    assert "Cilium upgrade gate" in job.summary.read_text(encoding="utf-8")
    snapshot = job.temp / "cilium-upgrade" / "cilium-values.yaml"
    assert snapshot.is_file()
    assert snapshot.stat().st_mode & 0o777 == 0o600
    assert all(str(snapshot) not in u["path"] for u in uploads)
    # the gate was installed from the checkout, into its own environment
    assert (job.temp / "cilium-upgrade" / "venv" / "bin" / "pytest").is_file()
    assert "--cilium-set=hubble.relay.enabled=<redacted>" in logs
    assert "hubble.relay.enabled=true" not in logs


# --------------------------------------------------------------------------- GitLab


def git_repository(source: Path, tag: str) -> str:
    """The source as a Git repository with ``tag``: what the component fetches."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "ci",
        "GIT_AUTHOR_EMAIL": "ci@example.invalid",
        "GIT_COMMITTER_NAME": "ci",
        "GIT_COMMITTER_EMAIL": "ci@example.invalid",
    }
    for argv in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "--all"],
        ["git", "commit", "-q", "-m", "source"],
        ["git", "tag", tag],
    ):
        subprocess.run(argv, cwd=source, env=env, check=True, timeout=60, capture_output=True)
    return source.as_uri()


def test_gitlab_example_gates_an_existing_cluster(runner: Runner, source: Path) -> None:
    own = load_yaml(GITLAB_CALLER)
    include = next(
        as_mapping(i, "include")
        for i in as_list(own["include"], "include")
        if as_mapping(as_mapping(i, "include")["inputs"], "inputs").get("cluster") == "kubeconfig"
    )
    inputs = dict(as_mapping(include["inputs"], "inputs"))
    assert inputs["to-version"] == TO
    job_name = str(inputs["job-name"])
    context = yaml.safe_load(runner.sandbox.kubeconfig.read_text(encoding="utf-8"))
    inputs.update(
        {
            "kube-context": context["current-context"],
            "namespace": runner.namespace,
            "chart-repository": runner.repo_url,
            "gate-repository": git_repository(source, "1.0.0"),
            "gate-ref": "1.0.0",
            "pytest-args": f"{inputs['pytest-args']} {SHORT_WAITS}",
        }
    )
    config = pipeline([include_component(COMPONENT, inputs)], {job_name: own[job_name]})
    job = resolve_job(config, job_name)

    project = runner.tmp / "project"
    write_values(project)
    runner_env = runner.env()
    runner_env.update(
        {
            "CI": "true",
            "GITLAB_CI": "true",
            "CI_PROJECT_DIR": str(project),
            "CI_SERVER_URL": "https://gitlab.example.invalid",
            # a file-type CI/CD variable KUBECONFIG: the path of the file
            "KUBECONFIG": str(runner.sandbox.kubeconfig),
        }
    )
    gate_home = runner.tmp / "gate-home"

    # The release to upgrade, as kind mode installs it.
    env = job_environment(job, runner_env)
    env.update(
        {
            "GATE_FROM_VERSION": FROM,
            "GATE_CHART_REPOSITORY": runner.repo_url,
            "GATE_NAMESPACE": runner.namespace,
        }
    )
    installed = run_script(["bash", str(SCRIPTS / "install-cilium.sh")], env, project)
    assert installed.returncode == 0, installed.stdout

    script = runner.tmp / "job.sh"
    script.write_text(job_script(job), encoding="utf-8")
    after = runner.tmp / "after.sh"
    after.write_text(job_script(job, "after_script"), encoding="utf-8")
    report = project / "cilium-upgrade-report"

    # 1. as the example runs it: a dry run (CILIUM_UPGRADE_DRY_RUN=true)
    env = job_environment(job, runner_env, {"GATE_HOME": str(gate_home)})
    assert env["CILIUM_UPGRADE_DRY_RUN"] == "true"
    dry = run_script(["sh", str(script)], env, project)
    assert dry.returncode == 0, dry.stdout
    assert "would run:" in dry.stdout
    assert history(runner.sandbox, runner.namespace) == [(1, f"cilium-{FROM}", "deployed")]
    assert (gate_home / "venv" / "bin" / "pytest").is_file()  # fetched and installed

    # 2. started with CILIUM_UPGRADE_DRY_RUN=false: the upgrade (with the gate the first
    # run installed, as an image holding it would give GATE_PYTHON)
    shutil.rmtree(report)
    started_with = {
        "GATE_HOME": str(gate_home),
        "CILIUM_UPGRADE_DRY_RUN": "false",
        "GATE_PYTHON": str(gate_home / "venv" / "bin" / "python"),
    }
    env = job_environment(job, runner_env, started_with)
    upgrade = run_script(["sh", str(script)], env, project)
    assert upgrade.returncode == 0, upgrade.stdout
    assert history(runner.sandbox, runner.namespace) == UPGRADED
    assert "--cilium-preflight-coverage=strict" in upgrade.stdout  # strict-coverage: true
    live = yaml.safe_load(
        runner.sandbox.helm(3, "get", "values", "cilium", "-n", runner.namespace).stdout
    )
    assert live["debug"] == {"enabled": True}  # cilium/staging.yaml
    assert live["hubble"] == {"relay": {"enabled": False}}  # cilium/values.yaml

    finished = run_script(["sh", str(after)], env, project)
    assert finished.returncode == 0, finished.stdout
    assert "Cilium upgrade gate" in finished.stdout  # the summary, printed at the end
    assert sorted(p.name for p in report.iterdir()) == [
        "cluster-state.txt",
        "junit.xml",
        "summary.md",
    ]
    verdicts = junit_verdicts(report / "junit.xml", whole_failure=False)
    assert verdicts["cilium-upgrade.post::values_preserved"] == "passed"
    assert (gate_home / "cilium-values.yaml").is_file()  # outside the artifacts


# --------------------------------------------------------------------------- README


def quick_start() -> str:
    readme = README.read_text(encoding="utf-8")
    block = readme.split("<!-- quickstart:start -->", 1)[1].split("<!-- quickstart:end -->")[0]
    lines = block.strip().splitlines()
    assert (lines[0], lines[-1]) == ("```sh", "```")
    return "\n".join(lines[1:-1]) + "\n"


def test_readme_quick_start_runs(runner: Runner, source: Path) -> None:
    host, port = runner.server()
    script = quick_start()
    # The sandbox in place of kind (its nodes come from the same kind-config.yaml) and of
    # the public chart repository; the sandbox's API server in place of kind's; a
    # namespace of the test's own; this checkout where the reader has theirs.
    for old, new in (
        ("kind create cluster --config kind-config.yaml\n", ""),
        ("https://helm.cilium.io/", runner.repo_url),
        ("--namespace kube-system", f"--namespace {runner.namespace}"),
        ("k8sServiceHost=cilium-upgrade-control-plane", f"k8sServiceHost={host}"),
        ("k8sServicePort=6443", f"k8sServicePort={port}"),
        ("/path/to/pytest-cilium-upgrade", str(source)),
    ):
        assert old in script, f"the quick start changed: {old!r} is gone"
        script = script.replace(old, new)
    env = runner.env()
    # the gate's own variables, in place of the defaults the commands rely on
    env.update(
        {
            "CILIUM_UPGRADE_NAMESPACE": runner.namespace,
            "CILIUM_UPGRADE_TIMEOUT": "60",
            "CILIUM_UPGRADE_REQUEST_TIMEOUT": "10",
        }
    )
    workdir = runner.tmp / "reader"
    workdir.mkdir()
    (workdir / "quick-start.sh").write_text(script, encoding="utf-8")
    result = run_script(["bash", "-euo", "pipefail", "quick-start.sh"], env, workdir)
    assert result.returncode == 0, result.stdout
    assert "would run:" in result.stdout  # the dry run
    assert history(runner.sandbox, runner.namespace) == UPGRADED
    values = yaml.safe_load(
        runner.sandbox.helm(3, "get", "values", "cilium", "-n", runner.namespace).stdout
    )
    assert values["kubeProxyReplacement"] is True
    assert values["k8sServiceHost"] == host
    verdicts = junit_verdicts(workdir / "cilium-upgrade.xml", whole_failure=False)
    assert verdicts["cilium-upgrade.upgrade::helm_upgrade"] == "passed"
    assert {v for v in verdicts.values() if not v.startswith("skipped")} == {"passed"}
