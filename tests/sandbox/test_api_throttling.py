"""The gate against a real kube-apiserver answering 429 (API Priority and Fairness).

The gate runs as the shipped read-only identity (``deploy/rbac``, a ServiceAccount
token). A FlowSchema puts that identity, and only it, into a PriorityLevelConfiguration
of its own: ``Limited``, ``nominalConcurrencyShares: 0``, nothing lent or borrowed,
``limitResponse: Reject``. The apiserver then really answers its requests with 429 and
a ``Retry-After`` header of its own choosing (APF's dropped-request tracker: 1 s,
doubled while rejections go on, at most 32 s).

A level with no seats still lets a request through while *nothing else* executes in
it (kube-apiserver's queueset admits a request wider than the limit when the level is
idle, ``canAccommodateSeatsLocked``), so on its own it rejects only concurrent requests,
some of them, depending on timing. To reject every request, a second identity (the
holder, with a FlowSchema into the same level) keeps one request executing there: it
creates a ConfigMap whose validating admission webhook (a server of this test on
127.0.0.1) holds the request until the test lets it go, at most ``HOLD_S`` seconds.
Admission runs inside APF's execution, so while it is held the level is busy and every
request of the gate is rejected, each time, which the test verifies before it runs the
gate. Lifting the throttle is deterministic too: the level is given seats, the test
waits until the holder's own requests are admitted again, then lets the held request go.

The same level with ``limitResponse: Queue`` (one queue) makes the API server *slow*
instead: while the holder's requests are held, the gate's requests wait in APF's queue,
unanswered. A queuing level needs seats (kube-apiserver dispatches from its queues only
while fewer seats than the limit are in use, so with none its queue moves only now and
then, when the limits are recomputed): it gets one share, which is a few seats (3 on
the sandbox), and the holder fills every one of them with a held request before the
test verifies that a request of the gate waits. Letting the held requests go serves the
queued ones. kube-apiserver lets a request wait in a queue at most a quarter of its own
deadline (``getRequestWaitContext`` in k8s.io/apiserver's priority-and-fairness filter;
the deadline is ``?timeout=`` or ``--request-timeout``, 60 s, so 15 s here, never more
than a minute), then rejects it with 429 ("time-out"). A request whose client hangs up
first leaves the queue too, and APF counts it the same way. So a hold shorter than both
the gate's ``--cilium-request-timeout`` and those 15 s is a slow but working API server;
a gate request timeout shorter than the hold is an API server too slow for the gate.

Every cluster-scoped object (FlowSchemas, the PriorityLevelConfiguration, the webhook
configuration, the roles' ClusterRole and ClusterRoleBinding) carries the namespace in
its name and is deleted after the test.
"""

from __future__ import annotations

import base64
import http.server
import json
import re
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cilium_sandbox.cluster import Sandbox
from cilium_sandbox.faults import ContainerLogs
from identities import into_namespace, shipped_roles, token_kubeconfig
from junit_report import junit_verdicts
from kubernetes.client.exceptions import ApiException
from real_chart_dir import Charts

from pytest_cilium_upgrade.adapters import kube as kube_module
from pytest_cilium_upgrade.adapters.files import write_values_snapshot
from pytest_cilium_upgrade.adapters.kube import Kube
from pytest_cilium_upgrade.errors import ApiError, Timeout

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.sandbox

ROOT = Path(__file__).resolve().parents[2]
VALID = 'level=info msg="All CCNPs and CNPs valid!" subsys=preflight'
PREFLIGHT_SETS = (
    "--set",
    "preflight.enabled=true",
    "--set",
    "agent=false",
    "--set",
    "operator.enabled=false",
)
READER = "cilium-upgrade-checks"
HOLDER = "throttle-holder"
FLOWCONTROL = "flowcontrol.apiserver.k8s.io/v1"
HOLD_S = 28.0  # below the webhook's timeoutSeconds (30, the most the API allows)
CLUSTER_CHECK = "cilium-upgrade.pre::cluster_reachable_and_access_allowed"
REJECT: dict[str, Any] = {"type": "Reject"}
# one queue for both identities: the gate's requests wait behind the held ones
QUEUE: dict[str, Any] = {
    "type": "Queue",
    "queuing": {"queues": 1, "handSize": 1, "queueLengthLimit": 50},
}
PROBE_TIMEOUT_S = 1.0  # a probe that waits longer than this in the queue is held there
SLOW_S = 3.0  # how long the slow API server keeps the gate's requests waiting
_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _everything() -> dict[str, Any]:
    """FlowSchema rules matching every request."""
    return {
        "resourceRules": [
            {
                "verbs": ["*"],
                "apiGroups": ["*"],
                "resources": ["*"],
                "clusterScope": True,
                "namespaces": ["*"],
            }
        ],
        "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
    }


