"""The upgrade ClusterRole of deploy/rbac against the real charts' pre-flight ClusterRole.

Every gated upgrade installs the pre-flight release, which creates the ClusterRole
``cilium-pre-flight`` and binds it. RBAC escalation prevention lets an identity create
and bind a ClusterRole only with permissions it holds itself, and ``escalate`` cannot be
limited to a name for a create; so the upgrade identity holds what that ClusterRole
grants in every chart version the gate supports, and nothing else outside RBAC. The
rules are recomputed here from the real chart archives, so a chart version that adds a
rule fails this test instead of the upgrade.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from cilium_sandbox.charts import REAL_CHART_VERSIONS, default_helm
from cilium_sandbox.pytest_plugin import RealCharts

from pytest_cilium_upgrade import defaults

ROOT = Path(__file__).resolve().parents[2]
UPGRADE_ROLE = ROOT / "deploy" / "rbac" / "upgrade-role.yaml"
TEMPLATE = "templates/cilium-preflight/clusterrole.yaml"
PREFLIGHT_CLUSTERROLE = "cilium-pre-flight"
RBAC_GROUP = "rbac.authorization.k8s.io"
# The charts refuse Kubernetes older than 1.21; `helm template` assumes 1.20 by default.
KUBE_VERSION = "1.30.0"

# (apiGroup, resource, verb, resourceName or None): one permission.
Atom = tuple[str, str, str, str | None]


def _atoms(rules: Iterable[Mapping[str, Any]]) -> set[Atom]:
    atoms: set[Atom] = set()
    for rule in rules:
        assert not rule.get("nonResourceURLs"), rule
        names: list[str | None] = list(rule.get("resourceNames") or [None])
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    atoms.update((group, resource, verb, name) for name in names)
    return atoms


def _covers(rule: Mapping[str, Any], atom: Atom) -> bool:
    """Whether ``rule`` grants ``atom``, as the API server's RBAC rule matching does."""
    group, resource, verb, name = atom

    def has(values: Iterable[str], value: str) -> bool:
        return "*" in values or value in values

    names = rule.get("resourceNames") or []
    return (
        has(rule.get("apiGroups", []), group)
        and has(rule.get("resources", []), resource)
        and has(rule.get("verbs", []), verb)
        and (not names or (name is not None and name in names))
    )


def _upgrade_clusterrole() -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(UPGRADE_ROLE.read_text()) if d]
    (role,) = [
        d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "cilium-upgrade"
    ]
    return dict(role)


