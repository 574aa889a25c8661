"""Planted secrets: one in each way a secret reaches the gate, none in what it prints.

The routes: the Helm values (live and saved), a values file, the pieces of a
``--set`` item (split on its commas as Helm splits it, a short one included), the
password in the kubeconfig's server URL, the kubeconfig's token, client key, auth
provider and exec plugin environment, Helm's stderr echoing values back, and an API
error body carrying a token (the kubeconfig's, and a JSON Web Token the gate never
saw). Each is planted where the gate would print it: a user check that prints them
(its captured output goes to the terminal and to JUnit), the cluster's address in
the report's properties, a render error, an API error, a dry run's helm command line,
and an interrupted run's notes. The terminal, the JUnit XML and the Markdown summary
are searched for every one of them, in a passing, a failing, a dry and an interrupted
(Ctrl-C, and SIGTERM in a process of its own) run.
"""

from __future__ import annotations

import base64
import textwrap
from pathlib import Path

import pytest
import yaml
from gate_harness import Gate, new_gate
from kubeconfigs import write_kubeconfig
from test_step_order import performing

from pytest_cilium_upgrade.adapters.kube import Kube
from pytest_cilium_upgrade.errors import GateError

pytest_plugins = ["pytester"]

LIVE_VALUE = "PLANTED-live-env-value"  # an extraEnv value: an ordinary key
FILE_VALUE = "PLANTED-values-file-value"
SET_PIECE = "PLANTED-set-piece"  # after a comma inside one --set item
SET_SHORT = "Zq9"  # short, under a password key: replaced as a whole word
URL_PASSWORD = "PLANTED-url-password"  # noqa: S105 - planted
KUBE_TOKEN = "PLANTED-kube-token"  # noqa: S105 - planted
CLIENT_KEY = base64.b64encode(b"PLANTED-client-key-data").decode()
ID_TOKEN = "PLANTED-auth-provider-id-token"  # noqa: S105 - planted
EXEC_ENV = "PLANTED-exec-env-value"
JWT_PAYLOAD = base64.urlsafe_b64encode(b'{"sub":"PLANTED-jwt"}').decode().rstrip("=")
JWT = f"eyJhbGciOiJSUzI1NiJ9.{JWT_PAYLOAD}.UExBTlRFRC1zaWduYXR1cmU"
PLANTED = (
    LIVE_VALUE,
    FILE_VALUE,
    SET_PIECE,
    URL_PASSWORD,
    KUBE_TOKEN,
    CLIENT_KEY,
    ID_TOKEN,
    EXEC_ENV,
    JWT_PAYLOAD,
    "PLANTED",
)
SET_ITEMS = (
    f"foo=bar,hubble.tls.key={SET_PIECE}",
    f"ui=on,clustermesh.apiserver.etcd.password={SET_SHORT}",
)
SERVER = f"https://admin:{URL_PASSWORD}@fake-apiserver.example:6443"
DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"

# The routes, as docs/reliability.md ("Secrets") lists them: (route, planted as, a line
# the user sees, asserted by the runs below).
ROUTES = (
    (
        "values",
        "a string of the live and saved values under an ordinary key (`extraEnv[0].value`)",
        "env [REDACTED] file [REDACTED]",
    ),
    (
        "values-file",
        "a string of a `--cilium-values-file`",
        "env [REDACTED] file [REDACTED]",
    ),
    (
        "set-pieces",
        '`--cilium-set "foo=bar,hubble.tls.key=<secret>"` (Helm splits it on the comma)',
        "sets foo=bar,hubble.tls.key=[REDACTED]"
        " ui=on,clustermesh.apiserver.etcd.password=[REDACTED]",
    ),
    (
        "set-short",
        "a 3-character `--cilium-set` value under a password key (replaced as a whole word)",
        "sets foo=bar,hubble.tls.key=[REDACTED]"
        " ui=on,clustermesh.apiserver.etcd.password=[REDACTED]",
    ),
    (
        "server-url",
        "the kubeconfig's `server: https://admin:<secret>@host:6443`",
        "server https://[REDACTED]@fake-apiserver.example:6443",
    ),
    (
        "kubeconfig-credentials",
        "the kubeconfig's `token`, `client-key-data`, `auth-provider` config and `exec` env",
        "kubeconfig [REDACTED] [REDACTED] [REDACTED] [REDACTED]",
    ),
    (
        "helm-stderr",
        "Helm's stderr echoing values back (a render that refuses them)",
        "Error: execution error at (cilium/templates/x.yaml:3): extraEnv.0.value:"
        " [REDACTED] is not a reference",
    ),
    (
        "api-error-body",
        "an API error body echoing the kubeconfig's token and a JWT the gate never saw",
        "cluster only partly readable (daemonsets: API error 401 Unauthorized: Unauthorized:"
        ' {"token": "[REDACTED]", "Authorization": "Bearer [REDACTED]"})',
    ),
    (
        "interrupted-notes",
        "Helm's error about the release's state after an interruption",
        "cilium-upgrade: release state unknown: `helm status cilium` exited 1: Error: Get"
        ' "https://[REDACTED]@fake-apiserver.example:6443/api": token [REDACTED];'
        " extraEnv[0].value: [REDACTED]",
    ),
    (
        "usage-error",
        "`--cilium-set=<secret>`, with no `=`",
        "ERROR: --cilium-set: '[REDACTED]' is not KEY=VALUE (as helm --set takes it)"
        " (from the command line)",
    ),
)


