"""The harness of the plugin's end-to-end tests: a fake cluster and a pytester project.

A :class:`Gate` writes a ``conftest.py`` into the pytester directory that replaces
``GateSession._adapters`` with fakes of
:class:`~pytest_cilium_upgrade.snapshot.readers.ClusterReader`,
:class:`~pytest_cilium_upgrade.snapshot.readers.HelmReader` and the chart source. The fakes
answer from ``fake_cluster.json``: the JSON (camelCase) shapes the API and Helm
print, built here by small helpers and changed per scenario.
"""

from __future__ import annotations

import json
import os
import re
import textwrap
from typing import Any

import pytest
import yaml

from pytest_cilium_upgrade import checks, defaults
from pytest_cilium_upgrade.gate.session import GateSession

JSONDict = dict[str, Any]

NS = defaults.DEFAULT_NAMESPACE
CURRENT = "1.15.18"
TARGET = "1.16.15"
CONTROL_PLANES = ("cp-1", "cp-2", "cp-3")
WORKERS = ("worker-1", "worker-2", "worker-3", "worker-4", "worker-5")
NODES = (*CONTROL_PLANES, *WORKERS)
CP_TAINT_KEY = "node-role.kubernetes.io/control-plane"
ALL_VALID_LOG = f'level=info msg="{defaults.CNP_ALL_VALID}"'
INVALID_CNP_LOG = 'level=fatal msg="failed to start: Found invalid CiliumNetworkPolicy"'
PLANTED_PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "PLANTEDSECRETMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n"
    "-----END PRIVATE KEY-----\n"
)
PLANTED_TOKEN = "tok-PLANTED-123"  # noqa: S105 - a planted fixture value
PLANTED_OLD_TOKEN = "tok-PLANTED-456"  # noqa: S105 - a planted fixture value

PRE_IDS = [c.check_id for c in checks.CHECKS if c.phase == "pre"]
POST_IDS = [c.check_id for c in checks.CHECKS if c.phase == "post"]
ALL_NODE_IDS = [f"cilium-upgrade::{c.phase}::{c.check_id}" for c in checks.CHECKS]
PRE_NODE_IDS = [f"cilium-upgrade::pre::{i}" for i in PRE_IDS]


# --------------------------------------------------------------------------- fixture data


def image(repo: str, version: str) -> str:
    return f"quay.io/cilium/{repo}:v{version}"


def node_json(name: str) -> JSONDict:
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
    taints: list[JSONDict] = []
    if name in CONTROL_PLANES:
        labels[CP_TAINT_KEY] = ""
        taints.append({"key": CP_TAINT_KEY, "effect": "NoSchedule"})
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }


def pod_json(
    name: str, node: str, labels: dict[str, str], container: str, img: str, *, ready: bool = True
) -> JSONDict:
    return {
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": container, "image": img}]},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": str(ready)}],
            "containerStatuses": [
                {
                    "name": container,
                    "image": img,
                    "ready": ready,
                    "restartCount": 0,
                    "state": {"running": {}} if ready else {"waiting": {"reason": "Error"}},
                }
            ],
        },
    }


def template(labels: dict[str, str], container: str, img: str, **spec: Any) -> JSONDict:
    return {
        "metadata": {"labels": labels},
        "spec": {"containers": [{"name": container, "image": img}], **spec},
    }


def daemonset_json(
    name: str, labels: dict[str, str], container: str, img: str, count: int, **spec: Any
) -> JSONDict:
    return {
        "metadata": {"name": name, "namespace": NS, "generation": 1},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": template(labels, container, img, **spec),
        },
        "status": {
            "observedGeneration": 1,
            **dict.fromkeys(
                (
                    "desiredNumberScheduled",
                    "currentNumberScheduled",
                    "numberReady",
                    "updatedNumberScheduled",
                    "numberAvailable",
                ),
                count,
            ),
        },
    }


def deployment_json(
    name: str, labels: dict[str, str], container: str, img: str, replicas: int
) -> JSONDict:
    return {
        "metadata": {"name": name, "namespace": NS, "generation": 1},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": template(labels, container, img),
        },
        "status": {
            "observedGeneration": 1,
            **dict.fromkeys(
                ("replicas", "readyReplicas", "updatedReplicas", "availableReplicas"), replicas
            ),
        },
    }


