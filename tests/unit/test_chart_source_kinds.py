"""Where the target chart comes from, as users have it: a repository added to helm
(``cilium/cilium``), a repository given by URL (``--cilium-chart-repo``), an ``oci://``
reference, a local chart; and the exact argument lists of every helm verb for each.

No helm runs here: a recording runner answers. That Helm 3 and 4 take these argument
lists is shown against the loopback chart repository in
``tests/sandbox/test_chart_sources.py``; no OCI registry is run anywhere, so the OCI
argument lists are checked here only.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from pytest_cilium_upgrade.adapters.helm.chart_refs import (
    ChartSourceError,
    check_repo_url,
    not_in_local_index,
)
from pytest_cilium_upgrade.adapters.helm.charts import ChartSource, ChartSourceKind
from pytest_cilium_upgrade.adapters.helm.client import Helm
from pytest_cilium_upgrade.adapters.helm.commands import PRIVATE_REPO
from pytest_cilium_upgrade.errors import HelmFailed, NotFound
from pytest_cilium_upgrade.gate.inputs import input_problems
from pytest_cilium_upgrade.gate.settings import Settings
from pytest_cilium_upgrade.option_parsers import ParseContext, parse_chart_repo
from pytest_cilium_upgrade.options import OPTIONS_BY_ATTR
from pytest_cilium_upgrade.versions import Version

URL = "https://charts.example.test/cilium"
OCI = "oci://registry.example.test/charts/cilium"
USER_REPOS = "/home/user/.config/helm/repositories.yaml"
USER_CACHE = "/home/user/.cache/helm/repository"


# --------------------------------------------------------------------------- fakes


class Runner:
    """Records argv and environment of each helm command and answers by subcommand.

    ``answers`` maps the first words (``"repo add"``, ``"search"``) to an exit status,
    stdout and stderr; ``helm pull`` writes ``archive`` (when given) to its destination.
    """

    def __init__(
        self,
        answers: Mapping[str, tuple[int, str, str]] | None = None,
        archive: bytes | None = None,
    ) -> None:
        self.answers = dict(answers or {})
        self.archive = archive
        self.argvs: list[list[str]] = []
        self.envs: list[dict[str, str]] = []
        self.seen_files: list[bool] = []  # whether the private repositories dir existed

    def __call__(
        self,
        argv: Sequence[str],
        *,
        input_text: str | None,
        env: Mapping[str, str],
        timeout: float,
    ) -> subprocess.CompletedProcess[str]:
        self.argvs.append(list(argv))
        self.envs.append(dict(env))
        config = env.get("HELM_REPOSITORY_CONFIG", "")
        self.seen_files.append(bool(config) and Path(config).parent.is_dir())
        if argv[1] == "pull" and self.archive is not None:
            destination = Path(argv[argv.index("--destination") + 1])
            (destination / "cilium-1.20.0.tgz").write_bytes(self.archive)
        for words in (" ".join(argv[1:3]), argv[1]):
            if words in self.answers:
                code, out, err = self.answers[words]
                return subprocess.CompletedProcess(list(argv), code, out, err)
        return subprocess.CompletedProcess(list(argv), 0, "", "")

    def args(self, subcommand: str) -> list[list[str]]:
        return [a[1:] for a in self.argvs if a[1] == subcommand]


def chart_archive(files: Mapping[str, str]) -> bytes:
    """A packaged chart ``cilium/`` holding ``files``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"cilium/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def binary(tmp_path: Path) -> str:
    path = tmp_path / "bin" / "helm"
    path.parent.mkdir()
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return str(path)


@pytest.fixture(params=[3, 4], ids=["helm3", "helm4"])
def major(request: pytest.FixtureRequest) -> int:
    return int(request.param)


def client(binary: str, major: int, runner: Runner) -> Helm:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HELM_REPOSITORY_CONFIG": USER_REPOS,
        "HELM_REPOSITORY_CACHE": USER_CACHE,
    }
    return Helm(binary, major=major, runner=runner, env=env, kubeconfig="/kube/config")


def search_json(*entries: tuple[str, str]) -> str:
    return json.dumps([{"name": name, "version": version} for name, version in entries])


# --------------------------------------------------------------------------- parsing


