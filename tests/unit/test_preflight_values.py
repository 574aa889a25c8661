"""What the pre-flight release is given from the values snapshot."""

from __future__ import annotations

from pytest_cilium_upgrade.upgrade.preflight_values import preflight_values

SETS = ["preflight.enabled=true", "agent=false", "operator.enabled=false"]


def test_an_empty_snapshot_gives_the_pre_flight_switches_only() -> None:
    assert preflight_values({}) == (SETS, {})


def test_the_api_server_address_and_pull_secrets_are_carried() -> None:
    snapshot = {
        "k8sServiceHost": "api.example.internal",
        "k8sServicePort": 6443,
        "imagePullSecrets": [{"name": "regcred"}],
        "ipam": {"mode": "kubernetes"},
    }
    assert preflight_values(snapshot) == (
        SETS,
        {
            "k8sServiceHost": "api.example.internal",
            "k8sServicePort": 6443,
            "imagePullSecrets": [{"name": "regcred"}],
        },
    )


def test_empty_addresses_are_not_carried() -> None:
    assert preflight_values({"k8sServiceHost": "", "k8sServicePort": None}) == (SETS, {})


def test_the_agents_registry_is_carried_never_its_tag_or_digest() -> None:
    snapshot = {
        "image": {
            "repository": "registry.example/cilium/cilium",
            "tag": "v1.15.19",
            "digest": "sha256:0123",
            "pullPolicy": "IfNotPresent",
            "useDigest": True,
        }
    }
    _, values = preflight_values(snapshot)
    assert values == {
        "preflight": {
            "image": {
                "repository": "registry.example/cilium/cilium",
                "pullPolicy": "IfNotPresent",
            }
        }
    }


def test_a_pre_flight_image_given_for_the_pre_flight_wins() -> None:
    snapshot = {
        "image": {"repository": "registry.example/cilium/cilium"},
        "preflight": {"image": {"repository": "mirror.example/cilium", "useDigest": False}},
    }
    _, values = preflight_values(snapshot)
    assert values["preflight"]["image"] == {
        "repository": "mirror.example/cilium",
        "useDigest": False,
    }
