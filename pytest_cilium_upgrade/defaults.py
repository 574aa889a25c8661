"""Names of every Cilium object, label, container, image and log string the gate relies on.

These follow the upstream Helm chart (``install/kubernetes/cilium``) and the names
cilium-cli keeps in its own defaults. Nothing else in the package spells them out:
import them from here.
"""

from __future__ import annotations

from typing import Final, Literal, NamedTuple

# --------------------------------------------------------------------------- releases

DEFAULT_NAMESPACE: Final = "kube-system"
DEFAULT_RELEASE: Final = "cilium"
DEFAULT_PREFLIGHT_RELEASE: Final = "cilium-preflight"
CHART_NAME: Final = "cilium"
CHART_REF: Final = "cilium/cilium"

# The Lease (coordination.k8s.io) in the release namespace that one gated upgrade
# holds at a time.
UPGRADE_LOCK_LEASE: Final = "cilium-upgrade-lock"

# Values that turn a chart install into a pre-flight-only release.
PREFLIGHT_SET_VALUES: Final = (
    "preflight.enabled=true",
    "agent=false",
    "operator.enabled=false",
)

# --------------------------------------------------------------------------- agent

AGENT_DAEMONSET: Final = "cilium"
AGENT_CONTAINER: Final = "cilium-agent"
AGENT_SELECTOR: Final = "k8s-app=cilium"

# --------------------------------------------------------------------------- operator

OPERATOR_DEPLOYMENT: Final = "cilium-operator"
OPERATOR_CONTAINER: Final = "cilium-operator"
OPERATOR_SELECTOR: Final = "io.cilium/app=operator"
# The chart's full selector on the Deployment.
OPERATOR_DEPLOYMENT_SELECTOR: Final = "io.cilium/app=operator,name=cilium-operator"

# --------------------------------------------------------------------------- optional parts

ENVOY_DAEMONSET: Final = "cilium-envoy"
ENVOY_CONTAINER: Final = "cilium-envoy"
ENVOY_SELECTOR: Final = "k8s-app=cilium-envoy"

HUBBLE_RELAY_DEPLOYMENT: Final = "hubble-relay"
HUBBLE_RELAY_CONTAINER: Final = "hubble-relay"
HUBBLE_RELAY_SELECTOR: Final = "k8s-app=hubble-relay"

CLUSTERMESH_APISERVER_DEPLOYMENT: Final = "clustermesh-apiserver"
CLUSTERMESH_APISERVER_CONTAINER: Final = "apiserver"
CLUSTERMESH_APISERVER_SELECTOR: Final = "k8s-app=clustermesh-apiserver"

# --------------------------------------------------------------------------- pre-flight

PREFLIGHT_DAEMONSET: Final = "cilium-pre-flight-check"
PREFLIGHT_SELECTOR: Final = "k8s-app=cilium-pre-flight-check"
PREFLIGHT_CONTAINER: Final = "cilium-pre-flight-check"
PREFLIGHT_INIT_CONTAINER: Final = "clean-cilium-state"
PREFLIGHT_FQDN_PRECACHE_CONTAINER: Final = "cilium-pre-flight-fqdn-precache"

PREFLIGHT_DEPLOYMENT: Final = "cilium-pre-flight-check"
PREFLIGHT_DEPLOYMENT_SELECTOR: Final = "k8s-app=cilium-pre-flight-check-deployment"
CNP_VALIDATOR_CONTAINER: Final = "cnp-validator"

# The value that lets the pre-flight DaemonSet run on every node (what 1.16+ renders).
PREFLIGHT_TOLERATE_ALL_FIX: Final = "--set preflight.tolerations[0].operator=Exists"
# kube-proxy-free clusters must tell the pre-flight where the API server is.
PREFLIGHT_API_SERVER_FIX: Final = "--set k8sServiceHost=<ip> --set k8sServicePort=<port>"
PREFLIGHT_NODE_SELECTOR_VALUE: Final = "preflight.nodeSelector"
PREFLIGHT_AFFINITY_VALUE: Final = "preflight.affinity"

# --------------------------------------------------------------------------- CNP validator log

CNP_ALL_VALID: Final = "All CCNPs and CNPs valid!"
CNP_ALL_VALID_IDENTITY_EXCLUDED: Final = (
    "All CCNPs and CNPs are valid, but some policies reference identity-excluded labels!"
)
CNP_VALIDATION_OK: Final = "Validation OK!"
CNP_UNEXPECTED_VALIDATION_ERROR: Final = "Unexpected validation error"
CNP_UNABLE_TO_PARSE: Final = "Unable to parse policy for identity-label check"
CNP_FOUND_INVALID: Final = "Found invalid"
CNP_EXCLUDED_LABEL_WARNING: Final = "Policy selector references a label excluded"
CNP_K8S_NOT_CONFIGURED: Final = "Kubernetes client not configured"

