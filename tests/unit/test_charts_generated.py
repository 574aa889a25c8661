"""The checked-in stand-in charts are exactly what ``tests/charts/generate.py`` writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

CHARTS = Path(__file__).resolve().parents[1] / "charts"
GENERATOR = CHARTS / "generate.py"


def _files(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def _checked_in_charts() -> list[str]:
    return sorted(
        path.name
        for path in CHARTS.iterdir()
        if path.is_dir() and not path.name.startswith(("_", "."))
    )


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("charts")
    subprocess.run(
        [sys.executable, str(GENERATOR), "--out", str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    return out


def test_generator_writes_exactly_the_checked_in_chart_directories(generated: Path) -> None:
    assert sorted(path.name for path in generated.iterdir()) == _checked_in_charts()


@pytest.mark.parametrize("version", _checked_in_charts())
def test_checked_in_chart_equals_generated(generated: Path, version: str) -> None:
    expected = _files(generated / version)
    actual = _files(CHARTS / version)
    assert sorted(actual) == sorted(expected), (
        f"files of tests/charts/{version} differ; rerun tests/charts/generate.py"
    )
    stale = [name for name in expected if actual[name] != expected[name]]
    assert not stale, f"tests/charts/{version}: {stale} differ; rerun tests/charts/generate.py"


@pytest.mark.parametrize("version", _checked_in_charts())
def test_chart_metadata_names_the_version(version: str) -> None:
    chart = yaml.safe_load((CHARTS / version / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "cilium"
    assert chart["version"] == version
    assert chart["appVersion"] == version
    values = yaml.safe_load((CHARTS / version / "values.yaml").read_text(encoding="utf-8"))
    assert values["image"]["tag"] == f"v{version}"
    assert values["preflight"]["enabled"] is False
    schema = CHARTS / version / "values.schema.json"
    minor = tuple(int(part) for part in version.split(".")[:2])
    assert schema.exists() == (minor >= (1, 16))
    if schema.exists():
        assert json.loads(schema.read_text(encoding="utf-8"))["type"] == "object"
