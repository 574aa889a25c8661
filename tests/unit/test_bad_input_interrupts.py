"""An interruption (Ctrl-C, a CI's SIGTERM) while requests hang ends the run in seconds.

The snapshot's reads run on daemon threads that nothing waits for once interrupted
(:class:`~pytest_cilium_upgrade.snapshot.workers.Workers`); the clean-up that follows has
a short deadline of its own, whatever the API server and helm do meanwhile
(:meth:`Kube.finishing_by`, :meth:`UpgradeFlow.finishing_by`); and the report says
only what is true of the values snapshot. The whole story against a real API server
that hangs is ``tests/sandbox/test_signals.py``.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any, cast

import pytest
from bad_input_fakes import FakeApi, api, write_kubeconfig

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.adapters.helm.client import Helm
from pytest_cilium_upgrade.adapters.helm.commands import HelmCommand
from pytest_cilium_upgrade.adapters.kube import Kube
from pytest_cilium_upgrade.errors import GateError, NoAnswer
from pytest_cilium_upgrade.gate import hooks
from pytest_cilium_upgrade.gate.session import GateSession
from pytest_cilium_upgrade.gate.settings import Settings
from pytest_cilium_upgrade.redact import Redactor
from pytest_cilium_upgrade.snapshot.read import CollectRequest, collect
from pytest_cilium_upgrade.snapshot.workers import Workers
from pytest_cilium_upgrade.upgrade.ports import FlowHelm
from pytest_cilium_upgrade.upgrade.steps import UpgradeFlow

__all__ = ["api"]  # the fixture, for the tests below


@pytest.fixture
def interrupt_after() -> Iterator[Callable[[float], None]]:
    """Raise KeyboardInterrupt in the main thread after some seconds, as Ctrl-C does."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, handler)
    try:
        yield lambda seconds: signal.setitimer(signal.ITIMER_REAL, seconds) and None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ---------------------------------------------------------------------------- workers


def test_workers_left_by_an_exception_wait_for_nothing_and_cancel_what_waits() -> None:
    gate = threading.Event()
    futures: list[Future[Any]] = []

    def interrupted() -> None:
        with Workers(1, "test") as workers:
            futures.append(workers.submit(gate.wait, 60))
            futures.append(workers.submit(lambda: "never"))
            raise KeyboardInterrupt

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        interrupted()
    hanging, queued = futures
    assert time.monotonic() - started < 1  # the hanging call was not waited for
    assert queued.cancelled()
    with pytest.raises(CancelledError):
        queued.result()
    assert not hanging.done()
    gate.set()
    assert hanging.result(5) is True  # it ends on its own, on a daemon thread


def test_workers_ended_normally_wait_for_every_call() -> None:
    done: list[int] = []

    def work(i: int) -> None:
        time.sleep(0.02)
        done.append(i)

    with Workers(2, "test") as workers:
        for i in range(5):
            workers.submit(work, i)
    assert sorted(done) == [0, 1, 2, 3, 4]
    assert all(t.daemon for t in threading.enumerate() if t.name.startswith("test-"))


class HangingCluster:
    """A cluster reader whose LIST of nodes never answers (until the test lets it go)."""

    server = "https://hanging.example:6443"

    def __init__(self) -> None:
        self.release = threading.Event()

    def server_version(self) -> str:
        return "v1.30.4"

    def api_versions(self) -> list[str]:
        return ["v1"]

    def access_reviews(self, namespace: str, requirements: Any) -> list[dict[str, Any]]:
        return []

    def list_nodes(self) -> list[dict[str, Any]]:
        self.release.wait(60)
        return []

    def list_pods(self, namespace: str, selector: str | None = None) -> list[dict[str, Any]]:
        return []

    def list_daemonsets(self, namespace: str) -> list[dict[str, Any]]:
        return []

    def list_deployments(self, namespace: str) -> list[dict[str, Any]]:
        return []

    def pod_log(self, namespace: str, pod: str, container: str, *, previous: bool = False) -> None:
        return None

    def list_release_records(
        self, namespace: str, releases: Any, kind: str = "Secret"
    ) -> list[dict[str, Any]]:
        return []


def test_an_interrupted_snapshot_abandons_the_hanging_request(
    interrupt_after: Callable[[float], None],
) -> None:
    cluster = HangingCluster()
    interrupt_after(0.3)
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            collect(cluster, None, CollectRequest(values_snapshot=None))
        assert time.monotonic() - started < 2  # not the 60 s the LIST of nodes would take
    finally:
        cluster.release.set()


# ---------------------------------------------------------------------------- deadlines


