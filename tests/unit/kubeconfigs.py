"""Kubeconfig files and canned responses for the unit tests of the Kubernetes adapter."""

from __future__ import annotations

from pathlib import Path

import yaml


def write_kubeconfig(path: Path, server: str = "https://127.0.0.1:1") -> Path:
    """A kubeconfig with one context, ``c``, for ``server`` (by default one where nothing
    listens) and a token user."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            }
        )
    )
    return path


class RawBody:
    """The urllib3 response inside a RESTResponse, with no socket to watch."""

    connection = None

    def __init__(self, body: bytes) -> None:
        self._body = body

    def read(self) -> bytes:
        return self._body


class Response:
    """What the client's ``call_api`` returns (a RESTResponse), for a canned answer."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.reason = "Reason"
        self.data: bytes | None = None
        self.response = RawBody(body)
        self.headers = headers or {}
