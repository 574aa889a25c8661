"""The argument lists of Helm 3 and Helm 4 for each verb, built without running them."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_fakes import CHARTS, REPO, SECRET, STANDINS, Recorder, fake_driver, fake_helm, helm_script

from pytest_cilium_upgrade.adapters.helm.charts import ChartSource
from pytest_cilium_upgrade.adapters.helm.client import Helm
from pytest_cilium_upgrade.adapters.helm.commands import HelmCommand
from pytest_cilium_upgrade.errors import HelmFailed, NotFound
from pytest_cilium_upgrade.redact import REDACTED, Redactor


@pytest.fixture
def binary(tmp_path: Path) -> str:
    """An executable that stands in for the path of helm; the recorder answers instead."""
    return helm_script(tmp_path, "exit 0")


# --------------------------------------------------------------------------- argv


@pytest.mark.parametrize(
    ("major", "wait", "atomic", "force"),
    [
        (3, "--wait", "--atomic", "--force"),
        (4, "--wait=watcher", "--rollback-on-failure", "--force-replace"),
    ],
)
def test_install_argv(binary: str, major: int, wait: str, atomic: str, force: str) -> None:
    helm = fake_helm(binary, major, kubeconfig="/kc", kube_context="ctx")
    command = helm.install_command(
        "cilium-preflight",
        STANDINS,
        "1.16.0",
        "kube-system",
        values_files=["old.yaml"],
        values={"k8sServiceHost": "10.0.0.1"},
        set_values=["preflight.enabled=true", "agent=false"],
        set_string_values=["x=1"],
        timeout_s=90,
        atomic=True,
        force=True,
        create_namespace=True,
    )
    assert command.argv == (
        binary,
        "install",
        "cilium-preflight",
        str(CHARTS / "1.16.0"),
        "--namespace",
        "kube-system",
        "--values",
        "old.yaml",
        "--values",
        "-",
        "--set",
        "preflight.enabled=true",
        "--set",
        "agent=false",
        "--set-string",
        "x=1",
        wait,
        "--timeout",
        "90s",
        atomic,
        force,
        "--create-namespace",
        "--kubeconfig",
        "/kc",
        "--kube-context",
        "ctx",
    )
    assert yaml.safe_load(command.stdin or "") == {"k8sServiceHost": "10.0.0.1"}
    assert command.timeout == 150


@pytest.mark.parametrize("major", [3, 4])
def test_without_wait_only_the_timeout_is_passed(binary: str, major: int) -> None:
    command = fake_helm(binary, major).install_command(
        "cilium", REPO, "1.16.3", "kube-system", wait=False, timeout_s=2.5
    )
    assert command.argv[1:] == (
        "install",
        "cilium",
        "cilium/cilium",
        "--version",
        "1.16.3",
        "--namespace",
        "kube-system",
        "--timeout",
        "3s",
    )
    assert command.stdin is None
    assert command.timeout == 120


def test_helm_4_wait_strategy_is_configurable(binary: str) -> None:
    helm = fake_helm(binary, 4, wait_strategy="legacy")
    assert "--wait=legacy" in helm.rollback_command("cilium", 1, "kube-system").argv
    assert (
        "--wait"
        in fake_helm(binary, 3, wait_strategy="legacy")
        .rollback_command("cilium", 1, "kube-system")
        .argv
    )


@pytest.mark.parametrize(
    ("major", "expected"),
    [
        (3, ("--wait", "--timeout", "60s", "--reuse-values", "--atomic", "--force", "--install")),
        (
            4,
            (
                "--wait=watcher",
                "--timeout",
                "60s",
                "--reuse-values",
                "--rollback-on-failure",
                "--force-replace",
                "--install",
            ),
        ),
    ],
)
def test_upgrade_argv(binary: str, major: int, expected: tuple[str, ...]) -> None:
    command = fake_helm(binary, major).upgrade_command(
        "cilium",
        REPO,
        "1.16.4",
        "kube-system",
        values_files=[Path("v.yaml")],
        timeout_s=60,
        reuse_values=True,
        current_version="1.16.4",
        atomic=True,
        force=True,
        install=True,
    )
    assert command.argv[1:] == (
        "upgrade",
        "cilium",
        "cilium/cilium",
        "--version",
        "1.16.4",
        "--namespace",
        "kube-system",
        "--values",
        "v.yaml",
        *expected,
    )


def test_upgrade_can_reset_values(binary: str) -> None:
    command = fake_helm(binary, 3).upgrade_command("c", REPO, "1.17.0", "ns", reset_values=True)
    assert "--reset-values" in command.argv
    assert "--reuse-values" not in command.argv
    with pytest.raises(ValueError, match="exclude each other"):
        fake_helm(binary, 3).upgrade_command(
            "c",
            REPO,
            "1.17.1",
            "ns",
            reset_values=True,
            reuse_values=True,
            current_version="1.17.1",
        )


@pytest.mark.parametrize(("major", "wait"), [(3, "--wait"), (4, "--wait=watcher")])
def test_rollback_and_uninstall_argv(binary: str, major: int, wait: str) -> None:
    helm = fake_helm(binary, major)
    assert helm.rollback_command("cilium", 3, "kube-system", timeout_s=120).argv[1:] == (
        "rollback",
        "cilium",
        "3",
        "--namespace",
        "kube-system",
        wait,
        "--timeout",
        "120s",
    )
    forced = helm.rollback_command("cilium", 0, "kube-system", wait=False, force=True)
    assert forced.argv[1:] == (
        "rollback",
        "cilium",
        "0",
        "--namespace",
        "kube-system",
        "--timeout",
        "300s",
        "--force" if major == 3 else "--force-replace",
    )
    assert helm.uninstall_command("cilium-preflight", "kube-system").argv[1:] == (
        "uninstall",
        "cilium-preflight",
        "--namespace",
        "kube-system",
        wait,
        "--timeout",
        "300s",
    )
    kept = helm.uninstall_command("x", "ns", wait=False, timeout_s=30, keep_history=True)
    assert kept.argv[1:] == (
        "uninstall",
        "x",
        "--namespace",
        "ns",
        "--timeout",
        "30s",
        "--keep-history",
    )
    with pytest.raises(ValueError, match="revision must be 0"):
        helm.rollback_command("cilium", -1, "kube-system")


@pytest.mark.parametrize(("major", "all_flag"), [(3, ("--all",)), (4, ())])
def test_list_argv(binary: str, major: int, all_flag: tuple[str, ...]) -> None:
    helm = fake_driver(binary, major)
    base = ("list", "--namespace", "kube-system", "-o", "json", "--max", "256")
    assert helm.list_releases_command("kube-system").argv[1:] == (*base, *all_flag)
    assert helm.list_releases_command("kube-system", all_states=False).argv[1:] == (
        *base,
        "--deployed",
        "--failed",
    )


def test_template_and_repo_add_argv(binary: str) -> None:
    helm = fake_driver(binary, 4)
    command = helm.template_command("cilium", REPO, "1.16.3", "kube-system", ["saved.yaml"])
    assert command.argv[1:] == (
        "template",
        "cilium",
        "cilium/cilium",
        "--version",
        "1.16.3",
        "--namespace",
        "kube-system",
        "--values",
        "saved.yaml",
    )
    assert helm.repo_add_command(REPO) is None
    assert helm.repo_add_command(STANDINS) is None
    # a repository given by URL is named on each command, never added
    with_url = ChartSource.parse("cilium/cilium", "https://helm.cilium.io/")
    assert helm.repo_add_command(with_url) is None


def test_command_display_is_quoted_redacted_and_hides_stdin(binary: str) -> None:
    helm = fake_helm(binary, 3)
    command = helm.install_command(
        "cilium",
        STANDINS,
        "1.15.1",
        "kube-system",
        values={"hubble": {"tls": {"server": {"key": SECRET}}}},
        set_values=[f"etcd.password={SECRET}", "cluster.name=a b"],
    )
    redactor = Redactor([SECRET])
    shown = command.display(redactor)
    assert SECRET not in shown
    assert f"etcd.password={REDACTED}" in shown
    assert "'cluster.name=a b'" in shown
    assert shown.endswith("# values on stdin")
    assert SECRET not in repr(HelmCommand(("helm",), 1.0, stdin=SECRET))


def test_planning_runs_nothing_but_the_version_probe(tmp_path: Path) -> None:
    recorder = Recorder({"version": (0, "v4.3.1\n", "")})
    helm = Helm(helm_script(tmp_path, "exit 0"), runner=recorder)
    helm.upgrade_command("cilium", STANDINS, "1.16.0", "kube-system")
    helm.uninstall_command("cilium-preflight", "kube-system")
    assert [a[1] for a in recorder.argvs] == ["version"]


# --------------------------------------------------------------------------- reuse-values


def test_upgrade_reads_the_installed_version_and_refuses_before_running(binary: str) -> None:
    recorder = Recorder(
        {
            "status": (0, '{"name": "cilium", "version": 4, "info": {"status": "deployed"}}', ""),
            "get metadata": (0, '{"chart": "cilium", "version": "1.15.18"}', ""),
        }
    )
    helm = fake_driver(binary, 3, recorder)
    with pytest.raises(ValueError, match=r"1\.15\.18 -> 1\.16\.0"):
        helm.upgrade("cilium", STANDINS, "1.16.0", "kube-system", reuse_values=True)
    assert not recorder.ran("upgrade")
    with pytest.raises(ValueError, match="reuse_values"):
        helm.upgrade_command("cilium", STANDINS, "1.16.0", "kube-system", reuse_values=True)

    helm.upgrade("cilium", STANDINS, "1.15.18", "kube-system", reuse_values=True)
    assert recorder.argvs[-1][1] == "upgrade"
    assert "--reuse-values" in recorder.argvs[-1]


def test_upgrade_with_reuse_values_of_a_missing_release(binary: str) -> None:
    recorder = Recorder({"status": (1, "", "Error: release: not found\n")})
    with pytest.raises(NotFound, match="cilium not found in namespace kube-system"):
        fake_driver(binary, 4, recorder).upgrade(
            "cilium", STANDINS, "1.15.18", "kube-system", reuse_values=True
        )


# --------------------------------------------------------------------------- as the cluster would


@pytest.mark.parametrize("major", [3, 4])
def test_template_renders_for_the_clusters_version_and_api_versions(
    binary: str, major: int
) -> None:
    helm = fake_helm(binary, major)
    api_versions = ["v1", "monitoring.coreos.com/v1", "gateway.networking.k8s.io/v1/GatewayClass"]
    command = helm.template_command(
        "cilium",
        STANDINS,
        "1.15.1",
        "kube-system",
        ["saved.yaml"],
        kube_version="v1.36.3",
        api_versions=api_versions,
    )
    argv = command.argv
    assert argv[argv.index("--kube-version") + 1] == "v1.36.3"
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--api-versions"] == api_versions
    # without them Helm assumes a Kubernetes of its own (v1.20.0 in Helm 3): no flag at all
    plain = helm.template_command("cilium", STANDINS, "1.15.1", "kube-system", ["saved.yaml"])
    assert "--kube-version" not in plain.argv
    assert "--api-versions" not in plain.argv
    assert argv[: len(plain.argv)] == plain.argv


# --------------------------------------------------------------------------- user-supplied values


class ProbeRunner(Recorder):
    """Answers the values probe with what a probe chart would print, and keeps its chart."""

    def __init__(self, printed: str) -> None:
        super().__init__()
        self.printed = printed
        self.chart: dict[str, str] = {}

    def __call__(self, argv: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        super().__call__(argv, **kwargs)
        chart = Path(argv[3])
        self.chart = {
            str(p.relative_to(chart)): p.read_text() for p in chart.rglob("*") if p.is_file()
        }
        out = f"---\n# Source: values-probe/templates/values.yaml\n{self.printed}\n"
        return subprocess.CompletedProcess(list(argv), 0, out, "")


@pytest.mark.parametrize("major", [3, 4])
def test_user_values_asks_helm_with_the_upgrades_values_flags(binary: str, major: int) -> None:
    runner = ProbeRunner('# values: {"a":1,"b":2,"tolerations":[{"operator":"Exists"}]}')
    helm = fake_helm(binary, major, runner, kubeconfig="/kc", kube_context="ctx")
    values = helm.user_values(["snapshot.yaml", "extra.yaml"], ["a=1,b=2", "x\\.y=1"])
    assert values == {"a": 1, "b": 2, "tolerations": [{"operator": "Exists"}]}
    (argv,) = runner.argvs
    probe = argv[3]
    assert argv[1:] == [
        "template",
        "values-probe",
        probe,
        "--values",
        "snapshot.yaml",
        "--values",
        "extra.yaml",
        "--set",
        "a=1,b=2",
        "--set",
        "x\\.y=1",
    ]  # local: no kubeconfig or context
    # a chart without defaults, whose one template prints .Values; removed afterwards
    assert runner.chart == {
        "Chart.yaml": "apiVersion: v2\nname: values-probe\nversion: 0.0.0\n",
        "templates/values.yaml": "# values: {{ toJson .Values }}\n",
    }
    assert not Path(probe).exists()


def test_user_values_of_nothing_is_empty_and_garbage_is_an_error(binary: str) -> None:
    assert fake_helm(binary, 3, ProbeRunner("# values: null")).user_values() == {}
    for printed in ("# values: [1]", "# values: {oops", "nothing"):
        helm = fake_helm(binary, 3, ProbeRunner(printed + f" {SECRET}"))
        with pytest.raises(HelmFailed, match="printed no values mapping") as caught:
            helm.user_values(["snapshot.yaml"])
        assert SECRET not in str(caught.value)


def test_user_values_failure_carries_helms_error(binary: str) -> None:
    runner = Recorder(
        {"template": (1, "", 'Error: failed parsing --set data: key "a" has no value')}
    )
    helm = fake_helm(binary, 3, runner)
    with pytest.raises(HelmFailed, match='key "a" has no value'):
        helm.user_values(set_values=["a"])
