"""The upgrade lock: a coordination.k8s.io Lease taken, renewed and released."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pytest_cilium_upgrade.adapters.kube.client import _Core, _q
from pytest_cilium_upgrade.errors import ApiError, GateError, LockHeld, NotFound
from pytest_cilium_upgrade.snapshot.model.jsondata import JSONDict

LEASES = "leases.coordination.k8s.io"


class _LeaseVerbs(_Core):
    """The upgrade lock's Lease: taken, renewed, released."""

    def acquire_lease(self, namespace: str, name: str, holder: str, duration_s: int) -> None:
        """Take (or renew) the Lease ``name`` for ``holder``; raise LockHeld if another holds it.

        An expired lease (renewTime + leaseDurationSeconds in the past) is taken over.
        Updates carry the resourceVersion read, so two takers cannot both win.
        """
        for _ in range(3):
            now = _now()
            lease = self._read_lease(namespace, name)
            spec: JSONDict = {
                "holderIdentity": holder,
                "leaseDurationSeconds": duration_s,
                "renewTime": _micro(now),
            }
            if lease is None:
                body = {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": name, "namespace": namespace},
                    "spec": {**spec, "acquireTime": _micro(now)},
                }
                try:
                    self._get_json(
                        "create leases",
                        "create",
                        LEASES,
                        namespace,
                        "POST",
                        _lease_path(namespace),
                        body=body,
                    )
                    return
                except ApiError as exc:
                    if exc.status == 409:  # created by someone else meanwhile: look again
                        continue
                    raise
            current = lease.get("spec") or {}
            other = current.get("holderIdentity")
            expires = _lease_expiry(current)
            if other and other != holder and expires is not None and expires > now:
                raise LockHeld(namespace, name, str(other), expires)
            if other != holder:
                spec["acquireTime"] = _micro(now)
            body = {**lease, "spec": {**current, **spec}}
            try:
                self._get_json(
                    "update leases",
                    "update",
                    LEASES,
                    namespace,
                    "PUT",
                    _lease_path(namespace, name),
                    body=body,
                )
                return
            except ApiError as exc:
                if exc.status == 409:  # changed since we read it: read again
                    continue
                raise
        raise GateError(f"could not take Lease {namespace}/{name}: it kept changing")

    def release_lease(self, namespace: str, name: str, holder: str) -> bool:
        """Delete the Lease if ``holder`` still holds it; True when it was ours and is gone."""
        lease = self._read_lease(namespace, name)
        if lease is None or (lease.get("spec") or {}).get("holderIdentity") != holder:
            return False
        version = (lease.get("metadata") or {}).get("resourceVersion")
        try:
            self._get_json(
                "delete leases",
                "delete",
                LEASES,
                namespace,
                "DELETE",
                _lease_path(namespace, name),
                body={"preconditions": {"resourceVersion": version}},
            )
        except (NotFound, ApiError):
            return False
        return True

    def _read_lease(self, namespace: str, name: str) -> JSONDict | None:
        try:
            return self._get_json(
                "get leases", "get", LEASES, namespace, "GET", _lease_path(namespace, name)
            )
        except NotFound:
            return None


def _lease_path(namespace: str, *name: str) -> str:
    return "/".join(
        ["/apis/coordination.k8s.io/v1/namespaces", _q(namespace), "leases", *map(_q, name)]
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _micro(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _lease_expiry(spec: JSONDict) -> datetime | None:
    renewed = spec.get("renewTime") or spec.get("acquireTime")
    duration = spec.get("leaseDurationSeconds")
    if not renewed or not isinstance(duration, int):
        return None
    try:
        moment = datetime.fromisoformat(str(renewed).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment + timedelta(seconds=duration)