def test_a_chart_of_a_repository_given_by_url() -> None:
    source = ChartSource.parse("cilium/cilium", URL)
    assert source.kind is ChartSourceKind.REPO_URL
    assert (source.ref, source.repo_url, source.chart_name) == ("cilium", URL, "cilium")
    assert source.repo_name is None, "never added: no local index to refresh"
    assert not source.is_local
    assert str(source) == f"chart cilium of the repository {URL}"
    assert ChartSource.parse(" cilium ", f" {URL} ") == ChartSource.parse("cilium", URL)
    assert ChartSource.parse("mirror/cilium", URL).ref == "cilium"
    assert source.local_charts() == []
    with pytest.raises(ChartSourceError, match="come from `helm search repo`"):
        source.local_versions()
    with pytest.raises(ChartSourceError, match="without a helm client"):
        source.versions()


def test_an_oci_reference() -> None:
    source = ChartSource.parse(OCI)
    assert source.kind is ChartSourceKind.OCI
    assert (source.ref, source.chart_name, source.repo_name) == (OCI, "cilium", None)
    assert not source.is_local
    assert str(source) == f"OCI chart {OCI}"
    assert ChartSource.parse(OCI + "/").ref == OCI
    assert ChartSource.parse("oci://localhost:5000/cilium").chart_name == "cilium"
    # Helm cannot list an OCI repository's tags: none are listed, none is asked for
    assert source.versions() == []
    with pytest.raises(ChartSourceError, match="helm lists no versions"):
        source.local_versions()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (OCI + ":1.20.0", "has a tag or digest"),
        (OCI + "@sha256:" + "a" * 64, "has a tag or digest"),
        ("oci://", "not an OCI chart reference"),
        ("oci://registry.example.test", "not an OCI chart reference"),
        ("oci://registry.example.test//cilium", "not an OCI chart reference"),
        ("oci://registry.example.test/charts/ci lium", "not an OCI chart reference"),
    ],
)
def test_bad_oci_references(spec: str, message: str) -> None:
    with pytest.raises(ChartSourceError, match=message):
        ChartSource.parse(spec)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("charts.example.test", "must start with https:// or http://"),
        ("ftp://charts.example.test", "must start with https:// or http://"),
        ("oci://registry.example.test/charts", "must start with https:// or http://"),
        ("https://", "names no host"),
        ("https://charts.example.test:port/", "is not valid"),
        ("https://charts.example.test/a b", "white space"),
        ("https://charts.example.test/?x=1", "query or fragment"),
        ("https://user:s3cret@charts.example.test/", "holds credentials"),
        ("https://token@charts.example.test/", "holds credentials"),
    ],
)
def test_bad_repository_urls(url: str, message: str) -> None:
    with pytest.raises(ChartSourceError, match=message) as info:
        ChartSource.parse("cilium/cilium", url)
    assert "s3cret" not in str(info.value)


def test_a_repository_url_takes_a_chart_name_not_a_path_or_oci(tmp_path: Path) -> None:
    chart = tmp_path / "cilium-1.20.0.tgz"
    chart.write_bytes(chart_archive({"Chart.yaml": "name: cilium\nversion: 1.20.0\n"}))
    for spec, what in ((str(chart), "the local chart"), (OCI, "the OCI chart")):
        with pytest.raises(ChartSourceError, match=f"not to {what}"):
            ChartSource.parse(spec, URL)
    with pytest.raises(ChartSourceError, match="no chart name"):
        ChartSource.parse("a/b/c", URL)
    assert check_repo_url(f" {URL} ") == URL


# --------------------------------------------------------------------------- argv


CHART_ARGS = {
    "repo": (ChartSource.parse("cilium/cilium"), ["cilium/cilium", "--version", "1.20.0"]),
    "repo-url": (
        ChartSource.parse("cilium/cilium", URL),
        ["cilium", "--repo", URL, "--version", "1.20.0"],
    ),
    "oci": (ChartSource.parse(OCI), [OCI, "--version", "1.20.0"]),
}


