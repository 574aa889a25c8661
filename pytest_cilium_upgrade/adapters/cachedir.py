"""Where pytest-cilium-upgrade keeps what it can reuse between runs."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$PYTEST_CILIUM_UPGRADE_CACHE``, else ``$XDG_CACHE_HOME/pytest-cilium-upgrade``."""
    explicit = os.environ.get("PYTEST_CILIUM_UPGRADE_CACHE")
    if explicit:
        return Path(explicit).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser().resolve() / "pytest-cilium-upgrade"
