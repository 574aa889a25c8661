"""Where secrets come from, each route with its collector:

* Helm values -- the values snapshot, the live values, the upgrade's values files
  (:func:`values_secrets`) and its ``--set`` items, split into pieces as Helm splits
  them: on unescaped commas, ``\\,`` being a comma inside a value
  (:func:`set_item_secrets`);
* the kubeconfig: the password in a server URL (``https://user:PASSWORD@host``), user
  tokens and passwords, client key and certificate data, the ``auth-provider``
  configuration and the environment values of an ``exec`` plugin
  (:func:`kubeconfig_secrets`).

Which Helm values are secret is said by :mod:`.rules`; what is found is a
:class:`Secrets`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pytest_cilium_upgrade.redact.rules import (
    MIN_SECRET_LENGTH,
    NON_SECRET_VALUES,
    is_secret_value,
)

# The userinfo of a URL (``https://user:password@host``), a credential wherever it is.
URL_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.\-]*://)[^/\s@\"'<>]+@")
_INDEX = re.compile(r"\[\d*\]")


@dataclass(frozen=True)
class Secrets:
    """Secret strings: ``anywhere`` replaced wherever they appear, ``words`` (shorter
    than :data:`MIN_SECRET_LENGTH`) only where they stand as a whole word."""

    anywhere: frozenset[str] = frozenset()
    words: frozenset[str] = frozenset()

    def __or__(self, other: Secrets) -> Secrets:
        return Secrets(self.anywhere | other.anywhere, self.words | other.words)

    def __bool__(self) -> bool:
        return bool(self.anywhere or self.words)

    @classmethod
    def of(cls, texts: Iterable[str]) -> Secrets:
        """Each text a secret whatever its length (its lines too, when long)."""
        anywhere: set[str] = set()
        words: set[str] = set()
        for text in texts:
            for variant in _variants(text):
                (anywhere if len(variant) >= MIN_SECRET_LENGTH else words).add(variant)
        return cls(frozenset(anywhere), frozenset(words))


def _walk(value: Any, path: tuple[str, ...]) -> Iterable[tuple[tuple[str, ...], str]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _walk(v, (*path, str(k)))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _walk(item, path)
    elif isinstance(value, str):
        yield path, value


def _variants(secret: str) -> set[str]:
    """The secret, plus its lines (YAML or logs may re-wrap multi-line values)."""
    out = {secret, secret.strip()}
    for line in secret.splitlines():
        line = line.strip()
        if len(line) >= 16 and not line.startswith("-----"):
            out.add(line)
    return {s for s in out if s}


def _url_secrets(text: str) -> list[str]:
    """The userinfo of a URL (``user:password``) and its password."""
    match = URL_USERINFO.search(text)
    if match is None:
        return []
    userinfo = match.group(0)[len(match.group(1)) : -1]
    _, sep, password = userinfo.partition(":")
    return [userinfo, password] if sep and password else [userinfo]


def _value_secrets(path: tuple[str, ...], text: str) -> list[str]:
    found = _url_secrets(text)
    if is_secret_value(path, text):
        found.append(text)
    return found


def values_secrets(values: Mapping[str, Any] | None) -> Secrets:
    """The secret strings of Helm values (see :mod:`.rules` for which ones are)."""
    found: list[str] = []
    for path, text in _walk(values or {}, ()):
        found += _value_secrets(path, text)
    return Secrets.of(found)


def collect_secrets(values: Mapping[str, Any] | None) -> frozenset[str]:
    """The secrets of ``values`` that are replaced wherever they appear."""
    return values_secrets(values).anywhere


# --------------------------------------------------------------------------- --set items


def _split_unescaped(text: str, sep: str) -> list[str]:
    """``text`` split on ``sep`` where no backslash escapes it (escapes kept)."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if c == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(c)
        i += 1
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def set_item_pieces(item: str) -> list[tuple[str, str]]:
    """``(key, value)`` of each assignment in one ``--set`` item, as Helm reads it.

    Helm splits an item on unescaped commas (``a=1,b=2`` sets two keys; ``\\,`` is a
    comma in a value) and takes ``key={x,y}`` as a list. Values are unescaped; a piece
    with no ``=`` continues the list (or the value) of the key before it.
    """
    pieces: list[tuple[str, str]] = []
    key = ""
    for piece in _split_unescaped(item, ","):
        name, sep, raw = piece.partition("=")
        if sep:
            key = _unescape(name).strip()
        else:
            raw = piece
        pieces.append((key, _unescape(raw.strip().strip("{}"))))
    return pieces


def set_key_path(key: str) -> tuple[str, ...]:
    """``hubble.tls.key`` -> ``('hubble', 'tls', 'key')``; list indices dropped."""
    return tuple(p for p in (_INDEX.sub("", part) for part in _split_unescaped(key, ".")) if p)


def set_item_secrets(items: Iterable[str]) -> Secrets:
    """The secret values of ``--set`` items, piece by piece, as given and unescaped."""
    found: list[str] = []
    for item in items:
        for key, value in set_item_pieces(item):
            path = set_key_path(key)
            if is_secret_value(path, value):
                found.append(value)
                # as it stands on the command line, with its escapes
                escaped = value.replace("\\", "\\\\").replace(",", "\\,")
                if escaped != value:
                    found.append(escaped)
            found += _url_secrets(value)
    return Secrets.of(found)


# --------------------------------------------------------------------------- kubeconfig


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _entries(config: Mapping[str, Any], section: str, body: str) -> list[Mapping[str, Any]]:
    items = config.get(section)
    if not isinstance(items, list):
        return []
    return [_mapping(_mapping(item).get(body)) for item in items]


def url_without_userinfo(url: str) -> str:
    """``https://admin:pw@host:6443/x`` -> ``https://host:6443/x``; anything else as it is."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return URL_USERINFO.sub(r"\1", url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def kubeconfig_secrets(config: object) -> Secrets:
    """The credentials in a parsed kubeconfig (every user and cluster, not only the
    current context's): server URL passwords, tokens, passwords, client keys and
    certificates, ``auth-provider`` configuration and ``exec`` environment values."""
    data = _mapping(config)
    found: list[str] = []
    for cluster in _entries(data, "clusters", "cluster"):
        for field in ("server", "proxy-url"):
            url = cluster.get(field)
            if isinstance(url, str):
                found += _url_secrets(url)
    for user in _entries(data, "users", "user"):
        for field in ("token", "password", "client-key-data", "client-certificate-data"):
            text = user.get(field)
            if isinstance(text, str) and text.strip():
                found.append(text)
        provider = _mapping(user.get("auth-provider"))
        for key, text in _mapping(provider.get("config")).items():
            if isinstance(text, str) and is_secret_value(("config", str(key)), text):
                found.append(text)
        env = _mapping(user.get("exec")).get("env")
        for entry in env if isinstance(env, list) else []:
            text = _mapping(entry).get("value")
            if isinstance(text, str) and text.strip():
                found.append(text)
    return Secrets.of(t for t in found if t.strip().lower() not in NON_SECRET_VALUES)