@pytest.mark.parametrize("kind", list(CHART_ARGS))
def test_every_verb_names_the_chart_the_same_way(kind: str, binary: str, major: int) -> None:
    source, chart = CHART_ARGS[kind]
    assert source.chart_args("v1.20.0") == chart
    runner = Runner()
    helm = client(binary, major, runner)
    cluster = ["--kubeconfig", "/kube/config"]
    wait = ["--wait"] if major == 3 else ["--wait=watcher"]

    template = helm.template_command("cilium", source, "1.20.0", "kube-system", ["saved.yaml"])
    assert list(template.argv[1:]) == [
        "template",
        "cilium",
        *chart,
        "--namespace",
        "kube-system",
        "--values",
        "saved.yaml",
        *cluster,
    ]
    install = helm.install_command(
        "cilium-preflight", source, "1.20.0", "kube-system", set_values=["preflight.enabled=true"]
    )
    assert list(install.argv[1:]) == [
        "install",
        "cilium-preflight",
        *chart,
        "--namespace",
        "kube-system",
        "--set",
        "preflight.enabled=true",
        *wait,
        "--timeout",
        "300s",
        *cluster,
    ]
    upgrade = helm.upgrade_command(
        "cilium", source, "1.20.0", "kube-system", values_files=["saved.yaml"], wait=False
    )
    assert list(upgrade.argv[1:]) == [
        "upgrade",
        "cilium",
        *chart,
        "--namespace",
        "kube-system",
        "--values",
        "saved.yaml",
        "--timeout",
        "300s",
        *cluster,
    ]
    # what a dry run prints is the command itself: a user can run it as shown
    assert chart[0] in upgrade.display()
    assert ("--repo" in upgrade.display()) == (kind == "repo-url")


@pytest.mark.parametrize("kind", list(CHART_ARGS))
def test_the_target_charts_files_are_pulled_from_the_same_source(
    kind: str, binary: str, major: int
) -> None:
    source, chart = CHART_ARGS[kind]
    archive = chart_archive(
        {"Chart.yaml": "name: cilium\nversion: 1.20.0\n", "values.yaml": "a: 1\n"}
    )
    runner = Runner(archive=archive)
    helm = client(binary, major, runner)
    bound = ChartSource.parse(source.spec, source.repo_url, helm=helm)
    files = bound.chart_files("1.20.0", ("values.yaml", "values.schema.json"))
    assert files == {"values.yaml": "a: 1\n", "values.schema.json": None}
    (pull,) = runner.args("pull")
    destination = pull[pull.index("--destination") + 1]
    assert pull == ["pull", *chart, "--destination", destination]
    assert not Path(destination).exists(), "pulled into a temporary directory, removed"
    assert runner.envs[0]["HELM_REPOSITORY_CONFIG"] == USER_REPOS


def test_helm_pull_names_the_repository_url(binary: str, major: int, tmp_path: Path) -> None:
    runner = Runner(archive=chart_archive({"Chart.yaml": "name: cilium\nversion: 1.20.0\n"}))
    helm = client(binary, major, runner)
    written = helm.pull("cilium", Version.parse("1.20.0"), tmp_path, repo_url=URL)
    assert written == tmp_path / "cilium-1.20.0.tgz"
    assert runner.args("pull") == [
        ["pull", "cilium", "--repo", URL, "--version", "1.20.0", "--destination", str(tmp_path)]
    ]


# --------------------------------------------------------------------------- versions


def test_a_repository_urls_versions_come_from_a_private_repositories_file(
    binary: str, major: int
) -> None:
    listed = search_json(
        (f"{PRIVATE_REPO}/cilium", "1.20.0"),
        (f"{PRIVATE_REPO}/cilium", "1.19.6"),
        (f"{PRIVATE_REPO}/cilium", "1.21.0-pre.1"),
        (f"{PRIVATE_REPO}/cilium-cli", "9.9.9"),  # another chart the search matches
    )
    runner = Runner({"search": (0, listed, "")})
    helm = client(binary, major, runner)
    source = ChartSource.parse("cilium/cilium", URL, helm=helm)

    assert source.versions() == [Version.parse("1.19.6"), Version.parse("1.20.0")]
    add, search = runner.argvs
    assert add[1:] == ["repo", "add", PRIVATE_REPO, URL]
    assert search[1:] == ["search", "repo", f"{PRIVATE_REPO}/cilium", "--versions", "-o", "json"]
    private = runner.envs[0]["HELM_REPOSITORY_CONFIG"]
    assert private != USER_REPOS
    assert runner.envs[1]["HELM_REPOSITORY_CONFIG"] == private
    assert runner.envs[0]["HELM_REPOSITORY_CACHE"] != USER_CACHE
    assert Path(runner.envs[1]["HELM_REPOSITORY_CACHE"]).parent == Path(private).parent
    assert runner.seen_files == [True, True], "the private directory exists while helm runs"
    assert not Path(private).parent.exists(), "and is removed after: every run adds afresh"
    assert all("--kubeconfig" not in argv for argv in runner.argvs), "no cluster is read"

    # the commands that follow use the client's own environment again
    helm.template("cilium", source, "1.20.0", "kube-system")
    assert runner.envs[-1]["HELM_REPOSITORY_CONFIG"] == USER_REPOS

    runner.argvs.clear()
    versions = source.versions(include_prereleases=True)
    assert versions[-1] == Version.parse("1.21.0-pre.1")
    assert runner.argvs[1][-1] == "--devel"