class _Hold(http.server.BaseHTTPRequestHandler):
    """The validating webhook: holds the admission request until released, then allows it."""

    server: _HoldServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            uid = json.loads(self.rfile.read(length))["request"]["uid"]
        except (ValueError, KeyError, TypeError):
            uid = ""
        with self.server.changed:
            self.server.holding += 1
            self.server.changed.notify_all()
        self.server.held.set()
        released = self.server.release.wait(HOLD_S)
        with self.server.changed:
            self.server.holding -= 1
            self.server.let_go.append(released)
        body = json.dumps(
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "response": {"uid": uid, "allowed": True},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _HoldServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Hold)
        self.held = threading.Event()
        self.holding = 0  # requests held right now
        self.changed = threading.Condition()
        self.release = threading.Event()
        self.let_go: list[bool] = []  # per held request: released by the test (or timed out)


def metrics(sandbox: Sandbox) -> list[tuple[str, dict[str, str], float]]:
    """The apiserver's metrics (read as the admin, whose requests APF exempts)."""
    samples = []
    for line in sandbox.kubectl("get", "--raw", "/metrics").splitlines():
        match = _SAMPLE.match(line)
        if match:
            labels = dict(_LABEL.findall(match["labels"]))
            samples.append((match["name"], labels, float(match["value"])))
    return samples


