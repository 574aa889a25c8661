#!/usr/bin/env bash
# Install the Cilium release to upgrade from on a fresh kind cluster, kube-proxy-free.
#
# kind-config.yaml creates the cluster without a CNI and without kube-proxy, so Cilium
# must replace kube-proxy and reach the API server directly: the control-plane node
# answers on <cluster name>-control-plane:6443 inside kind's Docker network.
# The reusable GitHub workflow and the GitLab component (cluster: kind) run this
# after creating the cluster.
#
#   GATE_FROM_VERSION         the chart version to install (required)
#   GATE_CLUSTER_NAME         kind cluster name (default cilium-upgrade)
#   GATE_API_SERVER_HOST      default <cluster name>-control-plane
#   GATE_API_SERVER_PORT      default 6443
#   GATE_CHART_REPOSITORY     the Helm repository added as "cilium"
#                             (default https://helm.cilium.io/)
#   GATE_INSTALL_VALUES_FILE  values for this install (relative to GATE_WORKSPACE)
#   GATE_NAMESPACE, GATE_RELEASE  default kube-system, cilium
#   GATE_INSTALL_TIMEOUT      default 10m
set -euo pipefail

from=${GATE_FROM_VERSION:?GATE_FROM_VERSION must be the Cilium chart version to install first}
from=${from#v}
cluster=${GATE_CLUSTER_NAME:-cilium-upgrade}
host=${GATE_API_SERVER_HOST:-$cluster-control-plane}
port=${GATE_API_SERVER_PORT:-6443}
repository=${GATE_CHART_REPOSITORY:-https://helm.cilium.io/}
namespace=${GATE_NAMESPACE:-kube-system}
release=${GATE_RELEASE:-cilium}
timeout=${GATE_INSTALL_TIMEOUT:-10m}
workspace=${GATE_WORKSPACE:-${GITHUB_WORKSPACE:-${CI_PROJECT_DIR:-$PWD}}}

# kubeProxyReplacement became a boolean in 1.15; older charts take "strict".
kpr=true
if [[ $(printf '%s\n' 1.15.0 "$from" | sort -V | head -n 1) != 1.15.0 ]]; then
    kpr=strict
fi

helm repo add cilium "$repository" --force-update
helm repo update cilium
args=(
    install "$release" cilium/cilium --version "$from" --namespace "$namespace"
    --set "kubeProxyReplacement=$kpr"
    --set "k8sServiceHost=$host" --set "k8sServicePort=$port"
    --wait --timeout "$timeout"
)
if [[ -n ${GATE_INSTALL_VALUES_FILE:-} ]]; then
    case $GATE_INSTALL_VALUES_FILE in
        /*) args+=(--values "$GATE_INSTALL_VALUES_FILE") ;;
        *) args+=(--values "$workspace/$GATE_INSTALL_VALUES_FILE") ;;
    esac
fi
helm "${args[@]}"
kubectl wait --for=condition=Ready nodes --all --timeout="$timeout"
kubectl --namespace "$namespace" rollout status daemonset/cilium --timeout="$timeout"
kubectl get nodes -o wide
