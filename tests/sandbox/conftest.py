"""Fixtures for tests that run against the sandbox (a real apiserver, controllers, scheduler)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from cilium_sandbox.cluster import Sandbox
from kubernetes import client, config


@pytest.fixture(scope="session")
def sandbox(cilium_sandbox: Sandbox) -> Sandbox:
    return cilium_sandbox


@pytest.fixture(scope="session")
def api(sandbox: Sandbox) -> client.ApiClient:
    api: client.ApiClient = config.new_client_from_config(config_file=str(sandbox.kubeconfig))
    return api


@pytest.fixture
def namespace(sandbox: Sandbox) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    sandbox.kubectl("create", "namespace", name)
    yield name
    sandbox.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture
def faults(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The sandbox, with every fault and log source removed after the test."""
    yield sandbox
    sandbox.clear_faults()
