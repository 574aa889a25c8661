"""Planted secrets against the sandbox: the real Kubernetes client, real Helm, real charts.

A release whose values hold a secret under an ordinary key, a kubeconfig whose server
URL carries a password (kube-apiserver ignores it: the sandbox's client certificate
authenticates) and whose other users hold a token and an exec plugin's environment,
and a ``--cilium-set`` item with a secret after a comma. The pre checks, and a dry run
of the whole gated upgrade (which prints the helm commands with the ``--set`` items),
print none of them: not on the terminal, in the JUnit XML or in the Markdown summary.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cilium_sandbox.cluster import Sandbox
from cilium_sandbox.faults import ContainerLogs
from conftest import uninstall_releases
from real_chart_dir import Charts

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.sandbox

CURRENT, TARGET = "1.15.19", "1.16.19"
LIVE_VALUE = "PLANTED-live-value-in-extraConfig"
URL_PASSWORD = "PLANTED-url-password"  # noqa: S105 - planted
TOKEN = "PLANTED-unused-user-token"  # noqa: S105 - planted
EXEC_ENV = "PLANTED-exec-env-value"
SET_PIECE = "PLANTED-set-piece"
VALID = 'level=info msg="All CCNPs and CNPs valid!" subsys=preflight'


@pytest.fixture(scope="module")
def installed(sandbox: Sandbox, charts: Charts) -> Iterator[str]:
    namespace = f"sec-{uuid.uuid4().hex[:6]}"
    sandbox.kubectl("create", "namespace", namespace)
    sandbox.helm(
        3,
        "install",
        "cilium",
        str(charts / CURRENT),
        "-n",
        namespace,
        *charts.values(CURRENT, sandbox),
        "--set",
        f"extraConfig.custom-setting={LIVE_VALUE}",
        "--wait",
        "--timeout",
        "2m",
    )
    sandbox.set_logs(ContainerLogs(namespace, "cnp-validator", current=[VALID]))
    yield namespace
    uninstall_releases(sandbox, namespace)
    sandbox.kubectl("delete", "namespace", namespace, "--wait=false")


def planted_kubeconfig(sandbox: Sandbox, path: Path) -> Path:
    config = yaml.safe_load(sandbox.kubeconfig.read_text())
    server = config["clusters"][0]["cluster"]["server"]
    scheme, _, rest = server.partition("://")
    config["clusters"][0]["cluster"]["server"] = f"{scheme}://admin:{URL_PASSWORD}@{rest}"
    config["users"] += [
        {"name": "unused-token", "user": {"token": TOKEN}},
        {
            "name": "unused-plugin",
            "user": {
                "exec": {
                    "apiVersion": "client.authentication.k8s.io/v1",
                    "command": "get-token",
                    "env": [{"name": "SECRET", "value": EXEC_ENV}],
                }
            },
        },
    ]
    path.write_text(yaml.safe_dump(config))
    return path


def run_gate(
    sandbox: Sandbox, charts: Charts, namespace: str, pytester: pytest.Pytester, *args: str
) -> tuple[pytest.RunResult, dict[str, str]]:
    kubeconfig = planted_kubeconfig(sandbox, pytester.path / "kubeconfig")
    junit, summary = pytester.path / "junit.xml", pytester.path / "summary.md"
    result = pytester.runpytest_subprocess(
        "--cilium-upgrade",
        f"--cilium-kubeconfig={kubeconfig}",
        f"--cilium-helm={sandbox.binaries.helm3}",
        f"--cilium-namespace={namespace}",
        f"--cilium-chart={charts}",
        f"--cilium-target-version={TARGET}",
        f"--cilium-values-snapshot={pytester.path / 'values.yaml'}",
        f"--cilium-state-file={pytester.path / 'state.json'}",
        f"--cilium-set=foo=bar,hubble.tls.key={SET_PIECE}",
        f"--cilium-summary={summary}",
        f"--junitxml={junit}",
        "--cilium-timeout=30",
        "--cilium-request-timeout=10",
        "-p",
        "no:cacheprovider",
        "-rA",
        "-v",
        *args,
        timeout=180,
    )
    output = result.stdout.str() + result.stderr.str()
    texts = {"output": output, "junit": junit.read_text(), "summary": summary.read_text()}
    for where, text in texts.items():
        for planted in (LIVE_VALUE, URL_PASSWORD, TOKEN, EXEC_ENV, SET_PIECE, "PLANTED"):
            assert planted not in text, f"{planted} leaked into the {where}:\n{text}"
    return result, texts


def test_the_pre_checks_print_no_secret(
    sandbox: Sandbox, charts: Charts, installed: str, pytester: pytest.Pytester
) -> None:
    _, texts = run_gate(
        sandbox, charts, installed, pytester, "--cilium-phase=pre", "--cilium-write-snapshot"
    )
    # the checks read the cluster and ran helm through the URL with the password; the
    # target chart rendered with the saved values and the --set item (the pre-flight
    # checks fail: no pre-flight release is installed)
    assert "PASSED cilium-upgrade::pre::release_deployed" in texts["output"], texts["output"]
    assert "PASSED cilium-upgrade::pre::target_chart_renders_with_snapshot" in texts["output"]
    server = yaml.safe_load(sandbox.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    assert f'name="cluster" value="{server}"' in texts["junit"]
    assert f"**cluster** {server}" in texts["summary"]


def test_a_dry_run_prints_no_secret(
    sandbox: Sandbox, charts: Charts, installed: str, pytester: pytest.Pytester
) -> None:
    result, texts = run_gate(
        sandbox, charts, installed, pytester, "--cilium-perform-upgrade", "--cilium-dry-run"
    )
    assert result.ret == pytest.ExitCode.OK, texts["output"]
    assert "--set 'foo=bar,hubble.tls.key=[REDACTED]'" in texts["output"]
