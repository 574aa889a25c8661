"""Adapters: all I/O of the gate. ``kube`` is the only module that talks to the Kubernetes
API, ``helm`` the only package that runs ``helm``; ``files`` writes what the gate keeps."""
