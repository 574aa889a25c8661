"""The Helm adapter's pure parts: chart sources, argv for Helm 3 and 4, JSON shapes, errors."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_cilium_upgrade.adapters.helm.client import (
    ChartSource,
    ChartSourceError,
    ChartSourceKind,
    Helm,
    HelmCommand,
    HelmTimeout,
    VersionCache,
    check_reuse_values,
    load_local_chart,
    major_of,
    normalize_history_entry,
    normalize_status,
)
from pytest_cilium_upgrade.errors import GateError, HelmFailed, HelmNotFound, NotFound, Timeout
from pytest_cilium_upgrade.redact import REDACTED, Redactor
from pytest_cilium_upgrade.snapshot.model import HelmHistoryEntry, HelmRelease
from pytest_cilium_upgrade.versions import Version

CHARTS = Path(__file__).resolve().parents[1] / "charts"
CHART_VERSIONS = sorted(Version.parse(p.parent.name) for p in CHARTS.glob("*/Chart.yaml"))
SECRET = "c2VjcmV0LWtleS1tYXRlcmlhbC1mb3ItaHViYmxlLXRscw"  # noqa: S105


def _script(directory: Path, body: str, name: str = "helm") -> str:
    path = directory / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


@pytest.fixture(autouse=True)
def version_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The cache of `helm version` answers, out of the user's cache directory."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("PYTEST_CILIUM_UPGRADE_CACHE", str(cache))
    return cache / "helm-version"


@pytest.fixture
def scripts_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stand-in helms here are scripts, which the real cache never keeps."""
    monkeypatch.setattr(VersionCache, "cacheable", staticmethod(lambda real: True))


@pytest.fixture
def binary(tmp_path: Path) -> str:
    """An executable that stands in for the path of helm; the recorder answers instead."""
    return _script(tmp_path, "exit 0")


class Recorder:
    """Answers commands by their first words (``status``, ``get metadata``, ...)."""

    def __init__(self, answers: Mapping[str, tuple[int, str, str]] | None = None) -> None:
        self.answers = dict(answers or {})
        self.argvs: list[list[str]] = []
        self.stdins: list[str | None] = []

    def __call__(
        self,
        argv: Sequence[str],
        *,
        input_text: str | None,
        env: Mapping[str, str],
        timeout: float,
    ) -> subprocess.CompletedProcess[str]:
        self.argvs.append(list(argv))
        self.stdins.append(input_text)
        for words in (" ".join(argv[1:3]), argv[1]):
            if words in self.answers:
                code, out, err = self.answers[words]
                return subprocess.CompletedProcess(list(argv), code, out, err)
        return subprocess.CompletedProcess(list(argv), 0, "", "")

    def ran(self, subcommand: str) -> bool:
        return any(a[1] == subcommand for a in self.argvs)


def _helm(binary: str, major: int, recorder: Recorder | None = None, **kwargs: Any) -> Helm:
    return Helm(binary, major=major, runner=recorder or Recorder(), **kwargs)


# --------------------------------------------------------------------------- chart sources


def test_directory_of_chart_versions_is_our_stand_in_layout() -> None:
    source = ChartSource.parse(str(CHARTS))
    assert source.kind is ChartSourceKind.DIRECTORY
    assert source.is_local
    assert source.repo_name is None
    assert source.chart_name == "cilium"
    assert source.local_versions() == CHART_VERSIONS
    assert source.versions() == CHART_VERSIONS
    assert source.chart_args("1.15.1") == [str(CHARTS / "1.15.1")]
    assert source.chart_args("v1.15.18") == [str(CHARTS / "1.15.18")]
    assert source.chart_args(Version.parse("1.16.0")) == [str(CHARTS / "1.16.0")]


def test_directory_without_the_wanted_version_names_what_is_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(CHARTS.parents[1])
    source = ChartSource.parse("tests/charts")
    assert source.ref == str(CHARTS)
    with pytest.raises(ChartSourceError) as caught:
        source.chart_args("1.16.99")
    available = ", ".join(str(v) for v in CHART_VERSIONS)
    assert str(caught.value) == (
        f"chart directory tests/charts has no chart for version 1.16.99 (available: {available})"
    )


def _chart(directory: Path, version: str, name: str = "cilium") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Chart.yaml").write_text(
        yaml.safe_dump({"apiVersion": "v2", "name": name, "version": version})
    )
    return directory


