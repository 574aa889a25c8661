"""The cache of what ``helm version`` printed, per binary file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helm_fakes import Recorder, helm_script

from pytest_cilium_upgrade.adapters.helm.client import Helm
from pytest_cilium_upgrade.adapters.helm.versioncache import VersionCache
from pytest_cilium_upgrade.errors import HelmNotFound


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


@pytest.mark.usefixtures("scripts_cached")
def test_the_version_is_asked_once_per_binary_file(tmp_path: Path, version_cache: Path) -> None:
    counter = tmp_path / "runs"
    script = helm_script(tmp_path, f'echo run >> {counter}; echo "v3.22.0+g1a2b3c4"')

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
    broken = helm_script(tmp_path, f'echo run >> {counter}; echo "Client: v2.17.0"; exit 1', "h2")
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
    helm = Helm(helm_script(tmp_path, 'echo "v3.22.0"'))
    assert helm.version() == "v3.22.0"
    assert len(helm.calls) == 1
    assert version_cache.read_text() == "not a directory"
