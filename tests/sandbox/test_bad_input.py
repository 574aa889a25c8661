"""Bad input: each case ends with one clear message naming the culprit, a non-zero exit
status and no traceback. docs/reliability.md lists the same cases (checked below).
"""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cilium_sandbox.cluster import Sandbox
from cilium_sandbox.faults import ContainerLogs
from real_chart_dir import Charts

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.sandbox

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"


@dataclass(frozen=True)
class Env:
    sandbox: Sandbox
    namespace: str
    path: Path

    def kubeconfig_with(self, server: str | None = None, text: str | None = None) -> Path:
        target = self.path / f"kubeconfig-{uuid.uuid4().hex[:6]}"
        if text is not None:
            target.write_text(text)
            return target
        config = yaml.safe_load(self.sandbox.kubeconfig.read_text())
        if server is not None:
            config["clusters"][0]["cluster"]["server"] = server
        target.write_text(yaml.safe_dump(config))
        return target


@dataclass(frozen=True)
class Case:
    id: str
    what: str
    args: Callable[[Env], list[str]]
    expect: str  # a regular expression the output must contain


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _helm2(env: Env) -> list[str]:
    fake = env.path / "helm2"
    fake.write_text('#!/bin/sh\necho "Client: v2.17.0+ga690bad"\n')
    fake.chmod(0o755)
    return [f"--cilium-helm={fake}", "--cilium-phase=pre"]


def _other_snapshot(env: Env) -> list[str]:
    # The whole performed upgrade (it refuses -k that leaves out steps): its first
    # step, snapshot_values, fails, and every later step is skipped.
    snapshot = env.path / "other-release-values.yaml"
    snapshot.write_text("cluster:\n  name: another-cluster\n")
    return [
        "--cilium-perform-upgrade",
        "--cilium-target-version=1.16.19",
        f"--cilium-values-snapshot={snapshot}",
    ]


def _bad_values_file(env: Env) -> list[str]:
    bad = env.path / "extra-values.yaml"
    bad.write_text("hubble: [unclosed\n")
    return [
        "--cilium-perform-upgrade",
        "--cilium-target-version=1.16.19",
        f"--cilium-values-file={bad}",
    ]


CASES = (
    Case(
        "missing-kubeconfig",
        "kubeconfig file does not exist",
        lambda e: ["--cilium-kubeconfig=/nonexistent/kubeconfig", "--cilium-phase=pre"],
        r"/nonexistent/kubeconfig",
    ),
    Case(
        "malformed-kubeconfig",
        "kubeconfig is not YAML",
        lambda e: [
            f"--cilium-kubeconfig={e.kubeconfig_with(text='clusters: [')}",
            "--cilium-phase=pre",
        ],
        r"cannot read kubeconfig .*kubeconfig-",
    ),
    Case(
        "unknown-context",
        "--cilium-context names no context",
        lambda e: ["--cilium-context=no-such-context", "--cilium-phase=pre"],
        r"no-such-context",
    ),
    Case(
        "unreachable-server",
        "API server not listening",
        lambda e: [
            f"--cilium-kubeconfig={e.kubeconfig_with(f'https://127.0.0.1:{_closed_port()}')}",
            "--cilium-phase=pre",
        ],
        r"cluster unreachable",
    ),
    Case(
        "wrong-namespace",
        "--cilium-namespace holds no release",
        lambda e: [
            "--cilium-namespace=no-such-namespace",
            "--cilium-phase=pre",
            "-k",
            "release_deployed",
        ],
        r"release cilium not found in namespace no-such-namespace",
    ),
    Case(
        "release-not-found",
        "--cilium-release names no release",
        lambda e: [
            "--cilium-release=no-such-release",
            "--cilium-phase=pre",
            "-k",
            "release_deployed",
        ],
        r"release no-such-release not found",
    ),
    Case(
        "target-not-semver",
        "--cilium-target-version is not a version",
        lambda e: ["--cilium-target-version=latest"],
        r"--cilium-target-version: 'latest' is not a semantic version",
    ),
    Case(
        "target-not-available",
        "target version not in the chart source",
        lambda e: ["--cilium-target-version=1.16.99", "--cilium-phase=pre", "-k", "upgrade_path"],
        r"target chart version 1\.16\.99 is not available",
    ),
    Case(
        "downgrade",
        "target older than the release, downgrade not allowed",
        lambda e: ["--cilium-target-version=1.15.0", "--cilium-phase=pre", "-k", "upgrade_path"],
        r"1\.15\.19 -> 1\.15\.0 is a downgrade; allow it explicitly",
    ),
    Case(
        "snapshot-unwritable",
        "--cilium-values-snapshot in a missing directory",
        lambda e: [
            "--cilium-perform-upgrade",
            "--cilium-target-version=1.16.19",
            "--cilium-values-snapshot=/nonexistent/dir/values.yaml",
        ],
        r"cannot write values snapshot /nonexistent/dir/values\.yaml",
    ),
    Case(
        "snapshot-of-another-release",
        "existing snapshot holds different values",
        _other_snapshot,
        r"already exists with different content; refusing to overwrite",
    ),
    Case(
        "malformed-values-file",
        "--cilium-values-file is not YAML",
        _bad_values_file,
        r"extra-values\.yaml",
    ),
    Case(
        "helm-missing",
        "--cilium-helm names no program",
        lambda e: ["--cilium-helm=/nonexistent/helm", "--cilium-phase=pre"],
        r"helm binary '/nonexistent/helm' not found",
    ),
    Case("helm-2", "helm is version 2", _helm2, r"only Helm 3 and Helm 4"),
    Case(
        "chart-repo-unknown",
        "--cilium-chart names a repo helm does not know",
        lambda e: [
            "--cilium-chart=nosuchrepo/cilium",
            "--cilium-phase=pre",
            "--cilium-target-version=1.16.19",
        ],
        r"no chart nosuchrepo/cilium in the Helm repositories",
    ),
    Case(
        "contradicting-options",
        "options that cannot go together",
        lambda e: ["--cilium-overwrite-snapshot"],
        r"--cilium-overwrite-snapshot \(from the command line\) needs --cilium-write-snapshot",
    ),
)