def test_directory_takes_only_subdirectories_whose_chart_matches_their_name(
    tmp_path: Path,
) -> None:
    _chart(tmp_path / "1.0.0", "1.0.0")
    _chart(tmp_path / "1.1.0", "1.2.0")
    (tmp_path / "2.0.0").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "1.3.0").mkdir()
    (tmp_path / "1.3.0" / "Chart.yaml").write_text("version: [unclosed\n")
    _chart(tmp_path / "1.4.0", "not-semver")
    source = ChartSource.parse(str(tmp_path))
    assert source.local_versions() == [Version.parse("1.0.0")]
    skipped = source.skipped()
    assert "1.1.0/Chart.yaml says version 1.2.0" in skipped
    assert "2.0.0/ has no Chart.yaml" in skipped
    assert any("1.3.0" in s and "not valid YAML" in s for s in skipped)
    assert any("'not-semver', which is not a semantic version" in s for s in skipped)
    with pytest.raises(ChartSourceError, match=r"1\.1\.0/Chart\.yaml says version 1\.2\.0"):
        source.chart_args("1.1.0")


def test_directory_without_any_chart_version_is_refused(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    with pytest.raises(ChartSourceError, match=r"holds no chart versions: expected .*/<version>/"):
        ChartSource.parse(str(tmp_path))
    (tmp_path / "1.0.0").mkdir()
    with pytest.raises(ChartSourceError, match=r"\(1\.0\.0/ has no Chart\.yaml\)"):
        ChartSource.parse(str(tmp_path))


def test_a_chart_rewritten_in_place_is_read_afresh(tmp_path: Path) -> None:
    # parsed texts are kept, so a quick rewrite of the same length (the same file times,
    # to the clock's resolution) must still give its new version
    chart = _chart(tmp_path / "cilium", "1.16.1")
    assert load_local_chart(chart).version == Version.parse("1.16.1")
    before = (chart / "Chart.yaml").stat()
    _chart(chart, "1.16.2")
    assert (chart / "Chart.yaml").stat().st_size == before.st_size
    assert load_local_chart(chart).version == Version.parse("1.16.2")
    assert ChartSource.parse(str(chart)).chart_args("1.16.2") == [str(chart)]


def test_single_chart_directory() -> None:
    source = ChartSource.parse(str(CHARTS / "1.15.1"))
    assert source.kind is ChartSourceKind.CHART
    assert source.chart_name == "cilium"
    assert source.local_versions() == [Version.parse("1.15.1")]
    assert source.chart_args("1.15.1") == [str(CHARTS / "1.15.1")]
    with pytest.raises(ChartSourceError, match=r"is version 1\.15\.1, not 1\.16\.0"):
        source.chart_args("1.16.0")


def _tgz(path: Path, chart_yaml: str, top: str = "cilium") -> Path:
    with tarfile.open(path, "w:gz") as archive:
        data = chart_yaml.encode()
        info = tarfile.TarInfo(f"{top}/Chart.yaml")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return path


def test_packaged_chart(tmp_path: Path) -> None:
    tgz = _tgz(tmp_path / "cilium-1.16.3.tgz", "name: cilium\nversion: 1.16.3\n")
    source = ChartSource.parse(str(tgz))
    assert source.kind is ChartSourceKind.CHART
    assert source.local_versions() == [Version.parse("1.16.3")]
    assert source.chart_args("1.16.3") == [str(tgz)]

    bad = tmp_path / "broken.tgz"
    bad.write_text("not a tarball")
    with pytest.raises(ChartSourceError, match="is not a packaged Helm chart"):
        ChartSource.parse(str(bad))
    empty = _tgz(tmp_path / "other.tgz", "x: 1\n", top="a/b")
    with pytest.raises(ChartSourceError, match=r"no <chart>/Chart\.yaml inside"):
        ChartSource.parse(str(empty))
    no_version = _tgz(tmp_path / "nov.tgz", "name: cilium\n")
    with pytest.raises(ChartSourceError, match="has no version"):
        ChartSource.parse(str(no_version))
    text = tmp_path / "values.yaml"
    text.write_text("a: 1\n")
    with pytest.raises(ChartSourceError, match=r"is a file but not a packaged chart \(\.tgz\)"):
        ChartSource.parse(str(text))


def test_repo_reference() -> None:
    source = ChartSource.parse("cilium/cilium")
    assert source.kind is ChartSourceKind.REPO
    assert not source.is_local
    assert (source.repo_name, source.chart_name, source.repo_url) == ("cilium", "cilium", None)
    assert source.chart_args("1.16.3") == ["cilium/cilium", "--version", "1.16.3"]
    assert source.chart_args("v1.16.3") == ["cilium/cilium", "--version", "1.16.3"]
    assert str(source) == "Helm repo chart cilium/cilium"
    with_url = ChartSource.parse(" cilium/cilium ", repo_url="https://helm.cilium.io/")
    assert with_url.repo_url == "https://helm.cilium.io/"
    assert with_url == ChartSource.parse("cilium/cilium", "https://helm.cilium.io/")
    with pytest.raises(ChartSourceError, match="come from `helm search repo`"):
        source.local_versions()
    with pytest.raises(ChartSourceError, match="without a helm client"):
        source.versions()


@pytest.mark.parametrize(
    ("spec", "repo_url", "message"),
    [
        ("", None, "chart source is empty"),
        ("cilium", None, "neither a Helm repo chart reference"),
        ("./charts/cilium", None, "chart path ./charts/cilium does not exist"),
        ("/nonexistent/charts", None, "chart path /nonexistent/charts does not exist"),
        ("a/b/c", None, "chart path a/b/c does not exist"),
        ("cilium-1.16.3.tgz", None, "chart path cilium-1.16.3.tgz does not exist"),
        ("oci://quay.io/cilium/charts/cilium", None, "OCI references are not supported"),
        ("cilium/cilium", "helm.cilium.io", "must start with https:// or http://"),
    ],
)
def test_bad_chart_sources(spec: str, repo_url: str | None, message: str) -> None:
    with pytest.raises(ChartSourceError, match=message):
        ChartSource.parse(spec, repo_url)


def test_repo_url_with_a_local_path_is_refused() -> None:
    with pytest.raises(ChartSourceError, match="applies only to <repo>/<chart> references"):
        ChartSource.parse(str(CHARTS), repo_url="https://helm.cilium.io/")


def test_chart_version_must_be_semver() -> None:
    with pytest.raises(ChartSourceError, match="'latest' is not a semantic version"):
        ChartSource.parse("cilium/cilium").chart_args("latest")


def test_chart_source_errors_are_gate_errors_and_value_errors() -> None:
    assert issubclass(ChartSourceError, GateError)
    assert issubclass(ChartSourceError, ValueError)


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
    helm3 = Helm(_script(tmp_path, 'echo "v3.22.0+g1a2b3c4"', "helm3"))
    assert helm3.version() == "v3.22.0+g1a2b3c4"
    assert helm3.major() == 3
    assert helm3.calls[0].argv[1:] == ("version", "--short")
    helm3.major()
    assert len(helm3.calls) == 1


@pytest.mark.usefixtures("scripts_cached")
def test_the_version_is_asked_once_per_binary_file(tmp_path: Path, version_cache: Path) -> None:
    counter = tmp_path / "runs"
    script = _script(tmp_path, f'echo run >> {counter}; echo "v3.22.0+g1a2b3c4"')

    def runs() -> int:
        return len(counter.read_text().splitlines()) if counter.exists() else 0

    assert Helm(script).version() == "v3.22.0+g1a2b3c4"
    assert runs() == 1
    assert [p.read_text() for p in version_cache.iterdir()] == ["v3.22.0+g1a2b3c4\n"]
    again = Helm(script)  # another run, same binary file: not asked again
    assert (again.version(), again.major(), again.calls) == ("v3.22.0+g1a2b3c4", 3, [])
    assert runs() == 1
    # the binary replaced in place (a new release): asked again
    Path(script).write_text(f'#!/bin/sh\necho run >> {counter}; echo "v4.1.0+gabc"\n')
    assert Helm(script).version() == "v4.1.0+gabc"
    assert runs() == 2
    # a failing binary's answer is not kept
    broken = _script(tmp_path, f'echo run >> {counter}; echo "Client: v2.17.0"; exit 1', "h2")
    for _ in range(2):
        with pytest.raises(HelmNotFound, match=r"Helm 2\.17\.0"):
            Helm(broken).major()
    assert runs() == 4
    # an injected runner (tests, dry runs) neither reads nor writes the cache
    recorder = Recorder({"version": (0, "v3.9.9", "")})
    assert Helm(script, runner=recorder).version() == "v3.9.9"
    assert len(list(version_cache.iterdir())) == 2


def test_version_manager_dispatchers_are_asked_every_time(tmp_path: Path) -> None:
    # an ELF file named helm is helm; the same bytes behind a mise-style link
    # (helm -> mise) or an asdf-style shim script answer for whichever helm is chosen
    real = tmp_path / "bin" / "helm"
    real.parent.mkdir()
    real.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(64))
    mise = tmp_path / "mise"
    mise.write_bytes(real.read_bytes())
    shim = tmp_path / "shims" / "helm"
    shim.parent.mkdir()
    shim.write_text('#!/usr/bin/env bash\nexec asdf exec helm "$@"\n')
    link = tmp_path / "shims" / "helm-mise"
    link.symlink_to(mise)
    assert VersionCache.cacheable(str(real))
    assert not VersionCache.cacheable(os.path.realpath(link))
    assert not VersionCache.cacheable(str(shim))
    assert not VersionCache.cacheable(str(tmp_path / "missing-helm"))
    cache = VersionCache(tmp_path / "cache")
    cache.put(str(shim), "v3.22.0")
    cache.put(str(link), "v3.22.0")
    assert (cache.get(str(shim)), cache.get(str(link))) == (None, None)
    assert not (tmp_path / "cache").exists()
    cache.put(str(real), "v3.22.0")
    assert cache.get(str(real)) == "v3.22.0"


