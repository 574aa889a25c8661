"""The saved values checked against the target chart: paths it no longer defines.

The charts are the real upstream archives (``cilium_charts``): their ``values.yaml`` and
``values.schema.json`` are read from the archives at test time, never copied here.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from checks_builders import assert_status, params, text_of, values_file
from cilium_sandbox.pytest_plugin import RealCharts
from gate_harness import Gate, new_gate
from helm_fakes import Recorder, fake_helm, helm_script

from pytest_cilium_upgrade import defaults
from pytest_cilium_upgrade.adapters.helm.chart_files import read_chart_files
from pytest_cilium_upgrade.adapters.helm.chart_refs import ChartSourceError
from pytest_cilium_upgrade.adapters.helm.charts import ChartSource
from pytest_cilium_upgrade.adapters.helm.client import Helm
from pytest_cilium_upgrade.checks.chart_values import (
    ChartDefinition,
    documented_keys,
    saved_values_known_to_target_chart,
    upgrade_notes_url,
)
from pytest_cilium_upgrade.checks.params import IntendedValues
from pytest_cilium_upgrade.checks.registry import get_check, run_check
from pytest_cilium_upgrade.checks.result import Status
from pytest_cilium_upgrade.errors import HelmFailed
from pytest_cilium_upgrade.redact import REDACTED
from pytest_cilium_upgrade.snapshot import read_helm
from pytest_cilium_upgrade.snapshot.model import ChartValues, ClusterSnapshot
from pytest_cilium_upgrade.snapshot.readers import CollectRequest
from pytest_cilium_upgrade.versions import Version

pytest_plugins = ["pytester"]

FILES = (defaults.CHART_VALUES_FILE, defaults.CHART_SCHEMA_FILE)
CHECK = "saved_values_known_to_target_chart"
SECRET = "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tcGxhbnRlZC1jYS1rZXk="  # noqa: S105 - fixture

# The values of a 1.14 release on native routing, as `helm get values` prints them.
NATIVE_1_14 = {
    "tunnel": "disabled",
    "autoDirectNodeRoutes": True,
    "ipv4NativeRoutingCIDR": "10.0.0.0/8",
}
# The same routing as 1.15 spells it.
NATIVE_1_15 = {
    "routingMode": "native",
    "autoDirectNodeRoutes": True,
    "ipv4NativeRoutingCIDR": "10.0.0.0/8",
}
# Free-form maps and lists, with keys no chart names.
FREE_FORM = {
    "extraEnv": [{"name": "GODEBUG", "value": "madvdontneed=1"}],
    "extraArgs": ["--devices=eth+"],
    "extraConfig": {"custom-setting": "on"},
    "podAnnotations": {"example.com/owner": "net-team"},
    "podLabels": {"team": "net"},
    "nodeSelector": {"kubernetes.io/os": "linux", "node-pool": "infra"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu"}],
    "resources": {"limits": {"memory": "2Gi"}, "requests": {"cpu": "100m"}},
    "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}},
    "updateStrategy": {"rollingUpdate": {"maxSurge": 0}},
    "operator": {
        "podAnnotations": {"example.com/scrape": "true"},
        "nodeSelector": {"node-pool": "infra"},
        "extraEnv": [{"name": "X", "value": "y"}],
    },
    "hubble": {"relay": {"podLabels": {"team": "net"}}},
}
# Keys the charts leave unset and document in comments only.
DOCUMENTED = {
    "devices": "eth+",
    "egressMasqueradeInterfaces": "eth0",
    "ipMasqAgent": {"enabled": True, "config": {"nonMasqueradeCIDRs": ["10.0.0.0/8"]}},
}


def chart_values(charts: RealCharts, version: str) -> ChartValues:
    files = read_chart_files(charts[version], FILES)
    return ChartValues(
        version, files[defaults.CHART_VALUES_FILE], files[defaults.CHART_SCHEMA_FILE]
    )


def definition(charts: RealCharts, version: str) -> ChartDefinition:
    chart = chart_values(charts, version)
    return ChartDefinition.parse(chart.values_yaml, chart.schema_json)


def snapshot_with(values: Mapping[str, Any], chart: ChartValues | None) -> ClusterSnapshot:
    return ClusterSnapshot(
        values_snapshot=values_file(yaml.safe_dump(dict(values))), target_chart_values=chart
    )


def undefined(charts: RealCharts, version: str, values: Mapping[str, Any]) -> list[str]:
    return [item.path for item in definition(charts, version).undefined(values)]


# --------------------------------------------------------------------------- real charts


def test_tunnel_removed_in_1_15_is_named_with_the_upgrade_notes(cilium_charts: RealCharts) -> None:
    # 1.15.0 renders `tunnel: disabled` without a word, and routes by VXLAN
    snap = snapshot_with(NATIVE_1_14, chart_values(cilium_charts, "1.15.0"))
    result = saved_values_known_to_target_chart(snap, params())
    assert_status(result, Status.WARN)
    assert result.summary == "1 value(s) set for the release not defined by chart 1.15.0: tunnel"
    text = text_of(result)
    assert "tunnel: chart 1.15.0 defines no top-level key 'tunnel'" in text
    assert "values snapshot /home/ci/cilium-values.yaml" in text
    assert "https://docs.cilium.io/en/v1.15/operations/upgrade/#upgrade-notes" in text
    assert result.properties == {"undefined_values": "tunnel"}
    assert "disabled" not in text  # the key, never the value

    strict = saved_values_known_to_target_chart(snap, params(values_check="strict"))
    assert_status(strict, Status.FAIL)
    assert strict.summary.endswith("tunnel [strict values check]")


@pytest.mark.parametrize("target", ["1.15.0", "1.16.0", "1.20.0"])
def test_native_routing_as_1_15_spells_it_passes(cilium_charts: RealCharts, target: str) -> None:
    snap = snapshot_with(NATIVE_1_15, chart_values(cilium_charts, target))
    result = saved_values_known_to_target_chart(snap, params())
    assert_status(result, Status.PASS)
    assert f"defined by chart {target}" in result.summary


@pytest.mark.parametrize("target", ["1.14.19", "1.15.0", "1.16.0", "1.20.0"])
def test_nothing_below_a_free_form_value_is_reported(
    cilium_charts: RealCharts, target: str
) -> None:
    assert undefined(cilium_charts, target, FREE_FORM) == []


@pytest.mark.parametrize("target", ["1.14.19", "1.15.0", "1.16.0"])
def test_keys_the_chart_documents_in_comments_are_defined(
    cilium_charts: RealCharts, target: str
) -> None:
    # `# devices: ""` in values.yaml, and not in the 1.16.0 schema either
    assert undefined(cilium_charts, target, DOCUMENTED) == []


def test_an_unknown_key_below_a_known_one_names_both(cilium_charts: RealCharts) -> None:
    values = {"hubble": {"relay": {"enabled": True, "replicas": 2, "sidecar": {"on": 1}}}}
    snap = snapshot_with(values, chart_values(cilium_charts, "1.16.0"))
    result = saved_values_known_to_target_chart(snap, params())
    assert_status(result, Status.WARN)
    # the unknown key is named once: nothing below it is looked at
    assert result.properties == {"undefined_values": "hubble.relay.sidecar"}
    assert "hubble.relay.sidecar: chart 1.16.0 defines hubble.relay but no key 'sidecar'" in (
        text_of(result)
    )
    assert "values.yaml and values.schema.json" in text_of(result)


def test_a_secret_value_never_appears(cilium_charts: RealCharts) -> None:
    # clustermesh.apiserver.tls.ca.{cert,key} were removed in 1.15; hubble's key was not
    values = {
        "clustermesh": {"apiserver": {"tls": {"ca": {"cert": SECRET, "key": SECRET}}}},
        "hubble": {"tls": {"server": {"key": SECRET}}},
    }
    snap = snapshot_with(values, chart_values(cilium_charts, "1.15.0"))
    result = saved_values_known_to_target_chart(snap, params())
    assert_status(result, Status.WARN)
    assert result.properties == {"undefined_values": "clustermesh.apiserver.tls.ca"}
    assert SECRET not in text_of(result)
    redacted = run_check(get_check("pre", CHECK), snap, params())
    assert SECRET not in text_of(redacted)
    assert REDACTED not in text_of(redacted)  # nothing there to redact in the first place


# What each chart no longer defines of every default of the newest patch before it
# (`helm get values --all` of that release): the removals its upgrade notes name, and
# values added in patches of the older minor after the newer one was first released.
REMOVED_BY_MINOR = {
    ("1.14.19", "1.15.0"): {
        "tunnel",
        "enableK8sEventHandover",
        "enableCnpStatusUpdates",
        "clustermesh.apiserver.tls.ca",
        "clustermesh.apiserver.etcd.image",
        "clustermesh.apiserver.kvstoremesh.image",
        "envoy.xffNumTrustedHopsL7PolicyIngress",
        "envoy.xffNumTrustedHopsL7PolicyEgress",
        "nodeinit.image.digest",
        "nodeinit.image.useDigest",
        "sysctlfix",
        "dnsProxy.socketLingerTimeout",
    },
}


def test_every_default_of_1_14_against_1_15_0(cilium_charts: RealCharts) -> None:
    old = read_chart_files(cilium_charts["1.14.19"], FILES)[defaults.CHART_VALUES_FILE]
    assert old is not None
    found = undefined(cilium_charts, "1.15.0", yaml.safe_load(old))
    assert len(found) == len(set(found))
    assert set(found) == REMOVED_BY_MINOR[("1.14.19", "1.15.0")]


@pytest.mark.parametrize(
    ("old", "new", "removed"),
    [
        # the removals cilium-upgrade-facts lists for 1.16 and 1.17
        (
            "1.15.19",
            "1.16.0",
            {
                "encryption.keyFile",
                "encryption.mountPath",
                "encryption.secretName",
                "encryption.interface",
                "proxy",
                "endpointStatus",
                "remoteNodeIdentity",
                "containerRuntime",
            },
        ),
        ("1.16.19", "1.17.0", {"encryption.wireguard.userspaceFallback"}),
    ],
)
def test_removals_of_a_minor_are_found_among_the_old_defaults(
    cilium_charts: RealCharts, old: str, new: str, removed: set[str]
) -> None:
    text = read_chart_files(cilium_charts[old], FILES)[defaults.CHART_VALUES_FILE]
    assert text is not None
    assert removed <= set(undefined(cilium_charts, new, yaml.safe_load(text)))


def test_each_chart_defines_every_one_of_its_own_defaults(cilium_charts: RealCharts) -> None:
    for version in cilium_charts:
        chart = chart_values(cilium_charts, version)
        assert chart.values_yaml is not None
        defaults_of = yaml.safe_load(chart.values_yaml)
        assert definition(cilium_charts, version).undefined(defaults_of) == [], version


def test_schemas_come_with_1_16(cilium_charts: RealCharts) -> None:
    for version in cilium_charts:
        has_schema = chart_values(cilium_charts, version).schema_json is not None
        assert has_schema == (Version.parse(version) >= Version.parse("1.16.0")), version


# --------------------------------------------------------------------------- the upgrade's values


def test_values_files_and_sets_are_judged_as_helm_merged_them(cilium_charts: RealCharts) -> None:
    saved = {"tunnel": "disabled", "cluster": {"name": "c1"}}
    merged = {**saved, "routingMode": "native", "hubble": {"relay": {"sidecar": {"on": 1}}}}
    intended = IntendedValues(merged, overrides=2)
    snap = snapshot_with(saved, chart_values(cilium_charts, "1.15.0"))
    result = saved_values_known_to_target_chart(snap, params(intended=intended))
    assert result.properties == {"undefined_values": "hubble.relay.sidecar,tunnel"}
    text = text_of(result)
    assert "tunnel: chart 1.15.0 defines no top-level key 'tunnel' (set in the values snapshot" in (
        text
    )
    assert "(set in the values files or --set items of the upgrade)" in text


def test_a_set_removing_a_saved_value_clears_it(cilium_charts: RealCharts) -> None:
    # `--set tunnel=null`: Helm's merge no longer has it, and the upgrade will not pass it
    saved = {"tunnel": "disabled", **NATIVE_1_15}
    intended = IntendedValues(NATIVE_1_15, overrides=1)
    snap = snapshot_with(saved, chart_values(cilium_charts, "1.15.0"))
    assert_status(saved_values_known_to_target_chart(snap, params(intended=intended)), Status.PASS)


def test_overrides_helm_could_not_merge_are_said_unchecked(cilium_charts: RealCharts) -> None:
    intended = IntendedValues(None, overrides=1, error="Error: open extra.yaml: no such file")
    snap = snapshot_with(NATIVE_1_14, chart_values(cilium_charts, "1.15.0"))
    result = saved_values_known_to_target_chart(snap, params(intended=intended))
    assert_status(result, Status.WARN)
    assert "were not checked: Helm did not merge them (Error: open extra.yaml" in text_of(result)


# --------------------------------------------------------------------------- skips


@pytest.mark.parametrize(
    ("chart", "needle"),
    [
        (None, "the target chart's values were not read"),
        (ChartValues("1.15.0", error="helm pull failed"), "could not be read: helm pull failed"),
        (ChartValues("1.15.0"), "has neither values.yaml nor values.schema.json"),
        (ChartValues("1.15.0", values_yaml="a: [1,\n  b: {\n"), "values.yaml is not valid YAML"),
        (ChartValues("1.15.0", values_yaml="", schema_json="{"), "not valid JSON"),
    ],
)
def test_skips_with_the_reason(chart: ChartValues | None, needle: str) -> None:
    result = saved_values_known_to_target_chart(snapshot_with(NATIVE_1_14, chart), params())
    assert_status(result, Status.SKIP)
    assert needle in result.summary


def test_skips_without_a_usable_snapshot(cilium_charts: RealCharts) -> None:
    snap = ClusterSnapshot(target_chart_values=chart_values(cilium_charts, "1.15.0"))
    result = saved_values_known_to_target_chart(snap, params())
    assert_status(result, Status.SKIP)
    assert "see values_snapshot_matches_live" in result.summary


def test_upgrade_notes_url_names_the_minor() -> None:
    assert upgrade_notes_url("1.16.19") == (
        "https://docs.cilium.io/en/v1.16/operations/upgrade/#upgrade-notes"
    )
    assert upgrade_notes_url("not-a-version") is None


# --------------------------------------------------------------------------- the schema's rules


def schema_undefined(schema: Mapping[str, Any], values: Mapping[str, Any]) -> list[str]:
    chart = ChartDefinition.parse("{}", json.dumps(schema))
    return [item.path for item in chart.undefined(values)]


def test_schema_declared_keys_are_defined_and_others_are_not() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "object", "properties": {"b": {"type": "string"}}},
            "open": {"type": "object"},
            "extra": {"type": "object", "additionalProperties": {"type": "string"}},
            "closed": {"type": "object", "additionalProperties": False},
            "either": {"anyOf": [{"type": "null"}, {"properties": {"x": {}}}]},
            "ref": {"$ref": "#/definitions/thing"},
            "pattern": {"type": "object", "patternProperties": {"^p-": {"type": "integer"}}},
            "scalar": {"type": "string"},
        },
        "definitions": {"thing": {"type": "object", "properties": {"y": {}}}},
    }
    values = {
        "a": {"b": "x", "c": "unknown"},
        "open": {"anything": {"below": 1}},
        "extra": {"anything": "x"},
        "closed": {"no": 1},
        "either": {"x": 1, "z": 2},
        "ref": {"y": 1, "w": 2},
        "pattern": {"p-1": 1, "q-1": 2},
        "scalar": {"odd": "a map where a string goes: the chart's own validation says so"},
        "gone": 1,
    }
    assert schema_undefined(schema, values) == [
        "a.c",
        "closed.no",
        "either.z",
        "ref.w",
        "pattern.q-1",
        "gone",
    ]


def test_a_schema_open_at_the_top_defines_everything() -> None:
    assert schema_undefined({"type": "object"}, {"anything": {"at": "all"}}) == []
    assert schema_undefined({"additionalProperties": True, "properties": {}}, {"x": 1}) == []


def test_a_key_known_to_values_yaml_or_the_schema_is_defined() -> None:
    chart = ChartDefinition.parse(
        "fromYaml:\n  a: 1\n",
        json.dumps({"properties": {"fromSchema": {"properties": {"b": {}}}}}),
    )
    values = {"fromYaml": {"a": 2, "c": 3}, "fromSchema": {"b": 1, "d": 2}, "null": None}
    assert [i.path for i in chart.undefined(values)] == ["fromYaml.c", "fromSchema.d"]


def test_dotted_keys_are_escaped_as_helm_set_takes_them() -> None:
    chart = ChartDefinition.parse("a:\n  b: 1\n", None)
    assert [i.path for i in chart.undefined({"a": {"x.y": 1}})] == ["a.x\\.y"]


# --------------------------------------------------------------------------- keys in comments


def test_documented_keys_follow_the_indentation() -> None:
    text = """\
