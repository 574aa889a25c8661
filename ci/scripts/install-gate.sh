#!/usr/bin/env bash
# Install pytest-cilium-upgrade from a source tree into a virtual environment of its own.
#
# The gate is not published on a package index: the GitHub Action installs it from its
# own checkout (github.action_path), the GitLab component from the repository it
# fetched. Its dependencies (pytest, the Kubernetes client, ...) come from the package
# index pip is configured with.
#
#   GATE_SOURCE            the source tree (the directory holding pyproject.toml)
#   GATE_HOME              the job's private directory; the environment is
#                          $GATE_HOME/venv (default: $RUNNER_TEMP/cilium-upgrade,
#                          else /tmp/cilium-upgrade)
#   GATE_BOOTSTRAP_PYTHON  the Python (3.11 or newer) to create it with (default python3)
#
# On GitHub Actions the environment's python is written to $GITHUB_OUTPUT as "python".
set -euo pipefail

source_dir=${GATE_SOURCE:?GATE_SOURCE must name the source tree of pytest-cilium-upgrade}
home=${GATE_HOME:-${RUNNER_TEMP:-/tmp}/cilium-upgrade}
bootstrap=${GATE_BOOTSTRAP_PYTHON:-python3}
venv=$home/venv

if [[ ! -f $source_dir/pyproject.toml ]]; then
    echo "error: $source_dir is not a source tree of pytest-cilium-upgrade (no pyproject.toml)" >&2
    exit 1
fi
mkdir -p "$home"
"$bootstrap" -m venv "$venv"
"$venv/bin/python" -m pip install --disable-pip-version-check --no-input --quiet "$source_dir"
"$venv/bin/python" -m pip show --disable-pip-version-check pytest-cilium-upgrade | sed -n '1,2p'
if [[ -n ${GITHUB_OUTPUT:-} ]]; then
    echo "python=$venv/bin/python" >>"$GITHUB_OUTPUT"
fi
