#!/usr/bin/env bash
# The job of the GitLab CI/CD component (templates/cilium-upgrade.yml), after its
# bootstrap fetched the gate's source: install the gate, the tools, and (cluster: kind)
# the cluster and the Cilium release to upgrade from, then exec the gate.
#
#   GATE_CLUSTER     kind: a throw-away kind cluster in the job's docker:dind service
#                    (privileged Docker executor); kubeconfig: the cluster of
#                    $KUBECONFIG (a file-type CI/CD variable, or the GitLab agent's)
#   GATE_SOURCE      the gate's source tree (set by the bootstrap)
#   GATE_PYTHON      a Python that already has the gate (skips its installation)
#   GATE_HELM_VERSION, GATE_KIND_VERSION, GATE_KUBECTL_VERSION
#                    tools downloaded (checked against their published SHA-256 sums)
#                    when the image has none; kubectl defaults to the node image's
#                    Kubernetes version
#   GATE_NODE_IMAGE, GATE_KIND_CONFIG, GATE_CLUSTER_NAME, GATE_FROM_VERSION,
#   GATE_INSTALL_VALUES_FILE
#                    cluster: kind only (GATE_KIND_CONFIG empty: the gate's own
#                    kind-config.yaml)
#   GATE_CHART, GATE_CHART_REPOSITORY
#                    a repository chart reference such as cilium/cilium gets its
#                    repository added to helm under the reference's first part
# and the GATE_* inputs of run-gate.sh, which this script ends in.
set -euo pipefail
exec </dev/null

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export GATE_HOME=${GATE_HOME:-/tmp/cilium-upgrade}
export GATE_WORKSPACE=${GATE_WORKSPACE:-${CI_PROJECT_DIR:-$PWD}}
export GATE_SOURCE=${GATE_SOURCE:-$(cd "$here/../.." && pwd)}
cluster=${GATE_CLUSTER:-kind}
mode=${GATE_MODE:-perform}
tools=$GATE_HOME/bin
mkdir -p "$tools"
export PATH="$tools:$PATH"

fail() {
    echo "error: $*" >&2
    exit 2
}

case $cluster in
    kind)
        if [[ $mode != perform ]]; then
            fail "cluster kind makes a new cluster for the job: only mode perform makes sense there, not '$mode'"
        fi
        ;;
    kubeconfig) ;;
    *) fail "cluster must be kind or kubeconfig, not '$cluster'" ;;
esac

case $(uname -m) in
    x86_64 | amd64) arch=amd64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) fail "unsupported machine $(uname -m)" ;;
esac

# fetch URL FILE SUM_URL: download, and check against the published SHA-256 sum.
fetch() {
    curl -fsSL --retry 3 -o "$2" "$1"
    local sum
    sum=$(curl -fsSL --retry 3 "$3" | cut -d ' ' -f 1)
    echo "$sum  $2" | sha256sum -c - >/dev/null
}

# ---------------------------------------------------------------- the gate
if [[ -z ${GATE_PYTHON:-} ]]; then
    bash "$here/install-gate.sh"
    export GATE_PYTHON=$GATE_HOME/venv/bin/python
fi

# ---------------------------------------------------------------- tools
if ! command -v helm >/dev/null 2>&1; then
    version=${GATE_HELM_VERSION:-v3.22.0}
    echo "installing helm $version" >&2
    fetch "https://get.helm.sh/helm-$version-linux-$arch.tar.gz" "$GATE_HOME/helm.tar.gz" \
        "https://get.helm.sh/helm-$version-linux-$arch.tar.gz.sha256sum"
    tar -xzf "$GATE_HOME/helm.tar.gz" -C "$GATE_HOME" "linux-$arch/helm"
    mv "$GATE_HOME/linux-$arch/helm" "$tools/helm"
fi
helm version --short