# -- helm-docs description, not a key
# upgradeCompatibility: '1.8'
azure:
  enabled: false
  # resourceGroup: group1
  # ref: https://example.com/not-a-key
ipMasqAgent:
  enabled: false
# the config of nonMasqueradeCIDRs
# config:
#   nonMasqueradeCIDRs: []

extraEnv: []
# - name: FOO
#   value: bar
tolerations:
- operator: Exists
  # effect: NoSchedule
script: |
  # notAKey: inside a block scalar
  echo hi
# @schema
# type: [null, string]
# @schema
# devices: ""
"""
    assert documented_keys(text) == {
        "upgradeCompatibility": {},
        "azure": {"resourceGroup": {}},
        # where its `#` stands, and in the block right above it
        "config": {"nonMasqueradeCIDRs": {}},
        "ipMasqAgent": {"config": {}},
        "devices": {},
    }


# --------------------------------------------------------------------------- the adapter


def test_chart_files_from_an_archive_and_a_directory(
    cilium_charts: RealCharts, tmp_path: Path
) -> None:
    archive = cilium_charts["1.16.0"]
    from_archive = read_chart_files(archive, (*FILES, "missing.txt"))
    assert from_archive["missing.txt"] is None
    assert from_archive[defaults.CHART_SCHEMA_FILE] is not None
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path, filter="data")
    assert read_chart_files(tmp_path / "cilium", FILES) == {k: from_archive[k] for k in FILES}
    # a chart source of either kind reads its version's files
    assert ChartSource.parse(str(archive)).chart_files("1.16.0", FILES) == {
        k: from_archive[k] for k in FILES
    }
    versions = tmp_path / "charts"
    (versions / "1.16.0").parent.mkdir()
    shutil.move(tmp_path / "cilium", versions / "1.16.0")
    assert (
        ChartSource.parse(str(versions)).chart_files("1.16.0", FILES)[defaults.CHART_VALUES_FILE]
        == from_archive[defaults.CHART_VALUES_FILE]
    )


def test_an_unreadable_chart_is_a_chart_source_error(tmp_path: Path) -> None:
    bad = tmp_path / "cilium-1.15.0.tgz"
    bad.write_bytes(b"not a gzip archive")
    with pytest.raises(ChartSourceError, match="cannot read the chart"):
        read_chart_files(bad, FILES)


class Puller:
    """A helm client's pull, answered from the real archives."""

    def __init__(self, charts: RealCharts) -> None:
        self.charts = charts
        self.pulled: list[tuple[str, str]] = []

    def search_repo(
        self, ref: str, *, include_prereleases: bool, repo_url: str | None = None
    ) -> list[Version]:
        return [Version.parse(v) for v in self.charts]

    def pull(
        self, ref: str, version: Version, destination: Path, *, repo_url: str | None = None
    ) -> Path:
        self.pulled.append((ref, str(version)))
        return Path(shutil.copy(self.charts[str(version)], destination))


