"""The layering rules, checked on the source: adapters own all I/O."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pytest_cilium_upgrade"
PURE = ("checks", "model", "scheduling", "versions", "redact", "defaults", "report")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _modules() -> dict[str, Path]:
    return {
        str(p.relative_to(PACKAGE).with_suffix("")).replace("/", "."): p
        for p in PACKAGE.rglob("*.py")
    }


def test_only_the_kubernetes_adapter_imports_the_client() -> None:
    importers = sorted(m for m, p in _modules().items() if "kubernetes" in _imports(p))
    # the sandbox is test infrastructure with its own node watch
    assert importers == ["kube", "sandbox.cluster"]


def test_only_the_helm_adapter_and_the_sandbox_start_processes() -> None:
    runners = sorted(m for m, p in _modules().items() if "subprocess" in _imports(p))
    assert all(m == "helm" or m.startswith("sandbox.") for m in runners), runners


def test_no_shell_anywhere() -> None:
    for module, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "shell":
                raise AssertionError(f"{module} passes shell= to a subprocess call")


def test_checks_and_model_do_no_io() -> None:
    forbidden = {"subprocess", "kubernetes", "socket", "urllib3", "os"}
    for module in PURE:
        used = _imports(PACKAGE / f"{module}.py") & forbidden
        assert not used, f"{module} imports {used}"


def test_the_entry_point_loads_no_gate_machinery() -> None:
    # Every pytest run of an environment with the plugin installed imports the entry
    # point; the checks, model, flow and adapters load only with --cilium-upgrade.
    probe = "import sys, pytest_cilium_upgrade.plugin; print(*sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True, timeout=60).stdout.split()
    ours = sorted(m for m in loaded if m.startswith("pytest_cilium"))
    assert ours == ["pytest_cilium_upgrade", "pytest_cilium_upgrade.defaults",
                    "pytest_cilium_upgrade.hookspecs", "pytest_cilium_upgrade.plugin",
                    "pytest_cilium_upgrade.settings", "pytest_cilium_upgrade.versions"]
    assert "kubernetes" not in loaded