def test_a_repository_url_that_offers_no_such_chart(binary: str, major: int) -> None:
    runner = Runner({"search": (0, "[]", "")})
    source = ChartSource.parse("cilium", URL, helm=client(binary, major, runner))
    with pytest.raises(NotFound, match=f"the chart repository {URL} offers no chart cilium"):
        source.versions()


def test_a_repository_url_that_cannot_be_reached(binary: str, major: int) -> None:
    unreachable = (
        f'Error: looks like "{URL}" is not a valid chart repository or cannot be reached:'
        f' Get "{URL}/index.yaml": dial tcp: connection refused\n'
    )
    runner = Runner({"repo add": (1, "", unreachable)})
    source = ChartSource.parse("cilium", URL, helm=client(binary, major, runner))
    with pytest.raises(HelmFailed, match="is not a valid chart repository or cannot be reached"):
        source.versions()
    assert len(runner.argvs) == 1, "no search after a failed add"


def test_a_repository_added_to_helm_is_searched_in_the_users_repositories(
    binary: str, major: int
) -> None:
    runner = Runner({"search": (0, search_json(("cilium/cilium", "1.20.0")), "")})
    source = ChartSource.parse("cilium/cilium", helm=client(binary, major, runner))
    assert source.versions() == [Version.parse("1.20.0")]
    assert [a[1:3] for a in runner.argvs] == [["search", "repo"]], "nothing is added"
    assert runner.envs[0]["HELM_REPOSITORY_CONFIG"] == USER_REPOS


def test_an_oci_chart_runs_no_search(binary: str, major: int) -> None:
    runner = Runner()
    source = ChartSource.parse(OCI, helm=client(binary, major, runner))
    assert source.versions() == []
    assert runner.argvs == []


# --------------------------------------------------------------------------- the option


def parse_url(raw: object) -> str:
    return parse_chart_repo(raw, ParseContext(Path("/"), {}))


def test_the_option_takes_a_url_without_credentials() -> None:
    assert parse_url(f" {URL} ") == URL
    assert OPTIONS_BY_ATTR["chart_repo"].flag == "--cilium-chart-repo"
    assert OPTIONS_BY_ATTR["chart_repo"].env == "CILIUM_UPGRADE_CHART_REPO"
    for bad, message in (
        ("charts.example.test", "not a chart repository URL"),
        ("", "must not be empty"),
        ("https://me:s3cret@charts.example.test/", "holds credentials"),
    ):
        with pytest.raises(ValueError, match=message) as info:
            parse_url(bad)
        assert "s3cret" not in str(info.value)


def settings(**values: object) -> Settings:
    return Settings(**values, sources={})  # type: ignore[arg-type]


@pytest.mark.parametrize("chart", ["/charts/cilium-1.20.0.tgz", OCI])
def test_a_repository_url_contradicts_a_local_or_oci_chart(chart: str) -> None:
    problems = settings(chart=chart, chart_repo=URL).contradictions()
    assert any(p.startswith("--cilium-chart-repo (from default)") for p in problems), problems
    assert any(
        f"--cilium-chart (from default) {chart} is no chart of a repository" in p for p in problems
    )
    assert not settings(chart="cilium/cilium", chart_repo=URL).contradictions()