def test_requests_under_a_deadline_are_not_retried_and_end_by_it(
    api: FakeApi, tmp_path: Path
) -> None:
    api.answers["GET /apis/coordination.k8s.io/v1/namespaces/ns/leases/lock"] = (
        503,
        "application/json",
        b'{"kind":"Status","message":"etcd leader changed"}',
    )
    kube = Kube(str(write_kubeconfig(tmp_path / "kubeconfig", api.url)), request_timeout=30)
    try:
        with kube.finishing_by(time.monotonic() + 5), pytest.raises(GateError, match="etcd"):
            kube.release_lease("ns", "lock", "me")
        assert api.count("GET /apis/coordination.k8s.io/v1/namespaces/ns/leases/lock") == 1
        with kube.finishing_by(time.monotonic() - 1), pytest.raises(NoAnswer, match="no time"):
            kube.server_version()
        assert api.count("GET /version/") == 0  # nothing is sent with no time left
        assert kube.server_version() == "v1.30.4"  # outside, as before
    finally:
        kube.close()


class RecordingHelm:
    """What the clean-up asks of helm, and how long each command may take."""

    def __init__(self) -> None:
        self.timeout = 600.0
        self.ran: list[HelmCommand] = []

    def uninstall_command(
        self, release: str, namespace: str, wait: bool = True, *, timeout_s: float = 300
    ) -> HelmCommand:
        argv = ("helm", "uninstall", release, "-n", namespace, "--timeout", f"{timeout_s:g}s")
        return HelmCommand(argv, timeout=600.0)

    def uninstall(self, release: str, namespace: str, wait: bool = True) -> str:
        self.ran.append(self.uninstall_command(release, namespace, wait))
        return "uninstalled"

    def execute(self, command: HelmCommand, **kwargs: Any) -> None:
        self.ran.append(command)

    def status(self, release: str, namespace: str) -> dict[str, Any]:
        self.ran.append(HelmCommand(("helm", "status", release), timeout=self.timeout))
        return {"name": release, "version": 1, "info": {"status": "deployed"}}


def _flow(helm: RecordingHelm) -> UpgradeFlow:
    flow = UpgradeFlow(
        Settings(perform_upgrade=True, timeout=600),
        None,
        cast(FlowHelm, helm),
        None,
        progress=print,
        redactor=Redactor,
    )
    flow.state.preflight_installed = True
    return flow


def test_the_clean_up_of_an_interrupted_run_has_a_short_deadline() -> None:
    helm = RecordingHelm()
    flow = _flow(helm)
    with flow.finishing_by(time.monotonic() + 5):
        assert flow.cleanup() == f"uninstalled {defaults.DEFAULT_PREFLIGHT_RELEASE} during clean-up"
        flow.release_state()
    uninstall, status = helm.ran
    assert uninstall.timeout <= 5  # the process's own deadline, not helm's 600 s
    assert status.timeout <= 5
    assert helm.timeout == 600  # restored


def test_no_time_left_is_said_with_the_command_to_run() -> None:
    helm = RecordingHelm()
    flow = _flow(helm)
    with flow.finishing_by(time.monotonic() - 1):
        note = flow.cleanup()
        state = flow.release_state()
    assert note is not None
    assert note.startswith(f"could not uninstall {defaults.DEFAULT_PREFLIGHT_RELEASE}")
    assert note.endswith(f"helm uninstall {defaults.DEFAULT_PREFLIGHT_RELEASE} -n kube-system")
    assert state == "release state unknown: no time was left to ask helm"
    assert helm.ran == []


# ---------------------------------------------------------------------------- the report


class Session:
    """What _finish_flow reads of pytest's session."""

    def __init__(self, exitstatus: pytest.ExitCode) -> None:
        self.exitstatus = exitstatus
        self.config = self

    class pluginmanager:  # the attribute pytest's config has
        @staticmethod
        def get_plugin(name: str) -> None:
            return None


@pytest.mark.parametrize("written", [True, False], ids=["saved", "never-written"])
def test_an_interrupted_runs_note_names_the_snapshot_only_when_it_was_written(
    written: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    helm = RecordingHelm()
    settings = Settings(perform_upgrade=True, values_snapshot=tmp_path / "values.yaml")
    gate = GateSession(settings)
    monkeypatch.setattr(gate, "_adapters", lambda: None)
    gate._helm = cast(Helm, helm)
    flow = gate.flow
    flow.state = replace(flow.state, running="prepare::snapshot_values", pre_revision=3)
    flow.state.snapshot_written = written
    hooks._finish_flow(Session(pytest.ExitCode.INTERRUPTED), gate)  # type: ignore[arg-type]
    notes = "\n".join(gate.notes)
    assert "interrupted during cilium-upgrade::prepare::snapshot_values" in notes
    if written:
        assert f"the values saved before the upgrade are in {tmp_path / 'values.yaml'}" in notes
    else:
        assert f"no values were saved to {tmp_path / 'values.yaml'} by this run" in notes
        assert "the values saved" not in notes