@pytest.mark.usefixtures("scripts_cached")
def test_an_unusable_version_cache_only_means_asking_helm(
    tmp_path: Path, version_cache: Path
) -> None:
    version_cache.parent.mkdir(parents=True, exist_ok=True)
    version_cache.write_text("not a directory")
    helm = Helm(_script(tmp_path, 'echo "v3.22.0"'))
    assert helm.version() == "v3.22.0"
    assert len(helm.calls) == 1
    assert version_cache.read_text() == "not a directory"


def test_helm_2_binary_is_refused(tmp_path: Path) -> None:
    # Helm 2 prints its client version, then fails to reach Tiller.
    body = 'echo "Client: v2.17.0+ga690bad"; echo "Error: could not find tiller" >&2; exit 1'
    helm2 = Helm(_script(tmp_path, body, "helm2"), kubeconfig="/kc")
    with pytest.raises(HelmNotFound, match=r"Helm 2\.17\.0"):
        helm2.major()
    assert "--kubeconfig" not in helm2.calls[0].argv


def test_unreadable_version_is_helm_not_found(tmp_path: Path) -> None:
    broken = Helm(_script(tmp_path, 'echo "segfault" >&2; exit 2', "broken"))
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
    found = _script(tmp_path, "exit 0")
    assert Helm("helm", env={"PATH": str(tmp_path)}).binary == found


