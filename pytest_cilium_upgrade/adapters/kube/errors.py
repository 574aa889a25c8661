"""What the API (or whatever answered at its address) said, in one line.

The client's ``ApiException`` and urllib3's errors carry a body or a reason; these
helpers turn them into the messages of the gate's errors.
"""

from __future__ import annotations

import html
import json
import re

import urllib3
from kubernetes.client.exceptions import ApiException

_RETRYABLE = {429, 500, 502, 503, 504}
_MAX_BODY = 500


def _status_message(exc: ApiException) -> str:
    """The API's Status message, or one line saying what else answered."""
    body = _body_text(exc)
    if body:
        try:
            message = json.loads(body).get("message")
            if message:
                return str(message)
        except (ValueError, AttributeError):
            pass
        foreign = _foreign(exc)
        return foreign if foreign is not None else body[:_MAX_BODY]
    return str(exc.reason or "")


def _body_text(exc: ApiException) -> str:
    body = exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else exc.body
    return str(body or "")


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_HEADING = re.compile(r"<h1[^>]*>(.*?)</h1>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")
_SUMMARY_MAX = 120


def _foreign(exc: ApiException) -> str | None:
    """One line describing a body no Kubernetes API server sends (else None).

    The API server answers with a JSON object (a Status for errors); an HTML page,
    plain text or a JSON array comes from something else at its address. The line
    names the content type and the page's title (or its first line of text), never
    the whole body.
    """
    body = _body_text(exc).strip()
    if body.startswith("{"):
        return None
    headers = exc.headers or {}
    kind = str(headers.get("Content-Type") or "no content type").split(";")[0].strip()
    if not body:
        return f"an empty {kind} body"
    if body.startswith("["):
        return f"a JSON array ({kind}), not an object"
    match = _TITLE.search(body) or _HEADING.search(body)
    text = match.group(1) if match else _TAG.sub(" ", body)
    line = next((ln.strip() for ln in html.unescape(text).splitlines() if ln.strip()), "")
    line = " ".join(line.split())
    if len(line) > _SUMMARY_MAX:
        line = line[: _SUMMARY_MAX - 1] + "…"
    what = "page" if match or "html" in kind else "text"
    return f"a {kind} {what}: {line!r}" if line else f"a {kind} {what}"


def _reason(exc: urllib3.exceptions.HTTPError) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc)
