"""The chart repository URL and the chart versions a user gives, checked: the URL
(:func:`check_repo_url`), a version (:func:`parse_version`), and whether
``--reuse-values`` may carry values from one chart version to another
(:func:`check_reuse_values`); and what helm says when its local index of a repository
lacks a version (:func:`not_in_local_index`).

A :class:`ChartSourceError` says what cannot be used, and why.
"""

from __future__ import annotations

import re
import urllib.parse

from pytest_cilium_upgrade.errors import GateError
from pytest_cilium_upgrade.versions import Version, VersionError

_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)?[^/]*@")
REPO_URL_SCHEMES = ("https://", "http://")


class ChartSourceError(GateError, ValueError):
    """A chart source or chart version that cannot be used, with the reason."""


def check_repo_url(url: str) -> str:
    """A chart repository URL as Helm's ``--repo`` takes it, or :class:`ChartSourceError`.

    Credentials in it are refused: the URL is part of every helm command, and commands
    are shown in reports and dry runs.
    """
    text = url.strip()
    shown = repr(_USERINFO.sub(r"\1***@", text))  # messages never quote credentials
    if not text.startswith(REPO_URL_SCHEMES):
        raise ChartSourceError(f"chart repository URL {shown} must start with https:// or http://")
    if any(ch.isspace() for ch in text):
        raise ChartSourceError(f"chart repository URL {shown} holds white space")
    try:
        parts = urllib.parse.urlsplit(text)
        host, _ = parts.hostname, parts.port  # a port that is no number raises here
    except ValueError as exc:
        raise ChartSourceError(f"chart repository URL {shown} is not valid: {exc}") from exc
    if parts.username is not None or parts.password is not None:
        raise ChartSourceError(
            "the chart repository URL holds credentials, which every helm command and"
            " report would show: add the repository to helm yourself (`helm repo add NAME"
            " URL --username USER --password-stdin`) and give --cilium-chart NAME/cilium"
        )
    if not host:
        raise ChartSourceError(f"chart repository URL {shown} names no host")
    if parts.query or parts.fragment:
        raise ChartSourceError(
            f"chart repository URL {shown} has a query or fragment: Helm appends"
            " /index.yaml to the URL's path"
        )
    return text


# What helm prints when a repository chart's version is not in its local index of the
# repository: Helm 3.1x and 4 (``chart "cilium" matching 1.20.0 not found in cilium index.
# (try 'helm repo update')``), and older Helm 3 (``failed to download "cilium/cilium" at
# version "1.20.0"``).
_NOT_IN_INDEX = (
    re.compile(r'chart "[^"]+" matching \S+ not found in \S+ index'),
    re.compile(r'failed to download "[^"]+"'),
)


def not_in_local_index(stderr: str) -> bool:
    """Whether helm failed because its local index of a repository lacks the version
    asked for (an index older than the version, or a version never published)."""
    return any(pattern.search(stderr) for pattern in _NOT_IN_INDEX)


def parse_version(text: str) -> Version:
    """A chart version as given by a user (``1.15.1`` or ``v1.15.1``)."""
    try:
        return Version.parse(text)
    except VersionError as exc:
        raise ChartSourceError(
            f"chart version {text!r} is not a semantic version (e.g. 1.16.3)"
        ) from exc


def check_reuse_values(current: str | Version | None, target: str | Version) -> None:
    """Refuse ``--reuse-values`` unless the chart version stays the same.

    ``--reuse-values`` keeps the old chart's values and drops every new default of the
    target chart, which breaks rendering across minors (cilium/cilium#18115, #33841) and
    within one as well: the real 1.15.19 templates read ``sysctlfix``, which 1.15.0's
    values lack. The upgrade guide calls it safe only when the chart version does not
    change. Save the values with ``helm get values`` and pass them with ``-f`` instead.
    """
    target_v = target if isinstance(target, Version) else parse_version(target)
    if current is None or (isinstance(current, str) and not current.strip()):
        raise ValueError(
            "reuse_values needs the installed chart version to check that it does not "
            "change; pass current_version"
        )
    current_v = current if isinstance(current, Version) else Version.try_parse(current)
    if current_v is None:
        raise ValueError(
            f"reuse_values refused: the installed chart version {current!r} is not a "
            "semantic version, so a version change cannot be ruled out"
        )
    if current_v != target_v:
        raise ValueError(
            f"reuse_values refused for {current_v} -> {target_v}: --reuse-values keeps the "
            f"old chart's values and drops every new default of the {target_v} chart, which "
            "breaks rendering (cilium/cilium#18115, #33841). Save the values with "
            "`helm get values <release> -o yaml`, review "
            "them for removed or renamed keys, and pass them as a values file instead"
        )