def test_constructor_validates_its_options(binary: str) -> None:
    with pytest.raises(ValueError, match="must be 3 or 4"):
        Helm(binary, major=2)
    with pytest.raises(ValueError, match="watcher, legacy, hookOnly"):
        Helm(binary, wait_strategy="true")
    with pytest.raises(ValueError, match="positive"):
        Helm(binary, timeout=0)


# --------------------------------------------------------------------------- argv


STANDINS = ChartSource.parse(str(CHARTS))
REPO = ChartSource.parse("cilium/cilium")


@pytest.mark.parametrize(
    ("major", "wait", "atomic", "force"),
    [
        (3, "--wait", "--atomic", "--force"),
        (4, "--wait=watcher", "--rollback-on-failure", "--force-replace"),
    ],
)
def test_install_argv(binary: str, major: int, wait: str, atomic: str, force: str) -> None:
    helm = _helm(binary, major, kubeconfig="/kc", kube_context="ctx")
    command = helm.install_command(
        "cilium-preflight",
        STANDINS,
        "1.16.0",
        "kube-system",
        values_files=["old.yaml"],
        values={"k8sServiceHost": "10.0.0.1"},
        set_values=["preflight.enabled=true", "agent=false"],
        set_string_values=["x=1"],
        timeout_s=90,
        atomic=True,
        force=True,
        create_namespace=True,
    )
    assert command.argv == (
        binary,
        "install",
        "cilium-preflight",
        str(CHARTS / "1.16.0"),
        "--namespace",
        "kube-system",
        "--values",
        "old.yaml",
        "--values",
        "-",
        "--set",
        "preflight.enabled=true",
        "--set",
        "agent=false",
        "--set-string",
        "x=1",
        wait,
        "--timeout",
        "90s",
        atomic,
        force,
        "--create-namespace",
        "--kubeconfig",
        "/kc",
        "--kube-context",
        "ctx",
    )
    assert yaml.safe_load(command.stdin or "") == {"k8sServiceHost": "10.0.0.1"}
    assert command.timeout == 150


