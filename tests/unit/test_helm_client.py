"""The Helm client: versions, construction, reads of Helm 3 and 4, errors translated once."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cilium_sandbox.helm import HelmDriver
from helm_fakes import (
    CHART_VERSIONS,
    CHARTS,
    REPO,
    SECRET,
    STANDINS,
    Recorder,
    fake_driver,
    fake_helm,
    helm_script,
)

from pytest_cilium_upgrade.adapters.helm.charts import ChartSource
from pytest_cilium_upgrade.adapters.helm.client import Helm, HelmTimeout, major_of
from pytest_cilium_upgrade.errors import HelmFailed, HelmNotFound, NotFound, Timeout
from pytest_cilium_upgrade.redact import REDACTED, Redactor
from pytest_cilium_upgrade.snapshot.model import HelmRelease
from pytest_cilium_upgrade.versions import Version


@pytest.fixture(autouse=True)
def version_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The cache of `helm version` answers, out of the user's cache directory."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("PYTEST_CILIUM_UPGRADE_CACHE", str(cache))
    return cache / "helm-version"


@pytest.fixture
def binary(tmp_path: Path) -> str:
    """An executable that stands in for the path of helm; the recorder answers instead."""
    return helm_script(tmp_path, "exit 0")


# --------------------------------------------------------------------------- versions


@pytest.mark.parametrize(
    ("text", "major"),
    [("v3.22.0+g1a2b3c4\n", 3), ("v3.14.4", 3), ("v4.3.1", 4), ("v4.0.0+gabcdef0", 4)],
)
def test_supported_majors(text: str, major: int) -> None:
    assert major_of(text) == major


def test_helm_2_is_refused_with_its_version() -> None:
    with pytest.raises(HelmNotFound, match=r"is Helm 2\.17\.0.*only Helm 3 and Helm 4"):
        major_of("Client: v2.17.0+ga690bad\n")
    with pytest.raises(HelmNotFound, match="cannot tell the Helm version"):
        major_of("something else")


def test_version_is_read_from_the_binary(tmp_path: Path) -> None:
    helm3 = Helm(helm_script(tmp_path, 'echo "v3.22.0+g1a2b3c4"', "helm3"))
    assert helm3.version() == "v3.22.0+g1a2b3c4"
    assert helm3.major() == 3
    assert helm3.calls[0].argv[1:] == ("version", "--short")
    helm3.major()
    assert len(helm3.calls) == 1


def test_helm_2_binary_is_refused(tmp_path: Path) -> None:
    # Helm 2 prints its client version, then fails to reach Tiller.
    body = 'echo "Client: v2.17.0+ga690bad"; echo "Error: could not find tiller" >&2; exit 1'
    helm2 = Helm(helm_script(tmp_path, body, "helm2"), kubeconfig="/kc")
    with pytest.raises(HelmNotFound, match=r"Helm 2\.17\.0"):
        helm2.major()
    assert "--kubeconfig" not in helm2.calls[0].argv


def test_unreadable_version_is_helm_not_found(tmp_path: Path) -> None:
    broken = Helm(helm_script(tmp_path, 'echo "segfault" >&2; exit 2', "broken"))
    with pytest.raises(HelmNotFound, match="exited 2: segfault"):
        broken.major()


def test_missing_binary_names_it_and_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(HelmNotFound, match=r"'helm-nope' not found; install Helm 3 or 4"):
        Helm("helm-nope", env={"PATH": str(tmp_path)})
    not_executable = tmp_path / "helm"
    not_executable.write_text("#!/bin/sh\n")
    with pytest.raises(HelmNotFound, match=r"https://helm\.sh/docs/intro/install/"):
        Helm(str(not_executable))


def test_binary_is_looked_up_on_the_given_path(tmp_path: Path) -> None:
    found = helm_script(tmp_path, "exit 0")
    assert Helm("helm", env={"PATH": str(tmp_path)}).binary == found


def test_constructor_validates_its_options(binary: str) -> None:
    with pytest.raises(ValueError, match="must be 3 or 4"):
        Helm(binary, major=2)
    with pytest.raises(ValueError, match="watcher, legacy, hookOnly"):
        Helm(binary, wait_strategy="true")
    with pytest.raises(ValueError, match="positive"):
        Helm(binary, timeout=0)


# --------------------------------------------------------------------------- reads


def test_reads_parse_helm_json(binary: str) -> None:
    history = (
        '[{"revision": 2, "chart": "cilium-1.15.18", "status": "deployed",'
        f' "description": "Upgrade \\"cilium\\" failed: {SECRET}"}},'
        ' {"revision": 1, "chart": "cilium-1.15.1", "status": "superseded"}]'
    )
    recorder = Recorder(
        {
            "status": (0, '{"name": "cilium", "version": 2, "info": {"status": "deployed"}}', ""),
            "get metadata": (0, '{"chart": "cilium", "version": "1.15.18"}', ""),
            "get values": (0, "null\n", ""),
            "history": (0, history, ""),
            "list": (0, '[{"name": "cilium", "revision": "2", "chart": "cilium-1.15.18"}]', ""),
        }
    )
    helm = fake_driver(binary, 4, recorder, kubeconfig="/kc", redactor=Redactor([SECRET]))
    status = helm.status("cilium", "kube-system")
    assert status is not None
    assert status["chart"]["metadata"]["version"] == "1.15.18"
    assert helm.get_values("cilium", "kube-system") == {}
    entries = helm.history("cilium", "kube-system")
    assert [e["revision"] for e in entries] == [1, 2]
    assert entries[1]["description"] == f'Upgrade "cilium" failed: {REDACTED}'
    assert helm.list_releases("kube-system")[0]["chart"] == "cilium-1.15.18"
    assert all(a[-2:] == ["--kubeconfig", "/kc"] for a in recorder.argvs)
    assert recorder.argvs[2][1:] == [
        "get",
        "values",
        "cilium",
        "--namespace",
        "kube-system",
        "-o",
        "json",
        "--kubeconfig",
        "/kc",
    ]
    helm.get_values("cilium", "kube-system", revision=1, all_values=True)
    assert recorder.argvs[-1][8:11] == ["--revision", "1", "--all"]
    with pytest.raises(ValueError, match="revision must be 1 or more"):
        helm.get_values("cilium", "kube-system", revision=0)


def test_status_falls_back_to_history_without_get_metadata(binary: str) -> None:
    recorder = Recorder(
        {
            "status": (0, '{"name": "cilium", "version": 1, "info": {"status": "failed"}}', ""),
            "get metadata": (1, "", 'Error: unknown command "metadata" for "helm get"\n'),
            "history": (
                0,
                '[{"revision": 1, "chart": "cilium-1.14.2", "app_version": "1.14.2"}]',
                "",
            ),
        }
    )
    status = fake_helm(binary, 3, recorder).status("cilium", "kube-system")
    assert status is not None
    release = HelmRelease.from_helm_status(status)
    assert (release.status, release.chart_name, release.chart_version) == (
        "failed",
        "cilium",
        "1.14.2",
    )
    assert recorder.argvs[-1][-3:] == ["json", "--max", "1"]


def test_chart_versions_from_a_repo_search(binary: str) -> None:
    search = (
        '[{"name": "cilium/cilium", "version": "1.16.3"},'
        ' {"name": "cilium/cilium", "version": "1.17.0-rc.1"},'
        ' {"name": "cilium/cilium", "version": "1.15.18"},'
        ' {"name": "cilium/cilium-other", "version": "9.9.9"}]'
    )
    recorder = Recorder({"search": (0, search, "")})
    helm = fake_helm(binary, 3, recorder)
    source = ChartSource.parse("cilium/cilium", helm=helm)
    assert source.versions() == [Version.parse("1.15.18"), Version.parse("1.16.3")]
    assert source.versions(include_prereleases=True)[-1] == Version.parse("1.17.0-rc.1")
    assert recorder.argvs[-1][1:7] == [
        "search",
        "repo",
        "cilium/cilium",
        "--versions",
        "-o",
        "json",
    ]
    assert recorder.argvs[-1][7] == "--devel"
    searches = len(recorder.argvs)
    assert ChartSource.parse(str(CHARTS), helm=helm).versions() == CHART_VERSIONS
    assert len(recorder.argvs) == searches  # a local source asks helm nothing


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ((0, "[]", ""), "no chart cilium/cilium in the Helm repositories"),
        ((1, "", "Error: no repositories configured\n"), "the repository cilium is not added"),
    ],
)
def test_chart_missing_from_repos(binary: str, answer: tuple[int, str, str], error: str) -> None:
    helm = fake_helm(binary, 4, Recorder({"search": answer}))
    with pytest.raises(NotFound, match=error):
        ChartSource.parse(REPO.spec, helm=helm).versions()


# --------------------------------------------------------------------------- exit codes


def test_release_not_found_translation(tmp_path: Path) -> None:
    helm = HelmDriver(
        helm_script(tmp_path, 'echo "Error: release: not found" >&2; exit 1'), major=3
    )
    assert helm.status("cilium", "kube-system") is None
    with pytest.raises(NotFound, match="cilium not found in namespace kube-system"):
        helm.history("cilium", "kube-system")
    with pytest.raises(NotFound):
        helm.get_values("cilium", "kube-system")
    with pytest.raises(NotFound):
        helm.rollback("cilium", 1, "kube-system")
    with pytest.raises(NotFound):
        helm.uninstall("cilium", "kube-system")
    assert [c.exit_code for c in helm.calls] == [1] * 5


def test_failure_stderr_is_redacted_and_truncated(tmp_path: Path) -> None:
    body = (
        'i=0; while [ $i -lt 300 ]; do echo "warning line $i padding padding" >&2;'
        " i=$((i+1)); done\n"
        f'echo "Error: execution error: bad value {SECRET}" >&2; exit 3'
    )
    helm = Helm(helm_script(tmp_path, body), major=4, redactor=Redactor([SECRET]))
    with pytest.raises(HelmFailed) as caught:
        helm.template(
            "cilium",
            STANDINS,
            "1.15.1",
            "kube-system",
            set_values=[f"hubble.tls.server.key={SECRET}"],
        )
    error = caught.value
    assert error.exit_code == 3
    assert len(error.stderr) <= 2003
    assert error.stderr.startswith("...")
    assert error.stderr.endswith(f"Error: execution error: bad value {REDACTED}")
    assert SECRET not in str(error)
    assert f"hubble.tls.server.key={REDACTED}" in error.argv
    assert SECRET not in repr(helm.calls)


def test_helm_wait_timeout_is_both_helm_failed_and_timeout(tmp_path: Path) -> None:
    body = 'echo "Error: INSTALLATION FAILED: context deadline exceeded" >&2; exit 1'
    helm = HelmDriver(helm_script(tmp_path, body), major=4)
    with pytest.raises(HelmTimeout) as caught:
        helm.install("cilium", STANDINS, "1.15.1", "kube-system", timeout_s=1)
    assert isinstance(caught.value, Timeout)
    assert isinstance(caught.value, HelmFailed)
    assert "context deadline exceeded" in caught.value.stderr


def test_process_past_its_timeout_is_killed(tmp_path: Path) -> None:
    helm = Helm(helm_script(tmp_path, "exec sleep 10"), major=3, timeout=0.3)
    with pytest.raises(Timeout, match=r"did not finish within 0\.3s"):
        helm.get_values("cilium", "kube-system")
    assert helm.calls[0].exit_code is None
    assert helm.calls[0].seconds < 5


def test_values_mapping_reaches_helm_on_stdin(tmp_path: Path) -> None:
    helm = Helm(helm_script(tmp_path, "cat"), major=3)
    rendered = helm.template(
        "cilium", STANDINS, "1.15.1", "kube-system", values={"cluster": {"name": "a"}}
    )
    assert yaml.safe_load(rendered) == {"cluster": {"name": "a"}}
    assert helm.calls[0].argv[-2:] == ("--values", "-")


def test_environment_is_the_given_one(tmp_path: Path) -> None:
    helm = Helm(
        helm_script(tmp_path, 'echo "$HELM_DATA_HOME"'),
        major=3,
        env={"HELM_DATA_HOME": "/sandbox/helm", "PATH": "/usr/bin:/bin"},
    )
    assert helm.template("c", STANDINS, "1.15.1", "ns").strip() == "/sandbox/helm"


def test_non_json_output_is_helm_failed(tmp_path: Path) -> None:
    helm = Helm(helm_script(tmp_path, 'echo "WARNING: kubeconfig is group-readable"'), major=3)
    with pytest.raises(HelmFailed, match="output is not JSON"):
        helm.history("cilium", "kube-system")


def test_mutations_return_helms_output(tmp_path: Path) -> None:
    helm = Helm(helm_script(tmp_path, 'echo "release \\"$2\\" uninstalled"'), major=4)
    assert helm.uninstall("cilium-preflight", "kube-system").strip() == (
        'release "cilium-preflight" uninstalled'
    )
    assert helm.calls[-1].argv[1] == "uninstall"
