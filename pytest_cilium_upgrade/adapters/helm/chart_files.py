"""Charts on disk, a directory or a packaged ``.tgz``: the name and version their
``Chart.yaml`` declares (:func:`load_local_chart`) and their top-level files
(:func:`read_chart_files`)."""

from __future__ import annotations

import functools
import tarfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from pytest_cilium_upgrade import yamltext
from pytest_cilium_upgrade.adapters.helm.chart_refs import ChartSourceError
from pytest_cilium_upgrade.versions import Version, VersionError

TGZ_SUFFIXES = (".tgz", ".tar.gz")


@dataclass(frozen=True)
class LocalChart:
    """One chart on disk and the version its ``Chart.yaml`` declares."""

    path: Path
    name: str
    version: Version


def _chart_yaml_text(path: Path) -> str:
    if path.is_dir():
        chart_yaml = path / "Chart.yaml"
        if not chart_yaml.is_file():
            raise ChartSourceError(f"{path} has no Chart.yaml")
        return chart_yaml.read_text(errors="replace")
    return _chart_yaml_from_archive(path)


# A directory of versions is scanned several times a run (the chart source, the render,
# the versions on offer): each text is parsed once. Keyed on the text, never on file
# times, whose resolution lets a quick rewrite look unchanged.
@functools.lru_cache(maxsize=256)
def _parse_chart_yaml(where: str, text: str) -> Mapping[str, Any]:
    try:
        data = yamltext.load(text)
    except yaml.YAMLError as exc:
        raise ChartSourceError(f"Chart.yaml of {where} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ChartSourceError(f"Chart.yaml of {where} is not a mapping")
    return MappingProxyType(data)


def _chart_yaml_from_archive(path: Path) -> str:
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                parts = member.name.strip("/").split("/")
                if len(parts) == 2 and parts[1] == "Chart.yaml" and member.isfile():
                    handle = archive.extractfile(member)
                    if handle is not None:
                        return handle.read().decode(errors="replace")
    except (tarfile.TarError, OSError) as exc:
        raise ChartSourceError(f"{path} is not a packaged Helm chart: {exc}") from exc
    raise ChartSourceError(f"{path} is not a packaged Helm chart: no <chart>/Chart.yaml inside")


# A chart's own files are small (Cilium's values.yaml is a few hundred kB): anything
# larger is not read whole.
_CHART_FILE_MAX = 16 * 1024 * 1024


def read_chart_files(path: Path, names: Sequence[str]) -> dict[str, str | None]:
    """The top-level files ``names`` of the chart at ``path`` (directory or ``.tgz``).

    None for a file the chart does not have; :class:`ChartSourceError` when the chart
    cannot be read.
    """
    found: dict[str, str | None] = dict.fromkeys(names)
    try:
        if path.is_dir():
            for name in names:
                file = path / name
                if file.is_file():
                    found[name] = _bounded_text(file.stat().st_size, file.read_bytes, file)
            return found
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                parts = member.name.strip("/").split("/")
                if len(parts) != 2 or parts[1] not in found or not member.isfile():
                    continue
                handle = archive.extractfile(member)
                if handle is not None:
                    found[parts[1]] = _bounded_text(member.size, handle.read, path)
    except (tarfile.TarError, OSError) as exc:
        raise ChartSourceError(f"cannot read the chart {path}: {exc}") from exc
    return found


def _bounded_text(size: int, read: Callable[[], bytes], where: Path) -> str:
    if size > _CHART_FILE_MAX:
        raise ChartSourceError(f"a file of the chart {where} is over {_CHART_FILE_MAX} bytes")
    return read().decode(errors="replace")


def load_local_chart(path: Path) -> LocalChart:
    """Read name and version of the chart at ``path`` (directory or ``.tgz``)."""
    data = _parse_chart_yaml(str(path), _chart_yaml_text(path))
    raw = data.get("version")
    if raw is None:
        raise ChartSourceError(f"Chart.yaml of {path} has no version")
    try:
        version = Version.parse(str(raw))
    except VersionError as exc:
        raise ChartSourceError(
            f"Chart.yaml of {path} has version {raw!r}, which is not a semantic version"
        ) from exc
    return LocalChart(path, str(data.get("name") or ""), version)
