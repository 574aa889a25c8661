"""Discovery documents into Helm's ``.Capabilities.APIVersions``."""

from __future__ import annotations

from pytest_cilium_upgrade.snapshot.model.jsondata import JSONDict

# Aggregated discovery first (v2, then v2beta1), the plain lists where neither is served:
# the order of client-go's discovery client.
DISCOVERY_ACCEPT = ",".join(
    (
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
        "application/json",
    )
)


def _group_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


def aggregated_api_versions(document: JSONDict) -> set[str]:
    """``group/version`` and ``group/version/Kind`` of an ``APIGroupDiscoveryList``.

    Kinds are the resources' and subresources' ``responseKind``; a resource without one
    adds no kind, and a version whose ``freshness`` is ``Stale`` adds nothing (client-go
    reports it as failed discovery and Helm goes on without it).
    """
    found: set[str] = set()
    for group in document.get("items") or []:
        name = str((group.get("metadata") or {}).get("name") or "")
        for version in group.get("versions") or []:
            if version.get("freshness") == "Stale" or not version.get("version"):
                continue
            group_version = _group_version(name, str(version["version"]))
            found.add(group_version)
            for resource in version.get("resources") or []:
                kinds = [resource.get("responseKind")]
                kinds += [sub.get("responseKind") for sub in resource.get("subresources") or []]
                for kind in kinds:
                    if isinstance(kind, dict) and kind.get("kind"):
                        found.add(f"{group_version}/{kind['kind']}")
    return found


def plain_group_versions(document: JSONDict) -> list[str]:
    """The group versions of a plain ``APIVersions`` (``/api``) or ``APIGroupList`` (``/apis``)."""
    if document.get("kind") == "APIVersions" or "versions" in document:
        return [str(v) for v in document.get("versions") or [] if v]
    return [
        str(v["groupVersion"])
        for group in document.get("groups") or []
        for v in group.get("versions") or []
        if v.get("groupVersion")
    ]


def resource_list_api_versions(document: JSONDict) -> set[str]:
    """``group/version/Kind`` of every resource (and subresource) of an ``APIResourceList``."""
    group_version = str(document.get("groupVersion") or "")
    if not group_version:
        return set()
    return {
        f"{group_version}/{resource['kind']}"
        for resource in document.get("resources") or []
        if resource.get("kind")
    }
