"""The gated upgrade against the procedure it replaces, side by side on one sandbox.

    .venv/bin/python benchmarks/procedure_bench.py [--from 1.14.19] [--to 1.15.19] [--rounds 4]
        [--profile DIR] [--gate-from NAME=DIR ...]

One sandbox (nodes from kind-config.yaml) and the same real chart archives for both
(``cilium_sandbox.charts`` finds them). Each round runs each once, in another order
each round (with two: script then gate, then gate then script, ...), each from the same
starting point, set up untimed before it: release ``cilium`` at ``--from`` installed
with ``helm install --wait``, every pod ready, no pre-flight release, the CNP validator
of the pre-flight logging ``All CCNPs and CNPs valid!``.

* the script: ``benchmarks/manual_procedure.sh ARCHIVE TO`` (helm get values, pre-flight
  install, rollout status of both pre-flight objects, the validator's log through grep,
  helm uninstall, helm upgrade -f, rollout status of agent and operator), run with
  ``bash -x`` so each command's start is timed;
* the gate: ``python -m pytest --cilium-upgrade --cilium-perform-upgrade
  --cilium-chart=ARCHIVE --cilium-target-version=TO ...`` as the demo runs it, with a
  JUnit report whose item times show where its time goes.

Both are timed as processes, start to exit, and must end with the release at ``--to``;
their CPU time (user + system, with every helm and kubectl process they ran) is
measured too: on a machine shared with other work, wall times follow the load and
CPU times much less. ``--gate-from NAME=DIR`` runs a copy of the package instead of the
installed one (repeat it to compare two copies in the same rounds).

Prints each run, the medians, the ratios to the script, and where each spent its time
(median per step). ``--profile DIR`` also runs the gate once more under cProfile and
``-X importtime`` (untimed) and writes both to DIR; with ``--rounds 0`` it only does
that. Asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

from cilium_sandbox.build import Builder
from cilium_sandbox.charts import resolve_charts, sandbox_values, set_args
from cilium_sandbox.cluster import Sandbox
from cilium_sandbox.faults import ContainerLogs
from cilium_sandbox.topology import build_topology

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "manual_procedure.sh"
NS = "kube-system"
# What the pre-flight's validator logs when every policy parses (logrus, before 1.18;
# slog from 1.18): grep and the gate both look for the message.
VALID_LOGRUS = 'time="2026-01-01T00:00:00Z" level=info msg="All CCNPs and CNPs valid!"'
VALID_SLOG = 'time=2026-01-01T00:00:00.000000000Z level=info msg="All CCNPs and CNPs valid!"'


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def children_cpu() -> float:
    """CPU seconds (user + system) of every child process waited for so far, and theirs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Bench:
    def __init__(self, box: Sandbox, archives: Mapping[str, Path], frm: str, to: str) -> None:
        self.box = box
        self.archives = archives
        self.frm = frm
        self.to = to
        self.env = box.env()
        self.work = Path(tempfile.mkdtemp(prefix="procedure-bench-"))
        (self.work / "pytest.ini").write_text("[pytest]\n")

    def helm(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(
            [str(self.box.binaries.helm3), *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"helm {' '.join(args[:2])}: {proc.stderr.strip()}")
        return proc.stdout

    def reset(self) -> None:
        """Release ``cilium`` at --from, every pod ready, no pre-flight: untimed."""
        self.helm("uninstall", "cilium-preflight", "-n", NS, "--wait", check=False)
        self.helm("uninstall", "cilium", "-n", NS, "--wait", check=False)
        nodes = len(self.box.topology.nodes)
        self.helm(
            "install", "cilium", str(self.archives[self.frm]), "-n", NS,
            *set_args(sandbox_values(self.frm, nodes=nodes)),
            "--wait", "--timeout", "5m",
        )  # fmt: skip
        for kind, name in (("daemonset", "cilium"), ("deployment", "cilium-operator")):
            self.box.kubectl("-n", NS, "rollout", "status", f"{kind}/{name}", "--timeout=5m")
        for stale in ("cilium-values.yaml", "gate-values.yaml", "gate-state.json"):
            (self.work / stale).unlink(missing_ok=True)

    def released_version(self) -> str:
        history = json.loads(self.helm("history", "cilium", "-n", NS, "-o", "json"))
        last = history[-1]
        return f"{last['chart']} {last['status']}"

    def gate_argv(self, *, junit: Path | None = None) -> list[str]:
        argv = [
            "-m", "pytest", "-c", str(self.work / "pytest.ini"), f"--rootdir={self.work}",
            "-p", "no:cacheprovider", "-p", "no:randomly", "-q",
            "--cilium-upgrade", "--cilium-perform-upgrade",
            f"--cilium-target-version={self.to}",
            f"--cilium-chart={self.archives[self.to]}",
            f"--cilium-kubeconfig={self.box.kubeconfig}",
            f"--cilium-helm={self.box.binaries.helm3}",
            f"--cilium-values-snapshot={self.work / 'gate-values.yaml'}",
            f"--cilium-state-file={self.work / 'gate-state.json'}",
            "--cilium-overwrite-snapshot",
        ]  # fmt: skip
        if junit is not None:
            argv.append(f"--junitxml={junit}")
        return argv

    def run_gate(
        self, index: int, python_path: str | None = None
    ) -> tuple[float, dict[str, float]]:
        junit = self.work / f"gate-{index}.xml"
        env = dict(self.env)
        if python_path:
            env["PYTHONPATH"] = os.pathsep.join([python_path, env.get("PYTHONPATH", "")])
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, *self.gate_argv(junit=junit)],
            cwd=self.work,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        took = time.monotonic() - started
        if proc.returncode != 0:
            (self.work / f"gate-{index}.out").write_text(proc.stdout + proc.stderr)
            raise RuntimeError(
                f"the gate failed ({proc.returncode}); its output: {self.work}/gate-{index}.out"
            )
        steps: dict[str, float] = {}
        for case in ET.parse(junit).getroot().iter("testcase"):  # noqa: S314 - our own report
            name = case.get("name", "")
            steps[name] = float(case.get("time", "0"))
        steps["(start-up, collection, reports: the rest)"] = took - sum(steps.values())
        return took, steps

    def run_script(self) -> tuple[float, dict[str, float]]:
        # bash takes no PS4 from the environment when run as root: set it inside
        trace = 'PS4=\'+ ${EPOCHREALTIME} \'; set -x; source "$0" "$@"'
        started_wall = time.time()
        started = time.monotonic()
        proc = subprocess.run(
            [
                "bash",
                "-c",
                trace,
                str(SCRIPT),
                str(self.archives[self.to]),
                self.to,
                str(self.work),
            ],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        took = time.monotonic() - started
        ended_wall = started_wall + took
        if proc.returncode != 0:
            raise RuntimeError(f"the script failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        marks: list[tuple[float, str]] = []
        for line in proc.stderr.splitlines():
            found = re.match(r"^\++ (\d+\.\d+) (helm|kubectl|grep) (.*)$", line)
            if found:
                words = [w for w in found.group(3).split() if not w.startswith("-")]
                named = [w for w in words[2:] if "/" in w and not w.startswith(("/", "'"))]
                label = " ".join([found.group(2), *words[:2], *named[:1]])
                marks.append((float(found.group(1)), label))
        # a pipeline's commands start together: each step lasts until the next one starts
        steps: dict[str, float] = {}
        for i, (at, label) in enumerate(marks):
            if label.startswith("grep"):
                continue
            nxt = next((m for m, lab in marks[i + 1 :] if not lab.startswith("grep")), ended_wall)
            key = label if label not in steps else f"{label} (2)"
            steps[key] = nxt - at
        steps["(bash start-up)"] = (marks[0][0] - started_wall) if marks else 0.0
        return took, steps

    def profile(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.reset()
        subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "cProfile", "-o", str(out / "gate.prof"),
             *self.gate_argv()],
            cwd=self.work, env=self.env, stdout=subprocess.DEVNULL,
            stderr=(out / "importtime.txt").open("w"), check=True,
        )  # fmt: skip
        print(f"profile: {out / 'gate.prof'}, import times: {out / 'importtime.txt'}")


def median_steps(runs: Sequence[Mapping[str, float]]) -> dict[str, float]:
    merged: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        for name, seconds in run.items():
            merged[name].append(seconds)
    return {name: statistics.median(values) for name, values in merged.items()}


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # the sandbox is taken down on the way out


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="frm", default="1.14.19")
    parser.add_argument("--to", default="1.15.19")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--profile", type=Path, help="also profile one gate run into DIR")
    parser.add_argument(
        "--gate-from",
        action="append",
        default=[],
        type=lambda text: tuple(text.split("=", 1)),
        metavar="NAME=DIR",
        help="run the gate with DIR first on PYTHONPATH (a copy of pytest_cilium_upgrade as it "
        "was, say) as variant NAME, instead of the installed one; repeat to compare copies "
        "in the same rounds",
    )
    args = parser.parse_args()

    archives = resolve_charts([args.frm, args.to], repo_root=ROOT)
    topology = build_topology(ROOT / "kind-config.yaml")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {len(topology.nodes)} nodes; "
        f"real charts {args.frm} -> {args.to}: {archives[args.frm]}, {archives[args.to]}"
    )
    print(f"load average before: {load()}")
    with tempfile.TemporaryDirectory(prefix="procedure-bench-box-") as tmp:
        box = Sandbox(Path(tmp), Builder().ensure_sandbox(), topology, progress=lambda _: None)
        box.up()
        try:
            major_minor = tuple(int(p) for p in args.to.split(".")[:2])
            line = VALID_SLOG if major_minor >= (1, 18) else VALID_LOGRUS
            box.set_logs(ContainerLogs(NS, "cnp-validator", current=[line]))
            bench = Bench(box, archives, args.frm, args.to)
            variants: dict[str, str | None] = dict(args.gate_from) or {"gate": None}
            names = ["script", *variants]
            times: dict[str, list[float]] = {n: [] for n in names}
            cpus: dict[str, list[float]] = {n: [] for n in names}
            steps: dict[str, list[dict[str, float]]] = {n: [] for n in names}
            for index in range(args.rounds):
                # each round in another order: a different one goes first each time
                shift = index % len(names)
                order = names[shift:] + names[:shift]
                if index % 2:
                    order.reverse()
                for which in order:
                    bench.reset()
                    cpu = children_cpu()
                    if which == "script":
                        took, parts = bench.run_script()
                    else:
                        took, parts = bench.run_gate(index, python_path=variants[which])
                    cpu = children_cpu() - cpu
                    final = bench.released_version()
                    if final != f"cilium-{args.to} deployed":
                        raise RuntimeError(f"{which} left the release at {final}")
                    times[which].append(took)
                    cpus[which].append(cpu)
                    steps[which].append(parts)
                    print(
                        f"round {index + 1} {which:12} {took:6.2f} s wall, {cpu:5.2f} s CPU"
                        f"  load {load()}",
                        flush=True,
                    )
            if args.profile:
                bench.profile(args.profile)
        finally:
            box.down()
    if not args.rounds:
        return
    print(f"load average after: {load()}")
    script, script_cpu = statistics.median(times["script"]), statistics.median(cpus["script"])
    print(
        f"\nmedians of {args.rounds} rounds (wall; CPU: user + system with every helm/kubectl run):"
    )
    for name in names:
        wall, cpu = statistics.median(times[name]), statistics.median(cpus[name])
        print(
            f"  {name:12} {wall:5.2f} s (min {min(times[name]):.2f}, max {max(times[name]):.2f})"
            f" = {wall / script:.2f}x the script; CPU {cpu:5.2f} s = {cpu / script_cpu:.2f}x"
        )
    print("target: the gate at most 1.3x the script's wall time")
    for name in names:
        print(f"\nwhere the {name}'s time goes (median per step, s):")
        for step, seconds in median_steps(steps[name]).items():
            print(f"  {seconds:6.2f}  {step}")


if __name__ == "__main__":
    main()