class Throttle:
    """The gate's identity throttled by APF in one test's namespace, and the gate run as it."""

    def __init__(
        self, sandbox: Sandbox, namespace: str, pytester: pytest.Pytester, charts: Charts
    ) -> None:
        self.sandbox = sandbox
        self.ns = namespace
        self.pytester = pytester
        self.charts = charts
        self.level = f"throttle-{namespace}"
        self.gate_schema = f"throttle-gate-{namespace}"
        self.holder_schema = f"throttle-holder-{namespace}"
        self.webhook = f"throttle-hold-{namespace}"
        self.junit = pytester.path / "junit.xml"
        self.snapshot = pytester.path / "values.yaml"
        self.cluster_objects: list[str] = []
        self.server: _HoldServer | None = None
        self.holder_threads: list[threading.Thread] = []
        self.holder_result: list[str] = []
        self.holds = 0
        self.reader_cfg = Path()
        self.holder_cfg = Path()

    # ------------------------------------------------------------------ identities
    def apply_roles(self) -> None:
        """The read-only roles as shipped, moved into the namespace; the holder may create."""
        docs = shipped_roles(("checks-clusterrole.yaml", "checks-role.yaml"))
        self.cluster_objects += into_namespace(docs, self.ns)
        self.sandbox.apply(docs)
        self.sandbox.kubectl("create", "serviceaccount", HOLDER, "-n", self.ns)
        self.sandbox.kubectl(
            "create", "role", HOLDER, "--verb=create", "--resource=configmaps", "-n", self.ns
        )
        self.sandbox.kubectl(
            "create",
            "rolebinding",
            HOLDER,
            f"--role={HOLDER}",
            f"--serviceaccount={self.ns}:{HOLDER}",
            "-n",
            self.ns,
        )
        self.reader_cfg = self._kubeconfig(READER)
        self.holder_cfg = self._kubeconfig(HOLDER)

    def _kubeconfig(self, account: str) -> Path:
        path, _ = token_kubeconfig(
            self.sandbox, account, self.ns, self.pytester.path / f"{account}.kubeconfig"
        )
        return path

    # ------------------------------------------------------------------ the throttle
    def _webhook_server(self) -> str:
        """Start the holding webhook on 127.0.0.1 (TLS); its CA bundle, base64."""
        openssl = shutil.which("openssl")
        if openssl is None:
            pytest.fail("openssl is needed to make the test webhook's certificate", pytrace=False)
        cert, key = self.pytester.path / "hold.crt", self.pytester.path / "hold.key"
        subprocess.run(
            [
                openssl,
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.server = _HoldServer()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(
            target=self.server.serve_forever, daemon=True, name="throttle-webhook"
        ).start()
        return base64.b64encode(cert.read_bytes()).decode()

    def start(self, limit_response: dict[str, Any] = REJECT) -> None:
        """Throttle the gate's identity and verify it: its requests are rejected (Reject),
        or wait unanswered in the queue (Queue)."""
        ca_bundle = self._webhook_server()
        assert self.server is not None
        port = self.server.server_address[1]
        self.cluster_objects += [
            f"validatingwebhookconfiguration/{self.webhook}",
            f"flowschema.{FLOWCONTROL.split('/')[0]}/{self.gate_schema}",
            f"flowschema.{FLOWCONTROL.split('/')[0]}/{self.holder_schema}",
            f"prioritylevelconfiguration.{FLOWCONTROL.split('/')[0]}/{self.level}",
        ]
        schemas = [
            {
                "apiVersion": FLOWCONTROL,
                "kind": "FlowSchema",
                "metadata": {"name": name},
                "spec": {
                    "matchingPrecedence": precedence,
                    "priorityLevelConfiguration": {"name": self.level},
                    "distinguisherMethod": {"type": "ByUser"},
                    "rules": [
                        {
                            "subjects": [
                                {
                                    "kind": "ServiceAccount",
                                    "serviceAccount": {"name": account, "namespace": self.ns},
                                }
                            ],
                            **_everything(),
                        }
                    ],
                },
            }
            for name, account, precedence in (
                (self.gate_schema, READER, 50),
                (self.holder_schema, HOLDER, 51),
            )
        ]
        # A level that queues needs seats: kube-apiserver dispatches from its queues only
        # while fewer seats than its limit are in use (queueset's
        # dispatchAsMuchAsPossibleLocked), so with none its queue would move only now
        # and then. One share gives it a few seats; the holder then fills all of them.
        queue = limit_response["type"] == "Queue"
        self.sandbox.apply(
            [
                {
                    "apiVersion": FLOWCONTROL,
                    "kind": "PriorityLevelConfiguration",
                    "metadata": {"name": self.level},
                    "spec": {
                        "type": "Limited",
                        "limited": {
                            "nominalConcurrencyShares": 1 if queue else 0,
                            "lendablePercent": 0,
                            "borrowingLimitPercent": 0,
                            "limitResponse": limit_response,
                        },
                    },
                },
                *schemas,
                {
                    "apiVersion": "admissionregistration.k8s.io/v1",
                    "kind": "ValidatingWebhookConfiguration",
                    "metadata": {"name": self.webhook},
                    "webhooks": [
                        {
                            "name": "hold.throttle.pytest-cilium-upgrade.test",
                            "clientConfig": {
                                "url": f"https://127.0.0.1:{port}/hold",
                                "caBundle": ca_bundle,
                            },
                            "rules": [
                                {
                                    "operations": ["CREATE"],
                                    "apiGroups": [""],
                                    "apiVersions": ["v1"],
                                    "resources": ["configmaps"],
                                    "scope": "Namespaced",
                                }
                            ],
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": self.ns}
                            },
                            "objectSelector": {"matchLabels": {"throttle-hold": "true"}},
                            "failurePolicy": "Ignore",
                            "sideEffects": "None",
                            "admissionReviewVersions": ["v1"],
                            "timeoutSeconds": 30,
                        }
                    ],
                },
            ]
        )
        # The API server takes up new flow control and webhook configurations
        # asynchronously: hold, then prove with the gate's identity that it is throttled.
        probe = self.queued_probe if queue else self.rejected_probe
        deadline = time.monotonic() + 30
        while True:
            self._hold(self.seats() if queue else 1)
            if probe():
                return
            if time.monotonic() > deadline:
                pytest.fail(
                    "the API server never throttled the gate's identity "
                    f"({self.holds} holds tried: {self.holder_result})",
                    pytrace=False,
                )
            self._let_go()
            time.sleep(0.5)

    def seats(self) -> int:
        """The level's concurrency limit as the API server applies it (0 until it has it)."""
        return int(
            sum(
                value
                for name, labels, value in metrics(self.sandbox)
                if name == "apiserver_flowcontrol_current_limit_seats"
                and labels.get("priority_level") == self.level
            )
        )

    def _hold(self, count: int = 1) -> None:
        """Create ConfigMaps as the holder, one after another, until ``count`` are held:
        the admission of each holds one seat of the level."""
        assert self.server is not None
        self.server.held.clear()
        self.server.release.clear()
        self.server.let_go.clear()
        for _ in range(max(count, 1)):
            if not self._hold_one():
                return

    def _hold_one(self) -> bool:
        """One more held request; False when it did not reach the webhook."""
        assert self.server is not None
        self.holds += 1
        manifest = json.dumps(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": f"hold-{self.holds}",
                    "namespace": self.ns,
                    "labels": {"throttle-hold": "true"},
                },
            }
        )

        def create() -> None:
            try:
                proc = self.sandbox.run(
                    [
                        str(self.sandbox.binaries.kubectl),
                        f"--kubeconfig={self.holder_cfg}",
                        "create",
                        "-f",
                        "-",
                    ],
                    input_text=manifest,
                    check=False,
                    timeout=90,
                )
            except subprocess.TimeoutExpired as exc:
                self.holder_result.append(str(exc))
                return
            self.holder_result.append(f"{proc.returncode}: {proc.stdout}{proc.stderr}".strip())

        thread = threading.Thread(target=create, name="throttle-holder")
        self.holder_threads.append(thread)
        thread.start()
        with self.server.changed:
            held = self.server.changed.wait_for(
                lambda: self.server is not None and self.server.holding >= len(self.holder_threads),
                10,
            )
        if not held:
            # not through the webhook (its configuration not taken up yet, or the
            # holder itself got a 429): try again
            thread.join(30)
        return held

    def _let_go(self) -> None:
        if self.server is not None:
            self.server.release.set()
        for thread in self.holder_threads:
            thread.join(60)
        self.holder_threads = []

    def rejected_probe(self) -> bool:
        """One request as the gate's identity, no retries: is it refused with 429?"""
        with Kube(str(self.reader_cfg), retries=0, request_timeout=10) as kube:
            try:
                kube.server_version()
            except ApiError as exc:
                if exc.status != 429:
                    raise
                return True
        return False

    def queued_probe(self) -> bool:
        """One request as the gate's identity, no retries: does it wait in APF's queue?

        It is unanswered after ``PROBE_TIMEOUT_S`` and the API server, which removes a
        queued request when its client hangs up, counts it as rejected ("time-out").
        """
        before = self.gate_flow()["timed_out"]
        with Kube(str(self.reader_cfg), retries=0, request_timeout=PROBE_TIMEOUT_S) as kube:
            try:
                kube.server_version()
            except Timeout:
                pass
            else:
                return False
        deadline = time.monotonic() + 20  # at most the queue's own wait limit (15 s)
        while time.monotonic() < deadline:
            if self.gate_flow()["timed_out"] > before:
                return True
            time.sleep(0.2)
        return False

    def wait_until_queue_empty(self, timeout_s: float = 20) -> dict[str, float]:
        """The gate's flow once none of its requests waits in the queue any more."""
        deadline = time.monotonic() + timeout_s
        while (flow := self.gate_flow())["in_queue"] > 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        return flow

    def still_holding(self) -> bool:
        """The held requests have not been let go (nor timed out) since they were held."""
        return (
            self.server is not None
            and self.server.held.is_set()
            and not self.server.release.is_set()
            and not self.server.let_go
            and self.server.holding == len(self.holder_threads) > 0
            and all(thread.is_alive() for thread in self.holder_threads)
        )

    def lift(self) -> float:
        """Give the level seats, wait until the API server applies it, let the hold go.

        Returns how long lifting took.
        """
        started = time.monotonic()
        self.sandbox.kubectl(
            "patch",
            "prioritylevelconfiguration",
            self.level,
            "--type=merge",
            "-p",
            '{"spec":{"limited":{"nominalConcurrencyShares":20}}}',
        )
        deadline = started + 20
        with Kube(str(self.holder_cfg), retries=0, request_timeout=10) as kube:
            while True:
                try:
                    kube.server_version()  # admitted beside the held request: seats again
                    break
                except ApiError as exc:
                    if exc.status != 429 or time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
        self._let_go()
        return time.monotonic() - started

    def stop(self) -> None:
        self._let_go()
        if self.cluster_objects:
            # none of them has finalizers: gone when kubectl returns
            self.sandbox.kubectl("delete", "--ignore-not-found", *reversed(self.cluster_objects))
            left = self.sandbox.kubectl(
                "get",
                "-o",
                "name",
                "flowschemas,prioritylevelconfigurations,"
                "validatingwebhookconfigurations,clusterroles,clusterrolebindings",
            )
            assert self.ns not in left, left
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def gate_flow(self) -> dict[str, float]:
        """The gate identity's requests as APF counted them.

        ``dispatched`` and ``rejected`` (of which ``timed_out``: left the queue unserved,
        their wait limit passed or their client gone); ``in_queue`` now; ``waited`` and
        ``waited_s``: how many requests went through the queue, and how long they waited
        there in all; ``waited_over_2s``: how many of those waited more than 2 s. (APF
        labels the wait of a queued request ``execute="true"`` whether it was then served
        or timed out; ``execute="false"`` is for requests rejected without queuing.)
        """
        out = dict.fromkeys(
            (
                "dispatched",
                "rejected",
                "timed_out",
                "in_queue",
                "waited",
                "waited_s",
                "waited_over_2s",
            ),
            0.0,
        )
        wait = "apiserver_flowcontrol_request_wait_duration_seconds"
        for name, labels, value in metrics(self.sandbox):
            if labels.get("flow_schema") != self.gate_schema:
                continue
            if name == "apiserver_flowcontrol_dispatched_requests_total":
                out["dispatched"] += value
            elif name == "apiserver_flowcontrol_rejected_requests_total":
                out["rejected"] += value
                if labels.get("reason") == "time-out":
                    out["timed_out"] += value
            elif name == "apiserver_flowcontrol_current_inqueue_requests":
                out["in_queue"] += value
            elif labels.get("execute") == "true":
                if name == f"{wait}_count":
                    out["waited"] += value
                    out["waited_over_2s"] += value
                elif name == f"{wait}_sum":
                    out["waited_s"] += value
                elif name == f"{wait}_bucket" and labels.get("le") == "2":
                    out["waited_over_2s"] -= value
        return out

    # ------------------------------------------------------------------ the release
    def install_release_and_preflight(self) -> None:
        self.sandbox.helm(
            3,
            "install",
            "cilium",
            str(self.charts / "1.15.19"),
            *self.charts.values("1.15.19", self.sandbox),
            "--wait",
            "--timeout",
            "2m",
            "-n",
            self.ns,
        )
        self.sandbox.set_logs(ContainerLogs(self.ns, "cnp-validator", current=[VALID]))
        self.sandbox.helm(
            3,
            "install",
            "cilium-preflight",
            str(self.charts / "1.16.19"),
            *PREFLIGHT_SETS,
            "--wait",
            "--timeout",
            "2m",
            "-n",
            self.ns,
        )
        # The values snapshot, saved beforehand: with --cilium-write-snapshot the gate
        # would save it with `helm get values`, whose requests (client-go's own retries,
        # up to 11 attempts) this test does not follow.
        values = json.loads(
            self.sandbox.helm(3, "get", "values", "cilium", "-n", self.ns, "-o", "json").stdout
            or "null"
        )
        write_values_snapshot(self.snapshot, values or {})

    # ------------------------------------------------------------------ the gate
    def server_address(self) -> str:
        return str(yaml.safe_load(self.reader_cfg.read_text())["clusters"][0]["cluster"]["server"])

    def gate(self, *args: str) -> pytest.RunResult:
        return self.pytester.runpytest(
            "--cilium-upgrade",
            "--cilium-phase=pre",
            "--cilium-target-version=1.16.19",
            f"--cilium-kubeconfig={self.reader_cfg}",
            f"--cilium-helm={self.sandbox.binaries.helm3}",
            f"--cilium-namespace={self.ns}",
            f"--cilium-chart={self.charts}",
            f"--cilium-values-snapshot={self.snapshot}",
            f"--cilium-state-file={self.pytester.path / 'state.json'}",
            f"--junitxml={self.junit}",
            "-p",
            "no:cacheprovider",
            "-rA",
            *args,
        )

    def verdicts(self) -> dict[str, str]:
        """JUnit testcase name -> 'passed', 'skipped: ...' or the failure report."""
        return junit_verdicts(self.junit)


