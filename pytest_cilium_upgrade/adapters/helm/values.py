"""The probe chart that has Helm compute the user-supplied values of an upgrade.

It has no defaults, so what it renders is exactly the user-supplied values; its one
template prints them as one YAML comment line, which no manifest parser reads. The client
renders it (:meth:`~.client.Helm.user_values`); :func:`probe_values` reads what it printed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pytest_cilium_upgrade.errors import HelmFailed

PROBE_RELEASE = "values-probe"
PROBE_CHART_YAML = "apiVersion: v2\nname: values-probe\nversion: 0.0.0\n"
PROBE_MARKER = "# values: "
PROBE_TEMPLATE = PROBE_MARKER + "{{ toJson .Values }}\n"


def probe_values(stdout: str, argv: Sequence[str]) -> dict[str, Any]:
    """The values the probe chart printed; :class:`HelmFailed` (naming no value) if none."""
    for line in stdout.splitlines():
        if line.startswith(PROBE_MARKER):
            try:
                data = json.loads(line[len(PROBE_MARKER) :])
            except ValueError:
                break
            if data is None:
                return {}
            if isinstance(data, dict):
                return data
            break
    # not the output itself: it holds the values
    raise HelmFailed(list(argv), 0, "the values probe printed no values mapping")
