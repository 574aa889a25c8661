"""The gate's error hierarchy: adapters translate every failure into one of these, once.

Messages are short and say what failed and where; raw API bodies are truncated and
secrets are redacted before an error is raised.
"""

from __future__ import annotations

from datetime import datetime


class GateError(Exception):
    """Base of every error the gate reports as a verdict rather than a traceback."""


class ApiUnreachable(GateError):
    """The Kubernetes API could not be reached (connection refused, DNS, TLS, timeout)."""


class Forbidden(GateError):
    """Our identity may not do ``verb`` on ``resource``."""

    def __init__(self, verb: str, resource: str, namespace: str | None, message: str) -> None:
        where = f" in namespace {namespace}" if namespace else ""
        super().__init__(f"forbidden: cannot {verb} {resource}{where}: {message}")
        self.verb = verb
        self.resource = resource
        self.namespace = namespace


class NotFound(GateError):
    """A named object (or Helm release) does not exist."""


class Timeout(GateError):
    """A wait ran past its deadline."""


class NoAnswer(Timeout):
    """The API server was reached and asked, but did not answer within the request timeout."""


class ApiError(GateError):
    """Any other API failure, with the API's own Status message kept."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"API error {status} {reason}: {message}")
        self.status = status
        self.reason = reason


class NotAnApi(ApiError):
    """An answer no Kubernetes API server gives (an HTML page, plain text, a JSON array):
    the address is a proxy's, a load balancer's or another program's. ``status`` is the
    HTTP status it came with, 200 included."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        GateError.__init__(self, message)
        self.status = status
        self.reason = reason


class HelmFailed(GateError):
    """``helm`` exited non-zero; ``stderr`` is already redacted and truncated."""

    def __init__(self, argv: list[str], exit_code: int, stderr: str) -> None:
        super().__init__(f"`{' '.join(argv)}` exited {exit_code}: {stderr}")
        self.argv = argv
        self.exit_code = exit_code
        self.stderr = stderr


class HelmNotFound(GateError):
    """No usable ``helm`` client (missing, or not Helm 3 or 4)."""


class LockHeld(GateError):
    """Another run holds the upgrade lock."""

    def __init__(self, namespace: str, name: str, holder: str, expires: datetime) -> None:
        super().__init__(
            f"another gated upgrade holds Lease {namespace}/{name}: holder {holder}, "
            f"until {expires.isoformat(timespec='seconds')}; if that run died, the lock "
            f"expires then, or remove it: kubectl delete lease {name} -n {namespace}"
        )
        self.holder = holder
        self.expires = expires