# --------------------------------------------------------------------------- Helm

HELM_STATUS_DEPLOYED: Final = "deployed"
HELM_STATUS_SUPERSEDED: Final = "superseded"
HELM_STATUS_FAILED: Final = "failed"
HELM_STATUS_PENDING_INSTALL: Final = "pending-install"
HELM_STATUS_PENDING_UPGRADE: Final = "pending-upgrade"
HELM_STATUS_PENDING_ROLLBACK: Final = "pending-rollback"
HELM_STATUS_UNINSTALLED: Final = "uninstalled"
HELM_SUPPORTED_MAJORS: Final = (3, 4)

VALUES_SNAPSHOT_MODE: Final = 0o600

# --------------------------------------------------------------------------- components

WorkloadKind = Literal["DaemonSet", "Deployment"]


class Component(NamedTuple):
    """One Cilium component as cilium-cli's ``status`` lists it."""

    name: str
    kind: WorkloadKind
    selector: str
    optional: bool
    container: str
    # False where the image carries its own version (Envoy, Hubble UI): such a
    # component can only be compared by image, not by Cilium version.
    versioned_with_cilium: bool


AGENT: Final = Component(AGENT_DAEMONSET, "DaemonSet", AGENT_SELECTOR, False, AGENT_CONTAINER, True)
OPERATOR: Final = Component(
    OPERATOR_DEPLOYMENT, "Deployment", OPERATOR_SELECTOR, False, OPERATOR_CONTAINER, True
)
ENVOY: Final = Component(ENVOY_DAEMONSET, "DaemonSet", ENVOY_SELECTOR, True, ENVOY_CONTAINER, False)
HUBBLE_RELAY: Final = Component(
    HUBBLE_RELAY_DEPLOYMENT,
    "Deployment",
    HUBBLE_RELAY_SELECTOR,
    True,
    HUBBLE_RELAY_CONTAINER,
    True,
)
CLUSTERMESH_APISERVER: Final = Component(
    CLUSTERMESH_APISERVER_DEPLOYMENT,
    "Deployment",
    CLUSTERMESH_APISERVER_SELECTOR,
    True,
    CLUSTERMESH_APISERVER_CONTAINER,
    True,
)
PREFLIGHT_DS: Final = Component(
    PREFLIGHT_DAEMONSET, "DaemonSet", PREFLIGHT_SELECTOR, True, PREFLIGHT_CONTAINER, True
)
PREFLIGHT_DEPLOY: Final = Component(
    PREFLIGHT_DEPLOYMENT,
    "Deployment",
    PREFLIGHT_DEPLOYMENT_SELECTOR,
    True,
    CNP_VALIDATOR_CONTAINER,
    True,
)

# The components whose versions must agree before and after an upgrade.
VERSION_COMPONENTS: Final = (AGENT, OPERATOR, ENVOY, HUBBLE_RELAY, CLUSTERMESH_APISERVER)
PREFLIGHT_COMPONENTS: Final = (PREFLIGHT_DS, PREFLIGHT_DEPLOY)

# Last path segments of images that are tagged with the Cilium version (private
# mirrors keep the segment, so matching on it works for them too).
CILIUM_VERSIONED_IMAGE_NAMES: Final = frozenset(
    {
        "cilium",
        "operator",
        "operator-generic",
        "operator-aws",
        "operator-azure",
        "operator-alibabacloud",
        "hubble-relay",
        "clustermesh-apiserver",
    }
)

# --------------------------------------------------------------------------- RBAC


class AccessRequirement(NamedTuple):
    """One permission the checks need, asked with a SelfSubjectAccessReview."""

    verb: str
    resource: str
    group: str = ""
    subresource: str = ""
    namespaced: bool = True

    def describe(self) -> str:
        res = self.resource if not self.group else f"{self.resource}.{self.group}"
        if self.subresource:
            res = f"{res}/{self.subresource}"
        return f"{self.verb} {res}"


REQUIRED_ACCESS: Final = (
    AccessRequirement("list", "nodes", namespaced=False),
    AccessRequirement("list", "pods"),
    AccessRequirement("get", "pods", subresource="log"),
    AccessRequirement("list", "daemonsets", group="apps"),
    AccessRequirement("list", "deployments", group="apps"),
    # Helm keeps releases in Secrets of the release namespace.
    AccessRequirement("list", "secrets"),
    AccessRequirement("get", "secrets"),
)

# --------------------------------------------------------------------------- check options
# How the pre-flight coverage check judges nodes a pre-flight pod cannot run on.
CoveragePolicy = Literal["warn", "strict"]
COVERAGE_POLICIES: tuple[CoveragePolicy, ...] = ("warn", "strict")
# Agent container restarts the post checks tolerate.
DEFAULT_MAX_AGENT_RESTARTS = 1
