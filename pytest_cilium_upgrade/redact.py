"""Keep secrets out of every message the gate prints.

Secrets reach the gate by these routes, and each has a collector here:

* Helm values -- the values snapshot, the live values, the upgrade's values files
  (:func:`values_secrets`) and its ``--set`` items, split into pieces as Helm splits
  them: on unescaped commas, ``\\,`` being a comma inside a value
  (:func:`set_item_secrets`);
* the kubeconfig: the password in a server URL (``https://user:PASSWORD@host``), user
  tokens and passwords, client key and certificate data, the ``auth-provider``
  configuration and the environment values of an ``exec`` plugin
  (:func:`kubeconfig_secrets`).

Which Helm values are secret. A value cannot be judged by its text alone, so every
string value is a secret unless it is plainly not one:

1. key material (PEM text, a long base64 string) is secret wherever it is;
2. a value under a key that names a secret (``key``, ``token``, ``password``,
   ``cert``, ... in any word of its path, see :data:`SENSITIVE_WORDS`) is secret
   whatever its length, unless the key names a thing rather than holding it
   (``secretName``, ``keyFile``, see :data:`NON_SECRET_LAST_WORDS`);
3. any other string of at least :data:`MIN_VALUE_LENGTH` (8) characters is secret,
   unless its key names or places a thing (a name, namespace, image repository or
   tag, host, port, URL, mode, ... see :data:`PUBLIC_LAST_WORDS`; the password in a
   URL's userinfo is a secret all the same) or it lies in a Kubernetes
   scheduling structure (``tolerations``, ``affinity``, ``nodeSelector``, ...,
   :data:`PUBLIC_SUBTREES`);
4. the words ``true``, ``false``, ``null``, ... (:data:`NON_SECRET_VALUES`) never are.

Strings shorter than 8 characters under other keys stay readable: replacing every
``native`` or ``vxlan`` would garble the gate's messages more than it would protect.
A secret of :data:`MIN_SECRET_LENGTH` (4) characters or more is replaced wherever it
appears; a shorter one only where it stands as a whole word, so that a one-character
password does not eat every ``1`` of the output.

Whatever the values, :class:`Redactor` also replaces what has the shape of a
credential: PEM blocks, the userinfo of a URL (``https://[REDACTED]@host``), the
token after ``Bearer``/``Basic`` and ``Authorization:``, JSON Web Tokens, and the
value of a ``"token": "..."`` or ``password=...`` pair, so that a token the gate never
saw (from an exec plugin, echoed in an API error body) is not printed either.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

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
# The last word of a key whose value names or places something: such values are
# shown in the gate's own messages (images, hosts, modes) and are not secret.
PUBLIC_LAST_WORDS = NON_SECRET_LAST_WORDS | frozenset(
    {
        "repository",
        "repo",
        "registry",
        "image",
        "tag",
        "digest",
        "policy",
        "version",
        "host",
        "hosts",
        "hostname",
        "port",
        "address",
        "addresses",
        "url",
        "urls",
        "endpoint",
        "endpoints",
        "cidr",
        "cidrs",
        "domain",
        "protocol",
        "level",
        "effect",
        "operator",
        "class",
        "label",
        "labels",
        "device",
        "devices",
        "interface",
        "interfaces",
    }
)
# Keys (compared in lower case) of Kubernetes structures that hold no secrets, whose
# strings (taint keys, label selectors, quantities) the gate's messages quote.
PUBLIC_SUBTREES = frozenset(
    {
        "tolerations",
        "affinity",
        "nodeselector",
        "topologyspreadconstraints",
        "resources",
        "securitycontext",
        "podsecuritycontext",
        "updatestrategy",
        "podmanagementpolicy",
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
MIN_SECRET_LENGTH = 4  # shorter secrets are replaced as whole words only
MIN_VALUE_LENGTH = 8  # a value under an ordinary key is secret from this length on
LONG_BLOB_LENGTH = 40

_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_BASE64_BLOB = re.compile(r"^[A-Za-z0-9+/_\-\s]+={0,2}\s*$")
_PEM_BLOCK = re.compile(r"-----BEGIN [A-Z0-9 ]+-----.*?(?:-----END [A-Z0-9 ]+-----|\Z)", re.DOTALL)
_INDEX = re.compile(r"\[\d*\]")
_WORD_CHAR = "A-Za-z0-9_"

# Shapes of credentials, replaced whether or not the secret is known.
_URL_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.\-]*://)[^/\s@\"'<>]+@")
# a credential has a digit somewhere: "basic validation" is not one
_AUTH_SCHEME = re.compile(
    r"(?i)\b(bearer|basic)(\s+)(?=[A-Za-z\-._~+/]*[0-9])[A-Za-z0-9\-._~+/]{8,}=*"
)
_AUTH_HEADER = re.compile(
    r"(?i)\b(authorization[\"']?\s*[:=]\s*[\"']?)(?!\[REDACTED\]|bearer\b|basic\b)[^\s\"',;]+"
)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*")
_SECRET_FIELD = re.compile(
    r"(?i)([\"']?\b(?:access[_-]?token|id[_-]?token|refresh[_-]?token|token|password|passwd"
    r"|client[_-]?secret|api[_-]?key)[\"']?\s*(?::\s*[\"']|=\s*))"
    r"(?!\[REDACTED\])[^\s\"'&,;}]+"
)


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


def _is_public_path(path: tuple[str, ...]) -> bool:
    """A key that names or places something, or a Kubernetes scheduling structure."""
    if any(k.lower() in PUBLIC_SUBTREES for k in path):
        return True
    keys = [p for p in path if p]
    last_words = key_words(keys[-1]) if keys else []
    return bool(last_words) and last_words[-1] in PUBLIC_LAST_WORDS


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


def is_secret_value(path: Iterable[str], text: str) -> bool:
    """Whether the string ``text`` at ``path`` is a secret (the rules of the module doc)."""
    keys = tuple(path)
    stripped = text.strip()
    if not stripped or stripped.lower() in NON_SECRET_VALUES:
        return False
    if looks_like_blob(text):
        return True
    if _is_public_path(keys):
        return False
    if is_sensitive_path(keys):
        return True
    return len(stripped) >= MIN_VALUE_LENGTH


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
    match = _URL_USERINFO.search(text)
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
    """The secret strings of Helm values (see the module doc for which ones are)."""
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
        return _URL_USERINFO.sub(r"\1", url)
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


# --------------------------------------------------------------------------- the redactor


def _credential_shapes(text: str) -> str:
    text = _PEM_BLOCK.sub(REDACTED, text)
    text = _URL_USERINFO.sub(rf"\1{REDACTED}@", text)
    text = _AUTH_SCHEME.sub(rf"\1\2{REDACTED}", text)
    text = _AUTH_HEADER.sub(rf"\1{REDACTED}", text)
    text = _JWT.sub(REDACTED, text)
    return _SECRET_FIELD.sub(rf"\1{REDACTED}", text)


class Redactor:
    """Replaces known secrets, and whatever has the shape of a credential, with
    ``[REDACTED]``.

    ``secrets`` shorter than :data:`MIN_SECRET_LENGTH` are ignored (a caller that
    knows a short string is secret passes it in ``words``, replaced as a whole word).
    """

    def __init__(self, secrets: Iterable[str] = (), words: Iterable[str] = ()) -> None:
        self._secrets = tuple(
            sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
        )
        self._words = tuple(sorted({w for w in words if w}, key=len, reverse=True))
        # one pass, so that a replacement is never matched again; the longest first
        alternatives = [re.escape(s) for s in self._secrets]
        if self._words:
            words = "|".join(re.escape(w) for w in self._words)
            alternatives.append(rf"(?<![{_WORD_CHAR}])(?:{words})(?![{_WORD_CHAR}])")
        self._pattern = re.compile("|".join(alternatives)) if alternatives else None

    @classmethod
    def of(cls, *found: Secrets) -> Redactor:
        merged = Secrets()
        for secrets in found:
            merged |= secrets
        return cls(merged.anywhere, merged.words)

    @classmethod
    def from_values(cls, *values: Mapping[str, Any] | None) -> Redactor:
        return cls.of(*(values_secrets(v) for v in values))

    @property
    def secrets(self) -> tuple[str, ...]:
        return self._secrets

    @property
    def known(self) -> Secrets:
        """What this redactor replaces, to extend it with :meth:`extended`."""
        return Secrets(frozenset(self._secrets), frozenset(self._words))

    def extended(self, *more: Secrets) -> Redactor:
        """A redactor of these secrets and ``more``."""
        return Redactor.of(self.known, *more)

    def __call__(self, text: str) -> str:
        return self.redact(text)

    def redact(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub(REDACTED, text)
        return _credential_shapes(text)

    def redact_all(self, texts: Iterable[str]) -> list[str]:
        return [self.redact(t) for t in texts]


def redact(text: str, *values: Mapping[str, Any] | None) -> str:
    """Replace in ``text`` every secret found in ``values``."""
    return Redactor.from_values(*values).redact(text)
