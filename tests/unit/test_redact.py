"""Redaction of secrets found in Helm values."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_cilium_upgrade.redact import (
    REDACTED,
    Redactor,
    collect_secrets,
    is_sensitive_path,
    key_words,
    looks_like_blob,
    redact,
)

PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n"
    "MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n"
    "-----END PRIVATE KEY-----\n"
)
BLOB = "TUlJRXZRSUJBREFOQmdrcWhraUc5dzBCQVFFRkFBU0NCS2N3Z2dTakFnRUFBb0lC"

VALUES: dict[str, Any] = {
    "hubble": {
        "enabled": True,
        "tls": {
            "auto": {"enabled": False, "method": "helm"},
            "server": {"cert": "c2VydmVyLWNlcnQtZGF0YQ==", "key": PEM},
            "ca": {"cert": "Y2EtY2VydC1kYXRh"},
        },
    },
    "clustermesh": {
        "config": {"clusters": [{"name": "west", "tls": {"key": "d2VzdC1rZXk=", "caCert": "ca!"}}]}
    },
    "encryption": {"ipsec": {"secretName": "cilium-ipsec-keys", "keyFile": "keys"}},
    "etcd": {"password": "hunter22"},
    "bgpControlPlane": {"secretsNamespace": {"name": "kube-system"}},
    "image": {"repository": "quay.io/cilium/cilium", "tag": "v1.15.1"},
    "extra": {"opaque": BLOB},
    "k8sServiceHost": "10.0.0.1",
    "apiToken": "tok",
}


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("caBundle", ["ca", "bundle"]),
        ("tls.key", ["tls", "key"]),
        ("k8sServiceHost", ["k8s", "service", "host"]),
        ("secretsNamespace", ["secrets", "namespace"]),
        ("TLSCertFile", ["tls", "cert", "file"]),
    ],
)
def test_key_words(key: str, words: list[str]) -> None:
    assert key_words(key) == words


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (("hubble", "tls", "server", "key"), True),
        (("clustermesh", "apiserver", "tls", "ca", "cert"), True),
        (("x", "caCert"), True),
        (("etcd", "password"), True),
        (("encryption", "ipsec", "secretName"), False),
        (("encryption", "ipsec", "keyFile"), False),
        (("bgpControlPlane", "secretsNamespace", "name"), False),
        (("hubble", "tls", "auto", "method"), False),
        (("image", "repository"), False),
        (("cache", "local"), False),
        ((), False),
    ],
)
def test_is_sensitive_path(path: tuple[str, ...], expected: bool) -> None:
    assert is_sensitive_path(path) is expected


def test_looks_like_blob() -> None:
    assert looks_like_blob(PEM)
    assert looks_like_blob(BLOB)
    assert not looks_like_blob("quay.io/cilium/cilium:v1.15.1@sha256:" + "a" * 64)
    assert not looks_like_blob("short")
    assert not looks_like_blob("a" * 50)  # one character class only


def test_collect_secrets() -> None:
    secrets = collect_secrets(VALUES)
    for expected in [
        "c2VydmVyLWNlcnQtZGF0YQ==",
        "Y2EtY2VydC1kYXRh",
        "d2VzdC1rZXk=",
        "hunter22",
        BLOB,
        PEM,
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj",
    ]:
        assert expected in secrets
    for harmless in [
        "cilium-ipsec-keys",
        "keys",
        "kube-system",
        "helm",
        "quay.io/cilium/cilium",
        "10.0.0.1",
        "tok",  # too short to be worth replacing everywhere
        "ca!",
    ]:
        assert harmless not in secrets
    assert collect_secrets(None) == frozenset()
    assert collect_secrets({}) == frozenset()


def test_redact_replaces_every_occurrence() -> None:
    text = (
        "Error: template: cilium/templates/x.yaml: hubble key "
        "c2VydmVyLWNlcnQtZGF0YQ== and password hunter22 and hunter22 again"
    )
    out = redact(text, VALUES)
    assert "hunter22" not in out
    assert "c2VydmVyLWNlcnQtZGF0YQ==" not in out
    assert out.count(REDACTED) == 3
    assert out.startswith("Error: template: cilium/templates/x.yaml")


def test_redact_rewrapped_pem_lines() -> None:
    # YAML output may re-indent a multi-line value; each line is still caught.
    text = "key: |\n    MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n"
    out = redact(text, VALUES)
    assert "MzEfYyjiWA4R4" not in out
    assert REDACTED in out


def test_redact_any_pem_block_even_unknown() -> None:
    other = "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----"
    out = Redactor().redact(f"before {other} after")
    assert out == f"before {REDACTED} after"


def test_redactor_prefers_longest_secret() -> None:
    r = Redactor(["abcd", "abcdefgh"])
    assert r.redact("xx abcdefgh yy") == f"xx {REDACTED} yy"
    assert r.secrets == ("abcdefgh", "abcd")


def test_redactor_ignores_tiny_secrets() -> None:
    r = Redactor(["ab", ""])
    assert r.redact("ab ab") == "ab ab"
    assert r("text") == "text"


def test_redact_all_and_multiple_sources() -> None:
    r = Redactor.from_values({"token": "first-secret"}, None, {"password": "second-secret"})
    assert r.redact_all(["first-secret", "second-secret", "plain"]) == [
        REDACTED,
        REDACTED,
        "plain",
    ]
