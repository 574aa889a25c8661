"""Redaction of secrets: Helm values, --set pieces, the kubeconfig, credential shapes."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_cilium_upgrade.redact import (
    REDACTED,
    Redactor,
    kubeconfig_secrets,
    redact,
    set_item_secrets,
    url_without_userinfo,
    values_secrets,
)
from pytest_cilium_upgrade.redact.collect import collect_secrets, set_item_pieces, set_key_path
from pytest_cilium_upgrade.redact.rules import (
    is_secret_value,
    is_sensitive_path,
    key_words,
    looks_like_blob,
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


# --------------------------------------------------------------------------- every value


@pytest.mark.parametrize(
    ("path", "text", "secret"),
    [
        # an ordinary key: secret from 8 characters on
        (("extraEnv", "value"), "hunter22", True),
        (("extraEnv", "value"), "hunter2", False),
        (("extraArgs",), "--api-token-value=abc", True),
        (("ipv4NativeRoutingCIDR",), "10.0.0.0/8", False),
        # keys that name or place something
        (("image", "repository"), "quay.io/cilium/cilium", False),
        (("cluster", "name"), "production-east", False),
        (("k8sServiceHost",), "api.example.internal", False),
        (("ipam", "mode"), "cluster-pool", False),
        # Kubernetes scheduling structures: taint keys are not secrets
        (("tolerations", "key"), "node-role.kubernetes.io/control-plane", False),
        (("tolerations", "effect"), "NoSchedule", False),
        (("affinity", "nodeAffinity", "key"), "kubernetes.io/hostname", False),
        # a secret key: any length; common words never
        (("etcd", "password"), "pw", True),
        (("hubble", "tls", "key"), "true", False),
        # key material anywhere, even under a public key
        (("tolerations", "value"), "TUlJRXZRSUJBREFOQmdrcWhraUc5dzBCQVFFRkFBU0NCS2N3", True),
    ],
)
def test_is_secret_value(path: tuple[str, ...], text: str, secret: bool) -> None:
    assert is_secret_value(path, text) is secret


def test_short_secrets_are_replaced_as_whole_words_only() -> None:
    found = values_secrets({"etcd": {"password": "pw1"}, "x": {"token": "7"}})
    assert found.words == {"pw1", "7"}
    assert not found.anywhere
    r = Redactor.of(found)
    assert r.redact("password=pw1 pw12 apw1 (pw1)") == f"password={REDACTED} pw12 apw1 ({REDACTED})"
    assert r.redact("revision 17, 7 pods") == f"revision 17, {REDACTED} pods"


def test_a_replacement_is_never_matched_again() -> None:
    r = Redactor(["DACTED-secret", "DACT"], words=["RED"])
    assert r.redact("x DACTED-secret RED DACT") == f"x {REDACTED} {REDACTED} {REDACTED}"


# --------------------------------------------------------------------------- --set items


@pytest.mark.parametrize(
    ("item", "pieces"),
    [
        ("a=1", [("a", "1")]),
        ("foo=bar,hubble.tls.key=SECRET", [("foo", "bar"), ("hubble.tls.key", "SECRET")]),
        (r"a=x\,y,b=z", [("a", "x,y"), ("b", "z")]),
        ("list={one,two},c=d", [("list", "one"), ("list", "two"), ("c", "d")]),
        ("a=b=c", [("a", "b=c")]),
    ],
)
def test_set_item_pieces_as_helm_splits_them(item: str, pieces: list[tuple[str, str]]) -> None:
    assert set_item_pieces(item) == pieces


def test_set_key_path() -> None:
    assert set_key_path("extraEnv[0].value") == ("extraEnv", "value")
    assert set_key_path(r"nodeSelector.kubernetes\.io/os") == ("nodeSelector", r"kubernetes\.io/os")


def test_set_item_secrets_follow_the_commas() -> None:
    found = set_item_secrets(
        ["foo=bar,hubble.tls.key=SECRET", r"extraEnv[0].value=pass\,word-123", "ui.enabled=true"]
    )
    assert found.anywhere == {"SECRET", "pass,word-123", r"pass\,word-123"}
    r = Redactor.of(found)
    assert (
        r.redact("--set foo=bar,hubble.tls.key=SECRET")
        == f"--set foo=bar,hubble.tls.key={REDACTED}"
    )
    assert r.redact(r"--set extraEnv[0].value=pass\,word-123") == (
        f"--set extraEnv[0].value={REDACTED}"
    )


# --------------------------------------------------------------------------- the kubeconfig

KUBECONFIG: dict[str, Any] = {
    "clusters": [
        {"name": "a", "cluster": {"server": "https://admin:url-secret@host:6443"}},
        {
            "name": "b",
            "cluster": {"server": "https://host:6443", "proxy-url": "http://u:proxy-pw@p"},
        },
    ],
    "users": [
        {"name": "t", "user": {"token": "kube-token-1", "client-key-data": "a2V5LWRhdGE="}},
        {"name": "p", "user": {"username": "admin", "password": "pw"}},
        {
            "name": "o",
            "user": {
                "auth-provider": {
                    "name": "oidc",
                    "config": {
                        "id-token": "oidc-id-token",
                        "client-secret": "cs",
                        "idp-issuer-url": "https://issuer.example",
                    },
                }
            },
        },
        {"name": "e", "user": {"exec": {"env": [{"name": "K", "value": "exec-env-secret"}]}}},
        {"name": "broken", "user": None},
    ],
}


def test_kubeconfig_secrets() -> None:
    found = kubeconfig_secrets(KUBECONFIG)
    for secret in (
        "url-secret",
        "admin:url-secret",
        "proxy-pw",
        "kube-token-1",
        "a2V5LWRhdGE=",
        "oidc-id-token",
        "exec-env-secret",
    ):
        assert secret in found.anywhere
    assert {"pw", "cs"} <= found.words
    assert "admin" not in found.anywhere | found.words
    assert "https://issuer.example" not in found.anywhere


@pytest.mark.parametrize("config", [None, [], "text", {"users": "x"}, {"users": [1, None]}])
def test_kubeconfig_secrets_of_a_malformed_kubeconfig(config: object) -> None:
    assert not kubeconfig_secrets(config)


def test_url_without_userinfo() -> None:
    assert url_without_userinfo("https://admin:pw@host:6443/x") == "https://host:6443/x"
    assert url_without_userinfo("https://host:6443") == "https://host:6443"
    assert url_without_userinfo("") == ""


# --------------------------------------------------------------------------- credential shapes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('Get "https://admin:pw@10.0.0.1:6443/api"', f'Get "https://{REDACTED}@10.0.0.1:6443/api"'),
        ("Authorization: Bearer abcdefgh12345", f"Authorization: Bearer {REDACTED}"),
        ("authorization=opaque-value", f"authorization={REDACTED}"),
        (
            "token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl was rejected",
            f"token {REDACTED} was rejected",
        ),
        ('{"token": "abc", "kind": "Status"}', f'{{"token": "{REDACTED}", "kind": "Status"}}'),
        ("GET /x?access_token=abc&watch=1", f"GET /x?access_token={REDACTED}&watch=1"),
        # not credentials
        ("quay.io/cilium/cilium:v1.16.15@sha256:" + "a" * 64, None),
        ("the bearer token was refused", None),
        ("basic validation passed; Bearer authentication", None),
        ("Authorization: Basic YWRtaW46c2VjcmV0", f"Authorization: Basic {REDACTED}"),
        ("a token is needed", None),
    ],
)
def test_credential_shapes_are_redacted_unknown(text: str, expected: str | None) -> None:
    assert Redactor().redact(text) == (text if expected is None else expected)