@pytest.fixture
def throttle(
    sandbox: Sandbox, namespace: str, pytester: pytest.Pytester, charts: Charts
) -> Iterator[Throttle]:
    box = Throttle(sandbox, namespace, pytester, charts)
    try:
        box.apply_roles()
        yield box
    finally:
        box.stop()
        for release in sandbox.helm(3, "list", "-q", "-a", "-n", namespace).stdout.split():
            sandbox.helm(3, "uninstall", release, "-n", namespace, "--wait", check=False)
        sandbox.clear_faults()


Delay = tuple[int, str | None, float]  # attempt, the response's Retry-After, the delay chosen


@pytest.fixture
def delays(monkeypatch: pytest.MonkeyPatch) -> list[Delay]:
    """Every backoff the adapter chooses (in this process, so also in pytester sub-runs)."""
    seen: list[Delay] = []
    original = kube_module.Kube._delay

    def spy(self: Kube, attempt: int, exc: ApiException | None) -> float:
        delay = original(self, attempt, exc)
        header = exc.headers.get("Retry-After") if exc is not None and exc.headers else None
        seen.append((attempt, header, delay))
        return delay

    monkeypatch.setattr(kube_module.Kube, "_delay", spy)
    return seen


def _outcome(result: pytest.RunResult) -> dict[str, int]:
    return {k: v for k, v in result.parseoutcomes().items() if k in ("passed", "failed", "skipped")}


