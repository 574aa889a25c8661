"""Bad input from the API endpoint: something else than a Kubernetes API server answers.

A loopback HTTP server stands in for a broken endpoint (a proxy, a load balancer, a
wrong port); this tests our client against bad answers, not a cluster. The cluster is
read once and judged by one check; everything that needs it is skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bad_input_fakes import (
    Case,
    Env,
    FakeApi,
    api,
    doc_rows,
    release_secret,
    run_case,
    run_gate,
)

pytest_plugins = ["pytester"]
__all__ = ["api"]  # the fixture, for the tests below

CLUSTER = "cilium-upgrade::pre::cluster_reachable_and_access_allowed"
NGINX_404 = b"""<html>
<head><title>404 Not Found</title></head>
<body>
<center><h1>404 Not Found</h1></center>
<hr><center>nginx/1.25.3</center>
</body>
</html>
"""
NGINX_502 = NGINX_404.replace(b"404 Not Found", b"502 Bad Gateway")
DENIED = b"<html><head><title>Access denied</title></head><body>Request blocked</body></html>"
PORTAL = b"<!DOCTYPE html><html><head><title>Corporate proxy: sign in</title></head></html>"


def _answer(request: str, status: int, kind: str, body: bytes) -> Callable[[Env], list[str]]:
    def prepare(env: Env) -> list[str]:
        env.api.answers[request] = (status, kind, body)
        return []

    return prepare


def _record(
    release: dict[str, Any] | None = None, encoded: str | None = None
) -> Callable[[Env], list[str]]:
    def prepare(env: Env) -> list[str]:
        base: dict[str, Any] = {
            "name": "cilium",
            "namespace": "kube-system",
            "version": 1,
            "info": {"status": "deployed"},
            "chart": {"metadata": {"name": "cilium", "version": "1.15.18"}},
        }
        env.api.secrets = [release_secret({**base, **(release or {})}, encoded=encoded)]
        return []

    return prepare


PRE = ("--cilium-phase=pre",)

NOT_API = "<server> is not a Kubernetes API server: it answered"
CASES = (
    Case(
        "api-answers-200-html",
        "`--cilium-phase=pre`, the server address answered by a proxy's sign-in page (200)",
        f"{NOT_API} get version with 200 OK, a text/html page: 'Corporate proxy: sign in'",
        args=PRE,
        prepare=_answer("GET /version/", 200, "text/html", PORTAL),
    ),
    Case(
        "api-answers-200-text",
        "`--cilium-phase=pre`, the server address answered with plain text (200)",
        f"{NOT_API} get version with 200 OK, a text/plain text: 'Hello from the dashboard'",
        args=PRE,
        prepare=_answer("GET /version/", 200, "text/plain", b"\nHello from the dashboard\n"),
    ),
    Case(
        "api-answers-json-array",
        "`--cilium-phase=pre`, the server address answered with a JSON array (200)",
        f"{NOT_API} get version with 200 OK, a JSON array (application/json), not an object",
        args=PRE,
        prepare=_answer("GET /version/", 200, "application/json", b'[{"gitVersion": "v1"}]'),
    ),
    Case(
        "api-answers-truncated-json",
        "`--cilium-phase=pre`, the server address answered with JSON cut short (200)",
        f"{NOT_API} get version with JSON that cannot be read: Unterminated string"
        " starting at: line 1 column 16 (char 15)",
        args=PRE,
        prepare=_answer("GET /version/", 200, "application/json", b'{"gitVersion": "v1.3'),
    ),
    Case(
        "api-answers-404-html",
        "`--cilium-phase=pre`, the server address answered with nginx's 404 page",
        f"{NOT_API} get version with 404 Not Found, a text/html page: '404 Not Found'",
        args=PRE,
        prepare=_answer("GET /version/", 404, "text/html", NGINX_404),
    ),
    Case(
        "api-answers-403-html",
        "`--cilium-phase=pre`, a proxy refusing with its own 403 page",
        f"{NOT_API} get version with 403 Forbidden, a text/html page: 'Access denied'",
        args=PRE,
        prepare=_answer("GET /version/", 403, "text/html", DENIED),
    ),
    Case(
        "api-answers-401-html",
        "`--cilium-phase=pre`, a proxy asking for its own login (401, HTML)",
        "the API at <server> rejected our credentials (401): <server> answered get version"
        " with a text/html page: 'Corporate proxy: sign in'",
        args=PRE,
        prepare=_answer("GET /version/", 401, "text/html", PORTAL),
    ),
    Case(
        "api-answers-empty-body",
        "`--cilium-phase=pre`, the server address answered 200 with nothing",
        f"{NOT_API} get version with 200 OK, an empty application/json body",
        args=PRE,
        prepare=_answer("GET /version/", 200, "application/json", b""),
    ),
    Case(
        "api-answers-502-html",
        "`--cilium-phase=pre`, a proxy answering its 502 page, each time",
        "API error 502 Bad Gateway: <server> answered get version with a text/html page:"
        " '502 Bad Gateway' (gave up after 4 attempts)",
        args=PRE,
        prepare=_answer("GET /version/", 502, "text/html", NGINX_502),
    ),
    Case(
        "api-list-of-another-shape",
        "`--cilium-phase=pre`, the LIST of pods answered with `items` that are not a list",
        "cluster reachable (server v1.30.4) but not all of it could be read: pods:"
        f" {NOT_API} list pods with items that are not a list of objects",
        args=PRE,
        prepare=_answer(
            "GET /api/v1/namespaces/kube-system/pods", 200, "application/json", b'{"items": 7}'
        ),
    ),
    Case(
        "api-list-answers-html",
        "`--cilium-phase=pre`, the LIST of nodes answered by a proxy's sign-in page (200)",
        "cluster reachable (server v1.30.4) but not all of it could be read: nodes:"
        f" {NOT_API} list nodes with 200 OK, a text/html page: 'Corporate proxy: sign in'",
        args=PRE,
        prepare=_answer("GET /api/v1/nodes", 200, "text/html", PORTAL),
    ),
    Case(
        "release-record-version-not-a-number",
        '`--cilium-phase=pre`, Helm\'s release record holds `version: "abc"`',
        "cannot read Helm's release records (Secrets in namespace kube-system): Secret"
        " sh.helm.release.v1.cilium.vabc: not a Helm release record: its version is 'abc',"
        " not a number",
        args=(*PRE, "-k", "release_deployed"),
        prepare=_record({"version": "abc"}),
    ),
    Case(
        "release-record-not-decodable",
        "`--cilium-phase=pre`, Helm's release record holds no gzipped JSON",
        "cannot read Helm's release records (Secrets in namespace kube-system): Secret"
        " sh.helm.release.v1.cilium.v1: not a Helm release record: Only base64 data is allowed",
        args=(*PRE, "-k", "release_deployed"),
        prepare=_record(encoded="bm90IGd6aXBwZWQ="),
    ),
)


@pytest.fixture
def env(api: FakeApi, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Env:
    monkeypatch.delenv("HELM_DRIVER", raising=False)
    return Env(api, Path(pytester.path), monkeypatch)


def test_the_reliability_doc_lists_every_case() -> None:
    assert doc_rows("Bad input: the API endpoint") == [c.row for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_an_endpoint_that_is_no_api_server_gets_one_verdict(
    case: Case, env: Env, pytester: pytest.Pytester
) -> None:
    outcome = run_case(case, pytester, env)
    failed = [ln for ln in outcome.text.splitlines() if ln.startswith("FAILED ")]
    assert len(failed) == 1, outcome.text  # one verdict, whatever the number of checks
    if not case.id.startswith("release-record"):
        assert failed[0].startswith(f"FAILED {CLUSTER}"), outcome.text
    # the cluster is read once (a 502 is tried 4 times, as any 5xx)
    assert env.api.count("GET /version/") == (4 if "502" in case.id else 1)
    assert "<html" not in outcome.text.lower()  # a page is summed up, never pasted


def test_a_run_closes_its_cluster_client(
    env: Env, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API client's connections are closed when the run ends, not left to the
    garbage collector (which would warn about each socket, maybe inside a later test)."""
    from pytest_cilium_upgrade.adapters.kube import Kube

    closed: list[Kube] = []
    close = Kube.close

    def recording_close(self: Kube) -> None:
        closed.append(self)
        close(self)

    monkeypatch.setattr(Kube, "close", recording_close)
    outcome = run_gate(pytester, env, "--cilium-phase=pre", "-k", "cluster_reachable")
    assert outcome.ret == 0, outcome.text
    assert len(closed) == 1