def seen(route: str) -> str:
    return next(line for name, _, line in ROUTES if name == route)


# A careless user check: it prints every secret, in the shapes they come in.
USER_CHECK = f"""
import pytest

@pytest.mark.cilium_upgrade(phase="pre")
def test_user_pre(cilium_settings):
    print("server", {SERVER!r})
    print("sets", *cilium_settings.set)
    print("env", {LIVE_VALUE!r}, "file", {FILE_VALUE!r})
    print("kubeconfig", {KUBE_TOKEN!r}, {CLIENT_KEY!r}, {ID_TOKEN!r}, {EXEC_ENV!r})
    print("Authorization: Bearer {JWT}")
    assert not FAIL, "the user check saw " + " ".join(
        [{SERVER!r}, *cilium_settings.set, {LIVE_VALUE!r}, {KUBE_TOKEN!r}, {JWT!r}]
    )
"""

PLANTING = f"""

from pytest_cilium_upgrade.errors import ApiError

FakeCluster.server = {SERVER!r}
BROKEN_API = @BROKEN_API@
if BROKEN_API:
    def _refused(self, namespace):
        body = (
            'Unauthorized: {{"token": "{KUBE_TOKEN}", "Authorization": "Bearer {JWT}"}}'
        )
        raise ApiError(401, "Unauthorized", body)
    FakeCluster.list_daemonsets = _refused
"""

# A helm upgrade whose command line shows the --set items as given, and an
# interruption (Ctrl-C, or SIGTERM) while the rollout is awaited, after which helm
# answers with an error that echoes the secrets back.
PERFORMING_EXTRA = f"""

import os
import signal

from pytest_cilium_upgrade.errors import HelmFailed

INTERRUPT = @INTERRUPT@
INTERRUPTED = []


class ShownCommand(FakeCommand):
    def display(self, redactor):
        return "helm " + " ".join(self.argv)  # unredacted: the gate must catch it


def _upgrade_with_sets(self, release, chart, version, namespace, **kwargs):
    sets = [a for item in kwargs.get("set_values", ()) for a in ("--set", item)]
    return ShownCommand("upgrade", release, str(version), *sets)


def _wait_then_interrupt(self, kind, name, label, deadline, selector, *, optional=False):
    if INTERRUPT and self.state.upgrade_attempted:
        INTERRUPTED.append(label)
        if INTERRUPT == "sigterm":
            os.kill(os.getpid(), signal.SIGTERM)
        raise KeyboardInterrupt()
    return f"{{label}} ready"


FakeHelm.timeout = 30.0  # what the clean-up after an interruption asks of the client
ORIGINAL_STATUS = FakeHelm.status


def _status_after_interrupt(self, release, namespace):
    if INTERRUPTED:
        raise HelmFailed(
            ["helm", "status", release],
            1,
            'Error: Get "{SERVER}/api": token {KUBE_TOKEN}; extraEnv[0].value: {LIVE_VALUE}',
        )
    return ORIGINAL_STATUS(self, release, namespace)


PATCHES[(FakeHelm, "upgrade_command")] = _upgrade_with_sets
PATCHES[(UpgradeFlow, "_wait")] = _wait_then_interrupt
PATCHES[(FakeHelm, "status")] = _status_after_interrupt
ORIGINALS[(FakeHelm, "status")] = ORIGINAL_STATUS
"""


