"""A real Kubernetes control plane on loopback, built from the upstream Go modules.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler are the upstream
programs; kwok simulates the kubelets; Helm is the real client. See ``cluster.py``.
"""
