#!/usr/bin/env bash
# The Cilium upgrade procedure the gate replaces, as a person runs it from the upgrade
# guide (Helm flavour), in bash: save the values, install the pre-flight release of the
# target, wait for it, read the CNP validator's verdict, remove the pre-flight, upgrade
# with the saved values, wait for the agent and the operator.
#
#   benchmarks/manual_procedure.sh CHART TARGET_VERSION [WORKDIR]
#
# CHART is what `helm install`/`helm upgrade` take (cilium/cilium, a .tgz, a directory);
# helm and kubectl are those on PATH, against $KUBECONFIG. Release `cilium` and
# `cilium-preflight` in kube-system, as in the guide. Exits non-zero at the first step
# that fails, as `set -e` makes a person stop. The benchmark procedure_bench.py runs it.
set -euo pipefail

chart=${1:?usage: manual_procedure.sh CHART TARGET_VERSION [WORKDIR]}
version=${2:?usage: manual_procedure.sh CHART TARGET_VERSION [WORKDIR]}
workdir=${3:-.}
ns=kube-system
timeout=${ROLLOUT_TIMEOUT:-300s}
values=$workdir/cilium-values.yaml

helm get values cilium --namespace="$ns" -o yaml >"$values"

helm install cilium-preflight "$chart" --version "$version" --namespace="$ns" \
    --set preflight.enabled=true --set agent=false --set operator.enabled=false

kubectl rollout status --namespace="$ns" daemonset/cilium-pre-flight-check --timeout="$timeout"
kubectl rollout status --namespace="$ns" deployment/cilium-pre-flight-check --timeout="$timeout"

kubectl logs --namespace="$ns" deployment/cilium-pre-flight-check -c cnp-validator \
    | grep "All CCNPs and CNPs valid!"

helm uninstall cilium-preflight --namespace="$ns"

helm upgrade cilium "$chart" --version "$version" --namespace="$ns" -f "$values"

kubectl rollout status --namespace="$ns" daemonset/cilium --timeout="$timeout"
kubectl rollout status --namespace="$ns" deployment/cilium-operator --timeout="$timeout"
