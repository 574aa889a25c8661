"""Pre-upgrade checks of what the gate itself needs: the API server, access, the helm client."""

from __future__ import annotations

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.checks.params import CheckParams
from pytest_cilium_upgrade.checks.result import CheckResult, _fail, _pass, _warn
from pytest_cilium_upgrade.snapshot.model import ApiFailure, ClusterSnapshot
from pytest_cilium_upgrade.versions import parse_helm_client_version


def cluster_reachable_and_access_allowed(
    snapshot: ClusterSnapshot, params: CheckParams
) -> CheckResult:
    """The API server answers and our identity may read everything the checks read."""
    failure = snapshot.api_failure
    if failure is not None:
        if failure.headline:
            return _fail(failure.headline, [failure.message, *_advice(failure)])
        return _api_failure(failure)
    denied: list[str] = []
    unknown: list[str] = []
    for req in params.required_access:
        review = next((r for r in snapshot.access_reviews if r.answers(req)), None)
        where = f" in namespace {snapshot.namespace}" if req.namespaced else " (cluster-wide)"
        if review is None:
            unknown.append(f"not reviewed: {req.describe()}{where}")
        elif not review.allowed:
            reason = f" ({review.reason})" if review.reason else ""
            denied.append(f"forbidden: {req.describe()}{where}{reason}")
    server = f" (server {snapshot.server_version})" if snapshot.server_version else ""
    if denied:
        first = denied[0].removeprefix("forbidden: ")
        return _fail(
            f"cluster reachable{server} but access denied: cannot {first}",
            [*denied, *unknown, "grant these verbs to the identity running the gate"],
        )
    if snapshot.read_errors:
        # the checks that need the cluster are skipped on a partial read: this one fails,
        # or the gate would pass without having judged the cluster
        return _fail(
            f"cluster reachable{server} but not all of it could be read: {snapshot.read_errors[0]}",
            [
                *snapshot.read_errors,
                *unknown,
                "the checks that need the cluster judge nothing from a partial read; a read"
                " that timed out may need more time (--cilium-request-timeout)",
            ],
        )
    if unknown:
        return _warn(f"cluster reachable{server}; some access was not reviewed", unknown)
    return _pass(
        f"cluster reachable{server}; all {len(params.required_access)} required permissions granted"
    )


def _advice(failure: ApiFailure) -> list[str]:
    if failure.status is None:  # the kubeconfig could not be used
        return ["check the kubeconfig (--cilium-kubeconfig, $KUBECONFIG) and --cilium-context"]
    return [
        "the kubeconfig's server address reaches something else: a proxy, a load balancer"
        " or a wrong port; point it at the Kubernetes API server"
    ]


def _api_failure(failure: ApiFailure) -> CheckResult:
    error, status, no_answer = failure.message, failure.status, failure.no_answer
    if status == 429:
        return _fail(
            "API server is throttling the gate (429 Too Many Requests)",
            [
                error,
                "it refused every retry (API Priority and Fairness or max-inflight limits): run the"
                " gate when the control plane is less busy, or give its identity a FlowSchema"
                " with more concurrency",
            ],
        )
    if status is not None and status >= 500:
        return _fail(
            f"API server failing ({status})",
            [error, "it is reachable but answers errors: check its health and etcd's"],
        )
    if status is not None:
        return _fail(f"API server refused the first request ({status})", [error])
    if no_answer:
        return _fail(
            "API server did not answer within the request timeout",
            [
                error,
                "it was reached and asked, but sent no answer in time: it is up but slow or"
                " overloaded (API Priority and Fairness may be queuing the gate's requests);"
                " run the gate when the control plane is less busy, or allow more time with"
                " --cilium-request-timeout",
            ],
        )
    return _fail(
        "cluster unreachable", [error, "check the kubeconfig/context and that the API server is up"]
    )


def helm_client_supported(snapshot: ClusterSnapshot, params: CheckParams) -> CheckResult:
    """A helm client is installed and its major version is 3 or 4."""
    if snapshot.helm_error:
        return _fail("helm client not usable", [snapshot.helm_error, "install Helm 3 or 4"])
    if not snapshot.helm_version:
        return _fail("helm client version unknown", ["`helm version --short` printed nothing"])
    version = parse_helm_client_version(snapshot.helm_version)
    if version is None:
        return _fail(f"cannot read the helm version from {snapshot.helm_version.strip()!r}")
    if version.major not in defaults.HELM_SUPPORTED_MAJORS:
        supported = " or ".join(str(m) for m in defaults.HELM_SUPPORTED_MAJORS)
        return _fail(f"helm {version} is not supported (major version {supported} required)")
    return _pass(f"helm {version}")
