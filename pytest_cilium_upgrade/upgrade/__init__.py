"""The performed upgrade (``--cilium-perform-upgrade``): its steps, waits, lock and rollback."""
