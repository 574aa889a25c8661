"""Chart sources: repo references, directories of versions, one chart, packaged charts."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import yaml
from helm_fakes import CHART_VERSIONS, CHARTS

from pytest_cilium_upgrade.adapters.helm.chart_files import load_local_chart
from pytest_cilium_upgrade.adapters.helm.chart_refs import ChartSourceError, check_reuse_values
from pytest_cilium_upgrade.adapters.helm.charts import ChartSource, ChartSourceKind
from pytest_cilium_upgrade.errors import GateError
from pytest_cilium_upgrade.versions import Version

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
        ("oci://quay.io/cilium/charts/cilium:1.16.3", None, "has a tag or digest"),
        ("cilium/cilium", "helm.cilium.io", "must start with https:// or http://"),
    ],
)
def test_bad_chart_sources(spec: str, repo_url: str | None, message: str) -> None:
    with pytest.raises(ChartSourceError, match=message):
        ChartSource.parse(spec, repo_url)


def test_repo_url_with_a_local_path_is_refused() -> None:
    with pytest.raises(ChartSourceError, match="not to the local chart"):
        ChartSource.parse(str(CHARTS), repo_url="https://helm.cilium.io/")


def test_chart_version_must_be_semver() -> None:
    with pytest.raises(ChartSourceError, match="'latest' is not a semantic version"):
        ChartSource.parse("cilium/cilium").chart_args("latest")


def test_chart_source_errors_are_gate_errors_and_value_errors() -> None:
    assert issubclass(ChartSourceError, GateError)
    assert issubclass(ChartSourceError, ValueError)


# --------------------------------------------------------------------------- reuse-values


def test_reuse_values_is_refused_unless_the_chart_version_stays() -> None:
    check_reuse_values(Version.parse("1.16.5"), Version.parse("1.16.5"))
    check_reuse_values("1.16.5", "1.16.5")
    with pytest.raises(ValueError, match=r"1\.16\.3 -> 1\.16\.5"):
        check_reuse_values("1.16.3", "1.16.5")
    with pytest.raises(ValueError, match=r"1\.15\.1 -> 1\.16\.0.*#18115.*-o yaml"):
        check_reuse_values("1.15.1", "1.16.0")
    with pytest.raises(ValueError, match=r"1\.16\.0 -> 1\.15\.18"):
        check_reuse_values("1.16.0", "1.15.18")
    with pytest.raises(ValueError, match="pass current_version"):
        check_reuse_values(None, "1.16.0")
    with pytest.raises(ValueError, match="not a semantic version"):
        check_reuse_values("dev", "1.16.0")
