"""The pre-flight checks: which agent nodes the pre-flight covers, its image, its removal.

Coverage decides, with :mod:`~pytest_cilium_upgrade.checks.scheduling`, which nodes
running an agent pod the pre-flight DaemonSet can be scheduled on at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.checks.params import CheckParams
from pytest_cilium_upgrade.checks.result import CheckResult, _fail, _pass, _skip, _warn
from pytest_cilium_upgrade.checks.scheduling import (
    Ineligibility,
    NodeEligibility,
    affinity_domain_counts,
    evaluate_node,
)
from pytest_cilium_upgrade.checks.workloads import (
    _agent_component,
    _component_images,
    _live_pods,
    _pod_problems,
    _pod_where,
)
from pytest_cilium_upgrade.snapshot.model import ClusterSnapshot, Pod
from pytest_cilium_upgrade.versions import Version, image_version, parse_image


def _preflight_install_hint(snapshot: ClusterSnapshot, params: CheckParams) -> str:
    version = "<target>" if params.target is None else str(params.target)
    sets = " ".join(f"--set {s}" for s in defaults.PREFLIGHT_SET_VALUES)
    return (
        f"install it: helm install {params.preflight_release} {defaults.CHART_REF}"
        f" --version {version} -n {snapshot.namespace} {sets}"
    )


def _fix_for(reason: Ineligibility) -> str:
    if reason.kind in ("taint", "unschedulable"):
        return defaults.PREFLIGHT_TOLERATE_ALL_FIX
    if reason.kind == "node-selector":
        return f"adjust {defaults.PREFLIGHT_NODE_SELECTOR_VALUE}"
    return f"adjust {defaults.PREFLIGHT_AFFINITY_VALUE}"


@dataclass(frozen=True)
class Coverage:
    """Pre-flight coverage of the nodes running an agent pod."""

    agent_nodes: tuple[str, ...]
    agent_pods_on_eligible: int
    eligible: tuple[str, ...]
    ineligible: tuple[NodeEligibility, ...]
    ready_on_eligible: tuple[str, ...]
    missing: tuple[str, ...]


def preflight_coverage(snapshot: ClusterSnapshot, params: CheckParams) -> Coverage | None:
    """Which agent nodes the pre-flight DaemonSet can run on, and which have a ready pod."""
    ds = snapshot.workload("DaemonSet", defaults.PREFLIGHT_DAEMONSET)
    if ds is None:
        return None
    agent_pods = [
        p for p in _live_pods(snapshot.component_pods(_agent_component(params))) if p.scheduled
    ]
    agent_nodes = sorted({p.node_name for p in agent_pods})
    node_map = {n.name: n for n in snapshot.nodes}
    # the pods per topology domain are the same for every node: count them once
    affinity_counts = affinity_domain_counts(
        ds.scheduling.required_pod_affinity,
        pods=snapshot.pods,
        nodes=node_map,
        pod_namespace=ds.namespace,
    )
    eligible: list[str] = []
    ineligible: list[NodeEligibility] = []
    for name in agent_nodes:
        node = node_map.get(name)
        if node is None:
            eligible.append(name)  # unknown node: expect a pre-flight pod there
            continue
        verdict = evaluate_node(
            ds.scheduling,
            node,
            daemonset=True,
            pods=snapshot.pods,
            nodes=node_map,
            pod_namespace=ds.namespace,
            pod_labels=ds.template_labels,
            affinity_counts=affinity_counts,
        )
        if verdict.eligible:
            eligible.append(name)
        else:
            ineligible.append(verdict)
    pre_pods = _live_pods(snapshot.pods_matching(defaults.PREFLIGHT_SELECTOR))
    ready_nodes = {
        p.node_name for p in pre_pods if p.scheduled and not p.deleting and _preflight_pod_ready(p)
    }
    ready_on_eligible = sorted(n for n in eligible if n in ready_nodes)
    missing = sorted(n for n in eligible if n not in ready_nodes)
    eligible_set = set(eligible)
    return Coverage(
        agent_nodes=tuple(agent_nodes),
        agent_pods_on_eligible=sum(1 for p in agent_pods if p.node_name in eligible_set),
        eligible=tuple(eligible),
        ineligible=tuple(ineligible),
        ready_on_eligible=tuple(ready_on_eligible),
        missing=tuple(missing),
    )


def _preflight_pod_ready(pod: Pod) -> bool:
    # The optional fqdn-precache container never turns Ready (its probe path is
    # misspelled upstream), so readiness is the pre-flight container's own.
    main = pod.container(defaults.PREFLIGHT_CONTAINER)
    if main is not None:
        return main.ready
    return pod.ready


def preflight_covers_agent_nodes(snapshot: ClusterSnapshot, params: CheckParams) -> CheckResult:
    """READY pre-flight pods equal the agent pods on the nodes the pre-flight can run on."""
    coverage = preflight_coverage(snapshot, params)
    if coverage is None:
        return _fail(
            f"pre-flight DaemonSet {defaults.PREFLIGHT_DAEMONSET} not found"
            f" in {snapshot.namespace}",
            [_preflight_install_hint(snapshot, params)],
        )
    if not coverage.agent_nodes:
        return _fail(f"no running agent pods ({defaults.AGENT_SELECTOR}) to compare with")
    pre_pods = _live_pods(snapshot.pods_matching(defaults.PREFLIGHT_SELECTOR))
    pods_by_node: dict[str, list[Pod]] = {}
    for pod in pre_pods:
        pods_by_node.setdefault(pod.node_name, []).append(pod)

    failures: list[str] = []
    for name in coverage.missing:
        pods = pods_by_node.get(name, [])
        if not pods:
            failures.append(f"node {name}: no pre-flight pod")
        for pod in pods:
            failures.append(
                f"node {name}: pre-flight pod {pod.name}: {pod.problem() or 'not ready'}"
            )

    uncovered: list[str] = []
    for verdict in coverage.ineligible:
        fixes = sorted({_fix_for(r) for r in verdict.reasons})
        uncovered.append(f"node {verdict.node}: {verdict.reason_text()} (fix: {'; '.join(fixes)})")

    elsewhere: list[str] = []
    agent_nodes = set(coverage.agent_nodes)
    for pod in sorted(pre_pods, key=lambda p: (p.node_name, p.name)):
        if pod.node_name in agent_nodes:
            continue
        problem = pod.problem()
        if problem:
            elsewhere.append(
                f"node {pod.node_name or '?'} (no agent pod): pre-flight pod {pod.name}: {problem}"
            )

    n_ready = len(coverage.ready_on_eligible)
    total_agents = len(
        [p for p in _live_pods(snapshot.component_pods(_agent_component(params))) if p.scheduled]
    )
    head = (
        f"pre-flight READY {n_ready} for {coverage.agent_pods_on_eligible} agent pods on the"
        f" {len(coverage.eligible)} nodes it can run on ({total_agents} agent pods in all)"
    )
    props = {
        "agent_nodes": str(len(coverage.agent_nodes)),
        "covered_nodes": str(n_ready),
        "uncovered_nodes": ",".join(v.node for v in coverage.ineligible),
    }
    if failures:
        return _fail(head, [*failures, *uncovered, *elsewhere], **props)
    if coverage.ineligible:
        names = ", ".join(v.node for v in coverage.ineligible)
        summary = (
            f"{head}; {len(coverage.ineligible)} agent node(s) cannot run the pre-flight"
            f" and get no image pre-pull: {names}"
        )
        reasons = {v.reason_text() for v in coverage.ineligible}
        if len(reasons) == 1:
            fixes = sorted({_fix_for(r) for v in coverage.ineligible for r in v.reasons})
            summary += f" ({reasons.pop()}; fix: {'; '.join(fixes)})"
        details = [*uncovered, *elsewhere]
        if params.coverage_policy == "strict":
            return _fail(summary + " [strict coverage policy]", details, **props)
        return _warn(summary, details, **props)
    return _pass(f"{head}: every agent node covered", elsewhere, **props)


def preflight_runs_target_image(snapshot: ClusterSnapshot, params: CheckParams) -> CheckResult:
    """Pre-flight DaemonSet and Deployment (template and pods) run the target version's image."""
    target = params.target
    if target is None and snapshot.preflight_release is not None:
        target = Version.try_parse(snapshot.preflight_release.chart_version)
    if target is None:
        return _skip("no target version given")
    ds = snapshot.workload("DaemonSet", defaults.PREFLIGHT_DAEMONSET)
    if ds is None:
        return _fail(
            f"pre-flight DaemonSet {defaults.PREFLIGHT_DAEMONSET} not found",
            [_preflight_install_hint(snapshot, params)],
        )
    entries: list[tuple[str, str, str]] = []
    for comp in defaults.PREFLIGHT_COMPONENTS:
        wl = snapshot.component_workload(comp)
        if wl is None:
            continue
        entries.extend(_component_images(snapshot, wl, comp))
    wrong: list[str] = []
    checked = 0
    for where, _, img in entries:
        if parse_image(img).name not in defaults.CILIUM_VERSIONED_IMAGE_NAMES:
            continue
        checked += 1
        ver = image_version(img)
        if ver != target:
            wrong.append(f"{where}: {img} (expected {target})")
    if wrong:
        return _fail(f"pre-flight does not run {target}: {len(wrong)} container(s) differ", wrong)
    if checked == 0:
        return _fail("no Cilium image found in the pre-flight workloads")
    return _pass(f"pre-flight runs {target} ({checked} containers checked)")


