"""What the sandbox tests take from the real chart archives: values, images, a directory."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import yaml
from cilium_sandbox.charts import (
    OPERATOR_REPLICAS,
    REAL_CHART_VERSIONS,
    ChartImages,
    chart_images,
    sandbox_values,
    set_args,
    unpack_charts,
)
from cilium_sandbox.errors import SandboxError
from cilium_sandbox.pytest_plugin import RealCharts

DIGEST = "sha256:" + "a" * 64


def _archive(path: Path, files: dict[str, str], top: str = "cilium") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _values_archive(path: Path, values: dict[str, object]) -> Path:
    chart = "apiVersion: v2\nname: cilium\nversion: 1.16.0\n"
    return _archive(path, {"Chart.yaml": chart, "values.yaml": yaml.safe_dump(values)})


@pytest.mark.parametrize("version", REAL_CHART_VERSIONS)
def test_the_defaults_do_on_two_nodes_or_more(version: str) -> None:
    assert sandbox_values(version, nodes=8) == {}
    assert sandbox_values(version, nodes=OPERATOR_REPLICAS) == {}
    assert sandbox_values(version, nodes=1) == {"operator.replicas": "1"}


def test_only_checked_versions_and_real_node_counts() -> None:
    with pytest.raises(SandboxError, match=r"no sandbox values checked for Cilium chart 1\.11\.7"):
        sandbox_values("1.11.7", nodes=8)
    with pytest.raises(SandboxError, match="at least one node"):
        sandbox_values("1.20.0", nodes=0)


def test_set_args() -> None:
    assert set_args({}) == []
    assert set_args({"operator.replicas": "1", "a.b": "c"}) == [
        "--set",
        "operator.replicas=1",
        "--set",
        "a.b=c",
    ]


def test_images_are_pinned_by_digest_as_the_templates_render_them(tmp_path: Path) -> None:
    image = {"repository": "quay.io/cilium/cilium", "tag": "v1.16.0", "digest": DIGEST}
    operator = {
        "repository": "quay.io/cilium/operator",
        "tag": "v1.16.0",
        "genericDigest": DIGEST,
        "awsDigest": "sha256:" + "b" * 64,
        "suffix": "",
        "useDigest": True,
    }
    envoy = {"repository": "quay.io/cilium/cilium-envoy", "tag": "v1.29.7-x", "digest": DIGEST}
    values: dict[str, object] = {
        "image": {**image, "useDigest": True},
        "operator": {"image": operator},
        "envoy": {"enabled": None, "image": {**envoy, "useDigest": False}},
    }
    assert chart_images(_values_archive(tmp_path / "c.tgz", values)) == ChartImages(
        agent=f"quay.io/cilium/cilium:v1.16.0@{DIGEST}",
        operator=f"quay.io/cilium/operator-generic:v1.16.0@{DIGEST}",
        envoy="quay.io/cilium/cilium-envoy:v1.29.7-x",
    )
    # envoy values with enabled: false (1.14, 1.15), or no l7 proxy: no cilium-envoy
    values["envoy"] = {"enabled": False, "image": envoy}
    assert chart_images(_values_archive(tmp_path / "d.tgz", values)).envoy is None
    values["envoy"] = {"enabled": None, "image": envoy}
    values["l7Proxy"] = False
    assert chart_images(_values_archive(tmp_path / "e.tgz", values)).envoy is None


def test_images_of_the_real_charts(cilium_charts: RealCharts) -> None:
    first, last = chart_images(cilium_charts["1.12.0"]), chart_images(cilium_charts["1.20.0"])
    assert first.agent.startswith("quay.io/cilium/cilium:v1.12.0@sha256:")
    assert first.operator.startswith("quay.io/cilium/operator-generic:v1.12.0@sha256:")
    assert first.envoy is None
    assert last.agent.startswith("quay.io/cilium/cilium:v1.20.0@sha256:")
    assert last.envoy is not None
    assert last.envoy.startswith("quay.io/cilium/cilium-envoy:v1.")


def test_an_archive_without_values_is_named(tmp_path: Path) -> None:
    bad = _archive(tmp_path / "bad.tgz", {"Chart.yaml": "name: cilium\n"})
    with pytest.raises(SandboxError, match=r"has no values\.yaml"):
        chart_images(bad)


def test_unpacked_by_version_unchanged_and_checked(
    tmp_path: Path, cilium_charts: RealCharts
) -> None:
    archive = cilium_charts["1.19.6"]
    root = unpack_charts({"1.19.6": archive}, tmp_path / "charts")
    chart = root / "1.19.6"
    assert yaml.safe_load((chart / "Chart.yaml").read_text())["version"] == "1.19.6"
    with tarfile.open(archive) as tar:
        values = tar.extractfile("cilium/values.yaml")
        assert values is not None
        assert (chart / "values.yaml").read_bytes() == values.read()
    assert [p.name for p in root.iterdir()] == ["1.19.6"]  # no scratch left behind
    # again: kept as it is
    assert unpack_charts({"1.19.6": archive}, root) == root

    wrong = _values_archive(tmp_path / "wrong.tgz", {})
    with pytest.raises(SandboxError, match=r"holds chart version 1\.16\.0, not 1\.17\.0"):
        unpack_charts({"1.17.0": wrong}, root)
    assert not (root / "1.17.0").exists()