# ---------------------------------------------------------------------------- tests


def test_adapter_retries_a_429_as_often_as_configured_waiting_retry_after(
    throttle: Throttle, delays: list[Delay]
) -> None:
    throttle.start()
    before = throttle.gate_flow()
    sleeps: list[float] = []
    with Kube(str(throttle.reader_cfg), retries=3, sleep=sleeps.append) as kube:
        with pytest.raises(ApiError) as info:
            kube.list_pods(throttle.ns)
        assert kube.requests.counts == {"list pods": 4}
    assert throttle.still_holding()
    assert info.value.status == 429
    # APF rejects with a plain-text body: the status, the address, what was asked and
    # the server's own "try again later", then how often the adapter tried
    assert str(info.value) == (
        f"API error 429 Too Many Requests: {throttle.server_address()} answered list pods "
        "with a text/plain text: 'Too many requests, please try again later.' "
        "(gave up after 4 attempts)"
    )
    # each wait is the server's Retry-After (APF: 1 s while it rejects little), not the
    # adapter's own backoff (0.5 s, 1 s, 2 s, with jitter)
    assert [attempt for attempt, _, _ in delays] == [1, 2, 3]
    assert sleeps == [delay for _, _, delay in delays]
    assert sleeps == [float(header or "nan") for _, header, _ in delays]
    after = throttle.gate_flow()
    assert after["rejected"] - before["rejected"] == 4
    assert after["dispatched"] == before["dispatched"]