def preflight_deployment_ready(snapshot: ClusterSnapshot, params: CheckParams) -> CheckResult:
    """The pre-flight Deployment that validates policies is READY 1/1."""
    wl = snapshot.workload("Deployment", defaults.PREFLIGHT_DEPLOYMENT)
    if wl is None:
        if snapshot.workload("DaemonSet", defaults.PREFLIGHT_DAEMONSET) is not None:
            return _warn(
                f"pre-flight Deployment {defaults.PREFLIGHT_DEPLOYMENT} absent"
                " (preflight.validateCNPs=false): policies are not validated"
            )
        return _fail(
            f"pre-flight Deployment {defaults.PREFLIGHT_DEPLOYMENT} not found",
            [_preflight_install_hint(snapshot, params)],
        )
    desired = wl.desired or 1
    if wl.ready >= desired and wl.desired > 0:
        return _pass(f"pre-flight Deployment {wl.name} READY {wl.ready}/{wl.desired}")
    pods = _live_pods(snapshot.pods_matching(defaults.PREFLIGHT_DEPLOYMENT_SELECTOR))
    details = _pod_problems(pods) or ["no validator pod found"]
    details.append(
        f"read the validator: kubectl logs -n {snapshot.namespace}"
        f" deployment/{defaults.PREFLIGHT_DEPLOYMENT} -c {defaults.CNP_VALIDATOR_CONTAINER}"
        " --previous"
    )
    return _fail(f"pre-flight Deployment {wl.name} READY {wl.ready}/{wl.desired}", details)


def preflight_removed(snapshot: ClusterSnapshot, params: CheckParams) -> CheckResult:
    """The pre-flight release, its workloads and its pods are gone."""
    left: list[str] = []
    rel = snapshot.preflight_release
    if rel is not None and rel.status != defaults.HELM_STATUS_UNINSTALLED:
        left.append(
            f"release {rel.name} still installed ({rel.status}):"
            f" helm uninstall {rel.name} -n {snapshot.namespace}"
        )
    for comp in defaults.PREFLIGHT_COMPONENTS:
        if snapshot.component_workload(comp) is not None:
            left.append(f"{comp.kind} {comp.name} still present")
        for pod in snapshot.component_pods(comp):
            state = "terminating" if pod.deleting else pod.phase
            left.append(f"{_pod_where(pod)} still present ({state})")
    if left:
        return _fail("pre-flight not cleaned up", left)
    return _pass(f"pre-flight release {params.preflight_release} and its pods are gone")
