"""The gate's pytest integration: settings, the session, items, hooks and reports."""