def test_a_repo_chart_is_pulled_for_its_files(cilium_charts: RealCharts) -> None:
    puller = Puller(cilium_charts)
    source = ChartSource.parse("cilium/cilium", helm=puller)
    files = source.chart_files("1.15.0", FILES)
    assert puller.pulled == [("cilium/cilium", "1.15.0")]
    assert files == read_chart_files(cilium_charts["1.15.0"], FILES)
    with pytest.raises(ChartSourceError, match="without a helm client"):
        ChartSource.parse("cilium/cilium").chart_files("1.15.0", FILES)


def test_helm_pull_command_and_an_archive_it_did_not_write(tmp_path: Path) -> None:
    recorder = Recorder()
    helm = fake_helm(helm_script(tmp_path, "exit 0"), 3, recorder)
    with pytest.raises(HelmFailed, match="wrote 0 chart archives"):
        helm.pull("cilium/cilium", "1.15.0", tmp_path)
    argv = recorder.argvs[-1]
    assert argv[1:] == [
        "pull",
        "cilium/cilium",
        "--version",
        "1.15.0",
        "--destination",
        str(tmp_path),
    ]


def test_helm_pull_through_a_helm_binary(cilium_charts: RealCharts, tmp_path: Path) -> None:
    # a helm that writes the archive where it is told, as `helm pull` does
    archive = cilium_charts["1.15.0"]
    script = helm_script(
        tmp_path,
        'case "$1" in version) echo v3.22.0;; pull) cp "' + str(archive) + '" "$6"/;; esac',
    )
    helm = Helm(script, major=3)
    out = tmp_path / "out"
    out.mkdir()
    assert helm.pull("cilium/cilium", "1.15.0", out) == out / archive.name
    source = ChartSource.parse("cilium/cilium", helm=helm)
    assert source.chart_files("1.15.0", FILES) == read_chart_files(archive, FILES)


