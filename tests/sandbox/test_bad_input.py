"""Bad input: each case ends with one clear message naming the culprit, a non-zero exit
status and no traceback. docs/reliability.md lists the same cases (checked below).
"""

from __future__ import annotations

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
    port: int  # nothing listens there

    def kubeconfig_with(self, server: str | None = None, text: str | None = None) -> Path:
        target = self.path / "kubeconfig"
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
    """One bad input and its row of docs/reliability.md.

    ``command`` is what follows ``pytest --cilium-upgrade`` as the doc shows it;
    ``line`` the line the user sees, verbatim, where ``<dir>`` stands for the run's
    directory, ``<ns>`` for the namespace holding the release, ``<port>`` for the
    closed port and ``<kubeconfig>`` for the sandbox's kubeconfig; ``args`` the options
    as run (with ``-k`` where other checks would fail too).
    """

    id: str
    command: str
    args: Callable[[Env], list[str]]
    line: str
    exit: int = 1

    @property
    def row(self) -> str:
        code = f"`` {self.line} ``" if "`" in self.line else f"`{self.line}`"
        return f"| {self.id} | {self.command} | {self.exit} | {code} |"


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
        "`--cilium-phase=pre --cilium-kubeconfig=/nonexistent/kubeconfig`",
        lambda e: ["--cilium-kubeconfig=/nonexistent/kubeconfig", "--cilium-phase=pre"],
        "cannot use kubeconfig /nonexistent/kubeconfig: Invalid kube-config file. No "
        "configuration found.",
    ),
    Case(
        "malformed-kubeconfig",
        "`--cilium-phase=pre --cilium-kubeconfig=<dir>/kubeconfig`, a file that is not YAML",
        lambda e: [
            f"--cilium-kubeconfig={e.kubeconfig_with(text='clusters: [')}",
            "--cilium-phase=pre",
        ],
        "cannot read kubeconfig <dir>/kubeconfig: while parsing a flow node",
    ),
    Case(
        "unknown-context",
        "`--cilium-phase=pre --cilium-context=no-such-context`",
        lambda e: ["--cilium-context=no-such-context", "--cilium-phase=pre"],
        "cannot use kubeconfig <kubeconfig>: Invalid kube-config file. Expected object "
        "with name no-such-context in <kubeconfig>/contexts list",
    ),
    Case(
        "unreachable-server",
        "`--cilium-phase=pre`, the kubeconfig's server a closed port of 127.0.0.1",
        lambda e: [
            f"--cilium-kubeconfig={e.kubeconfig_with(f'https://127.0.0.1:{e.port}')}",
            "--cilium-phase=pre",
        ],
        "cannot reach the Kubernetes API at https://127.0.0.1:<port>: "
        "HTTPSConnection(host='127.0.0.1', port=<port>): Failed to establish a new "
        "connection: [Errno 111] Connection refused",
    ),
    Case(
        "wrong-namespace",
        "`--cilium-phase=pre --cilium-namespace=no-such-namespace`",
        lambda e: [
            "--cilium-namespace=no-such-namespace",
            "--cilium-phase=pre",
            "-k",
            "release_deployed",
        ],
        "release cilium not found in namespace no-such-namespace",
    ),
    Case(
        "release-not-found",
        "`--cilium-phase=pre --cilium-release=no-such-release`",
        lambda e: [
            "--cilium-release=no-such-release",
            "--cilium-phase=pre",
            "-k",
            "release_deployed",
        ],
        "release no-such-release not found in namespace <ns>",
    ),
    Case(
        "target-not-semver",
        "`--cilium-target-version=latest`",
        lambda e: ["--cilium-target-version=latest"],
        "ERROR: --cilium-target-version: 'latest' is not a semantic version (for example "
        "1.16.5 or v1.16.5) (from the command line)",
        exit=4,
    ),
    Case(
        "target-not-available",
        "`--cilium-phase=pre --cilium-target-version=1.16.99`, a version no chart source has",
        lambda e: ["--cilium-target-version=1.16.99", "--cilium-phase=pre", "-k", "upgrade_path"],
        "target chart version 1.16.99 is not available in the chart repository",
    ),
    Case(
        "downgrade",
        "`--cilium-phase=pre --cilium-target-version=1.15.0`, older than the release's 1.15.19",
        lambda e: ["--cilium-target-version=1.15.0", "--cilium-phase=pre", "-k", "upgrade_path"],
        "1.15.19 -> 1.15.0 is a downgrade; allow it explicitly to proceed",
    ),
    Case(
        "snapshot-unwritable",
        "`--cilium-perform-upgrade --cilium-target-version=1.16.19"
        " --cilium-values-snapshot=/nonexistent/dir/values.yaml`",
        lambda e: [
            "--cilium-perform-upgrade",
            "--cilium-target-version=1.16.19",
            "--cilium-values-snapshot=/nonexistent/dir/values.yaml",
        ],
        "ERROR: --cilium-values-snapshot (from the command line): cannot write values "
        "snapshot /nonexistent/dir/values.yaml: directory /nonexistent/dir does not exist",
        exit=4,
    ),
    Case(
        "snapshot-of-another-release",
        "`--cilium-perform-upgrade --cilium-target-version=1.16.19"
        " --cilium-values-snapshot=<dir>/other-release-values.yaml`, a file holding other values",
        _other_snapshot,
        "values snapshot <dir>/other-release-values.yaml already exists with different "
        "content; refusing to overwrite it (pass --cilium-overwrite-snapshot to replace "
        "it, or choose another --cilium-values-snapshot path)",
    ),
    Case(
        "malformed-values-file",
        "`--cilium-perform-upgrade --cilium-target-version=1.16.19"
        " --cilium-values-file=<dir>/extra-values.yaml`, a file that is not YAML",
        _bad_values_file,
        "ERROR: --cilium-values-file (from the command line): values file "
        "<dir>/extra-values.yaml is not valid YAML at line 2, column 1",
        exit=4,
    ),
    Case(
        "helm-missing",
        "`--cilium-phase=pre --cilium-helm=/nonexistent/helm`",
        lambda e: ["--cilium-helm=/nonexistent/helm", "--cilium-phase=pre"],
        "helm binary '/nonexistent/helm' not found; install Helm 3 or 4 "
        "(https://helm.sh/docs/intro/install/) or pass its path",
    ),
    Case(
        "helm-2",
        "`--cilium-phase=pre --cilium-helm=<dir>/helm2`, a helm that reports v2.17.0",
        _helm2,
        "helm 'Client: v2.17.0+ga690bad' is not supported: only Helm 3 and Helm 4 are",
    ),
    Case(
        "chart-repo-unknown",
        "`--cilium-phase=pre --cilium-chart=nosuchrepo/cilium --cilium-target-version=1.16.19`",
        lambda e: [
            "--cilium-chart=nosuchrepo/cilium",
            "--cilium-phase=pre",
            "--cilium-target-version=1.16.19",
        ],
        "target chart not found: cannot list the versions of Helm repo chart "
        "nosuchrepo/cilium: no chart nosuchrepo/cilium in the Helm repositories known to "
        "helm: the repository nosuchrepo is not added (or offers no chart cilium); add it "
        "with `helm repo add nosuchrepo <url>`, or give its URL with --cilium-chart-repo, "
        "or a chart directory",
    ),
    Case(
        "contradicting-options",
        "`--cilium-overwrite-snapshot` without `--cilium-write-snapshot`",
        lambda e: ["--cilium-overwrite-snapshot"],
        "ERROR: --cilium-overwrite-snapshot (from the command line) needs "
        "--cilium-write-snapshot: the snapshot is only overwritten when it is written",
        exit=4,
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
    env = Env(sandbox, installed, pytester.path, _closed_port())
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
    line = (
        case.line.replace("<dir>", str(pytester.path))
        .replace("<ns>", installed)
        .replace("<port>", str(env.port))
        .replace("<kubeconfig>", str(sandbox.kubeconfig))
    )
    assert result.ret == case.exit, output
    assert line in output, output
    assert "Traceback" not in output
    assert "INTERNALERROR" not in output


def test_the_reliability_doc_lists_every_case() -> None:
    text = DOC.read_text()
    section = text.split("\n## Bad input\n", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in section.splitlines() if ln.startswith("| ") and "---" not in ln]
    assert rows[1:] == [c.row for c in CASES]
