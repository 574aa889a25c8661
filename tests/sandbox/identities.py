"""The shipped RBAC roles moved into a test's namespace, and kubeconfigs that hold
nothing but a ServiceAccount token: the restricted identities the gate runs as."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from cilium_sandbox.cluster import Sandbox

RBAC = Path(__file__).resolve().parents[2] / "deploy" / "rbac"
CLUSTER_SCOPED = ("ClusterRole", "ClusterRoleBinding")


def shipped_roles(files: tuple[str, ...]) -> list[dict[str, Any]]:
    """The documents of ``deploy/rbac/<files>``, as shipped."""
    return [doc for name in files for doc in yaml.safe_load_all((RBAC / name).read_text()) if doc]


def into_namespace(docs: list[dict[str, Any]], namespace: str) -> list[str]:
    """Move the roles from kube-system into ``namespace``, in place. Cluster-scoped
    objects get the namespace as a suffix, so tests never share them; returns them as
    ``kind/name``, for deleting afterwards."""
    cluster_objects = []
    for doc in docs:
        meta = doc["metadata"]
        if doc["kind"] in CLUSTER_SCOPED:
            meta["name"] = f"{meta['name']}-{namespace}"
            cluster_objects.append(f"{doc['kind'].lower()}/{meta['name']}")
        else:
            assert meta["namespace"] == "kube-system"
            meta["namespace"] = namespace
        ref = doc.get("roleRef")
        if ref is not None and ref["kind"] == "ClusterRole":
            ref["name"] = f"{ref['name']}-{namespace}"
        for subject in doc.get("subjects", ()):
            assert subject["namespace"] == "kube-system"
            subject["namespace"] = namespace
    return cluster_objects


def token_kubeconfig(
    sandbox: Sandbox, account: str, namespace: str, path: Path
) -> tuple[Path, str]:
    """A kubeconfig (mode 0600) holding only a 15-minute token of the ServiceAccount
    ``account``; returns it and the token."""
    token = sandbox.kubectl("create", "token", account, "-n", namespace, "--duration=15m").strip()
    admin = yaml.safe_load(sandbox.kubeconfig.read_text())
    cluster = admin["clusters"][0]
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": account, "user": {"token": token}}],
                "contexts": [
                    {
                        "name": account,
                        "context": {
                            "cluster": cluster["name"],
                            "user": account,
                            "namespace": namespace,
                        },
                    }
                ],
                "current-context": account,
            }
        )
    )
    path.chmod(0o600)
    return path, token
