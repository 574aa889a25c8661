"""Command line of the sandbox and the offline demo.

cilium-sandbox build        fetch or build (or find cached) what the sandbox runs
cilium-sandbox build --all  the same, and Helm 4 (the test suite needs it)
cilium-sandbox up           start the sandbox from kind-config.yaml
cilium-sandbox down         stop it
cilium-sandbox env          print the shell exports to use it
cilium-sandbox status       say whether it runs, and its processes
cilium-sandbox demo         a gated upgrade of the real Cilium charts on a fresh sandbox
cilium-sandbox demo --scenario failing   one the gate catches and rolls back
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from cilium_sandbox.build import SANDBOX_COMPONENTS, Builder, component_names, components
from cilium_sandbox.cluster import Sandbox
from cilium_sandbox.errors import SandboxError
from cilium_sandbox.topology import Taint, build_topology
from pytest_cilium_upgrade.adapters.cachedir import default_cache_dir


def _parse_taint(text: str) -> tuple[str, Taint]:
    target, sep, taint = text.partition("=")
    if not sep or not target:
        raise argparse.ArgumentTypeError(
            f"--taint {text!r}: expected NODE=key[=value]:Effect "
            "(NODE is a node name, or control-plane / worker for all nodes of that role)"
        )
    try:
        return target, Taint.parse(taint, source=f"--taint {text!r}")
    except SandboxError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _add_sandbox_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workdir",
        type=Path,
        default=default_cache_dir() / "sandbox",
        help="sandbox work directory (default: %(default)s)",
    )


def _add_topology_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--topology",
        type=Path,
        default=Path("kind-config.yaml"),
        help="kind cluster config giving node names, labels and taints (default: %(default)s)",
    )
    p.add_argument("--control-planes", type=int, help="number of control-plane nodes")
    p.add_argument("--workers", type=int, help="number of worker nodes")
    p.add_argument(
        "--taint",
        type=_parse_taint,
        action="append",
        default=[],
        metavar="NODE=key[=value]:Effect",
        help="add a taint to a node, or to every control-plane / worker node (repeatable)",
    )
    p.add_argument(
        "--port", type=int, help="kube-apiserver port on 127.0.0.1 (default: a free one)"
    )
    p.add_argument("--timeout", type=float, default=180, help="start-up deadline in seconds")


def _sandbox(args: argparse.Namespace, builder: Builder) -> Sandbox:
    topology = build_topology(
        args.topology,
        control_planes=args.control_planes,
        workers=args.workers,
        extra_taints=args.taint,
    )
    return Sandbox(args.workdir, builder.ensure_sandbox(), topology, apiserver_port=args.port)


def _stopper(args: argparse.Namespace, builder: Builder) -> Sandbox:
    """A Sandbox handle good enough to stop whatever runs in ``args.workdir``."""
    from cilium_sandbox.topology import Topology

    return Sandbox(args.workdir, builder.binaries(), Topology("kind", ()))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cilium-sandbox",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="fetch or build the binaries, or find them cached")
    build.add_argument(
        "components",
        nargs="*",
        metavar="COMPONENT",
        help=f"only these ({', '.join(component_names())}; default: what the sandbox runs, "
        f"{', '.join(SANDBOX_COMPONENTS)})",
    )
    build.add_argument("--all", action="store_true", help="every component, Helm 4 included")
    up = sub.add_parser("up", help="start the sandbox")
    _add_sandbox_options(up)
    _add_topology_options(up)
    for action in ("down", "env", "status"):
        _add_sandbox_options(sub.add_parser(action))
    demo = sub.add_parser("demo", help="the offline demo on a fresh sandbox")
    _add_sandbox_options(demo)
    _add_topology_options(demo)
    demo.add_argument(
        "--charts-dir",
        type=Path,
        default=None,
        help="directory of real Cilium chart archives (cilium-X.tgz) to take the demo's "
        "versions from (default: $CILIUM_CHARTS_DIR, ../shared/charts/cilium beside the "
        "checkout, the cache, then helm pull from https://helm.cilium.io/)",
    )
    demo.add_argument("--keep", action="store_true", help="leave the sandbox running")
    demo.add_argument(
        "--scenario",
        choices=("upgrade", "failing"),
        default="upgrade",
        help="upgrade: a gated upgrade that passes; failing: one that is "
        "caught by the gate and rolled back (default: %(default)s)",
    )
    demo.add_argument(
        "--reports",
        type=Path,
        default=Path("reports"),
        help="where the JUnit report and summary go (default: %(default)s)",
    )
    args = parser.parse_args(argv)

    builder = Builder()
    try:
        if args.command == "build":
            names = component_names() if args.all else args.components or SANDBOX_COMPONENTS
            programs = {c.name: c.programs for c in components()}
            for name, directory in builder.ensure_components(names).items():
                for program in programs[name]:
                    print(f"{program:24} {directory / program}")
        elif args.command == "up":
            _sandbox(args, builder).up(timeout=args.timeout)
            print(_exports(args.workdir))
        elif args.command == "down":
            _stopper(args, builder).down()
            print(f"sandbox in {args.workdir} stopped")
        elif args.command == "env":
            print(_exports(args.workdir))
        elif args.command == "status":
            box = _stopper(args, builder)
            state = "running" if box.is_running() else "stopped"
            print(f"sandbox in {args.workdir}: {state}")
            for name, pid in box.pids().items():
                print(f"  {name:26} pid {pid}")
            return 0 if box.is_running() else 1
        elif args.command == "demo":
            from cilium_sandbox.demo import demo_charts, run_demo

            charts = demo_charts(args.charts_dir)  # before anything starts
            return run_demo(
                _sandbox(args, builder),
                charts,
                scenario=args.scenario,
                reports=args.reports,
                keep=args.keep,
                timeout=args.timeout,
            )
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


def _exports(workdir: Path) -> str:
    box_bin = workdir / "bin"
    return (
        f"export KUBECONFIG={shlex.quote(str(workdir / 'kubeconfig'))}\n"
        f'export PATH={shlex.quote(str(box_bin))}:"$PATH"'
    )


if __name__ == "__main__":
    raise SystemExit(main())