@pytest.mark.parametrize("major", [3, 4])
def test_without_wait_only_the_timeout_is_passed(binary: str, major: int) -> None:
    command = _helm(binary, major).install_command(
        "cilium", REPO, "1.16.3", "kube-system", wait=False, timeout_s=2.5
    )
    assert command.argv[1:] == (
        "install",
        "cilium",
        "cilium/cilium",
        "--version",
        "1.16.3",
        "--namespace",
        "kube-system",
        "--timeout",
        "3s",
    )
    assert command.stdin is None
    assert command.timeout == 120


def test_helm_4_wait_strategy_is_configurable(binary: str) -> None:
    helm = _helm(binary, 4, wait_strategy="legacy")
    assert "--wait=legacy" in helm.rollback_command("cilium", 1, "kube-system").argv
    assert (
        "--wait"
        in _helm(binary, 3, wait_strategy="legacy")
        .rollback_command("cilium", 1, "kube-system")
        .argv
    )


@pytest.mark.parametrize(
    ("major", "expected"),
    [
        (3, ("--wait", "--timeout", "60s", "--reuse-values", "--atomic", "--force", "--install")),
        (
            4,
            (
                "--wait=watcher",
                "--timeout",
                "60s",
                "--reuse-values",
                "--rollback-on-failure",
                "--force-replace",
                "--install",
            ),
        ),
    ],
)
def test_upgrade_argv(binary: str, major: int, expected: tuple[str, ...]) -> None:
    command = _helm(binary, major).upgrade_command(
        "cilium",
        REPO,
        "1.16.4",
        "kube-system",
        values_files=[Path("v.yaml")],
        timeout_s=60,
        reuse_values=True,
        current_version="1.16.3",
        atomic=True,
        force=True,
        install=True,
    )
    assert command.argv[1:] == (
        "upgrade",
        "cilium",
        "cilium/cilium",
        "--version",
        "1.16.4",
        "--namespace",
        "kube-system",
        "--values",
        "v.yaml",
        *expected,
    )


def test_upgrade_can_reset_values(binary: str) -> None:
    command = _helm(binary, 3).upgrade_command("c", REPO, "1.17.0", "ns", reset_values=True)
    assert "--reset-values" in command.argv
    assert "--reuse-values" not in command.argv
    with pytest.raises(ValueError, match="exclude each other"):
        _helm(binary, 3).upgrade_command(
            "c",
            REPO,
            "1.17.1",
            "ns",
            reset_values=True,
            reuse_values=True,
            current_version="1.17.0",
        )


@pytest.mark.parametrize(("major", "wait"), [(3, "--wait"), (4, "--wait=watcher")])
def test_rollback_and_uninstall_argv(binary: str, major: int, wait: str) -> None:
    helm = _helm(binary, major)
    assert helm.rollback_command("cilium", 3, "kube-system", timeout_s=120).argv[1:] == (
        "rollback",
        "cilium",
        "3",
        "--namespace",
        "kube-system",
        wait,
        "--timeout",
        "120s",
    )
    forced = helm.rollback_command("cilium", 0, "kube-system", wait=False, force=True)
    assert forced.argv[1:] == (
        "rollback",
        "cilium",
        "0",
        "--namespace",
        "kube-system",
        "--timeout",
        "300s",
        "--force" if major == 3 else "--force-replace",
    )
    assert helm.uninstall_command("cilium-preflight", "kube-system").argv[1:] == (
        "uninstall",
        "cilium-preflight",
        "--namespace",
        "kube-system",
        wait,
        "--timeout",
        "300s",
    )
    kept = helm.uninstall_command("x", "ns", wait=False, timeout_s=30, keep_history=True)
    assert kept.argv[1:] == (
        "uninstall",
        "x",
        "--namespace",
        "ns",
        "--timeout",
        "30s",
        "--keep-history",
    )
    with pytest.raises(ValueError, match="revision must be 0"):
        helm.rollback_command("cilium", -1, "kube-system")


