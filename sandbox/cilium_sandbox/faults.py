"""Make chosen sandbox pods fail the way upgrades fail, and give them chosen logs.

Faults are kwok ``Stage`` objects created while the sandbox runs. A fault stage
outweighs the ordinary ``pod-ready`` stage and marks the pods it takes over with the
condition ``SandboxFault=True`` (its message names the fault), which the ordinary
stages respect. A fault's heal stage ends it for the pods it took over: they become
ready, as when the image becomes pullable or the readiness probe passes. Pod logs are kwok
``ClusterLogs`` objects pointing at files in CRI log format under the sandbox's
``logs/`` directory; ``kubectl logs`` and ``read_namespaced_pod_log`` (also with
``previous=True``) serve them through the real apiserver.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from cilium_sandbox.errors import SandboxError

FAULT_CONDITION = "SandboxFault"
FAULT_LABEL = "sandbox.pytest-cilium-upgrade.io/fault"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_CRI_TIME = "2026-01-01T00:00:00.000000000Z"


class Fault(StrEnum):
    IMAGE_PULL = "ErrImagePull"
    CRASH_LOOP = "CrashLoopBackOff"
    NEVER_READY = "NeverReady"


@dataclass(frozen=True)
class PodFault:
    """Which pods fail (all criteria ANDed) and how."""

    fault: Fault
    namespace: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    images: Sequence[str] = ()
    nodes: Sequence[str] = ()
    container: str | None = None  # CRASH_LOOP: the crashing container (default: all)
    restarts: int = 5
    message: str = ""

    def name(self) -> str:
        digest = hashlib.sha256(repr(self).encode()).hexdigest()[:10]
        return f"fault-{self.fault.name.lower().replace('_', '-')}-{digest}"

    def marker(self) -> str:
        """The message of the ``SandboxFault`` condition of the pods this fault took over."""
        return f"sandbox fault {self.name()}"

    def heal_name(self) -> str:
        return self.name().replace("fault-", "heal-", 1)

    def stage(self) -> dict[str, Any]:
        if self.container is not None and not _NAME.match(self.container):
            raise SandboxError(f"fault container {self.container!r} is not a container name")
        if self.restarts < 0:
            raise SandboxError("fault restarts must not be negative")
        expressions: list[dict[str, Any]] = [
            {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
            {"key": ".spec.nodeName", "operator": "Exists"},
            {
                "key": f'.status.conditions.[] | select( .type == "{FAULT_CONDITION}" ) | .status',
                "operator": "NotIn",
                "values": ["True"],
            },
        ]
        if self.fault is Fault.IMAGE_PULL:
            # An image is pulled before the pod first starts: only pending pods fail so.
            expressions.append({"key": ".status.phase", "operator": "In", "values": ["Pending"]})
        return self._stage(self.name(), expressions, self._status_template())

    def heal_stage(self) -> dict[str, Any]:
        """The stage that makes the pods this fault took over ready (the fault's cause gone).

        It selects them by the fault's marker, so it heals no other fault's pods; the
        fault's own stage must be removed first, or new pods keep failing.
        """
        condition = f'.status.conditions.[] | select( .type == "{FAULT_CONDITION}" )'
        expressions: list[dict[str, Any]] = [
            {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
            {"key": f"{condition} | .status", "operator": "In", "values": ["True"]},
            {"key": f"{condition} | .message", "operator": "In", "values": [self.marker()]},
        ]
        return self._stage(self.heal_name(), expressions, self._healed_template())

    def _stage(self, name: str, expressions: list[dict[str, Any]], template: str) -> dict[str, Any]:
        expressions = list(expressions)
        if self.namespace:
            expressions.append(
                {"key": ".metadata.namespace", "operator": "In", "values": [self.namespace]}
            )
        if self.nodes:
            expressions.append(
                {"key": ".spec.nodeName", "operator": "In", "values": list(self.nodes)}
            )
        if self.images:
            expressions.append(
                {"key": ".spec.containers.[].image", "operator": "In", "values": list(self.images)}
            )
        selector: dict[str, Any] = {"matchExpressions": expressions}
        if self.labels:
            selector["matchLabels"] = dict(self.labels)
        return {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "Stage",
            "metadata": {"name": name, "labels": {FAULT_LABEL: "true"}},
            "spec": {
                "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
                "selector": selector,
                "weight": 10000,
                "next": {"statusTemplate": template},
            },
        }

    def _healed_template(self) -> str:
        """Ready and running; a container that crash-looped keeps its restarts and last exit."""
        crashed = "true" if self.fault is Fault.CRASH_LOOP else "false"
        match = f'(eq .name "{self.container}")' if self.container is not None else "true"
        return (
            "{{ $now := Now }}\n"
            "conditions:\n"
            f'- {{type: {FAULT_CONDITION}, status: "False", reason: Healed, '
            f'message: "{self.marker()}", lastTransitionTime: {{{{ $now | Quote }}}}}}\n'
            '- {type: PodScheduled, status: "True", lastTransitionTime: {{ $now | Quote }}}\n'
            '- {type: Initialized, status: "True", lastTransitionTime: {{ $now | Quote }}}\n'
            '- {type: ContainersReady, status: "True", lastTransitionTime: {{ $now | Quote }}}\n'
            '- {type: Ready, status: "True", lastTransitionTime: {{ $now | Quote }}}\n'
            "containerStatuses:\n"
            "{{ range .spec.containers }}\n"
            "- name: {{ .name | Quote }}\n"
            "  image: {{ .image | Quote }}\n"
            '  imageID: {{ printf "sandbox://%s" .image | Quote }}\n'
            "  ready: true\n"
            "  started: true\n"
            f"  {{{{ if and {crashed} {match} }}}}\n"
            f"  restartCount: {self.restarts}\n"
            "  lastState:\n"
            "    terminated:\n"
            "      exitCode: 1\n"
            "      reason: Error\n"
            "      startedAt: {{ $now | Quote }}\n"
            "      finishedAt: {{ $now | Quote }}\n"
            "  {{ else }}\n"
            "  restartCount: 0\n"
            "  {{ end }}\n"
            "  state:\n"
            "    running:\n"
            "      startedAt: {{ $now | Quote }}\n"
            "{{ end }}\n"
            "{{ with NodeIPWith .spec.nodeName }}\n"
            "hostIP: {{ . | Quote }}\n"
            "{{ end }}\n"
            "podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) "
            '( or .metadata.uid "" ) ( or .metadata.name "" ) '
            '( or .metadata.namespace "" ) | Quote }}\n'
            "phase: Running\n"
            "startTime: {{ $now | Quote }}\n"
        )

    def _status_template(self) -> str:
        message = (self.message or _default_message(self.fault)).replace('"', "'")
        head = (
            "{{ $now := Now }}\n"
            "conditions:\n"
            f'- {{type: {FAULT_CONDITION}, status: "True", reason: {self.fault.value}, '
            f'message: "{self.marker()}", lastTransitionTime: {{{{ $now | Quote }}}}}}\n'
            '- {type: PodScheduled, status: "True", lastTransitionTime: {{ $now | Quote }}}\n'
            '- {type: Initialized, status: "True", lastTransitionTime: {{ $now | Quote }}}\n'
            '- {type: ContainersReady, status: "False", reason: ContainersNotReady, '
            "lastTransitionTime: {{ $now | Quote }}}\n"
            '- {type: Ready, status: "False", reason: ContainersNotReady, '
            "lastTransitionTime: {{ $now | Quote }}}\n"
        )
        if self.fault is Fault.IMAGE_PULL:
            body = (
                "containerStatuses:\n"
                "{{ range .spec.containers }}\n"
                "- name: {{ .name | Quote }}\n"
                "  image: {{ .image | Quote }}\n"
                '  imageID: ""\n'
                "  ready: false\n"
                "  started: false\n"
                "  restartCount: 0\n"
                "  state:\n"
                "    waiting:\n"
                "      reason: ErrImagePull\n"
                + (
                    f'      message: {{{{ printf "{message}" .image | Quote }}}}\n'
                    if "%s" in message
                    else f'      message: "{message}"\n'
                )
                + "{{ end }}\n"
                "phase: Pending\n"
            )
        else:
            crashing = "true" if self.fault is Fault.CRASH_LOOP else "false"
            match = f'(eq .name "{self.container}")' if self.container is not None else "true"
            body = (
                "containerStatuses:\n"
                "{{ range .spec.containers }}\n"
                "- name: {{ .name | Quote }}\n"
                "  image: {{ .image | Quote }}\n"
                '  imageID: {{ printf "sandbox://%s" .image | Quote }}\n'
                "  ready: false\n"
                f"  {{{{ if and {crashing} {match} }}}}\n"
                "  started: false\n"
                f"  restartCount: {self.restarts}\n"
                "  lastState:\n"
                "    terminated:\n"
                "      exitCode: 1\n"
                "      reason: Error\n"
                "      startedAt: {{ $now | Quote }}\n"
                "      finishedAt: {{ $now | Quote }}\n"
                "  state:\n"
                "    waiting:\n"
                "      reason: CrashLoopBackOff\n"
                f'      message: "{message}"\n'
                "  {{ else }}\n"
                "  started: true\n"
                "  restartCount: 0\n"
                "  state:\n"
                "    running:\n"
                "      startedAt: {{ $now | Quote }}\n"
                "  {{ end }}\n"
                "{{ end }}\n"
                "phase: Running\n"
                "startTime: {{ $now | Quote }}\n"
            )
        return head + body


def _default_message(fault: Fault) -> str:
    if fault is Fault.IMAGE_PULL:
        return "rpc error: failed to pull and unpack image %s: not found"
    if fault is Fault.CRASH_LOOP:
        return "back-off restarting failed container"
    return "readiness probe failed"


def cri_log(lines: Sequence[str]) -> str:
    """Lines in the CRI log format the kubelet writes (``<time> stdout F <line>``)."""
    return "".join(f"{_CRI_TIME} stdout F {line}\n" for line in lines)


@dataclass(frozen=True)
class ContainerLogs:
    """What ``logs`` (and ``logs --previous``) return for one container of chosen pods."""

    namespace: str
    container: str
    current: Sequence[str]
    previous: Sequence[str] | None = None
    pod_names: Sequence[str] = ()

    def name(self) -> str:
        digest = hashlib.sha256(
            f"{self.namespace}/{self.container}/{sorted(self.pod_names)}".encode()
        ).hexdigest()[:10]
        return f"logs-{self.container}-{digest}"

    def write(self, logs_dir: Path) -> dict[str, Any]:
        """Write the log files and return the ClusterLogs object that serves them."""
        if not _NAME.match(self.container):
            raise SandboxError(f"logs container {self.container!r} is not a container name")
        directory = logs_dir / self.name()
        directory.mkdir(parents=True, exist_ok=True)
        current = directory / "current.log"
        current.write_text(cri_log(self.current))
        log: dict[str, Any] = {
            "containers": [self.container],
            "logsFile": str(current.resolve()),
            "follow": False,
        }
        if self.previous is not None:
            previous = directory / "previous.log"
            previous.write_text(cri_log(self.previous))
            log["previousLogsFile"] = str(previous.resolve())
        selector: dict[str, Any] = {"matchNamespaces": [self.namespace]}
        if self.pod_names:
            selector["matchNames"] = list(self.pod_names)
        return {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "ClusterLogs",
            "metadata": {"name": self.name(), "labels": {FAULT_LABEL: "true"}},
            "spec": {"selector": selector, "logs": [log]},
        }
