"""The values of the pre-flight release, from the values snapshot.

The pre-flight must run where the agents run and pull from where they pull: the API
server address the agents are given (clusters without kube-proxy), the image pull
secrets, and the agent's image registry (never its tag or digest: those name the
current version, and the pre-flight runs the target's).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_cilium_upgrade import defaults

__all__ = ["preflight_values"]

_CARRIED = ("k8sServiceHost", "k8sServicePort")


def preflight_values(snapshot: Mapping[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """``--set`` items and values carried from ``snapshot`` into the pre-flight release."""
    sets = list(defaults.PREFLIGHT_SET_VALUES)
    values: dict[str, Any] = {}
    for key in _CARRIED:
        if snapshot.get(key) not in (None, ""):
            values[key] = snapshot[key]
    if snapshot.get("imagePullSecrets"):
        values["imagePullSecrets"] = snapshot["imagePullSecrets"]
    image: dict[str, Any] = {}
    agent = snapshot.get("image")
    if isinstance(agent, Mapping):
        image.update({k: agent[k] for k in ("repository", "pullPolicy") if agent.get(k)})
    preflight = snapshot.get("preflight")
    if isinstance(preflight, Mapping) and isinstance(preflight.get("image"), Mapping):
        image.update(preflight["image"])  # set for the pre-flight itself: as given
    if image:
        values["preflight"] = {"image": image}
    return sets, values