if [[ $cluster == kind ]]; then
    if ! command -v kind >/dev/null 2>&1; then
        version=${GATE_KIND_VERSION:-v0.32.0}
        echo "installing kind $version" >&2
        fetch "https://kind.sigs.k8s.io/dl/$version/kind-linux-$arch" "$tools/kind" \
            "https://kind.sigs.k8s.io/dl/$version/kind-linux-$arch.sha256sum"
        chmod +x "$tools/kind"
    fi
    if ! command -v kubectl >/dev/null 2>&1; then
        version=${GATE_KUBECTL_VERSION:-}
        if [[ -z $version ]]; then
            # kindest/node:v1.35.5@sha256:... -> v1.35.5
            image=${GATE_NODE_IMAGE%%@*}
            version=${image##*:}
            if [[ ! $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
                fail "cannot tell the Kubernetes version of node image '${GATE_NODE_IMAGE:-}': set kubectl-version"
            fi
        fi
        echo "installing kubectl $version" >&2
        fetch "https://dl.k8s.io/release/$version/bin/linux/$arch/kubectl" "$tools/kubectl" \
            "https://dl.k8s.io/release/$version/bin/linux/$arch/kubectl.sha256"
        chmod +x "$tools/kubectl"
    fi
fi

# ---------------------------------------------------------------- the chart's repository
chart=${GATE_CHART:-cilium/cilium}
if [[ $cluster == kubeconfig && -n ${GATE_CHART_REPOSITORY:-} && $chart == */* \
    && $chart != oci://* && ! -e $chart && ! -e $GATE_WORKSPACE/$chart ]]; then
    helm repo add "${chart%%/*}" "$GATE_CHART_REPOSITORY" --force-update
    helm repo update "${chart%%/*}"
fi

# ---------------------------------------------------------------- cluster: kind
if [[ $cluster == kind ]]; then
    if ! docker info >/dev/null 2>&1; then
        fail "cluster kind needs Docker: a privileged Docker executor with the docker:dind service (see ci/README.md)"
    fi
    name=${GATE_CLUSTER_NAME:-cilium-upgrade}
    config=${GATE_KIND_CONFIG:-}
    if [[ -z $config ]]; then
        config=$GATE_SOURCE/kind-config.yaml
    elif [[ $config != /* ]]; then
        config=$GATE_WORKSPACE/$config
    fi
    # kind-config.yaml with the API server published on the DinD host (the service
    # alias "docker") and a certificate valid for that name; nothing else changed.
    "$GATE_PYTHON" - "$config" "$GATE_HOME/kind-config.yaml" <<'EOF'
import sys

import yaml

with open(sys.argv[1], encoding="utf-8") as f:
    config = yaml.safe_load(f)
networking = config.setdefault("networking", {})
networking["apiServerAddress"] = "0.0.0.0"
networking["apiServerPort"] = 6443
config.setdefault("kubeadmConfigPatches", []).append(
    "kind: ClusterConfiguration\n"
    "apiServer:\n"
    "  certSANs: [docker, localhost, 127.0.0.1, 0.0.0.0]\n"
)
with open(sys.argv[2], "w", encoding="utf-8") as f:
    yaml.safe_dump(config, f)
EOF
    args=(create cluster --name "$name" --config "$GATE_HOME/kind-config.yaml" --wait 0s)
    if [[ -n ${GATE_NODE_IMAGE:-} ]]; then args+=(--image "$GATE_NODE_IMAGE"); fi
    kind "${args[@]}"
    export KUBECONFIG=$GATE_HOME/kubeconfig
    kind get kubeconfig --name "$name" | sed 's#https://0.0.0.0:#https://docker:#' >"$KUBECONFIG"
    chmod 600 "$KUBECONFIG"
    kubectl cluster-info
    GATE_CLUSTER_NAME=$name bash "$here/install-cilium.sh"
fi

# ---------------------------------------------------------------- the gate
exec bash "$here/run-gate.sh"