def test_gate_under_sustained_429_ends_with_a_verdict_in_bounded_time(
    throttle: Throttle, delays: list[Delay]
) -> None:
    throttle.start()
    before = throttle.gate_flow()
    started = time.monotonic()
    result = throttle.gate()
    elapsed = time.monotonic() - started
    after = throttle.gate_flow()
    output = result.stdout.str()
    assert throttle.still_holding(), "the throttle lapsed while the gate ran"

    assert result.ret == 1, output
    assert "Traceback" not in output
    verdicts = throttle.verdicts()
    cluster = verdicts[CLUSTER_CHECK]
    assert "API server is throttling the gate (429 Too Many Requests)" in cluster
    assert f"API error 429 Too Many Requests: {throttle.server_address()} answered " in cluster
    assert "with a text/plain text: 'Too many requests, please try again later.'" in cluster
    assert "(gave up after 4 attempts)" in cluster
    assert (
        "API server is throttling the gate (429 Too Many Requests) (see "
        "cluster_reachable_and_access_allowed)"
    ) in " ".join(verdicts.values())
    # Each request was retried 3 times, each after the server's Retry-After; then given up.
    assert delays, output
    assert [attempt for attempt, _, _ in delays].count(1) * 3 == len(delays)
    for _attempt, header, delay in delays:
        assert header is not None, delays
        assert header.isdigit(), delays
        assert delay == float(header), delays
    requests = len(delays) // 3  # how many distinct requests the gate made
    # The API server saw every attempt and let none through: bounded, no endless loop.
    assert after["rejected"] - before["rejected"] == 4 * requests, (before, after, delays)
    assert after["dispatched"] == before["dispatched"]
    # Time to the verdict: the retries' waits (the requests wait concurrently), plus the
    # gate's own work.
    waits = [delay for _, _, delay in delays]
    assert sum(waits) / requests <= elapsed < max(waits) * 3 + 15, (elapsed, delays)
    print(
        f"verdict after {elapsed:.1f}s; {requests} requests x 4 attempts rejected; "
        f"waits {[d for _, _, d in delays]}"
    )


