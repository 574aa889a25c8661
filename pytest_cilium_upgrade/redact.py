"""Keep secrets from Helm values out of every message the gate prints.

Helm values can carry TLS keys and certificates (Hubble, Cluster Mesh, etcd),
IPsec keys and tokens. :func:`collect_secrets` gathers the string values that look
sensitive, and :class:`Redactor` replaces them in arbitrary text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[REDACTED]"

# Words of a key name (split on camelCase and punctuation) that mark its value secret.
SENSITIVE_WORDS = frozenset(
    {
        "key",
        "keys",
        "cert",
        "certs",
        "certificate",
        "certificates",
        "crt",
        "ca",
        "pem",
        "token",
        "tokens",
        "password",
        "passwd",
        "passphrase",
        "secret",
        "secrets",
        "psk",
        "credential",
        "credentials",
        "private",
        "apikey",
        "auth",
        "bearer",
    }
)
# A sensitive key whose own last word is one of these names a thing rather than
# holding it (``secretName``, ``keyFile``, ``secretsNamespace.name``, ...).
NON_SECRET_LAST_WORDS = frozenset(
    {
        "name",
        "names",
        "namespace",
        "file",
        "path",
        "dir",
        "directory",
        "backend",
        "duration",
        "method",
        "enabled",
        "kind",
        "group",
        "mode",
        "format",
        "type",
        "size",
        "ref",
        "length",
        "bits",
        "algorithm",
        "usage",
        "usages",
        "issuer",
        "interval",
        "id",
        "generate",
    }
)
# Values too common to be a secret; replacing them would only mangle text.
NON_SECRET_VALUES = frozenset(
    {
        "true",
        "false",
        "null",
        "none",
        "auto",
        "helm",
        "cronjob",
        "certmanager",
        "disabled",
        "enabled",
    }
)
MIN_SECRET_LENGTH = 4
LONG_BLOB_LENGTH = 40

_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_BASE64_BLOB = re.compile(r"^[A-Za-z0-9+/_\-\s]+={0,2}\s*$")
_PEM_BLOCK = re.compile(r"-----BEGIN [A-Z0-9 ]+-----.*?(?:-----END [A-Z0-9 ]+-----|\Z)", re.DOTALL)


def key_words(key: str) -> list[str]:
    """``caBundle`` -> ``['ca', 'bundle']``, ``tls.key`` -> ``['tls', 'key']``."""
    return [w.lower() for w in _WORD_SPLIT.split(key) if w]


def is_sensitive_path(path: Iterable[str]) -> bool:
    """Whether a value at ``path`` (its map keys, outermost first) is to be kept secret."""
    keys = [p for p in path if p]
    if not keys:
        return False
    if not any(SENSITIVE_WORDS.intersection(key_words(k)) for k in keys):
        return False
    last_words = key_words(keys[-1])
    return not (last_words and last_words[-1] in NON_SECRET_LAST_WORDS)


def looks_like_blob(value: str) -> bool:
    """PEM text, or a long base64/hex string."""
    if "-----BEGIN " in value:
        return True
    compact = "".join(value.split())
    if len(compact) < LONG_BLOB_LENGTH:
        return False
    if not _BASE64_BLOB.match(value):
        return False
    # Plain words or paths of one character class are not blobs.
    classes = sum(
        (
            any(c.isdigit() for c in compact),
            any(c.isupper() for c in compact),
            any(c.islower() for c in compact),
        )
    )
    return classes >= 2


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
    return {s for s in out if len(s) >= MIN_SECRET_LENGTH}


def collect_secrets(values: Mapping[str, Any] | None) -> frozenset[str]:
    """Every string in ``values`` that is sensitive by its key or looks like key material."""
    found: set[str] = set()
    if not values:
        return frozenset()
    for path, text in _walk(values, ()):
        stripped = text.strip()
        if len(stripped) < MIN_SECRET_LENGTH or stripped.lower() in NON_SECRET_VALUES:
            continue
        if is_sensitive_path(path) or looks_like_blob(text):
            found.update(_variants(text))
    return frozenset(found)


class Redactor:
    """Replaces known secrets (and any PEM block) in text with ``[REDACTED]``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted(
            {s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True
        )
        self._pattern = (
            re.compile("|".join(re.escape(s) for s in self._secrets)) if self._secrets else None
        )

    @classmethod
    def from_values(cls, *values: Mapping[str, Any] | None) -> Redactor:
        secrets: set[str] = set()
        for v in values:
            secrets.update(collect_secrets(v))
        return cls(secrets)

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(self._secrets)

    def __call__(self, text: str) -> str:
        return self.redact(text)

    def redact(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub(REDACTED, text)
        return _PEM_BLOCK.sub(REDACTED, text)

    def redact_all(self, texts: Iterable[str]) -> list[str]:
        return [self.redact(t) for t in texts]


def redact(text: str, *values: Mapping[str, Any] | None) -> str:
    """Replace in ``text`` every secret found in ``values``."""
    return Redactor.from_values(*values).redact(text)
