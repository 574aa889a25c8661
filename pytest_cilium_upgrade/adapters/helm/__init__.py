"""The Helm adapter: the ``helm`` client (Helm 3 and 4), chart sources, Helm's release
records, and the per-binary version cache."""
