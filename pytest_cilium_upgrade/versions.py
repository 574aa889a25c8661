"""Semantic versions of Cilium charts and images, and the upgrade-path rules built on them."""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

_SEMVER = re.compile(
    r"^v?(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)


class VersionError(ValueError):
    """A string that is not a semantic version."""


@dataclass(frozen=True, order=False)
class Version:
    """A semantic version ``MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]``.

    Ordering follows semver 2.0: a pre-release sorts before its release, numeric
    identifiers compare numerically and before alphanumeric ones, build metadata
    is ignored (also by ``==``).
    """

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: str = field(default="", compare=False)

    @classmethod
    def parse(cls, text: str) -> Version:
        match = _SEMVER.match(text.strip())
        if match is None:
            raise VersionError(f"not a semantic version: {text!r}")
        pre = match.group("pre")
        return cls(
            int(match.group("major")),
            int(match.group("minor")),
            int(match.group("patch")),
            tuple(pre.split(".")) if pre else (),
            match.group("build") or "",
        )

    @classmethod
    def try_parse(cls, text: str | None) -> Version | None:
        if text is None:
            return None
        try:
            return cls.parse(text)
        except VersionError:
            return None

    @property
    def is_prerelease(self) -> bool:
        return bool(self.prerelease)

    @property
    def minor_line(self) -> tuple[int, int]:
        return (self.major, self.minor)

    def _key(self) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
        # A release (no pre-release) sorts after every pre-release of it.
        pre = tuple(
            (0, int(part), "") if part.isdigit() else (1, 0, part) for part in self.prerelease
        )
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    def __lt__(self, other: Version) -> bool:
        return self._key() < other._key()

    def __le__(self, other: Version) -> bool:
        return self._key() <= other._key()

    def __gt__(self, other: Version) -> bool:
        return self._key() > other._key()

    def __ge__(self, other: Version) -> bool:
        return self._key() >= other._key()

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + self.build
        return text

    def minor_str(self) -> str:
        return f"{self.major}.{self.minor}"


class Hop(enum.Enum):
    """How a target version relates to the current one."""

    SAME = "same version"
    PATCH = "patch upgrade"
    NEXT_MINOR = "next minor"
    SKIPS_MINORS = "skips minor versions"
    MAJOR = "major version change"
    DOWNGRADE_PATCH = "patch downgrade"
    DOWNGRADE_PREVIOUS_MINOR = "downgrade to the previous minor"
    DOWNGRADE_SKIPS_MINORS = "downgrade across several minors"


def hop(current: Version, target: Version) -> Hop:
    """Classify the move from ``current`` to ``target``."""
    if current == target:
        return Hop.SAME
    if current.major != target.major:
        return Hop.MAJOR
    gap = target.minor - current.minor
    if target > current:
        if gap == 0:
            return Hop.PATCH
        return Hop.NEXT_MINOR if gap == 1 else Hop.SKIPS_MINORS
    if gap == 0:
        return Hop.DOWNGRADE_PATCH
    return Hop.DOWNGRADE_PREVIOUS_MINOR if gap == -1 else Hop.DOWNGRADE_SKIPS_MINORS


def parse_all(texts: Iterable[str]) -> list[Version]:
    """Parse every string that is a version, silently dropping the others."""
    out: list[Version] = []
    for text in texts:
        version = Version.try_parse(text)
        if version is not None:
            out.append(version)
    return out


def latest_patch(
    available: Iterable[Version],
    major: int,
    minor: int,
    *,
    include_prereleases: bool = False,
) -> Version | None:
    """The highest version of ``major.minor`` among ``available`` (releases only by default)."""
    candidates = [
        v
        for v in available
        if v.major == major and v.minor == minor and (include_prereleases or not v.is_prerelease)
    ]
    return max(candidates) if candidates else None


# --------------------------------------------------------------------------- images


@dataclass(frozen=True)
class ImageRef:
    """An image reference split into repository, tag and digest."""

    repository: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        """Last path segment of the repository (``cilium`` for ``quay.io/cilium/cilium``)."""
        return self.repository.rsplit("/", 1)[-1]

    def __str__(self) -> str:
        text = self.repository
        if self.tag:
            text += ":" + self.tag
        if self.digest:
            text += "@" + self.digest
        return text


# Cached: a cluster's pods share a handful of images, asked about once per container.
@functools.lru_cache(maxsize=1024)
def parse_image(ref: str) -> ImageRef:
    """Split ``registry[:port]/path:tag@digest`` (tag and digest optional)."""
    ref = ref.strip()
    digest = ""
    if "@" in ref:
        ref, digest = ref.split("@", 1)
    tag = ""
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        ref, tag = ref[:colon], ref[colon + 1 :]
    return ImageRef(ref, tag, digest)


@functools.lru_cache(maxsize=1024)
def image_version(ref: str) -> Version | None:
    """The version in an image tag, e.g. ``quay.io/cilium/cilium:v1.15.1@sha256:...`` -> 1.15.1."""
    return Version.try_parse(parse_image(ref).tag)


def same_image(a: str, b: str) -> bool:
    """Whether two references name the same image.

    Equal digests decide when both have one; otherwise repository and tag must match.
    """
    ra, rb = parse_image(a), parse_image(b)
    if ra.digest and rb.digest:
        return ra.digest == rb.digest
    return (ra.repository, ra.tag) == (rb.repository, rb.tag)


# --------------------------------------------------------------------------- helm


def parse_helm_client_version(text: str) -> Version | None:
    """The version in ``helm version --short`` output (``v3.14.4+g81c902a``) or a template."""
    for token in re.split(r"[\s\"',{}]+", text):
        cleaned = token.removeprefix("Version:")
        version = Version.try_parse(cleaned)
        if version is not None:
            return version
    return None


_CHART = re.compile(r"^(?P<name>.+?)-(?P<version>v?\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]*)?)$")


def split_chart(chart: str) -> tuple[str, str]:
    """Split Helm's ``chart`` column (``cilium-1.16.3``) into name and version."""
    match = _CHART.match(chart.strip())
    if match is None:
        return chart, ""
    return match.group("name"), match.group("version")