def _render_preflight_clusterrole(helm: Path, archive: Path, home: Path) -> dict[str, Any]:
    sets = [arg for item in defaults.PREFLIGHT_SET_VALUES for arg in ("--set", item)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELM_")}
    env.update(
        HELM_CACHE_HOME=str(home / "cache"),
        HELM_CONFIG_HOME=str(home / "config"),
        HELM_DATA_HOME=str(home / "data"),
    )
    done = subprocess.run(
        [
            str(helm),
            "template",
            defaults.DEFAULT_PREFLIGHT_RELEASE,
            str(archive),
            "--namespace",
            "kube-system",
            "--kube-version",
            KUBE_VERSION,
            *sets,
            "--show-only",
            TEMPLATE,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"helm template {archive}: {done.stderr}"
    (role,) = [d for d in yaml.safe_load_all(done.stdout) if d]
    return dict(role)


@pytest.fixture(scope="module")
def preflight_rules(
    cilium_charts: RealCharts, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, set[Atom]]:
    """Version -> the permissions its pre-flight ClusterRole grants (rendered by helm)."""
    helm = default_helm()
    if helm is None:
        pytest.skip("no helm binary (the sandbox's Helm 3, or helm on PATH) to render charts")
    home = tmp_path_factory.mktemp("helm-home")
    rendered: dict[str, set[Atom]] = {}
    for version, archive in cilium_charts.uncounted().items():
        role = _render_preflight_clusterrole(helm, archive, home)
        assert role["kind"] == "ClusterRole", version
        assert role["metadata"]["name"] == PREFLIGHT_CLUSTERROLE, version
        rendered[version] = _atoms(role["rules"])
    return rendered


def test_every_supported_chart_version_is_rendered(preflight_rules: dict[str, set[Atom]]) -> None:
    assert sorted(preflight_rules) == sorted(REAL_CHART_VERSIONS)
    for version, atoms in preflight_rules.items():
        assert atoms, version


def test_upgrade_clusterrole_holds_every_preflight_permission(
    preflight_rules: dict[str, set[Atom]],
) -> None:
    rules = _upgrade_clusterrole()["rules"]
    missing = {
        version: sorted(
            (atom for atom in atoms if not any(_covers(r, atom) for r in rules)), key=str
        )
        for version, atoms in preflight_rules.items()
    }
    missing = {version: atoms for version, atoms in missing.items() if atoms}
    assert missing == {}, (
        "the upgrade ClusterRole in deploy/rbac/upgrade-role.yaml lacks permissions the "
        "pre-flight ClusterRole grants: installing it would be refused (RBAC escalation "
        f"prevention): {missing}"
    )


def test_upgrade_clusterrole_grants_outside_rbac_exactly_the_preflight_union(
    preflight_rules: dict[str, set[Atom]],
) -> None:
    """No more than needed: the rules outside RBAC are the union, with no wildcard."""
    union = set().union(*preflight_rules.values())
    rules = [r for r in _upgrade_clusterrole()["rules"] if r["apiGroups"] != [RBAC_GROUP]]
    for rule in rules:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key], rule
    granted = _atoms(rules)
    assert granted - union == set(), "granted, but no pre-flight ClusterRole needs it"
    assert union - granted == set(), "needed by a pre-flight ClusterRole, not granted"


def test_upgrade_clusterrole_limits_its_rbac_rules_to_ciliums_names() -> None:
    """The RBAC rules: read and create ClusterRoles and bindings; change, escalate and
    bind only Cilium's by name. `escalate` and `bind` never without names: holding the
    rules, not `escalate`, is what allows creating the pre-flight's ClusterRole."""
    rbac = [r for r in _upgrade_clusterrole()["rules"] if RBAC_GROUP in r["apiGroups"]]
    assert rbac
    changeable: set[str] = set()
    for rule in rbac:
        assert rule["apiGroups"] == [RBAC_GROUP], rule
        assert set(rule["resources"]) <= {"clusterroles", "clusterrolebindings"}, rule
        assert "*" not in rule["verbs"], rule
        if {"update", "patch", "delete"} & set(rule["verbs"]):
            assert PREFLIGHT_CLUSTERROLE in rule.get("resourceNames", []), rule
            changeable |= set(rule["resourceNames"])
    for rule in rbac:
        if {"escalate", "bind"} & set(rule["verbs"]):
            assert rule["resources"] == ["clusterroles"], rule
            names = set(rule.get("resourceNames") or [])
            assert names, f"escalate/bind without names: {rule}"
            assert names <= changeable - {PREFLIGHT_CLUSTERROLE}, rule


def test_covers_matches_like_the_api_server() -> None:
    rule = {"apiGroups": ["cilium.io"], "resources": ["ciliumnodes"], "verbs": ["get"]}
    assert _covers(rule, ("cilium.io", "ciliumnodes", "get", None))
    assert not _covers(rule, ("cilium.io", "ciliumnodes/status", "get", None))
    assert not _covers(rule, ("cilium.io", "ciliumnodes", "update", None))
    assert not _covers(rule, ("", "ciliumnodes", "get", None))
    named = {**rule, "resourceNames": ["a"]}
    assert _covers(named, ("cilium.io", "ciliumnodes", "get", "a"))
    assert not _covers(named, ("cilium.io", "ciliumnodes", "get", None))
    wild = {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}
    assert _covers(wild, ("x", "y", "z", None))