def test_the_gate_checks_the_chart_with_its_repository_at_the_start() -> None:
    ok = settings(chart="cilium/cilium", chart_repo=URL, phase="pre")
    assert input_problems(ok) == []
    bad = settings(chart="a/b/c", chart_repo=URL, phase="pre")
    (problem,) = input_problems(bad)
    assert problem.startswith("--cilium-chart (from default) with --cilium-chart-repo")
    assert "no chart name" in problem


def test_the_session_builds_one_source_for_render_pull_and_upgrade(binary: str) -> None:
    from pytest_cilium_upgrade.gate.session import GateSession

    session = GateSession(settings(chart="cilium/cilium", chart_repo=URL, helm=binary))
    session._adapters()
    chart = session._chart
    assert isinstance(chart, ChartSource)
    assert (chart.kind, chart.repo_url) == (ChartSourceKind.REPO_URL, URL)
    assert chart.helm is session._helm
    assert session.flow.chart is chart


# --------------------------------------------------------------------------- CI


RECORDING_PYTHON = """#!/bin/sh
if [ "$1" = "-c" ]; then exec {python} "$@"; fi
exec {python} -c 'import json, os, sys
json.dump(sys.argv[1:], open(os.environ["RECORD"], "w"))' "$@"
"""


@pytest.mark.parametrize("repo", ["", URL])
def test_the_ci_script_passes_the_chart_repository(tmp_path: Path, repo: str) -> None:
    python = tmp_path / "python"
    python.write_text(RECORDING_PYTHON.format(python=sys.executable))
    python.chmod(0o755)
    record = tmp_path / "argv.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATE_", "GITHUB_"))}
    env.update(
        RECORD=str(record),
        GATE_PYTHON=str(python),
        GATE_HOME=str(tmp_path / "home"),
        GATE_WORKSPACE=str(tmp_path),
        GATE_MODE="pre",
        GATE_CHART_REPO=repo,
    )
    script = Path(__file__).resolve().parents[2] / "ci" / "scripts" / "run-gate.sh"
    proc = subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    argv = json.loads(record.read_text())
    chart = argv.index("--cilium-chart=cilium/cilium")
    if repo:
        assert argv[chart + 1] == f"--cilium-chart-repo={URL}"
    else:
        assert not any(a.startswith("--cilium-chart-repo") for a in argv)


@pytest.mark.parametrize(
    "url",
    [
        "https://me:s3cret@charts.example.test/a b",
        "https://me:s3cret@charts.example.test:port/",
        "ftp://me:s3cret@charts.example.test/",
        "me:s3cret@charts.example.test",
    ],
)
def test_no_message_quotes_the_credentials_of_a_url(url: str) -> None:
    with pytest.raises(ChartSourceError) as info:
        ChartSource.parse("cilium", url)
    assert "s3cret" not in str(info.value)
    with pytest.raises(ValueError, match=r"credentials|not a chart repository URL") as parsed:
        parse_url(url)
    assert "s3cret" not in str(parsed.value)


# --------------------------------------------------------------------------- stale index

HELM_NOW = (
    'Error: chart "cilium" matching 1.20.0 not found in cilium index. (try \'helm repo'
    " update'): no chart version found for cilium-1.20.0\n"
)
HELM_BEFORE = 'Error: failed to download "cilium/cilium" at version "1.20.0"\n'


def test_a_version_missing_from_helms_local_index_is_named_with_the_update_to_run() -> None:
    from pytest_cilium_upgrade.snapshot.read_helm import _index_hint

    assert not_in_local_index(HELM_NOW)
    assert not_in_local_index(HELM_BEFORE)
    assert not not_in_local_index("Error: chart requires kubeVersion: >= 1.21.0-0")
    hint = _index_hint(ChartSource.parse("cilium/cilium"), "1.20.0", HELM_NOW)
    assert "helm's local index of repository cilium does not list cilium/cilium" in hint
    assert "`helm repo update cilium`" in hint
    assert _index_hint(ChartSource.parse("mirror/cilium"), "1.20.0", HELM_BEFORE).endswith(
        "update it with `helm repo update mirror`\n"
    )
    # a repository given by URL is fetched anew by every command: never a stale index
    assert _index_hint(ChartSource.parse("cilium/cilium", URL), "1.20.0", HELM_NOW) == ""
    assert _index_hint(ChartSource.parse(OCI), "1.20.0", HELM_NOW) == ""
