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
# The repository CHART_REF's ``cilium`` names, as Cilium's install guide adds it.
CHART_REPO_URL: Final = "https://helm.cilium.io/"

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
# What ``cilium preflight validate-cnp`` (``cilium-dbg`` from 1.15) logs, 1.12 to 1.20; the
# line formats of each version are described in checks/validator_log.py.

CNP_KIND: Final = "CiliumNetworkPolicy"
CCNP_KIND: Final = "CiliumClusterwideNetworkPolicy"
# Up to 1.17 the policy is a field named after its kind (``CiliumNetworkPolicy=ns/name``,
# ``CiliumClusterwideNetworkPolicy=name``); from 1.18 ``type=<kind> name=<ns/name|name>``.
CNP_KINDS: Final = (CNP_KIND, CCNP_KIND)
CNP_TYPE_FIELD: Final = "type"
CNP_NAME_FIELD: Final = "name"
CNP_ERROR_FIELDS: Final = ("error", "err")
# The validator package's lines about one policy name it by its bare name (no namespace).
CNP_NOTE_NAME_FIELDS: Final = {
    "ciliumNetworkPolicyName": CNP_KIND,
    "ciliumClusterwideNetworkPolicyName": CCNP_KIND,
}
# Notes logged once per run (``sync.Once``): they name only the first policy concerned.
CNP_ONCE_PER_RUN_NOTES: Final = (
    "with a match on the 'reserved:init' labels",  # 1.12.14+ to 1.19
    "with a wildcard to/from endpoint selector",  # 1.12.0 to 1.14.1
)

CNP_ALL_VALID: Final = "All CCNPs and CNPs valid!"
CNP_VALIDATION_OK: Final = "Validation OK!"
CNP_UNEXPECTED_VALIDATION_ERROR: Final = "Unexpected validation error"
# ``Found invalid <Kind>`` names only the first kind with an invalid policy (CNPs first).
CNP_FOUND_INVALID: Final = "Found invalid"
# How a run that stopped is wrapped (the hive's lifecycle, 1.13+): the cause is what counts.
CNP_FAILED_TO_START: Final = "failed to start: "
CNP_RUN_ERROR_WRAPPERS: Final = (
    "Start hook failed",
    "Failed to start hive",  # 1.17.17+
    "Start failed",  # 1.16.x, 1.17.0
)
CNP_K8S_NOT_CONFIGURED: Final = "Kubernetes client not configured"
# Exit status of a run that found invalid policies: logrus Fatal (exit 1) up to 1.17,
# Cilium's slog fatal (``os.Exit(-1)``, 255) from 1.18.
CNP_INVALID_EXIT_STATUS_LOGRUS: Final = 1
CNP_INVALID_EXIT_STATUS_SLOG: Final = 255
# Charts up to 1.15 give the cnp-validator a liveness probe that kills (SIGKILL, exit
# status 137) a validation still running after about 15 s.
CNP_LIVENESS_PROBE_LAST_CHART: Final = "1.15"
SIGKILL_EXIT_STATUS: Final = 137

# Identity-excluded labels: proposed upstream (cilium/cilium#46682), not released; both
# drafts' lines are recognised.
CNP_ALL_VALID_IDENTITY_EXCLUDED: Final = (
    "All CCNPs and CNPs are valid, but some policies reference identity-excluded labels!"
)
CNP_IDENTITY_EXCLUDED_SUMMARY: Final = "selectors referencing identity-excluded labels"
CNP_UNABLE_TO_PARSE: Final = "Unable to parse policy for identity-label check"
CNP_EXCLUDED_LABEL_WARNING: Final = "excluded from the security identity"

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
# What value paths the target chart no longer defines mean: a warning (warn) or a
# failure (strict).
ValuesCheckPolicy = Literal["warn", "strict"]
VALUES_CHECK_POLICIES: tuple[ValuesCheckPolicy, ...] = ("warn", "strict")

# --------------------------------------------------------------------------- chart values
# The files of a chart that say which values it defines.
CHART_VALUES_FILE: Final = "values.yaml"
CHART_SCHEMA_FILE: Final = "values.schema.json"
# Where the upgrade notes of a minor (``1.15``) are: removed and renamed values.
UPGRADE_NOTES_URL: Final = "https://docs.cilium.io/en/v{minor}/operations/upgrade/#upgrade-notes"
# Values whose contents the chart hands to Kubernetes as they are (``toYaml``), although
# its defaults give them some keys: whatever is set below them is not the chart's to
# define. Keys ending in one of FREE_FORM_VALUE_SUFFIXES (``podLabels``,
# ``serviceAnnotations``, ...) are free-form too.
FREE_FORM_VALUE_KEYS: Final = frozenset(
    {
        "affinity",
        "appArmorProfile",
        "nodeSelector",
        "podSecurityContext",
        "resources",
        "seLinuxOptions",
        "seccompProfile",
        "updateStrategy",
    }
)
FREE_FORM_VALUE_SUFFIXES: Final = ("annotations", "labels")