def test_gate_recovers_when_the_throttle_lifts_while_it_retries(
    throttle: Throttle, delays: list[Delay], monkeypatch: pytest.MonkeyPatch
) -> None:
    throttle.install_release_and_preflight()
    throttle.start()
    before = throttle.gate_flow()

    # Lift the throttle at the gate's first backoff, after its first 429: any request
    # waiting to retry waits for that, so every retry comes after the lift, whatever
    # the timing. Then the gate sleeps the Retry-After it was given, and retries.
    lifted = threading.Event()
    lock = threading.Lock()
    lift_took: list[float] = []
    held_until_lifted: list[bool] = []
    lift_errors: list[BaseException] = []
    spy = kube_module.Kube._delay  # the delays fixture's

    def lift_then_delay(self: Kube, attempt: int, exc: ApiException | None) -> float:
        with lock:
            if not lifted.is_set():
                held_until_lifted.append(throttle.still_holding())
                try:
                    lift_took.append(throttle.lift())
                except BaseException as error:  # reported by the test, not the sub-run
                    lift_errors.append(error)
                lifted.set()
        return spy(self, attempt, exc)

    monkeypatch.setattr(kube_module.Kube, "_delay", lift_then_delay)
    started = time.monotonic()
    result = throttle.gate()
    elapsed = time.monotonic() - started
    after = throttle.gate_flow()
    output = result.stdout.str()

    assert lifted.is_set(), "the gate was never refused"
    assert not lift_errors
    assert held_until_lifted == [True]
    assert _outcome(result) == {"passed": 14}, output
    assert throttle.verdicts()[CLUSTER_CHECK] == "passed"
    assert "429" not in output
    # Each refused request was retried once, after the server's Retry-After, and passed.
    assert delays
    assert all(attempt == 1 for attempt, _, _ in delays), delays
    for _attempt, header, delay in delays:
        assert header is not None, delays
        assert delay == float(header), delays
    rejected = after["rejected"] - before["rejected"]
    assert rejected == len(delays), (before, after, delays)
    assert after["dispatched"] > before["dispatched"]
    print(
        f"recovered: {len(delays)} request(s) refused once, lift took {lift_took[0]:.1f}s, "
        f"gate done after {elapsed:.1f}s; waits {[d for _, _, d in delays]}"
    )


