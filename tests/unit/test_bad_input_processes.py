"""Processes the gate starts: the kubeconfig's ``exec`` credential plugin and helm.

Each runs in a process group of its own and is ended with it (SIGTERM, then SIGKILL)
on its timeout or an interruption, so a wrapper's or a plugin's own children never
outlive the run. A plugin that fails stops the cluster's checks with one line naming
it: no request goes out without the credentials it was to give.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import pytest
from bad_input_fakes import (
    Case,
    Env,
    FakeApi,
    api,
    doc_rows,
    executable,
    run_case,
    write_kubeconfig,
)

from pytest_cilium_upgrade.adapters.helm import runner
from pytest_cilium_upgrade.adapters.kube import Kube
from pytest_cilium_upgrade.errors import GateError

pytest_plugins = ["pytester"]
__all__ = ["api"]  # the fixture, for the tests below

PIDS = "plugin.pids"
CLUSTER_ONLY = ("--cilium-phase=pre", "-k", "cluster_reachable")


def _plugin(env: Env, body: str) -> Path:
    """An exec credential plugin whose shell ``body`` runs after it noted its pid."""
    return executable(
        env.path / "credential-plugin", f'#!/bin/sh\necho $$ >> "{env.path / PIDS}"\n{body}'
    )


def _plugin_kubeconfig(body: str, *, timeout: float = 2) -> Callable[[Env], list[str]]:
    def prepare(env: Env) -> list[str]:
        plugin = _plugin(env, body)
        kubeconfig = write_kubeconfig(
            env.path / "kubeconfig-exec",
            env.api.url,
            {
                "exec": {
                    "apiVersion": "client.authentication.k8s.io/v1",
                    "command": str(plugin),
                    "args": ["get-token", "--cluster", "prod"],
                    "interactiveMode": "Never",
                }
            },
        )
        return [f"--cilium-kubeconfig={kubeconfig}", f"--cilium-request-timeout={timeout:g}"]

    return prepare


HANGS = f'sh -c \'echo $$ >> "$(dirname "$0")/{PIDS}"; exec sleep 300\' &\nsleep 300\n'
CREDENTIAL = json.dumps(
    {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"token": "from-the-plugin"},
    }
)


def _missing_plugin(env: Env) -> list[str]:
    kubeconfig = write_kubeconfig(
        env.path / "kubeconfig-missing-plugin",
        env.api.url,
        {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": "/nonexistent/bin/cloud-auth",
            }
        },
    )
    return [f"--cilium-kubeconfig={kubeconfig}"]


PLUGIN = "the kubeconfig's credential plugin `<dir>/credential-plugin`"
CREDENTIAL_V1BETA1 = CREDENTIAL.replace("/v1", "/v1beta1")

CASES = (
    Case(
        "exec-plugin-hangs",
        "`--cilium-phase=pre --cilium-request-timeout=2`, the kubeconfig's `exec` plugin hangs",
        f"{PLUGIN} did not finish within 2s (--cilium-request-timeout); it was ended with its"
        " process group",
        args=CLUSTER_ONLY,
        prepare=_plugin_kubeconfig(HANGS),
    ),
    Case(
        "exec-plugin-fails",
        "`--cilium-phase=pre`, the kubeconfig's `exec` plugin exits 1",
        f"{PLUGIN} failed (exit status 1): reading cached credentials; error: you must be"
        " logged in to the server (token expired; run `cloud auth login`)",
        args=CLUSTER_ONLY,
        prepare=_plugin_kubeconfig(
            "echo 'reading cached credentials' >&2\n"
            "echo 'error: you must be logged in to the server (token expired;"
            " run `cloud auth login`)' >&2\nexit 1\n"
        ),
    ),
    Case(
        "exec-plugin-prints-no-credential",
        "`--cilium-phase=pre`, the kubeconfig's `exec` plugin prints no ExecCredential",
        f"{PLUGIN} printed no ExecCredential on its standard output",
        args=CLUSTER_ONLY,
        prepare=_plugin_kubeconfig("echo 'Opening the browser to log you in...'\n"),
    ),
    Case(
        "exec-plugin-answers-another-version",
        "`--cilium-phase=pre`, the `exec` plugin answers with another `apiVersion`",
        f"{PLUGIN} answered with apiVersion 'client.authentication.k8s.io/v1beta1', not"
        " 'client.authentication.k8s.io/v1'",
        args=CLUSTER_ONLY,
        prepare=_plugin_kubeconfig(f"cat <<'EOF'\n{CREDENTIAL_V1BETA1}\nEOF\n"),
    ),
    Case(
        "exec-plugin-missing",
        "`--cilium-phase=pre`, the kubeconfig's `exec` command is not installed",
        "cannot run the kubeconfig's credential plugin `/nonexistent/bin/cloud-auth`: No such"
        " file or directory",
        args=CLUSTER_ONLY,
        prepare=_missing_plugin,
    ),
)


@pytest.fixture
def env(api: FakeApi, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Env:
    return Env(api, Path(pytester.path), monkeypatch)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _none_alive(pids: list[int], within: float = 5.0) -> bool:
    end = time.monotonic() + within
    while any(_alive(p) for p in pids):
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


def _pids(path: Path) -> list[int]:
    file = path / PIDS
    return [int(p) for p in file.read_text().split()] if file.exists() else []


def test_the_reliability_doc_lists_every_case() -> None:
    assert doc_rows("Bad input: processes the gate starts") == [c.row for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_credential_plugin_that_fails_or_hangs_stops_the_cluster_checks(
    case: Case, env: Env, pytester: pytest.Pytester
) -> None:
    run_case(case, pytester, env)
    assert env.api.requests == []  # nothing went out without the plugin's credentials
    assert _none_alive(_pids(env.path)), "a process of the credential plugin survived"
    if case.id == "exec-plugin-hangs":
        assert len(_pids(env.path)) == 2  # the plugin and the child it started


def test_a_working_plugin_gives_the_token_the_requests_carry(env: Env) -> None:
    plugin = _plugin(env, f"cat <<'EOF'\n{CREDENTIAL}\nEOF\n")
    kubeconfig = write_kubeconfig(
        env.path / "kubeconfig",
        env.api.url,
        {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": str(plugin),
                "env": [{"name": "PLUGIN_MODE", "value": "ci"}],
            }
        },
    )
    with Kube(str(kubeconfig), request_timeout=5) as kube:
        assert kube.server_version() == "v1.30.4"
    assert env.api.credentials == ["Bearer from-the-plugin"]


# ---------------------------------------------------------------------------- interruptions


@pytest.fixture
def interrupt_after() -> Iterator[Callable[[float], None]]:
    """Raise KeyboardInterrupt in the main thread after some seconds, as Ctrl-C does."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, handler)

    def arm(seconds: float) -> None:
        signal.setitimer(signal.ITIMER_REAL, seconds)

    try:
        yield arm
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_ctrl_c_while_the_credential_plugin_runs_ends_its_group(
    env: Env, interrupt_after: Callable[[float], None]
) -> None:
    plugin = _plugin(env, HANGS)
    kubeconfig = write_kubeconfig(
        env.path / "kubeconfig",
        env.api.url,
        {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": str(plugin)}},
    )
    interrupt_after(0.5)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        Kube(str(kubeconfig), request_timeout=60)
    assert time.monotonic() - started < 5
    assert len(_pids(env.path)) == 2
    assert _none_alive(_pids(env.path)), "a process of the credential plugin survived"


def _wrapper(path: Path) -> Path:
    """A helm wrapper (a version manager's shim) that starts the real helm as its child."""
    return executable(
        path / "helm-shim",
        f"#!/bin/sh\nsh -c 'echo $$ >> \"{path / PIDS}\"; exec sleep 300' &\n"
        f'echo $$ >> "{path / PIDS}"\nwait\n',
    )


def test_a_helm_wrapper_is_ended_with_its_child_at_the_timeout(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        runner.run_subprocess([str(_wrapper(tmp_path))], input_text=None, env={}, timeout=1)
    assert time.monotonic() - started < 1 + runner.KILL_GRACE_S + 2
    assert len(_pids(tmp_path)) == 2
    assert _none_alive(_pids(tmp_path)), "the helm the wrapper started survived"


def test_ctrl_c_while_a_helm_wrapper_runs_ends_its_group(
    tmp_path: Path, interrupt_after: Callable[[float], None]
) -> None:
    interrupt_after(0.5)
    with pytest.raises(KeyboardInterrupt):
        runner.run_subprocess([str(_wrapper(tmp_path))], input_text=None, env={}, timeout=60)
    assert _none_alive(_pids(tmp_path)), "the helm the wrapper started survived"


def test_helm_running_in_other_threads_is_ended_on_an_interruption(tmp_path: Path) -> None:
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(
                runner.run_subprocess(
                    [str(_wrapper(tmp_path))], input_text=None, env={}, timeout=60
                )
            )
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    end = time.monotonic() + 10
    while len(_pids(tmp_path)) < 2 and time.monotonic() < end:
        time.sleep(0.05)
    assert runner.end_running() == 1
    thread.join(10)
    assert not thread.is_alive()
    [result] = outcome
    assert getattr(result, "returncode", None) == -signal.SIGTERM  # ended, not finished
    assert _none_alive(_pids(tmp_path)), "the helm the wrapper started survived"


def test_a_plugin_whose_answer_has_another_api_version_is_refused(env: Env) -> None:
    plugin = _plugin(env, f"cat <<'EOF'\n{CREDENTIAL}\nEOF\n")
    kubeconfig = write_kubeconfig(
        env.path / "kubeconfig",
        env.api.url,
        {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": str(plugin)}},
    )
    with pytest.raises(GateError, match=r"answered with apiVersion 'client.authentication"):
        Kube(str(kubeconfig))
    assert env.api.requests == []