@pytest.fixture(scope="module")
def installed(sandbox: Sandbox, charts: Charts) -> Iterator[str]:
    namespace = f"bad-{uuid.uuid4().hex[:6]}"
    sandbox.kubectl("create", "namespace", namespace)
    sandbox.helm(
        3,
        "install",
        "cilium",
        str(charts / "1.15.19"),
        *charts.values("1.15.19", sandbox),
        "-n",
        namespace,
        "--wait",
        "--timeout",
        "2m",
    )
    sandbox.set_logs(
        ContainerLogs(namespace, "cnp-validator", current=["All CCNPs and CNPs valid!"])
    )
    yield namespace
    sandbox.helm(3, "uninstall", "cilium", "-n", namespace, "--wait", check=False)
    sandbox.kubectl("delete", "namespace", namespace, "--wait=false")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_ends_with_a_clear_message(
    case: Case, sandbox: Sandbox, installed: str, charts: Charts, pytester: pytest.Pytester
) -> None:
    env = Env(sandbox, installed, pytester.path)
    defaults = [
        f"--cilium-kubeconfig={sandbox.kubeconfig}",
        f"--cilium-helm={sandbox.binaries.helm3}",
        f"--cilium-namespace={installed}",
        f"--cilium-chart={charts}",
        f"--cilium-values-snapshot={pytester.path / 'values.yaml'}",
        f"--cilium-state-file={pytester.path / 'state.json'}",
        "--cilium-timeout=20",
        "--cilium-request-timeout=5",
    ]
    args = case.args(env)
    given = {a.split("=", 1)[0] for a in args}
    result = pytester.runpytest_subprocess(
        "--cilium-upgrade",
        "-p",
        "no:cacheprovider",
        "-rA",
        *[d for d in defaults if d.split("=", 1)[0] not in given],
        *args,
    )
    output = result.stdout.str() + result.stderr.str()
    assert result.ret != 0, output
    assert re.search(case.expect, output), output
    assert "Traceback" not in output
    assert "INTERNALERROR" not in output


def test_reliability_doc_lists_every_case() -> None:
    rows = re.findall(r"^\| `([a-z0-9-]+)` \|", DOC.read_text(), flags=re.MULTILINE)
    assert rows == [c.id for c in CASES]