@pytest.mark.parametrize(("major", "all_flag"), [(3, ("--all",)), (4, ())])
def test_list_argv(binary: str, major: int, all_flag: tuple[str, ...]) -> None:
    helm = _helm(binary, major)
    base = ("list", "--namespace", "kube-system", "-o", "json", "--max", "256")
    assert helm.list_releases_command("kube-system").argv[1:] == (*base, *all_flag)
    assert helm.list_releases_command("kube-system", all_states=False).argv[1:] == (
        *base,
        "--deployed",
        "--failed",
    )


def test_template_and_repo_add_argv(binary: str) -> None:
    helm = _helm(binary, 4)
    command = helm.template_command("cilium", REPO, "1.16.3", "kube-system", ["saved.yaml"])
    assert command.argv[1:] == (
        "template",
        "cilium",
        "cilium/cilium",
        "--version",
        "1.16.3",
        "--namespace",
        "kube-system",
        "--values",
        "saved.yaml",
    )
    assert helm.repo_add_command(REPO) is None
    assert helm.repo_add_command(STANDINS) is None
    with_url = ChartSource.parse("cilium/cilium", "https://helm.cilium.io/")
    add = helm.repo_add_command(with_url)
    assert add is not None
    assert add.argv[1:] == ("repo", "add", "cilium", "https://helm.cilium.io/", "--force-update")


def test_command_display_is_quoted_redacted_and_hides_stdin(binary: str) -> None:
    helm = _helm(binary, 3)
    command = helm.install_command(
        "cilium",
        STANDINS,
        "1.15.1",
        "kube-system",
        values={"hubble": {"tls": {"server": {"key": SECRET}}}},
        set_values=[f"etcd.password={SECRET}", "cluster.name=a b"],
    )
    redactor = Redactor([SECRET])
    shown = command.display(redactor)
    assert SECRET not in shown
    assert f"etcd.password={REDACTED}" in shown
    assert "'cluster.name=a b'" in shown
    assert shown.endswith("# values on stdin")
    assert SECRET not in repr(HelmCommand(("helm",), 1.0, stdin=SECRET))


def test_planning_runs_nothing_but_the_version_probe(tmp_path: Path) -> None:
    recorder = Recorder({"version": (0, "v4.3.1\n", "")})
    helm = Helm(_script(tmp_path, "exit 0"), runner=recorder)
    helm.upgrade_command("cilium", STANDINS, "1.16.0", "kube-system")
    helm.uninstall_command("cilium-preflight", "kube-system")
    assert [a[1] for a in recorder.argvs] == ["version"]


# --------------------------------------------------------------------------- reuse-values


def test_reuse_values_is_refused_across_minor_versions() -> None:
    check_reuse_values("1.16.3", "1.16.5")
    check_reuse_values(Version.parse("1.16.5"), Version.parse("1.16.5"))
    with pytest.raises(ValueError, match=r"1\.15\.1 -> 1\.16\.0.*#18115.*-o yaml"):
        check_reuse_values("1.15.1", "1.16.0")
    with pytest.raises(ValueError, match=r"1\.16\.0 -> 1\.15\.18"):
        check_reuse_values("1.16.0", "1.15.18")
    with pytest.raises(ValueError, match="pass current_version"):
        check_reuse_values(None, "1.16.0")
    with pytest.raises(ValueError, match="not a semantic version"):
        check_reuse_values("dev", "1.16.0")


def test_upgrade_reads_the_installed_version_and_refuses_before_running(binary: str) -> None:
    recorder = Recorder(
        {
            "status": (0, '{"name": "cilium", "version": 4, "info": {"status": "deployed"}}', ""),
            "get metadata": (0, '{"chart": "cilium", "version": "1.15.18"}', ""),
        }
    )
    helm = _helm(binary, 3, recorder)
    with pytest.raises(ValueError, match=r"1\.15\.18 -> 1\.16\.0"):
        helm.upgrade("cilium", STANDINS, "1.16.0", "kube-system", reuse_values=True)
    assert not recorder.ran("upgrade")
    with pytest.raises(ValueError, match="reuse_values"):
        helm.upgrade_command("cilium", STANDINS, "1.16.0", "kube-system", reuse_values=True)

    helm.upgrade("cilium", STANDINS, "1.15.18", "kube-system", reuse_values=True)
    assert recorder.argvs[-1][1] == "upgrade"
    assert "--reuse-values" in recorder.argvs[-1]


