"""Versions: parsing, ordering, minor hops, latest patch, image tags, Helm strings."""

from __future__ import annotations

import pytest

from pytest_cilium_upgrade.versions import (
    Hop,
    Version,
    VersionError,
    hop,
    image_version,
    latest_patch,
    parse_all,
    parse_helm_client_version,
    parse_image,
    same_image,
    split_chart,
)


def v(text: str) -> Version:
    return Version.parse(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.16.3", Version(1, 16, 3)),
        ("v1.16.3", Version(1, 16, 3)),
        ("1.16.0-rc.1", Version(1, 16, 0, ("rc", "1"))),
        ("v1.17.0-pre.2+build.5", Version(1, 17, 0, ("pre", "2"), "build.5")),
        (" 1.2.3 ", Version(1, 2, 3)),
    ],
)
def test_parse(text: str, expected: Version) -> None:
    assert Version.parse(text) == expected


@pytest.mark.parametrize("text", ["", "1.16", "latest", "1.16.x", "01.2.3", "1.2.3-", "vv1.2.3"])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(VersionError):
        Version.parse(text)
    assert Version.try_parse(text) is None


def test_try_parse_none() -> None:
    assert Version.try_parse(None) is None


def test_str_round_trip() -> None:
    for text in ["1.16.3", "1.16.0-rc.1", "1.17.0-pre.2+build.5"]:
        assert str(Version.parse(text)) == text
    assert v("1.15.1").minor_str() == "1.15"


def test_ordering_follows_semver() -> None:
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.2.0",
        "1.10.0",
    ]
    versions = [v(t) for t in ordered]
    assert sorted(reversed(versions)) == versions
    assert v("1.16.0-rc.1") < v("1.16.0")
    assert v("1.16.0") > v("1.16.0-rc.1")
    assert v("1.16.0") >= v("1.16.0")
    assert v("1.15.9") <= v("1.16.0")


def test_build_metadata_ignored_in_equality() -> None:
    assert v("1.2.3+a") == v("1.2.3+b")
    assert hash(v("1.2.3+a")) == hash(v("1.2.3"))


@pytest.mark.parametrize(
    ("current", "target", "expected"),
    [
        ("1.15.1", "1.15.1", Hop.SAME),
        ("1.15.1", "1.15.7", Hop.PATCH),
        ("1.15.7", "1.16.0", Hop.NEXT_MINOR),
        ("1.14.3", "1.16.0", Hop.SKIPS_MINORS),
        ("1.16.0", "2.0.0", Hop.MAJOR),
        ("1.15.7", "1.15.1", Hop.DOWNGRADE_PATCH),
        ("1.16.0", "1.15.7", Hop.DOWNGRADE_PREVIOUS_MINOR),
        ("1.16.0", "1.14.7", Hop.DOWNGRADE_SKIPS_MINORS),
        ("1.16.0-rc.1", "1.16.0", Hop.PATCH),
    ],
)
def test_hop(current: str, target: str, expected: Hop) -> None:
    assert hop(v(current), v(target)) is expected


def test_latest_patch() -> None:
    available = parse_all(["1.14.5", "1.14.19", "1.14.2", "1.15.0", "1.14.20-rc.1", "junk"])
    assert latest_patch(available, 1, 14) == v("1.14.19")
    assert latest_patch(available, 1, 14, include_prereleases=True) == v("1.14.20-rc.1")
    assert latest_patch(available, 1, 13) is None


def test_parse_all_drops_non_versions() -> None:
    assert parse_all(["v1.2.3", "nope", "1.2"]) == [v("1.2.3")]


@pytest.mark.parametrize(
    ("ref", "repo", "tag", "digest"),
    [
        (
            "quay.io/cilium/cilium:v1.15.1@sha256:abc",
            "quay.io/cilium/cilium",
            "v1.15.1",
            "sha256:abc",
        ),
        ("quay.io/cilium/cilium:v1.15.1", "quay.io/cilium/cilium", "v1.15.1", ""),
        ("quay.io/cilium/cilium@sha256:abc", "quay.io/cilium/cilium", "", "sha256:abc"),
        ("localhost:5000/cilium/cilium:v1.16.0", "localhost:5000/cilium/cilium", "v1.16.0", ""),
        ("localhost:5000/cilium/cilium", "localhost:5000/cilium/cilium", "", ""),
        ("cilium", "cilium", "", ""),
    ],
)
def test_parse_image(ref: str, repo: str, tag: str, digest: str) -> None:
    image = parse_image(ref)
    assert (image.repository, image.tag, image.digest) == (repo, tag, digest)
    assert str(image) == ref


def test_image_name_is_last_segment() -> None:
    assert parse_image("quay.io/cilium/operator-generic:v1.15.1").name == "operator-generic"


def test_image_version() -> None:
    assert image_version("quay.io/cilium/cilium:v1.15.1@sha256:0123") == v("1.15.1")
    assert image_version("quay.io/cilium/cilium:v1.16.0-rc.2") == v("1.16.0-rc.2")
    assert image_version("quay.io/cilium/cilium:latest") is None
    assert image_version("quay.io/cilium/cilium@sha256:0123") is None


def test_same_image() -> None:
    assert same_image("a/b:v1@sha256:x", "a/b:v2@sha256:x")
    assert not same_image("a/b:v1@sha256:x", "a/b:v1@sha256:y")
    assert same_image("a/b:v1", "a/b:v1@sha256:x")
    assert not same_image("a/b:v1", "a/c:v1")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v3.14.4+g81c902a", "3.14.4"),
        ("v4.0.0+g1234", "4.0.0"),
        ('version.BuildInfo{Version:"v3.12.0", GitCommit:"c9f554d"}', "3.12.0"),
        ("garbage", None),
    ],
)
def test_parse_helm_client_version(text: str, expected: str | None) -> None:
    got = parse_helm_client_version(text)
    assert (str(got.major) + "." + str(got.minor) + "." + str(got.patch) if got else None) == (
        expected
    )


@pytest.mark.parametrize(
    ("chart", "name", "version"),
    [
        ("cilium-1.16.3", "cilium", "1.16.3"),
        ("cilium-1.16.0-rc.1", "cilium", "1.16.0-rc.1"),
        ("my-chart-name-0.1.0", "my-chart-name", "0.1.0"),
        ("noversion", "noversion", ""),
    ],
)
def test_split_chart(chart: str, name: str, version: str) -> None:
    assert split_chart(chart) == (name, version)
