"""Where the real Cilium chart archives come from: the sources, their order, the error."""

from __future__ import annotations

import io
import json
import os
import socket
import sys
import tarfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from cilium_sandbox.charts import (
    CHARTS_DIR_ENV,
    CHARTS_REPO_ENV,
    REAL_CHART_VERSIONS,
    ChartPullFailed,
    ChartsMissing,
    ChartSources,
    HelmPuller,
    archive_name,
    chart_version,
    find_repo_root,
    first_release,
    latest,
    minors,
    newest_patch,
    previous_minor,
    resolve_charts,
    shared_charts_dir,
)
from cilium_sandbox.errors import SandboxError

pytest_plugins = ["pytester"]

SHARED = shared_charts_dir(Path(__file__).resolve().parents[2])


def _fake_archive(directory: Path, version: str, *, inside: str | None = None) -> Path:
    """A minimal chart archive (``cilium/Chart.yaml`` only): enough to be resolved."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / archive_name(version)
    meta = f"apiVersion: v2\nname: cilium\nversion: {inside or version}\n".encode()
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("cilium/Chart.yaml")
        info.size = len(meta)
        tar.addfile(info, io.BytesIO(meta))
    return path


class FakePull:
    """Stands in for ``helm pull``: records each call, writes the versions it 'has'.

    With ``error``, it fails after writing them (a pull that fails part-way).
    """

    def __init__(self, has: Sequence[str] = (), error: str | None = None) -> None:
        self.has = set(has)
        self.error = error
        self.calls: list[tuple[list[str], Path]] = []

    def __call__(self, versions: Sequence[str], destination: Path) -> None:
        self.calls.append((list(versions), destination))
        for version in versions:
            if version in self.has:
                _fake_archive(destination, version)
        if self.error is not None:
            raise ChartPullFailed(self.error)


# ---------------------------------------------------------------------- versions


def test_the_versions_are_the_first_and_newest_patch_of_each_minor_and_1_20_0() -> None:
    assert minors() == [f"1.{m}" for m in range(12, 21)]
    assert len(REAL_CHART_VERSIONS) == 17
    assert list(REAL_CHART_VERSIONS) == sorted(
        REAL_CHART_VERSIONS, key=lambda v: tuple(int(p) for p in v.split("."))
    )
    assert newest_patch("1.19") == "1.19.6"
    assert newest_patch("1.12") == "1.12.19"
    assert first_release("1.15") == "1.15.0"
    assert newest_patch("1.20") == first_release("1.20") == "1.20.0"
    assert previous_minor("1.20") == "1.19"
    assert latest() == "1.20.0"
    assert newest_patch("1.19", ["1.19.2", "1.19.10", "1.19.9"]) == "1.19.10"
    with pytest.raises(KeyError, match=r"1\.11"):
        newest_patch("1.11")
    with pytest.raises(KeyError, match=r"before 1\.12"):
        previous_minor("1.12")


def test_the_version_list_matches_the_shared_archives_when_present() -> None:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is not beside this checkout")
    on_disk = sorted(p.name for p in SHARED.glob("cilium-*.tgz"))
    assert on_disk == sorted(archive_name(v) for v in REAL_CHART_VERSIONS)


def test_chart_version_reads_the_archive_and_refuses_what_is_not_a_chart(tmp_path: Path) -> None:
    assert chart_version(_fake_archive(tmp_path, "1.19.6")) == "1.19.6"
    junk = tmp_path / "junk.tgz"
    junk.write_bytes(b"not gzip")
    with pytest.raises(SandboxError, match="not a readable chart archive"):
        chart_version(junk)


# ---------------------------------------------------------------------- places


def test_the_repo_root_is_the_directory_with_kind_config(tmp_path: Path) -> None:
    root = tmp_path / "clone"
    (root / "tests" / "unit").mkdir(parents=True)
    (root / "kind-config.yaml").write_text("kind: Cluster\n")
    assert find_repo_root(root / "tests" / "unit") == root
    assert find_repo_root(tmp_path) is None
    assert shared_charts_dir(root) == tmp_path / "shared" / "charts" / "cilium"


def _clone(tmp_path: Path) -> Path:
    root = tmp_path / "clone"
    root.mkdir()
    (root / "kind-config.yaml").write_text("kind: Cluster\n")
    return root


def test_the_env_dir_comes_first_then_shared_then_cache(tmp_path: Path) -> None:
    root = _clone(tmp_path)
    env_dir, shared, cache = tmp_path / "env", shared_charts_dir(root), tmp_path / "cache"
    _fake_archive(env_dir, "1.19.6")
    _fake_archive(shared, "1.19.6")
    _fake_archive(shared, "1.20.0")
    _fake_archive(cache / "charts", "1.20.0")
    _fake_archive(cache / "charts", "1.12.0")
    pull = FakePull()
    sources = ChartSources.default(
        root, cache_dir=cache, pull=pull, environ={CHARTS_DIR_ENV: str(env_dir)}
    )
    found = sources.resolve(["1.20.0", "1.12.0", "1.19.6"])
    assert found == {
        "1.12.0": cache / "charts" / "cilium-1.12.0.tgz",
        "1.19.6": env_dir / "cilium-1.19.6.tgz",
        "1.20.0": shared / "cilium-1.20.0.tgz",
    }
    assert list(found) == ["1.12.0", "1.19.6", "1.20.0"]
    assert pull.calls == []


def test_without_the_env_variable_the_shared_dir_serves(tmp_path: Path) -> None:
    root = _clone(tmp_path)
    _fake_archive(shared_charts_dir(root), "1.18.12")
    sources = ChartSources.default(root, cache_dir=tmp_path / "cache", pull=FakePull(), environ={})
    assert sources.env_dir is None
    assert sources.resolve(["1.18.12"]) == {
        "1.18.12": shared_charts_dir(root) / "cilium-1.18.12.tgz"
    }


def test_only_the_missing_versions_are_pulled_into_the_cache(tmp_path: Path) -> None:
    root = _clone(tmp_path)
    _fake_archive(shared_charts_dir(root), "1.19.6")
    cache = tmp_path / "cache"
    pull = FakePull(has=["1.20.0", "1.12.0"])
    sources = ChartSources.default(root, cache_dir=cache, pull=pull, environ={})
    found = sources.resolve(["1.12.0", "1.19.6", "1.20.0"])
    assert pull.calls == [(["1.12.0", "1.20.0"], cache / "charts")]
    assert found["1.12.0"] == cache / "charts" / "cilium-1.12.0.tgz"
    assert found["1.20.0"] == cache / "charts" / "cilium-1.20.0.tgz"
    # Once cached, nothing is pulled again.
    again = FakePull()
    ChartSources.default(root, cache_dir=cache, pull=again, environ={}).resolve(found)
    assert again.calls == []
    assert not any(root.rglob("*.tgz")), "nothing is written into the repository"


def test_the_error_lists_every_missing_version_and_every_place(tmp_path: Path) -> None:
    root = _clone(tmp_path)
    _fake_archive(shared_charts_dir(root), "1.19.6")
    cache = tmp_path / "cache"
    pull = FakePull(error="cannot connect to helm.cilium.io:443: no route")
    sources = ChartSources.default(
        root, cache_dir=cache, pull=pull, environ={CHARTS_DIR_ENV: str(tmp_path / "nowhere")}
    )
    with pytest.raises(ChartsMissing) as caught:
        sources.resolve(["1.20.0", "1.19.6", "1.12.0"])
    error = caught.value
    assert error.missing == ("1.12.0", "1.20.0")
    message = str(error)
    assert "real Cilium charts missing: 1.12.0, 1.20.0" in message
    assert f"${CHARTS_DIR_ENV}: {tmp_path / 'nowhere'} (no such directory)" in message
    assert f"{shared_charts_dir(root)} (1 found there)" in message
    assert f"the cache: {cache / 'charts'} (no such directory)" in message
    assert "helm pull from https://helm.cilium.io/" in message
    assert "cannot connect to helm.cilium.io:443: no route" in message
    assert CHARTS_DIR_ENV in message.splitlines()[-1]
    assert len(error.places) == 4


def test_the_error_says_so_when_nothing_is_set_and_nothing_can_pull(tmp_path: Path) -> None:
    sources = ChartSources(env_dir=None, shared_dir=None, cache_dir=tmp_path / "c", pull=None)
    with pytest.raises(ChartsMissing) as caught:
        sources.resolve(REAL_CHART_VERSIONS)
    message = str(caught.value)
    assert ", ".join(REAL_CHART_VERSIONS) in message
    assert f"${CHARTS_DIR_ENV}: not set" in message
    assert "../shared/charts/cilium beside the repository: not set" in message
    assert "no helm binary to pull with" in message


def test_a_pull_that_leaves_a_version_out_is_still_an_error(tmp_path: Path) -> None:
    sources = ChartSources(cache_dir=tmp_path / "c", pull=FakePull(has=["1.20.0"]))
    with pytest.raises(ChartsMissing) as caught:
        sources.resolve(["1.19.6", "1.20.0"])
    assert caught.value.missing == ("1.19.6",)
    assert any(place.endswith(": done") for place in caught.value.places)


def test_what_a_failed_pull_fetched_before_failing_is_used(tmp_path: Path) -> None:
    pull = FakePull(has=["1.12.0"], error="`helm pull` failed: timeout")
    sources = ChartSources(cache_dir=tmp_path / "c", pull=pull)
    with pytest.raises(ChartsMissing) as caught:
        sources.resolve(["1.12.0", "1.20.0"])
    assert caught.value.missing == ("1.20.0",)
    assert sources.resolve(["1.12.0"]) == {"1.12.0": tmp_path / "c" / "cilium-1.12.0.tgz"}


def test_an_archive_holding_another_version_is_refused(tmp_path: Path) -> None:
    _fake_archive(tmp_path / "env", "1.19.6", inside="1.19.5")
    sources = ChartSources(env_dir=tmp_path / "env", cache_dir=tmp_path / "c")
    with pytest.raises(SandboxError, match=r"holds chart version 1\.19\.5, not 1\.19\.6"):
        sources.resolve(["1.19.6"])


def test_resolve_charts_finds_the_repo_root_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _clone(tmp_path)
    (root / "tests").mkdir()
    _fake_archive(shared_charts_dir(root), "1.17.18")
    monkeypatch.chdir(root / "tests")
    monkeypatch.delenv(CHARTS_DIR_ENV, raising=False)
    found = resolve_charts(["1.17.18"], cache_dir=tmp_path / "cache", pull=FakePull())
    assert found == {"1.17.18": shared_charts_dir(root) / "cilium-1.17.18.tgz"}


# ---------------------------------------------------------------------- helm pull


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A loopback port that accepts connections (the kernel does) but never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


def _fake_helm(tmp_path: Path, body: str) -> Path:
    """A ``helm`` that is a Python script: logs its argv and HELM_ environment, then body."""
    log = tmp_path / "helm-calls.jsonl"
    script = tmp_path / "fake-helm"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys, time\n"
        "from pathlib import Path\n"
        f"with open({str(log)!r}, 'a') as f:\n"
        "    env = {k: v for k, v in os.environ.items() if k.startswith('HELM_')}\n"
        "    f.write(json.dumps({'argv': sys.argv[1:], 'env': env}) + '\\n')\n"
        f"{body}\n"
    )
    script.chmod(0o755)
    return script


def _calls(tmp_path: Path) -> list[tuple[list[str], dict[str, str]]]:
    """Each fake helm run: its arguments and its HELM_ environment."""
    lines = (tmp_path / "helm-calls.jsonl").read_text().splitlines()
    calls: list[tuple[list[str], dict[str, str]]] = []
    for line in lines:
        record = json.loads(line)
        calls.append(
            ([str(a) for a in record["argv"]], {str(k): str(v) for k, v in record["env"].items()})
        )
    return calls


def test_the_pull_fails_fast_when_the_repository_is_unreachable(tmp_path: Path) -> None:
    port = _free_port()  # closed again: nothing listens there
    pull = HelmPuller(
        helm=_fake_helm(tmp_path, "sys.exit(0)"),
        home=tmp_path / "home",
        repo_url=f"http://127.0.0.1:{port}/",
    )
    started = time.monotonic()
    with pytest.raises(ChartPullFailed, match=rf"cannot connect to 127\.0\.0\.1:{port}"):
        pull(["1.19.6"], tmp_path / "cache")
    assert time.monotonic() - started < 2
    assert not (tmp_path / "helm-calls.jsonl").exists(), "helm is not even started"


def test_the_probe_goes_through_the_proxy_the_environment_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = _free_port()
    for var in ("https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{port}")
    pull = HelmPuller(helm=tmp_path / "no-helm", home=tmp_path / "home")
    started = time.monotonic()
    with pytest.raises(ChartPullFailed, match=rf"cannot connect to 127\.0\.0\.1:{port}"):
        pull(["1.19.6"], tmp_path / "cache")
    assert time.monotonic() - started < 2


def test_an_unreachable_repository_fails_the_whole_resolution_fast(tmp_path: Path) -> None:
    pull = HelmPuller(
        helm=tmp_path / "no-helm",
        home=tmp_path / "home",
        repo_url=f"http://127.0.0.1:{_free_port()}/",
    )
    sources = ChartSources(cache_dir=tmp_path / "cache", pull=pull)
    started = time.monotonic()
    with pytest.raises(ChartsMissing, match=r"cannot connect to 127\.0\.0\.1"):
        sources.resolve(REAL_CHART_VERSIONS)
    assert time.monotonic() - started < 2


def test_a_repository_that_never_answers_is_given_up_after_the_helm_timeout(
    tmp_path: Path, silent_listener: int
) -> None:
    pull = HelmPuller(
        helm=_fake_helm(tmp_path, "time.sleep(30)"),
        home=tmp_path / "home",
        repo_url=f"http://127.0.0.1:{silent_listener}/",
        helm_timeout=1,
    )
    started = time.monotonic()
    with pytest.raises(ChartPullFailed, match="took more than 1s"):
        pull(["1.19.6"], tmp_path / "cache")
    assert time.monotonic() - started < 5


def test_the_pull_runs_helm_with_its_own_repositories_and_fills_the_cache(
    tmp_path: Path, silent_listener: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HELM_REPOSITORY_CONFIG", str(tmp_path / "users-own-repositories.yaml"))
    monkeypatch.setenv("HELM_DEBUG", "true")
    body = (
        "args = sys.argv[1:]\n"
        "if args[0] == 'pull':\n"
        "    version = args[args.index('--version') + 1]\n"
        "    dest = Path(args[args.index('--destination') + 1])\n"
        "    (dest / f'cilium-{version}.tgz').write_bytes(b'archive ' + version.encode())\n"
    )
    home = tmp_path / "home"
    url = f"http://127.0.0.1:{silent_listener}/"
    pull = HelmPuller(helm=_fake_helm(tmp_path, body), home=home, repo_url=url)
    cache = tmp_path / "cache"
    pull(["1.12.0", "1.20.0"], cache)
    calls = _calls(tmp_path)
    argvs = [argv for argv, _ in calls]
    assert argvs[0] == ["repo", "add", "cilium", url, "--force-update"]
    assert [argv[:4] for argv in argvs[1:]] == [
        ["pull", "cilium/cilium", "--version", "1.12.0"],
        ["pull", "cilium/cilium", "--version", "1.20.0"],
    ]
    for argv in argvs[1:]:
        assert argv[4] == "--destination"
        assert Path(argv[5]).parent == cache, "pulled into a scratch directory of the cache"
    for _, env in calls:
        assert env["HELM_REPOSITORY_CONFIG"] == str(home / "repositories.yaml")
        assert env["HELM_REPOSITORY_CACHE"] == str(home / "repository")
        assert env["HELM_CONFIG_HOME"] == str(home / "config")
        assert "HELM_DEBUG" not in env
    assert sorted(p.name for p in cache.iterdir()) == ["cilium-1.12.0.tgz", "cilium-1.20.0.tgz"]
    assert (cache / "cilium-1.20.0.tgz").read_bytes() == b"archive 1.20.0"
    assert not (tmp_path / "users-own-repositories.yaml").exists()


def test_a_failing_helm_pull_reports_helms_last_line(tmp_path: Path, silent_listener: int) -> None:
    error = "Error: looks like the repository is not a valid chart repository"
    body = f"print({error!r}, file=sys.stderr); sys.exit(1)"
    pull = HelmPuller(
        helm=_fake_helm(tmp_path, body),
        home=tmp_path / "home",
        repo_url=f"http://127.0.0.1:{silent_listener}/",
    )
    with pytest.raises(ChartPullFailed, match="`helm repo add` failed: Error: looks like"):
        pull(["1.19.6"], tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_nothing_is_pulled_for_no_versions(tmp_path: Path) -> None:
    pull = HelmPuller(
        helm=tmp_path / "no-helm", home=tmp_path / "home", repo_url="http://x.invalid"
    )
    pull([], tmp_path / "cache")
    assert not os.path.exists(tmp_path / "home")


def test_a_mirror_replaces_the_official_repository(tmp_path: Path) -> None:
    mirror = "http://127.0.0.1:9/cilium/"
    sources = ChartSources.default(
        None, cache_dir=tmp_path / "cache", environ={CHARTS_REPO_ENV: mirror}
    )
    assert sources.repo_url == mirror
    if sources.pull is not None:
        assert isinstance(sources.pull, HelmPuller)
        assert sources.pull.repo_url == mirror
        assert sources.pull.home == tmp_path / "cache" / "charts" / ".helm"


# ---------------------------------------------------------------------- the fixture


def test_the_fixture_fails_the_set_up_naming_versions_and_places(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = pytester.mkdir("no-charts")
    monkeypatch.setenv(CHARTS_DIR_ENV, str(empty))
    monkeypatch.setenv(CHARTS_REPO_ENV, f"http://127.0.0.1:{_free_port()}/")
    monkeypatch.setenv("PYTEST_CILIUM_UPGRADE_CACHE", str(pytester.path / "cache"))
    pytester.makepyfile(
        """
        def test_wants_real_charts(cilium_charts):
            assert cilium_charts
        """
    )
    started = time.monotonic()
    result = pytester.runpytest_subprocess("-p", "cilium_sandbox.pytest_plugin", "-rA")
    assert time.monotonic() - started < 30
    result.assert_outcomes(errors=1)
    output = result.stdout.str()
    assert "cannot provide the real Cilium charts" in output
    assert "real Cilium charts missing: " + ", ".join(REAL_CHART_VERSIONS) in output
    assert f"${CHARTS_DIR_ENV}: {empty} (0 found there)" in output
    assert "skipped" not in output.lower()
    assert "real Cilium charts used: 0 versions: -" in output
