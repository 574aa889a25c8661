#!/usr/bin/env bash
# Run the Cilium upgrade gate (pytest --cilium-upgrade) with the options of a CI job.
#
# The GitHub Action (action.yml) and the GitLab CI/CD component
# (templates/cilium-upgrade.yml) both end with this script. It turns the job's inputs,
# given as GATE_* environment variables, into pytest arguments and then *replaces
# itself* with pytest (exec): a cancel that signals the job's shell (GitHub sends
# SIGINT, then SIGTERM) reaches pytest, which stops the running step, cleans up the
# pre-flight release, writes the JUnit report and exits 2.
#
# Inputs (all optional unless said otherwise):
#   GATE_MODE              perform (default: the whole gated upgrade), pre or post
#   GATE_TARGET_VERSION    chart version to upgrade to (needed by perform)
#   GATE_CHART             chart: a repository reference (default cilium/cilium), an
#                          oci:// reference, or a chart directory or archive (relative
#                          paths are taken from GATE_WORKSPACE)
#   GATE_CHART_REPO        URL of the chart repository to take GATE_CHART from (cilium or
#                          cilium/cilium names the chart in it); nothing is added to
#                          helm's repositories, and no `helm repo update` is needed
#   GATE_VALUES_FILES      values files for the upgrade, one per line
#   GATE_SET               KEY=VALUE overrides for the upgrade, one per line
#   GATE_UPGRADE_COMPATIBILITY  upgradeCompatibility (X.Y) for the upgrade
#   GATE_STRICT_COVERAGE   true: agent nodes the pre-flight cannot run on fail the gate
#   GATE_DRY_RUN           true: print the plan and the helm commands, change nothing
#   GATE_WRITE_SNAPSHOT    mode pre: save the release's values (default true)
#   GATE_KUBECONFIG, GATE_KUBE_CONTEXT, GATE_NAMESPACE, GATE_RELEASE, GATE_HELM
#                          the cluster, the release and the helm binary (the gate's
#                          defaults: $KUBECONFIG, its current context, kube-system,
#                          cilium, helm on PATH)
#   GATE_PYTEST_ARGS       more pytest arguments, split with shell-word rules (quotes
#                          and backslashes as in a shell; nothing is expanded or run)
#   GATE_PYTHON            the Python that has the gate installed
#                          (default: $GATE_HOME/venv/bin/python, else python3)
#   GATE_HOME              the job's private directory (default:
#                          $RUNNER_TEMP/cilium-upgrade, else /tmp/cilium-upgrade)
#   GATE_WORKSPACE         where relative paths start (default: $GITHUB_WORKSPACE,
#                          else $CI_PROJECT_DIR, else the current directory)
#   GATE_REPORT_DIR        where junit.xml and summary.md go (default:
#                          $GATE_HOME/report-<mode>)
#   GATE_VALUES_SNAPSHOT, GATE_STATE_FILE
#                          the values snapshot and the state the pre phase hands to
#                          the post phase (default: in GATE_HOME, never in the
#                          report directory: the snapshot may hold keys)
#   GATE_WORKING_DIRECTORY where pytest runs (default: an empty directory of
#                          GATE_HOME, so that the project's own pytest configuration
#                          does not apply)
# On GitHub Actions the paths are also written to $GITHUB_OUTPUT (report-dir, junit,
# summary, values-snapshot, state-file) and the gate writes $GITHUB_STEP_SUMMARY.
set -euo pipefail

fail() {
    if [[ ${GITHUB_ACTIONS:-} == true ]]; then
        echo "::error title=Cilium upgrade gate::$*" >&2
    else
        echo "error: $*" >&2
    fi
    exit 2
}

# true/false inputs (GitHub passes every input as a string).
flag() {  # NAME VALUE DEFAULT
    local value=${2:-$3}
    case ${value,,} in
        true) return 0 ;;
        false) return 1 ;;
        *) fail "$1 must be true or false, not '$2'" ;;
    esac
}

workspace=${GATE_WORKSPACE:-${GITHUB_WORKSPACE:-${CI_PROJECT_DIR:-$PWD}}}
home=${GATE_HOME:-${RUNNER_TEMP:-/tmp}/cilium-upgrade}

