"""The redactor: every known secret, and whatever has the shape of a credential,
replaced with ``[REDACTED]``.

Whatever the values, :class:`Redactor` replaces what has the shape of a credential:
PEM blocks, the userinfo of a URL (``https://[REDACTED]@host``), the token after
``Bearer``/``Basic`` and ``Authorization:``, JSON Web Tokens, and the value of a
``"token": "..."`` or ``password=...`` pair, so that a token the gate never saw (from an
exec plugin, echoed in an API error body) is not printed either.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from pytest_cilium_upgrade.redact.collect import URL_USERINFO, Secrets, values_secrets
from pytest_cilium_upgrade.redact.rules import MIN_SECRET_LENGTH

REDACTED = "[REDACTED]"

_WORD_CHAR = "A-Za-z0-9_"

# Shapes of credentials, replaced whether or not the secret is known (and the userinfo
# of a URL, :data:`~.collect.URL_USERINFO`).
_PEM_BLOCK = re.compile(r"-----BEGIN [A-Z0-9 ]+-----.*?(?:-----END [A-Z0-9 ]+-----|\Z)", re.DOTALL)
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


def _credential_shapes(text: str) -> str:
    text = _PEM_BLOCK.sub(REDACTED, text)
    text = URL_USERINFO.sub(rf"\1{REDACTED}@", text)
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
