"""Loading the kubeconfig, with its ``exec`` credential plugin run by the gate."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes.config import kube_config
from kubernetes.config.config_exception import ConfigException
from kubernetes.config.dateutil import parse_rfc3339

from pytest_cilium_upgrade.adapters.helm.runner import ProgramTimeout, run_program
from pytest_cilium_upgrade.errors import GateError
from pytest_cilium_upgrade.snapshot.model.jsondata import JSONDict

# The client's own loader runs a user's ``exec`` credential plugin with no time limit,
# and when the plugin fails it logs the error and goes on without credentials: every
# request then goes out anonymous. The loader below is the client's, except that the
# plugin runs here: in a process group of its own (helm's runner), within the request
# timeout, ended with its group on timeout or interruption, and a plugin that fails
# stops the adapter with one line naming its command and the end of its stderr.

_STDERR_TAIL = 300


def _load_kubeconfig(
    path: str | None, context: str | None, cfg: Any, *, plugin_timeout: float
) -> None:
    """Load ``path`` (``$KUBECONFIG``'s list, or ~/.kube/config) into ``cfg``."""
    files = path or kube_config.KUBE_CONFIG_DEFAULT_LOCATION
    _refuse_foreign_documents(files)
    merged = kube_config.KubeConfigMerger(files)
    if merged.config is None:
        raise ConfigException("Invalid kube-config file. No configuration found.")
    loader: Any = _Loader(
        config_dict=merged.config,
        active_context=context,
        config_base_path=None,
        plugin_timeout=plugin_timeout,
    )
    loader.load_and_set(cfg)


def _refuse_foreign_documents(files: str) -> None:
    """A kubeconfig file holding a YAML list or a scalar, named as such (not the
    client's TypeError about indices)."""
    for name in files.split(kube_config.ENV_KUBECONFIG_PATH_SEPARATOR):
        path = Path(name).expanduser()
        try:
            document = yaml.safe_load(path.read_text()) if path.is_file() else None
        except (OSError, UnicodeDecodeError):
            continue  # the client's loader says why
        if document is not None and not isinstance(document, dict):
            kind = "list" if isinstance(document, list) else f"{type(document).__name__} scalar"
            raise GateError(
                f"cannot read kubeconfig {path}: it holds a YAML {kind}, not a kubeconfig"
                " (a mapping with clusters, contexts and users)"
            )


class _Loader(kube_config.KubeConfigLoader):
    """The client's kubeconfig loader, with the ``exec`` credential plugin run by us."""

    def __init__(self, *args: Any, plugin_timeout: float, **kwargs: Any) -> None:
        self._plugin_timeout = plugin_timeout
        base: Any = super()
        base.__init__(*args, **kwargs)

    def _load_from_exec_plugin(self) -> bool | None:
        me: Any = self  # the client's loader is untyped
        if "exec" not in me._user:
            return None
        base = str(me._get_base_path(me._cluster.path) or "")
        status = CredentialPlugin(
            dict(me._user["exec"].value), base, dict(me._cluster.value), self._plugin_timeout
        ).run()
        if "token" in status:
            me.token = f"Bearer {status['token']}"
        else:
            for key, attr in (
                ("clientCertificateData", "cert_file"),
                ("clientKeyData", "key_file"),
            ):
                data: Any = kube_config.FileOrData(
                    status,
                    None,
                    data_key_name=key,
                    file_base_path=base,
                    base64_file_content=False,
                    temp_file_path=me._temp_file_path,
                )
                setattr(me, attr, data.as_file())
        if "expirationTimestamp" in status:  # the client runs the plugin again after it
            me.expiry = parse_rfc3339(status["expirationTimestamp"])
        return True


@dataclass(frozen=True)
class CredentialPlugin:
    """A kubeconfig user's ``exec`` credential plugin (client.authentication.k8s.io).

    Runs without a terminal (``interactive: false``), within ``timeout`` seconds, in a
    process group ended whole on timeout or interruption; :meth:`run` returns the
    ExecCredential's ``status`` or raises :class:`GateError` naming the command.
    """

    config: JSONDict
    base_path: str
    cluster: JSONDict
    timeout: float

    @property
    def argv(self) -> list[str]:
        command = str(self.config.get("command") or "")
        if "/" in command and not os.path.isabs(command):  # as client-go: next to the file
            command = os.path.join(self.base_path, command)
        return [command, *(str(a) for a in self.config.get("args") or [])]

    @property
    def shown(self) -> str:
        """The command as the kubeconfig names it (its arguments can be secret)."""
        return str(self.config.get("command") or "")

    def run(self) -> JSONDict:
        api_version = str(self.config.get("apiVersion") or "")
        if not self.shown or not api_version:
            raise GateError("the kubeconfig's exec credential plugin has no command or apiVersion")
        spec: JSONDict = {"interactive": False}
        if self.config.get("provideClusterInfo"):
            spec["cluster"] = {
                k: v
                for k, v in self.cluster.items()
                if k in ("server", "certificate-authority-data", "tls-server-name", "proxy-url")
            }
        env = dict(os.environ)
        for item in self.config.get("env") or []:
            if isinstance(item, dict) and "name" in item:
                env[str(item["name"])] = str(item.get("value", ""))
        env["KUBERNETES_EXEC_INFO"] = json.dumps(
            {"apiVersion": api_version, "kind": "ExecCredential", "spec": spec}
        )
        what = f"the kubeconfig's credential plugin `{self.shown}`"
        try:
            proc = run_program(self.argv, env=env, timeout=self.timeout, cwd=self.base_path or None)
        except ProgramTimeout:
            raise GateError(
                f"{what} did not finish within {self.timeout:g}s (--cilium-request-timeout);"
                " it was ended with its process group"
            ) from None
        except OSError as exc:
            raise GateError(f"cannot run {what}: {exc.strerror or exc}") from None
        if proc.returncode != 0:
            lines = [" ".join(ln.split()) for ln in (proc.stderr or "").splitlines()]
            tail = "; ".join(ln for ln in lines if ln)[-_STDERR_TAIL:]
            raise GateError(
                f"{what} failed (exit status {proc.returncode})"
                + (f": {tail}" if tail else ", printing nothing on stderr")
            )
        try:
            answer = json.loads(proc.stdout)
        except ValueError:
            answer = None
        status = answer.get("status") if isinstance(answer, dict) else None
        if not isinstance(status, dict) or answer.get("kind") != "ExecCredential":
            raise GateError(f"{what} printed no ExecCredential on its standard output")
        if answer.get("apiVersion") != api_version:
            raise GateError(
                f"{what} answered with apiVersion {answer.get('apiVersion')!r}, not {api_version!r}"
            )
        if "token" not in status and not (
            "clientCertificateData" in status and "clientKeyData" in status
        ):
            raise GateError(f"{what} gave neither a token nor a client certificate and key")
        return status