def test_upgrade_with_reuse_values_of_a_missing_release(binary: str) -> None:
    recorder = Recorder({"status": (1, "", "Error: release: not found\n")})
    with pytest.raises(NotFound, match="cilium not found in namespace kube-system"):
        _helm(binary, 4, recorder).upgrade(
            "cilium", STANDINS, "1.15.18", "kube-system", reuse_values=True
        )


# --------------------------------------------------------------------------- JSON shapes

# `helm status -o json` as Helm 3.22 and Helm 4.3 print it (chart stripped by both).
STATUS_V3: dict[str, Any] = {
    "name": "cilium",
    "info": {
        "first_deployed": "2026-01-01T00:00:00.1Z",
        "last_deployed": "2026-01-02T00:00:00.2Z",
        "deleted": "",
        "description": "Upgrade complete",
        "status": "deployed",
    },
    "config": {"hubble": {"tls": {"server": {"key": SECRET}}}},
    "manifest": "---\n# Source: cilium/templates/cilium-configmap.yaml\n",
    "version": 2,
    "namespace": "kube-system",
}
STATUS_V4: dict[str, Any] = {
    "name": "cilium",
    "info": {
        "first_deployed": "2026-01-01T00:00:00.1Z",
        "last_deployed": "2026-01-02T00:00:00.2Z",
        "description": "Rollback to 1",
        "status": "deployed",
        "rollback_revision": 1,
        "resources": {"v1/Secret": [{"kind": "Secret", "data": {"tls.key": SECRET}}]},
    },
    "config": {"hubble": {"tls": {"server": {"key": SECRET}}}},
    "manifest": "---\n",
    "version": 3,
    "namespace": "kube-system",
    "apply_method": "ssa",
}
METADATA: dict[str, Any] = {
    "name": "cilium",
    "chart": "cilium",
    "version": "1.16.3",
    "appVersion": "1.16.3",
    "namespace": "kube-system",
    "revision": 3,
    "status": "deployed",
    "deployedAt": "2026-01-02T00:00:00Z",
}


@pytest.mark.parametrize("raw", [STATUS_V3, STATUS_V4], ids=["helm3", "helm4"])
def test_status_of_both_helms_feeds_the_model(raw: dict[str, Any]) -> None:
    status = normalize_status(raw, METADATA)
    assert SECRET not in repr(status)
    assert set(status) == {"name", "namespace", "version", "info", "chart", "apply_method"}
    assert set(status["info"]) == {
        "first_deployed",
        "last_deployed",
        "deleted",
        "description",
        "status",
        "rollback_revision",
    }
    release = HelmRelease.from_helm_status(status)
    assert release == HelmRelease(
        name="cilium",
        namespace="kube-system",
        revision=raw["version"],
        status="deployed",
        chart_name="cilium",
        chart_version="1.16.3",
        app_version="1.16.3",
        updated="2026-01-02T00:00:00.2Z",
    )


def test_status_keeps_a_chart_helm_printed_and_helm_4_details() -> None:
    with_chart = {**STATUS_V3, "chart": {"metadata": {"name": "c", "version": "1.0.0"}}}
    assert normalize_status(with_chart, METADATA)["chart"]["metadata"]["version"] == "1.0.0"
    v4 = normalize_status(STATUS_V4, None)
    assert "chart" not in v4
    assert (v4["apply_method"], v4["info"]["rollback_revision"]) == ("ssa", 1)
    assert normalize_status({}, None)["version"] == 0


