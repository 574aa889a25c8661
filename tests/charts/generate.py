"""Write the stand-in Cilium Helm charts, one directory per chart version.

Every chart carries the same templates, copied from ``_templates/``; the
templates select version-specific behaviour with ``semverCompare`` against
``.Chart.Version``. This script writes each version's ``Chart.yaml``,
``values.yaml`` (defaults differ per version) and, from 1.16,
``values.schema.json``.

Usage::

    python tests/charts/generate.py            # rewrite the checked-in charts
    python tests/charts/generate.py --out DIR  # write them somewhere else

The output is deterministic; ``tests/unit/test_charts_generated.py`` checks
that the checked-in charts equal a fresh run.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "_templates"

Version = tuple[int, int, int]


@dataclass(frozen=True)
class ChartSpec:
    """One stand-in chart: its version and the few pins that are not derived."""

    version: str
    # Own tag scheme of the Envoy image (1.16+ only). Illustrative values of the
    # upstream format, not the exact pins of the upstream releases.
    envoy_tag: str | None = None

    @property
    def parts(self) -> Version:
        major, minor, patch = (int(p) for p in self.version.split("."))
        return (major, minor, patch)

    def at_least(self, minimum: Version) -> bool:
        return self.parts >= minimum


CHARTS: tuple[ChartSpec, ...] = (
    ChartSpec("1.11.7"),
    ChartSpec("1.11.20"),
    ChartSpec("1.12.0"),
    ChartSpec("1.15.1"),
    ChartSpec("1.15.18"),
    ChartSpec("1.16.0", envoy_tag="v1.29.7-39a2a56bbd5b3a591f69dbca51d3e30ef97e0e51"),
    ChartSpec("1.16.15", envoy_tag="v1.31.5-1737535524-fe8efeb16a7d233bffd05af9ea53599340d3f18e"),
    ChartSpec("1.17.9", envoy_tag="v1.32.6-1746661844-0f602c28cb2aa57b29078195049fb257d5b5246c"),
)

EXISTS: list[dict[str, Any]] = [{"operator": "Exists"}]

# Pre-flight tolerations of 1.12.x: no control-plane toleration.
PREFLIGHT_TOLERATIONS_1_12: list[dict[str, Any]] = [
    {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"},
    {"key": "node-role.kubernetes.io/master", "effect": "NoSchedule"},
    {
        "key": "node.cloudprovider.kubernetes.io/uninitialized",
        "effect": "NoSchedule",
        "value": "true",
    },
    {"key": "CriticalAddonsOnly", "operator": "Exists"},
]

# 1.13 - 1.15: the 1.12 list plus the control-plane toleration.
PREFLIGHT_TOLERATIONS_1_13: list[dict[str, Any]] = [
    *PREFLIGHT_TOLERATIONS_1_12[:2],
    {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
    *PREFLIGHT_TOLERATIONS_1_12[2:],
]

LINUX: dict[str, str] = {"kubernetes.io/os": "linux"}


def _on_same_node_as(label_key: str, label_value: str, kind: str) -> dict[str, Any]:
    return {
        kind: {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {"matchLabels": {label_key: label_value}},
                    "topologyKey": "kubernetes.io/hostname",
                }
            ]
        }
    }


def _image(repository: str, tag: str) -> dict[str, Any]:
    return {
        "repository": repository,
        "tag": tag,
        "digest": "",
        "useDigest": False,
        "pullPolicy": "IfNotPresent",
    }


def preflight_tolerations(spec: ChartSpec) -> list[dict[str, Any]]:
    """Default of ``preflight.tolerations`` (templates before 1.12 ignore it)."""
    if spec.at_least((1, 16, 0)):
        return EXISTS
    if spec.at_least((1, 13, 0)):
        return PREFLIGHT_TOLERATIONS_1_13
    if spec.at_least((1, 12, 0)):
        return PREFLIGHT_TOLERATIONS_1_12
    return EXISTS


def values_for(spec: ChartSpec) -> dict[str, Any]:
    """Default values of one chart version, in the order they are written."""
    tag = f"v{spec.version}"
    values: dict[str, Any] = {"upgradeCompatibility": None}
    if spec.at_least((1, 17, 0)):
        values["name"] = "cilium"
    values |= {
        "agent": True,
        "image": _image("quay.io/cilium/cilium", tag),
        "podAnnotations": {},
        "podLabels": {},
        "updateStrategy": {"rollingUpdate": {"maxUnavailable": 2}, "type": "RollingUpdate"},
        "nodeSelector": dict(LINUX),
        "tolerations": EXISTS,
        "affinity": _on_same_node_as("k8s-app", "cilium", "podAntiAffinity"),
        "debug": {"enabled": False},
        "k8sServiceHost": "",
        "k8sServicePort": "",
    }
    if spec.at_least((1, 15, 0)):
        values |= {"kubeProxyReplacement": "false", "routingMode": "", "tunnelProtocol": ""}
    else:
        values |= {
            "kubeProxyReplacement": "disabled",
            "tunnel": "vxlan",
            "enableK8sEventHandover": False,
            "enableCnpStatusUpdates": False,
        }
    if not spec.at_least((1, 16, 0)):
        values |= {
            "remoteNodeIdentity": True,
            "endpointStatus": {"enabled": False, "status": ""},
            "containerRuntime": {"integration": "none"},
            "proxy": {
                "prometheus": {"enabled": True, "port": None},
                "sidecarImageRegex": "cilium/istio_proxy",
            },
        }
    values["encryption"] = _encryption(spec)
    values["etcd"] = (
        {"enabled": False} if spec.at_least((1, 16, 0)) else {"enabled": False, "managed": False}
    )
    values["clustermesh"] = _clustermesh(spec)
    values["operator"] = {
        "enabled": True,
        "replicas": 1,
        "image": {
            "repository": "quay.io/cilium/operator",
            "tag": tag,
            "genericDigest": "",
            "useDigest": False,
            "suffix": "",
            "pullPolicy": "IfNotPresent",
        },
        "podAnnotations": {},
        "podLabels": {},
        "nodeSelector": dict(LINUX),
        "tolerations": EXISTS,
        "affinity": _on_same_node_as("io.cilium/app", "operator", "podAntiAffinity"),
    }
    preflight: dict[str, Any] = {
        "enabled": False,
        "image": _image("quay.io/cilium/cilium", tag),
        "podAnnotations": {},
        "podLabels": {},
        "tolerations": preflight_tolerations(spec),
        "validateCNPs": True,
        "tofqdnsPreCache": "",
    }
    if spec.at_least((1, 16, 0)):
        preflight["readinessProbe"] = {"initialDelaySeconds": 5, "periodSeconds": 5}
    values["preflight"] = preflight
    values["hubble"] = {
        "enabled": True,
        "tls": {
            "enabled": True,
            "ca": {"cert": "", "key": ""},
            "server": {"cert": "", "key": ""},
        },
        "relay": {
            "enabled": False,
            "replicas": 1,
            "image": _image("quay.io/cilium/hubble-relay", tag),
            "podAnnotations": {},
            "podLabels": {},
            "nodeSelector": dict(LINUX),
            "tolerations": [],
            "affinity": _on_same_node_as("k8s-app", "cilium", "podAffinity"),
        },
    }
    if spec.envoy_tag is not None:
        values["envoy"] = {
            "enabled": True,
            "image": _image("quay.io/cilium/cilium-envoy", spec.envoy_tag),
            "podAnnotations": {},
            "podLabels": {},
            "nodeSelector": dict(LINUX),
            "tolerations": EXISTS,
            "affinity": {
                **_on_same_node_as("k8s-app", "cilium-envoy", "podAntiAffinity"),
                **_on_same_node_as("k8s-app", "cilium", "podAffinity"),
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {
                                        "key": "cilium.io/no-schedule",
                                        "operator": "NotIn",
                                        "values": ["true"],
                                    }
                                ]
                            }
                        ]
                    }
                },
            },
        }
    return values


def _encryption(spec: ChartSpec) -> dict[str, Any]:
    ipsec = {
        "keyFile": "keys",
        "mountPath": "/etc/ipsec",
        "secretName": "cilium-ipsec-keys",
        "interface": "",
    }
    encryption: dict[str, Any] = {"enabled": False, "type": "ipsec"}
    if spec.at_least((1, 16, 0)):
        encryption["ipsec"] = ipsec
    else:
        encryption |= ipsec
    if not spec.at_least((1, 17, 0)):
        encryption["wireguard"] = {"userspaceFallback": False}
    return encryption


def _clustermesh(spec: ChartSpec) -> dict[str, Any]:
    tls: dict[str, Any] = {
        "server": {"cert": "", "key": ""},
        "admin": {"cert": "", "key": ""},
    }
    if not spec.at_least((1, 15, 0)):
        tls = {"ca": {"cert": "", "key": ""}, **tls}
    return {"useAPIServer": False, "apiserver": {"tls": tls}}


def schema_for(spec: ChartSpec) -> dict[str, Any]:
    """A JSON schema (draft-07) typing a few values; unknown keys stay allowed."""
    string: dict[str, Any] = {"type": "string"}
    boolean: dict[str, Any] = {"type": "boolean"}
    obj: dict[str, Any] = {"type": "object"}
    image = {
        "type": "object",
        "properties": {
            "repository": string,
            "tag": string,
            "digest": string,
            "useDigest": boolean,
            "pullPolicy": {"type": "string", "enum": ["Always", "IfNotPresent", "Never"]},
        },
    }
    tolerations = {"type": "array", "items": {"type": "object"}}
    properties: dict[str, Any] = {
        "upgradeCompatibility": {"type": ["null", "string"]},
        "agent": boolean,
        "image": image,
        "podAnnotations": obj,
        "podLabels": obj,
        "nodeSelector": obj,
        "tolerations": tolerations,
        "affinity": obj,
        "k8sServiceHost": string,
        "k8sServicePort": {"type": ["string", "integer"]},
        "kubeProxyReplacement": {"type": ["boolean", "string"]},
        "routingMode": {"type": "string", "enum": ["", "native", "tunnel"]},
        "tunnelProtocol": {"type": "string", "enum": ["", "vxlan", "geneve"]},
        "operator": {
            "type": "object",
            "properties": {
                "enabled": boolean,
                "replicas": {"type": "integer", "minimum": 0},
                "image": {
                    "type": "object",
                    "properties": {
                        "repository": string,
                        "tag": string,
                        "genericDigest": string,
                        "useDigest": boolean,
                        "suffix": string,
                    },
                },
                "tolerations": tolerations,
            },
        },
        "preflight": {
            "type": "object",
            "properties": {
                "enabled": boolean,
                "image": image,
                "tolerations": tolerations,
                "validateCNPs": boolean,
                "tofqdnsPreCache": string,
                "readinessProbe": {
                    "type": "object",
                    "properties": {
                        "initialDelaySeconds": {"type": "integer"},
                        "periodSeconds": {"type": "integer"},
                    },
                },
            },
        },
        "envoy": {
            "type": "object",
            "properties": {"enabled": boolean, "image": image, "tolerations": tolerations},
        },
        "hubble": {
            "type": "object",
            "properties": {
                "enabled": boolean,
                "relay": {
                    "type": "object",
                    "properties": {"enabled": boolean, "replicas": {"type": "integer"}},
                },
            },
        },
    }
    if spec.at_least((1, 17, 0)):
        properties["name"] = string
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": f"Values of the stand-in Cilium chart {spec.version}",
        "type": "object",
        "additionalProperties": True,
        "properties": dict(sorted(properties.items())),
    }


def chart_yaml(spec: ChartSpec) -> str:
    return (
        "# Generated by tests/charts/generate.py; edit that script, not this file.\n"
        "apiVersion: v2\n"
        "name: cilium\n"
        f"description: Stand-in for the Cilium {spec.version} Helm chart"
        " (test fixture, renders only the objects the upgrade gate inspects)\n"
        "type: application\n"
        f"version: {spec.version}\n"
        f'appVersion: "{spec.version}"\n'
        "home: https://cilium.io/\n"
    )


class _NoAliasDumper(yaml.SafeDumper):
    """Write repeated values in full instead of as YAML anchors and aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def values_yaml(spec: ChartSpec) -> str:
    header = (
        f"# Default values of the stand-in Cilium {spec.version} chart.\n"
        "# Generated by tests/charts/generate.py; edit that script, not this file.\n"
    )
    body = yaml.dump(
        values_for(spec),
        Dumper=_NoAliasDumper,
        sort_keys=False,
        default_flow_style=False,
        width=1000,
    )
    return header + body


def write_chart(spec: ChartSpec, out: Path) -> Path:
    """(Re)write one chart directory under ``out`` and return its path."""
    chart = out / spec.version
    if chart.exists():
        shutil.rmtree(chart)
    templates = chart / "templates"
    for source in sorted(TEMPLATES.rglob("*")):
        if source.is_file():
            target = templates / source.relative_to(TEMPLATES)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    _write_text(chart / "Chart.yaml", chart_yaml(spec))
    _write_text(chart / "values.yaml", values_yaml(spec))
    if spec.at_least((1, 16, 0)):
        _write_text(chart / "values.schema.json", json.dumps(schema_for(spec), indent=2) + "\n")
    return chart


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE,
        help="directory that receives one sub-directory per chart version (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for spec in CHARTS:
        print(write_chart(spec, out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
