"""pytest-cilium-upgrade: gate Cilium Helm upgrades on the upgrade guide's prerequisites."""

__version__ = "0.1.0"
