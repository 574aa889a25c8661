"""The layering rules, checked on the source: adapters own all I/O."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pytest_cilium_upgrade"
# Modules that only compute: no processes, sockets, files or environment.
PURE = ("checks", "snapshot.model", "versions", "redact", "defaults", "gate.summary", "phases")
# The one direction data flows: options -> settings -> snapshot <- adapters -> checks ->
# items -> reports. A package may import only the packages listed for it (and the
# shared vocabulary at the top: errors, defaults, versions, redact, yamltext, phases).
MAY_IMPORT = {
    "adapters": {"adapters", "snapshot"},
    "snapshot": {"snapshot", "adapters"},
    "checks": {"checks", "snapshot", "adapters.helm.values"},
    "upgrade": {"upgrade", "adapters", "snapshot", "checks", "gate.settings"},
    "tools": {"tools", "options"},
}
VOCABULARY = {"errors", "defaults", "versions", "redact", "yamltext", "phases"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _own_imports(path: Path) -> set[str]:
    """Our modules a module imports, as dotted names below the package."""
    prefix = "pytest_cilium_upgrade."
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found = [node.module]
            if node.module == "pytest_cilium_upgrade":
                found = [f"{prefix}{alias.name}" for alias in node.names]
        else:
            continue
        names.update(n.removeprefix(prefix) for n in found if n.startswith(prefix))
    return names


def _modules() -> dict[str, Path]:
    return {
        str(p.relative_to(PACKAGE).with_suffix("")).replace("/", "."): p
        for p in PACKAGE.rglob("*.py")
    }


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


def test_only_the_kubernetes_adapter_imports_the_client() -> None:
    importers = sorted(m for m, p in _modules().items() if "kubernetes" in _imports(p))
    assert importers
    assert all(_within(m, "adapters.kube") for m in importers), importers


def test_only_the_helm_adapter_starts_processes() -> None:
    runners = sorted(m for m, p in _modules().items() if "subprocess" in _imports(p))
    assert runners
    assert all(_within(m, "adapters.helm") for m in runners), runners
    # One other process is started: the kubeconfig's exec credential plugin, which the
    # kube adapter runs itself (the client's own loader gives it no deadline and ignores
    # its failure). It goes through the helm adapter's runner, which every process of
    # the gate goes through: a process group of its own, a deadline, ended with its
    # group on timeout or interruption.
    starters = sorted(m for m, p in _modules().items() if "adapters.helm.runner" in _own_imports(p))
    assert starters == ["adapters.helm.client", "adapters.kube.kubeconfig", "gate.hooks"], starters


def test_the_product_never_imports_the_sandbox() -> None:
    importers = sorted(m for m, p in _modules().items() if "cilium_sandbox" in _imports(p))
    assert importers == []


def test_data_flows_one_way_between_the_packages() -> None:
    wrong: list[str] = []
    for module, path in _modules().items():
        rules = [allowed for pkg, allowed in MAY_IMPORT.items() if _within(module, pkg)]
        if not rules:
            continue
        for imported in _own_imports(path):
            if imported in VOCABULARY or any(_within(imported, a) for a in rules[0]):
                continue
            wrong.append(f"{module} imports {imported}")
    assert wrong == []


def test_no_shell_anywhere() -> None:
    for module, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "shell":
                raise AssertionError(f"{module} passes shell= to a subprocess call")


def test_checks_and_model_do_no_io() -> None:
    forbidden = {"subprocess", "kubernetes", "socket", "urllib3", "os"}
    pure = [m for m in _modules() if any(_within(m, p) for p in PURE)]
    assert len(pure) >= len(PURE)
    for module in pure:
        used = _imports(_modules()[module]) & forbidden
        assert not used, f"{module} imports {used}"


def test_the_entry_point_loads_no_gate_machinery() -> None:
    # Every pytest run of an environment with the plugin installed imports the entry
    # point; the checks, model, flow and adapters load only with --cilium-upgrade.
    probe = "import sys, pytest_cilium_upgrade.plugin; print(*sys.modules)"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    ours = sorted(m for m in loaded if m.startswith("pytest_cilium"))
    assert ours == [
        "pytest_cilium_upgrade",
        "pytest_cilium_upgrade.defaults",
        "pytest_cilium_upgrade.hookspecs",
        "pytest_cilium_upgrade.marker",
        "pytest_cilium_upgrade.option_parsers",
        "pytest_cilium_upgrade.option_spec",
        "pytest_cilium_upgrade.options",
        "pytest_cilium_upgrade.phases",
        "pytest_cilium_upgrade.plugin",
        "pytest_cilium_upgrade.versions",
    ]
    assert "kubernetes" not in loaded
    # Nothing imports the entry point back: it and the gate share the marker module.
    assert sorted(m for m, p in _modules().items() if "plugin" in _own_imports(p)) == []
