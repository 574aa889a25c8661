"""A crash-looping cnp-validator: the gate names every invalid policy of its previous log.

The pre-flight release is installed from the real upstream chart archive, as the upgrade
guide says (``helm install cilium-preflight <chart> --set preflight.enabled=true --set
agent=false --set operator.enabled=false``). The sandbox makes its ``cnp-validator``
container crash-loop and serves, as that container's previous log, lines in the format
of the chart's version: one invalid CiliumNetworkPolicy and one invalid
CiliumClusterwideNetworkPolicy. The gate's pre phase must name both, with kind,
namespace/name and the validator's error, and the exit status of the last run.

The lines are those of real runs of ``preflight validate-cnp`` built from the source of
the upstream tag named (see ``tests/unit/test_checks_validator_log.py`` for how they were
made), with the policies not needed here left out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from cilium_sandbox.cluster import Sandbox
from cilium_sandbox.faults import ContainerLogs, Fault, PodFault
from junit_report import junit_verdicts
from real_chart_dir import Charts

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.sandbox

VALIDATOR_LABELS = {"k8s-app": "cilium-pre-flight-check-deployment"}
CHECK = "cilium-upgrade.pre::cnp_validation_passed"

# RUN of v1.17.17 (logrus lines; the hive through Go's default logger), three of its
# invalid policies left out; 1.17.18 logs from the same code.
LOGRUS_1_17 = (
    "2026/12/04 16:30:32 INFO Starting hive",
    'time="2026-12-04T16:30:32Z" level=info msg="Establishing connection to apiserver"'
    ' host="https://127.0.0.1:64430" subsys=k8s-client',
    'time="2026-12-04T16:30:32Z" level=info msg="Connected to apiserver" subsys=k8s-client',
    'time="2026-12-04T16:30:32Z" level=info msg="Validation OK!"'
    " CiliumNetworkPolicy=default/allow-dns",
    'time="2026-12-04T16:30:32Z" level=error msg="Unexpected validation error"'
    " CiliumNetworkPolicy=team-a/cnp-update"
    r' error="spec.labels[0]: Invalid value: \"string\": spec.labels[0] in body must be of'
    r' type object: \"string\""',
    'time="2026-12-04T16:30:32Z" level=error msg="Unexpected validation error"'
    " CiliumClusterwideNetworkPolicy=ccnp-bad-port"
    r' error="spec.ingress[0].toPorts[0].ports[0].protocol: Unsupported value: \"SCTPX\":'
    r' supported values: \"TCP\", \"UDP\", \"SCTP\", \"ANY\""',
    'time="2026-12-04T16:30:32Z" level=info msg="Validation OK!"'
    " CiliumClusterwideNetworkPolicy=ccnp-ok",
    '2026/12/04 16:30:32 ERROR Start hook failed function="cmd.validateCNPCmd.func1.1'
    ' (cmd/preflight_k8s_valid_cnp.go:41)" error="Found invalid CiliumNetworkPolicy"',
    '2026/12/04 16:30:32 ERROR Failed to start hive error="Found invalid CiliumNetworkPolicy"'
    " duration=82.249985ms",
    "2026/12/04 16:30:32 INFO Stopping hive",
    'time="2026-12-04T16:30:32Z" level=fatal msg="failed to start: Found invalid'
    ' CiliumNetworkPolicy"',
)
# RUN of v1.18.11 (slog text), three of its invalid policies left out; the validator's
# code is the same from 1.18.0 to 1.19.6.
SLOG_1_19 = (
    'time=2026-12-04T16:28:34.651792089Z level=info msg="Starting hive" subsys=cilium-dbg',
    "time=2026-12-04T16:28:34.651882705Z level=info"
    ' msg="Establishing connection to apiserver" subsys=cilium-dbg module=k8s-client'
    " ipAddr=https://127.0.0.1:64430",
    'time=2026-12-04T16:28:34.661023217Z level=info msg="Connected to apiserver"'
    " subsys=cilium-dbg module=k8s-client",
    'time=2026-12-04T16:28:34.76252267Z level=info msg="Validation OK!" subsys=cilium-dbg'
    " type=CiliumNetworkPolicy name=default/allow-dns",
    'time=2026-12-04T16:28:34.762639776Z level=error msg="Unexpected validation error"'
    r' subsys=cilium-dbg error="spec.labels[0]: Invalid value: \"string\": spec.labels[0]'
    r' in body must be of type object: \"string\"" type=CiliumNetworkPolicy'
    " name=team-a/cnp-update",
    'time=2026-12-04T16:28:34.766013094Z level=error msg="Unexpected validation error"'
    r' subsys=cilium-dbg error="spec.ingress[0].toPorts[0].ports[0].protocol: Unsupported'
    r' value: \"SCTPX\": supported values: \"TCP\", \"UDP\", \"SCTP\", \"ANY\""'
    " type=CiliumClusterwideNetworkPolicy name=ccnp-bad-port",
    'time=2026-12-04T16:28:34.76690247Z level=info msg="Validation OK!" subsys=cilium-dbg'
    " type=CiliumClusterwideNetworkPolicy name=ccnp-ok",
    'time=2026-12-04T16:28:34.766914328Z level=error msg="Start hook failed"'
    ' subsys=cilium-dbg function="cmd.validateCNPCmd.func1.1'
    ' (cmd/preflight_k8s_valid_cnp.go:42)" error="Found invalid CiliumNetworkPolicy"',
    'time=2026-12-04T16:28:34.766921469Z level=error msg="Failed to start hive"'
    ' subsys=cilium-dbg error="Found invalid CiliumNetworkPolicy" duration=115.075389ms',
    'time=2026-12-04T16:28:34.766941849Z level=info msg="Stopping hive" subsys=cilium-dbg',
    'time=2026-12-04T16:28:34.767003331Z level=info msg="Stopped hive" subsys=cilium-dbg'
    " duration=58.408µs",
    'time=2026-12-04T16:28:34.767009891Z level=fatal msg="failed to start: Found invalid'
    ' CiliumNetworkPolicy" subsys=cilium-dbg',
)
CNP_FINDING = (
    "invalid CiliumNetworkPolicy team-a/cnp-update: spec.labels[0]: Invalid value:"
    ' "string": spec.labels[0] in body must be of type object: "string"'
)
CCNP_FINDING = (
    "invalid CiliumClusterwideNetworkPolicy ccnp-bad-port:"
    ' spec.ingress[0].toPorts[0].ports[0].protocol: Unsupported value: "SCTPX":'
    ' supported values: "TCP", "UDP", "SCTP", "ANY"'
)


def install_crash_looping_preflight(
    sandbox: Sandbox,
    charts: Charts,
    namespace: str,
    agent: str,
    version: str,
    previous: Sequence[str],
    helm_major: int,
) -> None:
    """The pre-flight release of ``version``, its validator crash-looping on ``previous``.

    The pre-flight Deployment's pod must share a node with an agent pod (the chart's
    ``preflight.affinity``): the release ``cilium`` of ``agent`` is installed first.
    """
    sandbox.helm(
        helm_major,
        "install",
        "cilium",
        str(charts.archive(agent)),
        "-n",
        namespace,
        *charts.values(agent, sandbox),
        "--wait",
        "--timeout",
        "2m",
    )
    sandbox.set_logs(
        ContainerLogs(
            namespace,
            "cnp-validator",
            current=[previous[0]],  # started again, no verdict yet
            previous=list(previous),
        )
    )
    sandbox.add_fault(
        PodFault(
            Fault.CRASH_LOOP,
            namespace=namespace,
            labels=VALIDATOR_LABELS,
            container="cnp-validator",
            restarts=4,
        )
    )
    sandbox.helm(
        helm_major,
        "install",
        "cilium-preflight",
        str(charts.archive(version)),
        "-n",
        namespace,
        "--set",
        "preflight.enabled=true",
        "--set",
        "agent=false",
        "--set",
        "operator.enabled=false",
        *charts.values(version, sandbox),
    )
    # the Deployment exists once helm returns; its pod only once the controller made it
    sandbox.kubectl(
        "wait",
        "deployment/cilium-pre-flight-check",
        "-n",
        namespace,
        "--for=jsonpath={.status.replicas}=1",
        "--timeout=60s",
    )
    sandbox.kubectl(
        "wait",
        "pods",
        "-n",
        namespace,
        "-l",
        "k8s-app=cilium-pre-flight-check-deployment",
        "--for=jsonpath={.status.phase}=Running",
        "--timeout=60s",
    )


def validator_status(sandbox: Sandbox, namespace: str) -> dict[str, Any]:
    """The cnp-validator's container status, as the API server holds it."""
    pods = json.loads(
        sandbox.kubectl(
            "get",
            "pods",
            "-n",
            namespace,
            "-l",
            "k8s-app=cilium-pre-flight-check-deployment",
            "-o",
            "json",
        )
    )["items"]
    [pod] = pods
    [status] = [s for s in pod["status"]["containerStatuses"] if s["name"] == "cnp-validator"]
    return dict(status)


