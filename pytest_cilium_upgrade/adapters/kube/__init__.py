"""The Kubernetes adapter: the only package that imports the ``kubernetes`` client.

Reads come back as plain JSON dicts (the API's own camelCase form, decoded straight
from the response body without building client model objects), which is what the
snapshot model consumes. Requests go through the client's ``ApiClient`` (kubeconfig
credentials, TLS, exec plugins, token refresh) by path; the generated per-endpoint
API classes are not used for them: importing those builds validation for every API
type, which took most of a second of each gate run, and we would only ask them for
raw bodies. Only the workload watch of the performed upgrade still goes through
``AppsV1Api`` and the client's watch helper, created on first use.

Every failure is translated here, once, into the gate's error hierarchy; transient
answers (429, 5xx, connection resets) are retried a bounded number of times with
backoff, honouring ``Retry-After``. The request timeout bounds a whole request, its
body included, as kubectl's ``--request-timeout`` does: urllib3's read timeout bounds
each socket read only, so a server or proxy that trickles a body would outlast it.

The modules: :mod:`.client` (the connection and its requests), :mod:`.reads`,
:mod:`.watch` and :mod:`.lease` (the verbs, mixins of :class:`Kube`), :mod:`.paging`
(LISTs in pages), :mod:`.deadlines` (the whole-request deadline), :mod:`.errors` (what
an error answer said), :mod:`.discovery` (``.Capabilities.APIVersions``) and
:mod:`.kubeconfig` (loading it, its exec credential plugin run by us).
"""

from __future__ import annotations

from pytest_cilium_upgrade.adapters.kube.deadlines import Deadlines, RequestLog
from pytest_cilium_upgrade.adapters.kube.discovery import (
    DISCOVERY_ACCEPT,
    aggregated_api_versions,
    plain_group_versions,
    resource_list_api_versions,
)
from pytest_cilium_upgrade.adapters.kube.kubeconfig import CredentialPlugin
from pytest_cilium_upgrade.adapters.kube.lease import LEASES, _LeaseVerbs
from pytest_cilium_upgrade.adapters.kube.reads import RECORDS_FIRST_LIMIT, _Reads
from pytest_cilium_upgrade.adapters.kube.watch import _WatchVerbs

__all__ = [
    "DISCOVERY_ACCEPT",
    "LEASES",
    "RECORDS_FIRST_LIMIT",
    "CredentialPlugin",
    "Deadlines",
    "Kube",
    "RequestLog",
    "aggregated_api_versions",
    "plain_group_versions",
    "resource_list_api_versions",
]


class Kube(_Reads, _WatchVerbs, _LeaseVerbs):
    """Reads (and, for the upgrade flow, watches) the cluster of one kubeconfig context."""
