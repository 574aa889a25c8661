"""Keep secrets out of every message the gate prints.

Secrets reach the gate from Helm values (the values snapshot, the live values, the
upgrade's values files and ``--set`` items) and from the kubeconfig; each route has a
collector in :mod:`.collect`. Which Helm values are secret is said in :mod:`.rules`.
A :class:`Redactor` (:mod:`.redactor`) replaces the secrets found, and whatever has
the shape of a credential, with ``[REDACTED]``.

This package re-exports what the other packages use.
"""

from __future__ import annotations

from pytest_cilium_upgrade.redact.collect import (
    Secrets,
    kubeconfig_secrets,
    set_item_secrets,
    url_without_userinfo,
    values_secrets,
)
from pytest_cilium_upgrade.redact.redactor import REDACTED, Redactor, redact

__all__ = [
    "REDACTED",
    "Redactor",
    "Secrets",
    "kubeconfig_secrets",
    "redact",
    "set_item_secrets",
    "url_without_userinfo",
    "values_secrets",
]
