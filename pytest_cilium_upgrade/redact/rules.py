"""Which Helm values are secret.

A value cannot be judged by its text alone, so every string value is a secret unless
it is plainly not one:

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
"""

from __future__ import annotations

import re
from collections.abc import Iterable

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