@pytest.mark.parametrize(
    ("agent", "version", "previous", "helm_major"),
    [
        pytest.param("1.16.19", "1.17.18", LOGRUS_1_17, 3, id="1.17.18-logrus-helm3"),
        pytest.param("1.18.12", "1.19.6", SLOG_1_19, 3, id="1.19.6-slog-helm3"),
        pytest.param("1.18.12", "1.19.6", SLOG_1_19, 4, id="1.19.6-slog-helm4"),
    ],
)
def test_crash_looping_validator_names_both_invalid_policies(
    sandbox: Sandbox,
    namespace: str,
    faults: Sandbox,
    charts: Charts,
    pytester: pytest.Pytester,
    agent: str,
    version: str,
    previous: Sequence[str],
    helm_major: int,
) -> None:
    try:
        install_crash_looping_preflight(
            sandbox, charts, namespace, agent, version, previous, helm_major
        )
        helm = sandbox.binaries.helm3 if helm_major == 3 else sandbox.binaries.helm4
        junit = pytester.path / "junit.xml"
        result = pytester.runpytest(
            "--cilium-upgrade",
            f"--cilium-kubeconfig={sandbox.kubeconfig}",
            f"--cilium-helm={helm}",
            f"--cilium-namespace={namespace}",
            "--cilium-phase=pre",
            f"--cilium-target-version={version}",
            "-k",
            "cnp_validation_passed",
            f"--junitxml={junit}",
            "-p",
            "no:cacheprovider",
            "-rA",
        )
        assert result.parseoutcomes().get("failed") == 1, result.stdout.str()
        verdict = junit_verdicts(junit)[CHECK]
        status = validator_status(sandbox, namespace)
        assert status["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        assert status["restartCount"] == 4
        exit_status = status["lastState"]["terminated"]["exitCode"]
        lines = verdict.splitlines()
        assert lines[0] == (
            "CNP validation failed (previous container's log,"
            f" exit status {exit_status}): 2 invalid policies"
        ), verdict
        assert f"  {CNP_FINDING}" in lines, verdict
        assert f"  {CCNP_FINDING}" in lines, verdict
        assert "  validator's verdict: Found invalid CiliumNetworkPolicy" in lines, verdict
        # the hive's repetitions of the verdict are not listed
        assert verdict.count("Found invalid") == 1, verdict
        text = result.stdout.str()
        assert CNP_FINDING in text
        assert CCNP_FINDING in text
    finally:
        for release in ("cilium-preflight", "cilium"):
            sandbox.helm(helm_major, "uninstall", release, "-n", namespace, "--wait", check=False)