def kubeconfig_text() -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "planted",
            "clusters": [{"name": "planted", "cluster": {"server": SERVER}}],
            "contexts": [{"name": "planted", "context": {"cluster": "planted", "user": "u"}}],
            "users": [
                {"name": "u", "user": {"token": KUBE_TOKEN, "client-key-data": CLIENT_KEY}},
                {
                    "name": "oidc",
                    "user": {
                        "auth-provider": {
                            "name": "oidc",
                            "config": {"id-token": ID_TOKEN, "client-id": "kubernetes"},
                        }
                    },
                },
                {
                    "name": "plugin",
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1",
                            "command": "get-token",
                            "env": [{"name": "CLOUD_SECRET", "value": EXEC_ENV}],
                        }
                    },
                },
            ],
        }
    )


@pytest.fixture
def gate(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Gate:
    gate = new_gate(pytester, monkeypatch)
    live = {**gate.data["values"], "extraEnv": [{"name": "DB_PASSWORD", "value": LIVE_VALUE}]}
    gate.data["values"] = live
    gate.data["user_values"] = {**live, "extraConfig": {"custom-setting": FILE_VALUE}}
    (gate.path / "kubeconfig").write_text(kubeconfig_text())
    (gate.path / "extra-values.yaml").write_text(
        yaml.safe_dump({"extraConfig": {"custom-setting": FILE_VALUE}})
    )
    return gate


def plant(gate: Gate, *, fail: bool) -> None:
    gate.pytester.makepyfile(test_user=f"FAIL = {fail}\n" + textwrap.dedent(USER_CHECK))
    gate.conftest_extra += PLANTING.replace("@BROKEN_API@", repr(fail))
    if fail:
        gate.data["render_error"] = (
            f"Error: execution error at (cilium/templates/x.yaml:3): extraEnv.0.value:"
            f" {LIVE_VALUE} is not a reference\n"
            f"Error: extraConfig.custom-setting: Invalid type: {FILE_VALUE}\n"
        )


def options(gate: Gate) -> list[str]:
    return [
        f"--cilium-kubeconfig={gate.path / 'kubeconfig'}",
        f"--cilium-values-file={gate.path / 'extra-values.yaml'}",
        *(f"--cilium-set={item}" for item in SET_ITEMS),
        f"--junitxml={gate.path / 'junit.xml'}",
        "-o",
        "junit_logging=all",
        f"--cilium-summary={gate.path / 'summary.md'}",
        "-rA",
        "-v",
        "test_user.py",
    ]


def assert_nothing_leaked(gate: Gate, output: str) -> None:
    texts = {
        "output": output,
        "junit": (gate.path / "junit.xml").read_text(),
        "summary": (gate.path / "summary.md").read_text(),
    }
    for where, text in texts.items():
        if where != "summary":  # the summary holds what the gate itself says
            assert "[REDACTED]" in text, where
        for planted in PLANTED:
            assert planted not in text, f"{planted} leaked into the {where}:\n{text}"
        # the short secret, where it stands as a word of its own
        assert f"password={SET_SHORT}" not in text, where
        # the URL is there, without its password
        assert "fake-apiserver.example:6443" in text, where


def test_a_passing_run_prints_no_secret(gate: Gate) -> None:
    plant(gate, fail=False)
    result = gate.run("--cilium-phase=pre", *options(gate))
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.OK, output
    result.stdout.fnmatch_lines(
        [seen("server-url"), seen("set-pieces"), seen("values"), seen("kubeconfig-credentials")]
    )
    assert "Authorization: Bearer [REDACTED]" in output
    assert_nothing_leaked(gate, output)
    # the cluster's address in the properties, without the password
    junit = (gate.path / "junit.xml").read_text()
    assert 'name="cluster" value="https://fake-apiserver.example:6443"' in junit


def test_a_failing_run_prints_no_secret(gate: Gate) -> None:
    plant(gate, fail=True)
    result = gate.run("--cilium-phase=pre", *options(gate))
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output
    result.stdout.fnmatch_lines(
        [
            "FAILED cilium-upgrade::pre::cluster_reachable_and_access_allowed*",
            "FAILED cilium-upgrade::pre::target_chart_renders_with_snapshot*",
            "FAILED test_user.py::test_user_pre*",
        ],
        consecutive=False,
    )
    assert seen("helm-stderr") in result.outlines, output  # the details of the check
    assert "custom-setting: Invalid type: [REDACTED]" in output
    assert seen("api-error-body") in output
    assert_nothing_leaked(gate, output)


def test_a_dry_run_prints_no_secret(gate: Gate) -> None:
    performing(gate)
    gate.conftest_extra += PERFORMING_EXTRA.replace("@INTERRUPT@", "None")
    plant(gate, fail=False)
    result = gate.run("--cilium-perform-upgrade", "--cilium-dry-run", *options(gate))
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.OK, output
    assert "would run: helm upgrade cilium" in output
    assert "--set foo=bar,hubble.tls.key=[REDACTED]" in output
    assert_nothing_leaked(gate, output)


@pytest.mark.parametrize("interrupt", ["ctrl-c", "sigterm"])
def test_an_interrupted_run_prints_no_secret(gate: Gate, interrupt: str) -> None:
    performing(gate)
    gate.conftest_extra += PERFORMING_EXTRA.replace("@INTERRUPT@", repr(interrupt))
    plant(gate, fail=False)
    args = ["--cilium-upgrade", "--cilium-target-version=1.16.15", "--cilium-perform-upgrade"]
    args += options(gate)
    if interrupt == "sigterm":  # the gate's handler, in a process of its own
        gate.write()
        result = gate.pytester.runpytest_subprocess("-p", "no:randomly", *args)
    else:
        gate.write()
        result = gate.pytester.runpytest("-p", "no:randomly", *args, no_reraise_ctrlc=True)
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.INTERRUPTED, output
    assert "interrupted during cilium-upgrade::upgrade::" in output
    assert seen("interrupted-notes") in result.outlines, output
    assert_nothing_leaked(gate, output)


def test_a_usage_error_does_not_show_a_set_item(gate: Gate) -> None:
    result = gate.run(
        f"--cilium-kubeconfig={gate.path / 'kubeconfig'}", f"--cilium-set={SET_PIECE}"
    )
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output
    assert seen("usage-error") in result.errlines, output
    assert SET_PIECE not in output


def test_the_reliability_doc_lists_every_route() -> None:
    text = DOC.read_text()
    section = text[text.index("## Secrets") :]
    section = section[: section.index("\n## ", 1)]
    rows = [ln for ln in section.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    assert rows == [f"| {route} | {planted} | `` {line} `` |" for route, planted, line in ROUTES]


def test_the_kube_adapter_keeps_no_password_of_the_server_url(tmp_path: Path) -> None:
    server = f"https://admin:{URL_PASSWORD}@127.0.0.1:1"  # nothing listens there
    kube = Kube(str(write_kubeconfig(tmp_path / "kubeconfig", server)), request_timeout=2)
    try:
        assert kube.server == "https://127.0.0.1:1"
        with pytest.raises(GateError) as failed:
            kube.server_version()
        assert "127.0.0.1" in str(failed.value)
        assert URL_PASSWORD not in str(failed.value)
    finally:
        kube.close()


def test_a_user_check_alone_prints_no_live_value(gate: Gate) -> None:
    # no built-in check runs: the snapshot's secrets are known once it is read
    gate.pytester.makepyfile(
        test_own="""
        import pytest

        @pytest.mark.cilium_upgrade(phase="pre")
        def test_own(cilium_snapshot):
            print("live", cilium_snapshot.live_values)
        """
    )
    result = gate.run("--cilium-phase=pre", "-rA", "-k", "test_own", "test_own.py")
    output = result.stdout.str()
    assert result.ret == pytest.ExitCode.OK, output
    assert "'value': '[REDACTED]'" in output
    assert LIVE_VALUE not in output
