"""Bad input from helm and the chart source: output Helm does not print, a repository not
added, a stale local index, a helm that hangs behind a wrapper.

helm is a script answering each subcommand from files (:func:`bad_input_fakes.fake_helm`);
the API is the loopback stand-in of a small healthy cluster holding the release.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from bad_input_fakes import (
    Case,
    Env,
    FakeApi,
    api,
    doc_rows,
    executable,
    helm_release,
    run_case,
)

pytest_plugins = ["pytester"]
__all__ = ["api"]  # the fixture, for the tests below

RELEASE_CHECKS = ("-k", "helm_client_supported or release_deployed")
PRE = ("--cilium-phase=pre",)
SURVIVOR_PIDS = "survivor.pids"


def _helm(**answers: tuple[int, bytes | str, bytes | str]) -> Callable[[Env], list[str]]:
    def prepare(env: Env) -> list[str]:
        env.helm_answers.update(answers)
        return []

    return prepare


def _sql(**answers: tuple[int, bytes | str, bytes | str]) -> Callable[[Env], list[str]]:
    """Helm keeping its records where only helm reads them (HELM_DRIVER=sql)."""

    def prepare(env: Env) -> list[str]:
        env.monkeypatch.setenv("HELM_DRIVER", "sql")
        env.helm_answers.update(answers)
        return []

    return prepare


def _status(**fields: object) -> str:
    release = helm_release()
    release.pop("chart")
    return json.dumps({**release, **fields})


def _with_snapshot(**answers: tuple[int, bytes | str, bytes | str]) -> Callable[[Env], list[str]]:
    def prepare(env: Env) -> list[str]:
        env.file("values.yaml", "ipam:\n  mode: kubernetes\n").chmod(0o600)
        env.helm_answers.update(answers)
        return []

    return prepare


def _wrapper(env: Env) -> list[str]:
    """A helm wrapper (a version manager's shim) whose helm hangs: `helm version` included."""
    pids = env.path / SURVIVOR_PIDS
    wrapper = executable(
        env.path / "helm-shim",
        f'#!/bin/sh\nsh -c \'echo $$ >> "{pids}"; exec sleep 300\' &\necho $$ >> "{pids}"\nwait\n',
    )
    return [f"--cilium-helm={wrapper}", "--cilium-timeout=2", "--cilium-request-timeout=2"]


HELM = "<dir>/fake-helm/helm"
KUBECONFIG = "--kubeconfig <dir>/kubeconfig"
CASES = (
    Case(
        "helm-prints-bytes-not-utf8",
        "`--cilium-phase=pre`, `HELM_DRIVER=sql`, `helm status` failing with bytes that are"
        " not UTF-8",
        f"cannot read the release state with helm: `{HELM} status cilium --namespace"
        f" kube-system -o json {KUBECONFIG}` exited 1: Error: \ufffd\ufffd storage \ufffd("
        " unreadable",
        args=(*PRE, *RELEASE_CHECKS),
        prepare=_sql(status=(1, b"", b"Error: \xff\xfe storage \xc3( unreadable\n")),
    ),
    Case(
        "helm-status-json-of-other-types",
        "`--cilium-phase=pre`, `HELM_DRIVER=sql`, `helm status -o json` printing"
        ' `"version": "three"`',
        f"cannot read the release state with helm: `{HELM} status cilium --namespace"
        f" kube-system -o json {KUBECONFIG}` exited 0: printed a release status that cannot"
        " be read: version is 'three', not a number",
        args=(*PRE, *RELEASE_CHECKS),
        prepare=_sql(status=(0, _status(version="three"), "")),
    ),
    Case(
        "helm-history-json-of-other-types",
        "`--cilium-phase=pre`, `HELM_DRIVER=sql`, `helm history -o json` printing"
        ' `"revision": [1]`',
        f"cannot read the release state with helm: `{HELM} history cilium --namespace"
        f" kube-system -o json --max 256 {KUBECONFIG}` exited 0: printed a release history"
        " that cannot be read: revision is [1], not a number",
        args=(*PRE, *RELEASE_CHECKS),
        prepare=_sql(
            status=(0, _status(), ""),
            **{"get-metadata": (0, json.dumps({"chart": "cilium", "version": "1.15.18"}), "")},
            history=(0, json.dumps([{"revision": [1], "status": "deployed"}]), ""),
        ),
    ),
    Case(
        "helm-version-not-utf8",
        "`--cilium-phase=pre`, `helm version` printing bytes that are not UTF-8",
        "helm '\ufffd\ufffd\\x00\ufffd garbage' is not supported: only Helm 3 and Helm 4 are",
        args=(*PRE, "-k", "helm_client_supported"),
        prepare=_helm(version=(0, b"\xff\xfe\x00\x81 garbage\n", b"")),
    ),
    Case(
        "helm-version-fails",
        "`--cilium-phase=pre`, `helm version` exiting 2",
        f"`{HELM} version --short` exited 2: fatal: cannot load plugin; install Helm 3 or 4"
        " (https://helm.sh/docs/intro/install/) or pass its path",
        args=(*PRE, "-k", "helm_client_supported"),
        prepare=_helm(version=(2, "", "fatal: cannot load plugin\n")),
    ),
    Case(
        "default-chart-repo-not-added",
        "`--cilium-phase=pre --cilium-target-version=1.16.15`, the default chart"
        " `cilium/cilium` with no repository added",
        "target chart not found: cannot list the versions of Helm repo chart cilium/cilium: no"
        " chart cilium/cilium in the Helm repositories known to helm: the repository cilium is"
        " not added (or offers no chart cilium); add it with"
        " `helm repo add cilium https://helm.cilium.io/`, or give its URL with"
        " --cilium-chart-repo, or a chart directory",
        args=(
            *PRE,
            "--cilium-target-version=1.16.15",
            "-k",
            "helm_client_supported or release_deployed or upgrade_path or target_chart",
        ),
        prepare=_helm(search=(1, "", "Error: no repositories configured\n")),
    ),
    Case(
        "helm-search-prints-no-json",
        "`--cilium-phase=pre --cilium-target-version=1.16.15`, `helm search repo -o json`"
        " printing text",
        "target chart not found: cannot list the versions of Helm repo chart cilium/cilium:"
        f" `{HELM} search repo cilium/cilium --versions -o json` exited 0: output is not JSON"
        " (Expecting value: line 1 column 1 (char 0)): NAME CHART VERSION",
        args=(*PRE, "--cilium-target-version=1.16.15", "-k", "upgrade_path"),
        prepare=_helm(search=(0, "NAME CHART VERSION\n", "")),
    ),
    Case(
        "stale-repository-index",
        "`--cilium-phase=pre --cilium-target-version=1.16.15`, helm's local index of the"
        " repository older than the version",
        "chart 1.16.15 does not render with the values snapshot for Kubernetes v1.30.4: helm's"
        " local index of repository cilium does not list cilium/cilium version 1.16.15 (an"
        " index older than the release, or a version that is not published): update it with"
        " `helm repo update cilium`",
        args=(*PRE, "--cilium-target-version=1.16.15", "-k", "target_chart_renders"),
        prepare=_with_snapshot(
            template=(1, "", 'Error: failed to download "cilium/cilium" at version "1.16.15"\n')
        ),
    ),
    Case(
        "helm-wrapper-hangs",
        "`--cilium-phase=pre --cilium-timeout=2 --cilium-helm=<shim>`, a wrapper whose helm hangs",
        "`<dir>/helm-shim version --short ...` did not finish within 2s",
        args=(*PRE, "-k", "helm_client_supported"),
        prepare=_wrapper,
    ),
)


@pytest.fixture
def env(api: FakeApi, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Env:
    monkeypatch.delenv("HELM_DRIVER", raising=False)
    return Env(api, Path(pytester.path), monkeypatch)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_reliability_doc_lists_every_case() -> None:
    assert doc_rows("Bad input: helm and the chart source") == [c.row for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_helm_output_and_chart_sources_get_one_clear_line(
    case: Case, env: Env, pytester: pytest.Pytester
) -> None:
    outcome = run_case(case, pytester, env)
    failed = [ln for ln in outcome.text.splitlines() if ln.startswith("FAILED ")]
    assert len(failed) == 1, outcome.text
    if case.id == "default-chart-repo-not-added":
        # helm works: its check passes and the release is read; only the chart is missing
        assert "PASSED cilium-upgrade::pre::helm_client_supported" in outcome.text
        assert "PASSED cilium-upgrade::pre::release_deployed" in outcome.text
        assert failed[0].startswith("FAILED cilium-upgrade::pre::upgrade_path_supported")
    if case.id == "helm-wrapper-hangs":
        # the wrapper and the helm it started were ended together, with their group
        pids = [int(p) for p in (env.path / SURVIVOR_PIDS).read_text().split()]
        assert len(pids) >= 2  # each helm run: the wrapper and its helm
        end = time.monotonic() + 5
        while any(_alive(p) for p in pids) and time.monotonic() < end:
            time.sleep(0.05)
        assert not [p for p in pids if _alive(p)], "a process of the helm wrapper survived"
    assert os.environ.get("HELM_DRIVER") in (None, "sql")
