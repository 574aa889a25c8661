"""Checks of the Cilium workloads: agent and operator health, their versions, restarts.

Also the pod helpers the other checks share (where a pod runs, its problems, its images).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.checks.params import CheckParams
from pytest_cilium_upgrade.checks.result import CheckResult, _fail, _pass, _skip, _warn
from pytest_cilium_upgrade.snapshot.model import ClusterSnapshot, Pod, Workload
from pytest_cilium_upgrade.versions import Version, image_version, parse_image, same_image


def _agent_component(params: CheckParams) -> defaults.Component:
    return defaults.AGENT._replace(name=params.agent_daemonset)


def _operator_component(params: CheckParams) -> defaults.Component:
    return defaults.OPERATOR._replace(name=params.operator_deployment)


def _pod_where(pod: Pod) -> str:
    return f"pod {pod.name} on node {pod.node_name}" if pod.node_name else f"pod {pod.name}"


def _live_pods(pods: Iterable[Pod]) -> list[Pod]:
    return [p for p in pods if not p.terminal]


def _container_images(pod: Pod) -> list[tuple[str, str]]:
    return [(c.name, c.image) for c in (*pod.containers, *pod.init_containers)]


def _pod_problems(pods: Sequence[Pod]) -> list[str]:
    out: list[str] = []
    for pod in sorted(pods, key=lambda p: (p.node_name, p.name)):
        if pod.crash_looping:
            looping = [
                c
                for c in (*pod.init_containers, *pod.containers)
                if c.waiting_reason == "CrashLoopBackOff"
            ]
            for c in looping:
                last = ""
                if c.last_termination_reason or c.last_termination_exit_code is not None:
                    last = (
                        f", last exit {c.last_termination_reason or 'code'}"
                        f" ({c.last_termination_exit_code})"
                    )
                out.append(
                    f"{_pod_where(pod)}: container {c.name} is crash-looping"
                    f" (CrashLoopBackOff, {c.restart_count} restarts{last})"
                )
            continue
        problem = pod.problem()
        if problem:
            out.append(f"{_pod_where(pod)} not ready: {problem}")
    return out


def _images_by_container(pods: Sequence[Pod], container: str) -> dict[str, list[str]]:
    images: dict[str, list[str]] = {}
    for pod in pods:
        c = pod.container(container)
        if c is not None:
            images.setdefault(c.image, []).append(pod.name)
    return images


# --------------------------------------------------------------------------- checks


def _workload_health(
    snapshot: ClusterSnapshot, component: defaults.Component
) -> tuple[Workload | None, list[str], list[Pod], dict[str, list[str]]]:
    wl = snapshot.component_workload(component)
    pods = _live_pods(snapshot.component_pods(component))
    if wl is None:
        return None, [], pods, {}
    problems = [f"{wl.kind} {wl.name}: {p}" for p in wl.health_problems()]
    problems.extend(_pod_problems(pods))
    images = _images_by_container(pods, component.container)
    if len(images) > 1:
        problems.append(
            f"{len(images)} images for container {component.container}: "
            + "; ".join(f"{img} ({len(names)} pods)" for img, names in sorted(images.items()))
        )
    return wl, problems, pods, images


def _health_result(
    snapshot: ClusterSnapshot, component: defaults.Component, what: str
) -> CheckResult:
    wl, problems, pods, images = _workload_health(snapshot, component)
    if wl is None:
        return _fail(f"{what} {component.kind} {component.name} not found in {snapshot.namespace}")
    image = (
        next(iter(images)) if len(images) == 1 else wl.container_image(component.container) or "?"
    )
    counts = f"{wl.ready}/{wl.desired} ready"
    if problems:
        return _fail(f"{what} {wl.kind} {wl.name} unhealthy ({counts})", problems)
    return _pass(
        f"{what} {wl.kind} {wl.name} healthy: {counts}, up-to-date and available;"
        f" {len(pods)} pods on {image}",
        image=image,
    )


def agent_daemonset_healthy(snapshot: ClusterSnapshot, params: CheckParams) -> CheckResult:
    """Agent DaemonSet rolled out, all pods ready, none crash-looping, one image."""
    return _health_result(snapshot, _agent_component(params), "agent")


def operator_healthy(snapshot: ClusterSnapshot, params: CheckParams) -> CheckResult:
    """Operator Deployment rolled out, all pods ready, none crash-looping, one image."""
    return _health_result(snapshot, _operator_component(params), "operator")


def _component_images(
    snapshot: ClusterSnapshot, wl: Workload, component: defaults.Component
) -> list[tuple[str, str, str]]:
    """(where, container, image) for the workload template and every live pod."""
    out = [
        (f"{wl.kind} {wl.name} template {c.name}", c.name, c.image)
        for c in (*wl.containers, *wl.init_containers)
    ]
    for pod in _live_pods(snapshot.component_pods(component)):
        out.extend(
            (f"pod {pod.name} container {name}", name, img) for name, img in _container_images(pod)
        )
    return out


def components_on_one_version(snapshot: ClusterSnapshot, params: CheckParams) -> CheckResult:
    """Agent, operator and the optional components present all run one Cilium version."""
    comps = [
        _agent_component(params),
        _operator_component(params),
        *[c for c in defaults.VERSION_COMPONENTS if c.optional],
    ]
    versions: dict[Version, list[str]] = {}
    details: list[str] = []
    problems: list[str] = []
    unversioned: list[str] = []
    for comp in comps:
        wl = snapshot.component_workload(comp)
        if wl is None:
            if comp.optional:
                details.append(f"{comp.name}: disabled")
            else:
                problems.append(f"{comp.name}: {comp.kind} not found")
            continue
        entries = _component_images(snapshot, wl, comp)
        if comp.versioned_with_cilium:
            seen: dict[Version, int] = {}
            for where, _, img in entries:
                if parse_image(img).name not in defaults.CILIUM_VERSIONED_IMAGE_NAMES:
                    continue
                ver = image_version(img)
                if ver is None:
                    unversioned.append(f"{comp.name}: {where} image {img} carries no version tag")
                    continue
                seen[ver] = seen.get(ver, 0) + 1
                versions.setdefault(ver, []).append(f"{comp.name} {where}")
            shown = ", ".join(str(v) for v in sorted(seen)) or "unknown"
            details.append(f"{comp.name}: {shown}")
        else:
            template = wl.container_image(comp.container)
            imgs = sorted({img for _, name, img in entries if name == comp.container})
            if len(imgs) > 1:
                problems.append(f"{comp.name}: pods run {len(imgs)} images: {', '.join(imgs)}")
            pinned = params.expected_images.get(comp.name)
            if pinned and template and not same_image(pinned, template):
                problems.append(f"{comp.name}: runs {template}, expected {pinned}")
            details.append(f"{comp.name}: image {template or '?'} (own version scheme)")
    if len(versions) > 1:
        for ver in sorted(versions):
            places = versions[ver]
            sample = ", ".join(places[:3]) + (
                f" and {len(places) - 3} more" if len(places) > 3 else ""
            )
            problems.append(f"version {ver}: {sample}")
    if problems:
        shown = ", ".join(str(v) for v in sorted(versions))
        summary = (
            f"Cilium components on {len(versions)} versions ({shown}):"
            " upgrading only some of them is unsupported"
            if len(versions) > 1
            else "Cilium components not all on one version"
        )
        return _fail(summary, [*problems, *unversioned, *details])
    if not versions:
        return _fail("no Cilium version found on any component", [*unversioned, *details])
    (only,) = versions
    if unversioned:
        return _warn(
            f"Cilium components on {only}; some images carry no version", [*unversioned, *details]
        )
    return _pass(f"all Cilium components on {only}", details, version=str(only))


def _on_target(
    snapshot: ClusterSnapshot, params: CheckParams, component: defaults.Component, what: str
) -> CheckResult:
    target = params.target
    if target is None:
        return _skip("no target version given")
    wl, problems, pods, _ = _workload_health(snapshot, component)
    if wl is None:
        return _fail(f"{what} {component.kind} {component.name} not found")
    template = wl.container_image(component.container)
    if template is None or image_version(template) != target:
        problems.append(f"{wl.kind} {wl.name} template runs {template or '?'}, expected {target}")
    for pod in pods:
        c = pod.container(component.container)
        if c is None:
            continue
        if image_version(c.image) != target:
            problems.append(f"{_pod_where(pod)} runs {c.image}, expected {target}")
    if problems:
        return _fail(f"{what} not fully on {target} ({wl.ready}/{wl.desired} ready)", problems)
    return _pass(f"all {len(pods)} {what} pods run {target} and are ready; rollout complete")


def agents_run_target_version(snapshot: ClusterSnapshot, params: CheckParams) -> CheckResult:
    """Every agent pod runs the target image and is ready; the rollout is complete."""
    return _on_target(snapshot, params, _agent_component(params), "agent")


def operator_runs_target_version(snapshot: ClusterSnapshot, params: CheckParams) -> CheckResult:
    """Every operator pod runs the target image and is ready; the rollout is complete."""
    return _on_target(snapshot, params, _operator_component(params), "operator")


def agent_restarts_within_limit(snapshot: ClusterSnapshot, params: CheckParams) -> CheckResult:
    """No agent pod restarted more often than allowed since the upgrade."""
    pods = _live_pods(snapshot.component_pods(_agent_component(params)))
    if not pods:
        return _fail("no agent pods found")
    over: list[str] = []
    restarted: list[str] = []
    for pod in sorted(pods, key=lambda p: (p.node_name, p.name)):
        count = max(0, pod.restarts - params.baseline_restarts.get(pod.name, 0))
        if count == 0:
            continue
        reasons = sorted(
            {c.last_termination_reason for c in pod.containers if c.last_termination_reason}
        )
        why = f", last termination: {', '.join(reasons)}" if reasons else ""
        line = f"{_pod_where(pod)}: {count} restart(s) since the upgrade{why}"
        (over if count > params.max_agent_restarts else restarted).append(line)
    limit = params.max_agent_restarts
    if over:
        return _fail(
            f"{len(over)} agent pod(s) restarted more than {limit} time(s) since the upgrade",
            [*over, *restarted],
        )
    return _pass(f"no agent pod restarted more than {limit} time(s) ({len(pods)} pods)", restarted)