def access_review_json(req: defaults.AccessRequirement) -> JSONDict:
    return {
        "spec": {
            "resourceAttributes": {
                "verb": req.verb,
                "resource": req.resource,
                "group": req.group,
                "subresource": req.subresource,
                "namespace": NS if req.namespaced else "",
            }
        },
        "status": {"allowed": True},
    }


def helm_status_json(name: str, chart_version: str, revision: int) -> JSONDict:
    return {
        "name": name,
        "namespace": NS,
        "version": revision,
        "info": {"status": "deployed", "last_deployed": "2025-01-01T00:00:00Z"},
        "chart": {
            "metadata": {"name": "cilium", "version": chart_version, "appVersion": chart_version}
        },
    }


PREFLIGHT_LABELS = {"k8s-app": "cilium-pre-flight-check"}
VALIDATOR_LABELS = {"k8s-app": "cilium-pre-flight-check-deployment"}
VALIDATOR_POD = "cilium-pre-flight-check-7d9f8-abcde"


def preflight_pods(nodes: tuple[str, ...]) -> list[JSONDict]:
    return [
        pod_json(
            f"cilium-pre-flight-check-{n}",
            n,
            PREFLIGHT_LABELS,
            defaults.PREFLIGHT_CONTAINER,
            image("cilium", TARGET),
        )
        for n in nodes
    ]


def healthy_cluster() -> JSONDict:
    """The seed cluster (3 control planes, 5 workers), healthy, pre-flight of TARGET ready."""
    agent_labels = {"k8s-app": "cilium"}
    operator_labels = {"io.cilium/app": "operator", "name": "cilium-operator"}
    agent_img = image("cilium", CURRENT)
    operator_img = image("operator-generic", CURRENT)
    target_img = image("cilium", TARGET)
    pods = [
        *(
            pod_json(f"cilium-{n}", n, agent_labels, defaults.AGENT_CONTAINER, agent_img)
            for n in NODES
        ),
        *(
            pod_json(
                f"cilium-operator-{i}",
                w,
                operator_labels,
                defaults.OPERATOR_CONTAINER,
                operator_img,
            )
            for i, w in enumerate(WORKERS[:2])
        ),
        *preflight_pods(NODES),
        pod_json(
            VALIDATOR_POD,
            WORKERS[0],
            VALIDATOR_LABELS,
            defaults.CNP_VALIDATOR_CONTAINER,
            target_img,
        ),
    ]
    values: JSONDict = {
        "kubeProxyReplacement": True,
        "hubble": {"relay": {"enabled": False}},
        "ipam": {"mode": "kubernetes"},
    }
    return {
        "server_version": "v1.30.4",
        "access_reviews": [access_review_json(r) for r in defaults.REQUIRED_ACCESS],
        "nodes": [node_json(n) for n in NODES],
        "pods": pods,
        "daemonsets": [
            daemonset_json(
                defaults.AGENT_DAEMONSET,
                agent_labels,
                defaults.AGENT_CONTAINER,
                agent_img,
                len(NODES),
                tolerations=[{"operator": "Exists"}],
            ),
            daemonset_json(
                defaults.PREFLIGHT_DAEMONSET,
                PREFLIGHT_LABELS,
                defaults.PREFLIGHT_CONTAINER,
                target_img,
                len(NODES),
                tolerations=[{"operator": "Exists"}],
            ),
        ],
        "deployments": [
            deployment_json(
                defaults.OPERATOR_DEPLOYMENT,
                operator_labels,
                defaults.OPERATOR_CONTAINER,
                operator_img,
                2,
            ),
            deployment_json(
                defaults.PREFLIGHT_DEPLOYMENT,
                VALIDATOR_LABELS,
                defaults.CNP_VALIDATOR_CONTAINER,
                target_img,
                1,
            ),
        ],
        "logs": {f"{VALIDATOR_POD}/{defaults.CNP_VALIDATOR_CONTAINER}": ALL_VALID_LOG},
        "helm_version": "v3.22.0+gabc",
        "releases": {
            defaults.DEFAULT_RELEASE: helm_status_json(defaults.DEFAULT_RELEASE, CURRENT, 3),
            defaults.DEFAULT_PREFLIGHT_RELEASE: helm_status_json(
                defaults.DEFAULT_PREFLIGHT_RELEASE, TARGET, 1
            ),
        },
        "history": [
            {
                "revision": 1,
                "status": "superseded",
                "chart": "cilium-1.15.1",
                "description": "Install complete",
            },
            {
                "revision": 2,
                "status": "superseded",
                "chart": "cilium-1.15.7",
                "description": "Upgrade complete",
            },
            {
                "revision": 3,
                "status": "deployed",
                "chart": f"cilium-{CURRENT}",
                "description": "Upgrade complete",
            },
        ],
        "values": values,
        "chart_versions": ["1.15.1", "1.15.7", CURRENT, "1.16.0", "1.16.5", TARGET],
        "render_error": None,
    }