def test_history_entries_of_both_helms() -> None:
    v3 = {
        "revision": 1,
        "updated": "2026-01-01T00:00:00Z",
        "status": "superseded",
        "chart": "cilium-1.15.1",
        "app_version": "1.15.1",
        "description": "Install complete",
    }
    v4 = {
        "revision": 3,
        "status": "deployed",
        "chart": "cilium-1.15.1",
        "app_version": "1.15.1",
        "description": "Rollback to 1",
        "rollback_revision": 1,
    }
    assert normalize_history_entry(v3) == {**v3, "rollback_revision": 0}
    assert normalize_history_entry(v4) == {**v4, "updated": ""}
    entry = HelmHistoryEntry.from_helm_history_entry(normalize_history_entry(v4))
    assert (entry.revision, entry.chart_name, entry.chart_version, entry.status) == (
        3,
        "cilium",
        "1.15.1",
        "deployed",
    )


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
    helm = _helm(binary, 4, recorder, kubeconfig="/kc", redactor=Redactor([SECRET]))
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
    status = _helm(binary, 3, recorder).status("cilium", "kube-system")
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
    helm = _helm(binary, 3, recorder)
    source = ChartSource.parse("cilium/cilium", helm=helm)
    assert source.versions() == [Version.parse("1.15.18"), Version.parse("1.16.3")]
    assert helm.chart_versions(source, include_prereleases=True)[-1] == Version.parse("1.17.0-rc.1")
    assert recorder.argvs[-1][1:7] == [
        "search",
        "repo",
        "cilium/cilium",
        "--versions",
        "-o",
        "json",
    ]
    assert recorder.argvs[-1][7] == "--devel"
    assert helm.chart_versions(STANDINS) == CHART_VERSIONS


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ((0, "[]", ""), "no chart cilium/cilium in the Helm repositories"),
        ((1, "", "Error: no repositories configured\n"), "add the repo first"),
    ],
)
def test_chart_missing_from_repos(binary: str, answer: tuple[int, str, str], error: str) -> None:
    helm = _helm(binary, 4, Recorder({"search": answer}))
    with pytest.raises(NotFound, match=error):
        helm.chart_versions(REPO)


# --------------------------------------------------------------------------- exit codes


def test_release_not_found_translation(tmp_path: Path) -> None:
    helm = Helm(_script(tmp_path, 'echo "Error: release: not found" >&2; exit 1'), major=3)
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
    helm = Helm(_script(tmp_path, body), major=4, redactor=Redactor([SECRET]))
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
    helm = Helm(_script(tmp_path, body), major=4)
    with pytest.raises(HelmTimeout) as caught:
        helm.install("cilium", STANDINS, "1.15.1", "kube-system", timeout_s=1)
    assert isinstance(caught.value, Timeout)
    assert isinstance(caught.value, HelmFailed)
    assert "context deadline exceeded" in caught.value.stderr


def test_process_past_its_timeout_is_killed(tmp_path: Path) -> None:
    helm = Helm(_script(tmp_path, "exec sleep 10"), major=3, timeout=0.3)
    with pytest.raises(Timeout, match=r"did not finish within 0\.3s"):
        helm.get_values("cilium", "kube-system")
    assert helm.calls[0].exit_code is None
    assert helm.calls[0].seconds < 5


def test_values_mapping_reaches_helm_on_stdin(tmp_path: Path) -> None:
    helm = Helm(_script(tmp_path, "cat"), major=3)
    rendered = helm.template(
        "cilium", STANDINS, "1.15.1", "kube-system", values={"cluster": {"name": "a"}}
    )
    assert yaml.safe_load(rendered) == {"cluster": {"name": "a"}}
    assert helm.calls[0].argv[-2:] == ("--values", "-")


def test_environment_is_the_given_one(tmp_path: Path) -> None:
    helm = Helm(
        _script(tmp_path, 'echo "$HELM_DATA_HOME"'),
        major=3,
        env={"HELM_DATA_HOME": "/sandbox/helm", "PATH": "/usr/bin:/bin"},
    )
    assert helm.template("c", STANDINS, "1.15.1", "ns").strip() == "/sandbox/helm"


def test_non_json_output_is_helm_failed(tmp_path: Path) -> None:
    helm = Helm(_script(tmp_path, 'echo "WARNING: kubeconfig is group-readable"'), major=3)
    with pytest.raises(HelmFailed, match="output is not JSON"):
        helm.history("cilium", "kube-system")


def test_mutations_return_helms_output(tmp_path: Path) -> None:
    helm = Helm(_script(tmp_path, 'echo "release \\"$2\\" uninstalled"'), major=4)
    assert helm.uninstall("cilium-preflight", "kube-system").strip() == (
        'release "cilium-preflight" uninstalled'
    )
    assert helm.calls[-1].argv[1] == "uninstall"