Send = tuple[str, str, float]  # method, path, when (monotonic)


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> list[Send]:
    """Every request (every attempt) the adapter sends (in this process, so in sub-runs)."""
    seen: list[Send] = []
    original = kube_module.Kube._send

    def spy(self: Kube, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        seen.append((method, path, time.monotonic()))
        return original(self, method, path, *args, **kwargs)

    monkeypatch.setattr(kube_module.Kube, "_send", spy)
    return seen


def _through_apf(sent: list[Send]) -> list[Send]:
    """The requests APF classifies: a pod's log is a long-running request, never queued."""
    return [s for s in sent if not s[1].endswith("/log")]


def test_gate_waits_out_a_slow_api_server_and_passes(
    throttle: Throttle, delays: list[Delay], sends: list[Send]
) -> None:
    throttle.install_release_and_preflight()
    throttle.start(QUEUE)
    before = throttle.gate_flow()

    # Once the API server holds one of the gate's requests in its queue, keep it (and
    # whatever the gate sends meanwhile) waiting SLOW_S more seconds, then let the
    # held requests go: the queued ones are served.
    queued_at: list[float] = []
    released_at: list[float] = []
    release_errors: list[BaseException] = []

    def release_when_queued() -> None:
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if throttle.gate_flow()["in_queue"] >= 1:
                    queued_at.append(time.monotonic())
                    time.sleep(SLOW_S)
                    break
                time.sleep(0.2)
        except BaseException as error:  # reported by the test
            release_errors.append(error)
        finally:
            throttle._let_go()  # never leave the gate waiting on the hold
            released_at.append(time.monotonic())

    releaser = threading.Thread(target=release_when_queued, name="slow-release")
    sends.clear()  # the gate's own requests from here on
    started = time.monotonic()
    releaser.start()
    result = throttle.gate()
    elapsed = time.monotonic() - started
    releaser.join(60)
    after = throttle.wait_until_queue_empty()
    output = result.stdout.str()

    assert not release_errors
    assert queued_at, "the gate's requests were never queued"
    assert _outcome(result) == {"passed": 14}, output
    assert throttle.verdicts()[CLUSTER_CHECK] == "passed"
    assert "429" not in output
    assert "did not answer" not in output
    # Nothing was refused or retried: every request the gate sent was served once,
    # some after waiting in the queue, the first of them for SLOW_S or more.
    assert delays == []
    assert after["rejected"] == before["rejected"], (before, after)
    assert after["dispatched"] - before["dispatched"] == len(_through_apf(sends)), sends
    assert after["waited_s"] - before["waited_s"] >= SLOW_S, (before, after)
    assert after["waited_over_2s"] - before["waited_over_2s"] >= 1, (before, after)
    first = sends[0][2]
    assert started <= first <= queued_at[0]
    assert elapsed > SLOW_S, elapsed
    print(
        f"slow API server: first request queued {queued_at[0] - first:.1f}s after it was "
        f"sent, released {released_at[0] - first:.1f}s after it; gate done after "
        f"{elapsed:.1f}s; {len(sends)} requests, "
        f"{after['waited'] - before['waited']:.0f} of them through APF, waiting "
        f"{after['waited_s'] - before['waited_s']:.1f}s in its queue in all"
    )


def test_gate_on_an_api_server_slower_than_the_request_timeout_ends_with_a_verdict(
    throttle: Throttle, delays: list[Delay], sends: list[Send]
) -> None:
    throttle.start(QUEUE)
    before = throttle.gate_flow()
    sends.clear()  # the gate's own requests from here on
    started = time.monotonic()
    result = throttle.gate("--cilium-request-timeout=2")
    elapsed = time.monotonic() - started
    held = throttle.still_holding()
    after = throttle.wait_until_queue_empty()
    output = result.stdout.str()
    assert held, "the hold lapsed while the gate ran"

    assert result.ret == 1, output
    assert "Traceback" not in output
    verdicts = throttle.verdicts()
    cluster = verdicts[CLUSTER_CHECK]
    assert cluster.startswith("API server did not answer within the request timeout\n"), cluster
    assert (
        f"the Kubernetes API at {throttle.server_address()} did not answer get version within 2s"
    ) in cluster
    assert "allow more time with --cilium-request-timeout" in cluster
    assert "check the kubeconfig" not in cluster
    assert "API server did not answer within the request timeout\n" in output
    # Each request was sent once (a request that timed out is not retried): the
    # version, and the LIST of Helm's release records asked beside it. The API server
    # saw each of them wait in its queue, served none, and dropped each when the gate
    # hung up.
    assert delays == []
    assert sorted(path for _, path, _ in sends) == [
        f"/api/v1/namespaces/{throttle.ns}/secrets",
        "/version/",
    ], sends
    assert after["timed_out"] - before["timed_out"] == len(sends), (before, after, sends)
    assert after["waited"] - before["waited"] == len(sends), (before, after)
    assert after["dispatched"] == before["dispatched"]
    assert 2 <= elapsed < 30, elapsed
    print(
        f"verdict after {elapsed:.1f}s; {len(sends)} requests, each sent once and queued "
        f"{(after['waited_s'] - before['waited_s']) / len(sends):.1f}s on average "
        "until the gate hung up"
    )