def test_the_collector_reads_the_target_charts_files(cilium_charts: RealCharts) -> None:
    request = CollectRequest(
        target_version="1.15.0", chart=ChartSource.parse(str(cilium_charts["1.15.0"]))
    )
    out = read_helm._chart_values(request)
    chart = out["target_chart_values"]
    assert (chart.chart_version, chart.error, chart.schema_json) == ("1.15.0", "", None)
    assert chart.values_yaml is not None
    assert "routingMode" in chart.values_yaml
    # a version the chart source does not have is a reason, not an exception
    wrong = read_helm._chart_values(CollectRequest(target_version="1.16.0", chart=request.chart))
    assert "is version 1.15.0, not 1.16.0" in wrong["target_chart_values"].error
    assert read_helm._chart_values(CollectRequest()) == {}


# --------------------------------------------------------------------------- the gate


@pytest.fixture
def gate(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Gate:
    return new_gate(pytester, monkeypatch)


# the target of the harness is a later patch: the chart read is the real 1.16.0
ONLY_THE_CHECK = ("-k", CHECK, "--cilium-target-version=1.16.0")


def _with_real_chart(gate: Gate, charts: RealCharts, version: str) -> None:
    files = read_chart_files(charts[version], FILES)
    gate.data["chart_files"] = {k: v for k, v in files.items() if v is not None}
    gate.data["values"] = {**gate.data["values"], **NATIVE_1_14}


def test_the_gate_warns_by_default(gate: Gate, cilium_charts: RealCharts) -> None:
    _with_real_chart(gate, cilium_charts, "1.16.0")
    result = gate.run("--cilium-phase=pre", *ONLY_THE_CHECK)
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert "cilium-upgrade warnings" in out
    assert "not defined by chart 1.16.0: tunnel" in out
    assert "https://docs.cilium.io/en/v1.16/operations/upgrade/#upgrade-notes" in out


@pytest.mark.parametrize("how", ["option", "environment"])
def test_the_gate_fails_with_the_strict_values_check(
    gate: Gate, cilium_charts: RealCharts, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    _with_real_chart(gate, cilium_charts, "1.16.0")
    if how == "option":
        result = gate.run("--cilium-phase=pre", *ONLY_THE_CHECK, "--cilium-values-check=strict")
    else:
        monkeypatch.setenv("CILIUM_UPGRADE_VALUES_CHECK", "strict")
        result = gate.run("--cilium-phase=pre", *ONLY_THE_CHECK)
    result.assert_outcomes(failed=1)
    assert "tunnel [strict values check]" in result.stdout.str()


def test_a_bad_values_check_is_a_usage_error(gate: Gate) -> None:
    result = gate.run("--cilium-values-check=loose")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --cilium-values-check: 'loose' is not one of warn, strict*"]
    )