def seed_like(data: JSONDict) -> None:
    """The seed incident: the pre-flight DaemonSet does not tolerate the control planes."""
    ds = workload_of(data, "DaemonSet", defaults.PREFLIGHT_DAEMONSET)
    ds["spec"]["template"]["spec"].pop("tolerations")
    for key in ds["status"]:
        if key != "observedGeneration":
            ds["status"][key] = len(WORKERS)
    data["pods"] = [
        p
        for p in data["pods"]
        if not (
            p["metadata"]["labels"] == PREFLIGHT_LABELS and p["spec"]["nodeName"] in CONTROL_PLANES
        )
    ]


def workload_of(data: JSONDict, kind: str, name: str) -> JSONDict:
    key = "daemonsets" if kind == "DaemonSet" else "deployments"
    return next(w for w in data[key] if w["metadata"]["name"] == name)


def validator_not_ready(data: JSONDict) -> None:
    status = workload_of(data, "Deployment", defaults.PREFLIGHT_DEPLOYMENT)["status"]
    status.update(readyReplicas=0, availableReplicas=0)
    validator = next(p for p in data["pods"] if p["metadata"]["name"] == VALIDATOR_POD)
    validator["status"]["containerStatuses"][0].update(
        ready=False, state={"waiting": {"reason": "CrashLoopBackOff"}}, restartCount=4
    )
    validator["status"]["conditions"] = [{"type": "Ready", "status": "False"}]


def invalid_policy_log(data: JSONDict) -> None:
    data["logs"] = {f"{VALIDATOR_POD}/{defaults.CNP_VALIDATOR_CONTAINER}": INVALID_CNP_LOG}


# --------------------------------------------------------------------------- the fakes

FAKES_CONFTEST = """
import json
from pathlib import Path

from pytest_cilium_upgrade.errors import HelmFailed
from pytest_cilium_upgrade.gate.session import GateSession

HERE = Path(__file__).parent
DATA = json.loads((HERE / "fake_cluster.json").read_text())


class FakeCluster:
    server = "https://fake-apiserver.example:6443"

    def close(self):
        pass

    def server_version(self):
        return DATA["server_version"]

    def api_versions(self):
        return DATA.get("api_versions", ["v1", "apps/v1", "apps/v1/DaemonSet"])

    def access_reviews(self, namespace, requirements):
        return DATA["access_reviews"]

    def list_nodes(self):
        return DATA["nodes"]

    def list_pods(self, namespace, selector=None):
        return [p for p in DATA["pods"] if p["metadata"]["namespace"] == namespace]

    def list_daemonsets(self, namespace):
        return DATA["daemonsets"]

    def list_deployments(self, namespace):
        return DATA["deployments"]

    def pod_log(self, namespace, pod, container, *, previous=False):
        return DATA["logs"].get(f"{pod}/{container}")


class FakeHelm:
    def version(self):
        return DATA["helm_version"]

    def status(self, release, namespace):
        return DATA["releases"].get(release)

    def history(self, release, namespace):
        return DATA["history"]

    def get_values(self, release, namespace):
        return DATA["values"]

    def user_values(self, values_files=(), set_values=()):
        # what Helm merged, as the scenario says (no merge of our own)
        (HERE / "user-values-asked.json").write_text(
            json.dumps({"files": [str(f) for f in values_files], "sets": list(set_values)})
        )
        if "user_values" not in DATA:  # a scenario that does not say: Helm could not merge
            raise HelmFailed(["helm", "template"], 1, "Error: no merge in this scenario")
        return DATA["user_values"]

    def template(
        self, release, chart, version, namespace, values_files=(), set_values=(), **capabilities
    ):
        (HERE / "rendered-for.json").write_text(json.dumps(capabilities))
        if DATA["render_error"]:
            raise HelmFailed(["helm", "template"], 1, DATA["render_error"])
        return ""


class FakeChart:
    repo_name = None  # a chart on disk

    def versions(self):
        return DATA["chart_versions"]

    def chart_files(self, version, names):
        # by default a chart whose values.yaml defines every value of the release
        files = DATA.get("chart_files") or {"values.yaml": json.dumps(DATA["values"])}
        return {name: files.get(name) for name in names}


def fake_adapters(self):
    if self._adapters_built:
        return
    self._adapters_built = True
    (HERE / "adapters-built").touch()
    self._cluster = FakeCluster()
    self._helm = FakeHelm()
    self._chart = FakeChart()


ORIGINAL_ADAPTERS = GateSession._adapters


def pytest_configure(config):
    GateSession._adapters = fake_adapters


def pytest_unconfigure(config):
    GateSession._adapters = ORIGINAL_ADAPTERS
"""