# An absolute path: relative ones start in the workspace.
from_workspace() {
    case $1 in
        /*) printf '%s\n' "$1" ;;
        *) printf '%s\n' "$workspace/$1" ;;
    esac
}

python=${GATE_PYTHON:-}
if [[ -z $python ]]; then
    if [[ -x $home/venv/bin/python ]]; then python=$home/venv/bin/python; else python=python3; fi
fi
mode=${GATE_MODE:-perform}
report_dir=$(from_workspace "${GATE_REPORT_DIR:-$home/report-$mode}")
snapshot=$(from_workspace "${GATE_VALUES_SNAPSHOT:-$home/cilium-values.yaml}")
state_file=$(from_workspace "${GATE_STATE_FILE:-$home/cilium-upgrade-state.json}")
if [[ $snapshot == "$report_dir"/* ]]; then
    fail "the values snapshot ($snapshot) must not be in the report directory ($report_dir): reports are uploaded, the snapshot may hold keys"
fi

args=(-m pytest -p no:cacheprovider --cilium-upgrade)
case $mode in
    perform) args+=(--cilium-perform-upgrade) ;;
    pre)
        args+=(--cilium-phase=pre)
        if flag GATE_WRITE_SNAPSHOT "${GATE_WRITE_SNAPSHOT:-}" true; then
            args+=(--cilium-write-snapshot)
        fi
        ;;
    post) args+=(--cilium-phase=post) ;;
    *) fail "GATE_MODE must be perform, pre or post, not '$mode'" ;;
esac

if [[ -n ${GATE_TARGET_VERSION:-} ]]; then
    args+=("--cilium-target-version=$GATE_TARGET_VERSION")
fi
chart=${GATE_CHART:-cilium/cilium}
# As with Helm, an existing local path wins over a repository reference spelled the same.
if [[ $chart != oci://* && -e $(from_workspace "$chart") ]]; then
    chart=$(from_workspace "$chart")
fi
args+=("--cilium-chart=$chart")
if [[ -n ${GATE_CHART_REPO:-} ]]; then args+=("--cilium-chart-repo=$GATE_CHART_REPO"); fi

while IFS= read -r line; do
    line=${line#"${line%%[![:space:]]*}"}
    line=${line%"${line##*[![:space:]]}"}
    if [[ -n $line ]]; then args+=("--cilium-values-file=$(from_workspace "$line")"); fi
done <<<"${GATE_VALUES_FILES:-}"
while IFS= read -r line; do
    line=${line#"${line%%[![:space:]]*}"}
    line=${line%"${line##*[![:space:]]}"}
    if [[ -n $line ]]; then args+=("--cilium-set=$line"); fi
done <<<"${GATE_SET:-}"
if [[ -n ${GATE_UPGRADE_COMPATIBILITY:-} ]]; then
    args+=("--cilium-upgrade-compatibility=$GATE_UPGRADE_COMPATIBILITY")
fi
if flag GATE_STRICT_COVERAGE "${GATE_STRICT_COVERAGE:-}" false; then
    args+=(--cilium-preflight-coverage=strict)
fi
if flag GATE_DRY_RUN "${GATE_DRY_RUN:-}" false; then
    args+=(--cilium-dry-run)
fi
if [[ -n ${GATE_KUBECONFIG:-} ]]; then
    args+=("--cilium-kubeconfig=$(from_workspace "$GATE_KUBECONFIG")")
fi
if [[ -n ${GATE_KUBE_CONTEXT:-} ]]; then args+=("--cilium-context=$GATE_KUBE_CONTEXT"); fi
if [[ -n ${GATE_NAMESPACE:-} ]]; then args+=("--cilium-namespace=$GATE_NAMESPACE"); fi
if [[ -n ${GATE_RELEASE:-} ]]; then args+=("--cilium-release=$GATE_RELEASE"); fi
if [[ -n ${GATE_HELM:-} ]]; then args+=("--cilium-helm=$GATE_HELM"); fi
args+=(
    "--cilium-values-snapshot=$snapshot"
    "--cilium-state-file=$state_file"
    "--junitxml=$report_dir/junit.xml"
    "--cilium-summary=$report_dir/summary.md"
)

mkdir -p "$home" "$report_dir" "$(dirname "$snapshot")" "$(dirname "$state_file")"

# Extra pytest arguments: split by Python's shlex (shell-word rules), never evaluated.
extra=()
if [[ -n ${GATE_PYTEST_ARGS:-} ]]; then
    words=$home/pytest-args
    "$python" -c '
import shlex
import sys

try:
    words = shlex.split(sys.argv[1])
except ValueError as exc:
    print(f"error: pytest-args: {exc}: {sys.argv[1]!r}", file=sys.stderr)
    sys.exit(2)
sys.stdout.write("".join(word + "\0" for word in words))
' "$GATE_PYTEST_ARGS" >"$words"
    mapfile -d '' -t extra <"$words"
fi

if [[ -n ${GATE_WORKING_DIRECTORY:-} ]]; then
    workdir=$(from_workspace "$GATE_WORKING_DIRECTORY")
else
    # An empty directory with an empty configuration: the rootdir of the run.
    workdir=$home/run
    mkdir -p "$workdir"
    printf '[pytest]\n' >"$workdir/pytest.ini"
fi

if [[ -n ${GITHUB_OUTPUT:-} ]]; then
    {
        echo "report-dir=$report_dir"
        echo "junit=$report_dir/junit.xml"
        echo "summary=$report_dir/summary.md"
        echo "values-snapshot=$snapshot"
        echo "state-file=$state_file"
    } >>"$GITHUB_OUTPUT"
fi

# The command, one argument a line, with the values of --cilium-set hidden (they may
# be secrets).
echo "cilium-upgrade gate in $workdir:" >&2
for arg in "$python" "${args[@]}" "${extra[@]}"; do
    if [[ $arg == --cilium-set=* ]]; then
        key=${arg#--cilium-set=}
        printf '  %s\n' "--cilium-set=${key%%=*}=<redacted>" >&2
    else
        printf '  %q\n' "$arg" >&2
    fi
done

cd "$workdir"
exec "$python" "${args[@]}" "${extra[@]}"