def new_gate(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Gate:
    """A :class:`Gate` in a clean environment (the body of the tests' ``gate`` fixture)."""
    # The conftest puts the real adapters back at unconfigure; this is the safety net.
    monkeypatch.setattr(GateSession, "_adapters", GateSession._adapters)
    for name in list(os.environ):
        if name.startswith("CILIUM_UPGRADE_") or name in ("GITHUB_STEP_SUMMARY", "KUBECONFIG"):
            monkeypatch.delenv(name)
    return Gate(pytester)


class Gate:
    """A pytester project whose gate reads the fake cluster in :attr:`data`."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        self.path = pytester.path
        self.data = healthy_cluster()
        self.snapshot_values: JSONDict | None = None  # None: equal to the live values
        self.conftest_extra = ""
        self.pytester.makeini("[pytest]\n")

    def write(self) -> None:
        (self.path / "fake_cluster.json").write_text(json.dumps(self.data))
        self.pytester.makeconftest(FAKES_CONFTEST + textwrap.dedent(self.conftest_extra))
        snapshot = self.path / "cilium-values.yaml"
        values = self.data["values"] if self.snapshot_values is None else self.snapshot_values
        snapshot.write_text(yaml.safe_dump(values))
        snapshot.chmod(0o600)

    def run(self, *args: str, randomly_seed: int | None = None) -> pytest.RunResult:
        """A gate run: ``--cilium-upgrade`` with the target version, then ``args``."""
        return self.run_plain(
            "--cilium-upgrade",
            f"--cilium-target-version={TARGET}",
            *args,
            randomly_seed=randomly_seed,
        )

    def run_plain(self, *args: str, randomly_seed: int | None = None) -> pytest.RunResult:
        """An inner pytest run; pytest-randomly (when installed) shuffles it only with a seed.

        Without one the inner run keeps pytest's own order, which most tests here
        compare; ``tests/unit/test_step_order.py`` runs the gate under the shuffle.
        """
        self.write()
        if randomly_seed is None:
            shuffle = ["-p", "no:randomly"]
        else:
            shuffle = ["-p", "randomly", f"--randomly-seed={randomly_seed}"]
        return self.pytester.runpytest(*shuffle, *args)


def collected(result: pytest.RunResult) -> list[str]:
    """The node ids ``--co -q`` printed."""
    return [line for line in result.outlines if "::" in line and " " not in line]


def failure_section(result: pytest.RunResult, node_id: str) -> list[str]:
    """The lines of one item's entry in the FAILURES section (without its header)."""
    lines = result.outlines
    start = next(i for i, ln in enumerate(lines) if ln.startswith("_") and node_id in ln)
    end = next(
        (i for i in range(start + 1, len(lines)) if re.match(r"^(_{3,} |={3,} )", lines[i])),
        len(lines),
    )
    return lines[start + 1 : end]
