"""The Helm chart (deploy/helm/parity), checked without a cluster.

- Rendered by Helm's own engine (PyPI `helm-python-sdk`: Helm v4 as a shared library, the same
  template engine, `values.schema.json` validation and linter as the `helm` binary), with the
  default values and with every switch documented in docs/deploy.md.
- Every rendered Kubernetes object is validated against the API schemas of a recent Kubernetes
  (PyPI `kubernetes-validate`, schemas shipped in the wheel, strict: unknown fields fail); the
  Prometheus Operator objects (ServiceMonitor, PodMonitor, PrometheusRule) against the models
  generated from the operator's CRDs (PyPI `cloudcoil.models.prometheus-operator`), with unknown
  fields refused too.
- The PrometheusRule is prometheus/alerts.yml; the dashboards are grafana/dashboards; the rendered
  parity configuration passes `parity config check`; the pods are non-root, read-only, without
  capabilities, with probes that fit rolling updates.

The image itself (Dockerfile) cannot be built here (no container engine): tests/unit/
test_deploy_files.py checks it statically, and the test below that the chart's uid and port agree
with it. Runs one `parity` subprocess per config check: a few seconds in all.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

helm = pytest.importorskip("helm_python", reason="helm-python-sdk (dev extra) is not installed")
kubernetes_validate = pytest.importorskip("kubernetes_validate")
prom_models = pytest.importorskip("cloudcoil.models.prometheus_operator.v1")

pytestmark = pytest.mark.component

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "parity"
PARITY = str(Path(sys.executable).with_name("parity"))
# The newest Kubernetes kubernetes-validate ships schemas for, and the oldest the chart supports
# (Chart.yaml kubeVersion; CronJob timeZone and StatefulSet PVC retention are GA there).
KUBE_VERSIONS = ("1.37.0", "1.27.0")
PUSHGATEWAY = "http://prometheus-pushgateway.monitoring:9091"
RUNBOOK = "https://git.example.com/ops/parity/blob/main/docs/runbook.md"

# Every switch docs/deploy.md documents (a test checks that each is named there), with values
# that turn it on. Keys are the dotted value paths.
SWITCHES: dict[str, dict[str, Any]] = {
    "reconcile.enabled": {"reconcile": {"enabled": True, "pushgateway": PUSHGATEWAY}},
    "reconcile.repairDryRun": {"reconcile": {"enabled": True, "pushgateway": PUSHGATEWAY,
                                             "repairDryRun": True, "tables": ["public.payments"],
                                             "segments": 16, "workers": 4, "timeZone": "Europe/Berlin"}},
    "reconcile.cluster": {"reconcile": {"enabled": True, "pushgateway": PUSHGATEWAY,
                                        "cluster": "tcp://dask-scheduler.dask:8786"}},
    "reconcile.persistence.enabled": {"reconcile": {"enabled": True, "pushgateway": PUSHGATEWAY,
                                                    "persistence": {"enabled": False}}},
    "persistence.enabled": {"persistence": {"enabled": False}},
    "monitoring.monitor.enabled": {"monitoring": {"monitor": {"enabled": True,
                                                              "labels": {"release": "kube-prometheus-stack"}}}},
    "monitoring.monitor.kind": {"monitoring": {"monitor": {"enabled": True, "kind": "PodMonitor"}}},
    "monitoring.prometheusRule.enabled": {"monitoring": {"prometheusRule": {"enabled": True}}},
    "monitoring.prometheusRule.runbookBase": {"monitoring": {"prometheusRule": {"enabled": True,
                                                                                "runbookBase": RUNBOOK}}},
    "monitoring.dashboards.enabled": {"monitoring": {"dashboards": {"enabled": True, "namespace": "monitoring",
                                                                    "annotations": {"grafana_folder": "parity"}}}},
    "networkPolicy.enabled": {"networkPolicy": {"enabled": True, "metricsFrom": [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]}},
    "secrets.create": {"secrets": {"create": True, "data": {"postgres-password": "s3cret"}}},
    "secrets.existingSecret": {"secrets": {"existingSecret": "parity-db"}},
    "serviceAccount.annotations": {"serviceAccount": {"annotations": {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/parity"}}},
    "daemon.replicas": {"daemon": {"replicas": 4}},
    "daemon.pdb.enabled": {"daemon": {"pdb": {"enabled": False}}},
    "daemon.topologySpread.enabled": {"daemon": {"topologySpread": {"enabled": False}}},
    "image.digest": {"image": {"digest": "sha256:" + "ab" * 32}},
}


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


ALL_ON: dict[str, Any] = {}
for _name, _values in SWITCHES.items():
    if _name not in ("reconcile.persistence.enabled", "monitoring.monitor.kind", "secrets.existingSecret"):
        ALL_ON = _merge(ALL_ON, _values)
CASES = {"defaults": {}, **SWITCHES, "all": ALL_ON}


@pytest.fixture(scope="module")
def chart() -> Any:
    return helm.Chart.load(CHART)


def render(chart: Any, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    manifests = chart.render(values or {}, name="parity", namespace="parity", is_install=True)
    docs: list[dict[str, Any]] = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def one(docs: list[dict[str, Any]], kind: str, suffix: str = "") -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, f"{kind} *{suffix}: {[d['metadata']['name'] for d in found]}"
    return found[0]


def kinds(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(d["kind"] for d in docs)


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for d in docs:
        if d["kind"] == "StatefulSet":
            yield "daemon", d["spec"]["template"]["spec"]
        elif d["kind"] == "CronJob":
            yield "reconcile", d["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def _strip_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_none(v) for v in value]
    return value


# --- rendering and API validation -------------------------------------------------------------


@pytest.mark.parametrize("case", list(CASES))
def test_every_rendered_object_is_valid_for_kubernetes_and_the_prometheus_operator(chart: Any, case: str) -> None:
    docs = render(chart, CASES[case])
    assert docs
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            model = getattr(prom_models, doc["kind"])
            parsed = model.model_validate(doc)
            # The generated models ignore unknown fields: a field that does not survive the round
            # trip is one the CRD does not have.
            assert _strip_none(parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")) == doc
            continue
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("case", ["defaults", "all"])
def test_helm_lint_finds_nothing(case: str) -> None:
    report = helm.lint(CHART, CASES[case], strict=True, kube_version="v1.33.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"] and not problems, report


def test_the_default_release_is_the_daemon_and_its_plumbing(chart: Any) -> None:
    assert kinds(render(chart)) == ["ConfigMap", "PodDisruptionBudget", "Service", "Service",
                                    "ServiceAccount", "StatefulSet"]


def test_all_switches_add_their_objects(chart: Any) -> None:
    assert kinds(render(chart, ALL_ON)) == sorted([
        "ConfigMap", "ConfigMap", "ConfigMap",  # config + two dashboards
        "CronJob", "NetworkPolicy", "PersistentVolumeClaim", "PrometheusRule",  # (PDB switched off)
        "Secret", "Service", "Service", "ServiceAccount", "ServiceMonitor", "StatefulSet"])


def test_every_switch_is_documented_and_in_the_values() -> None:
    docs = (ROOT / "docs" / "deploy.md").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for name in SWITCHES:
        assert f"`{name}`" in docs, f"{name} is not documented in docs/deploy.md"
        node: Any = values
        for part in name.split("."):
            assert isinstance(node, dict) and part in node, f"{name} is not in values.yaml"
            node = node[part]


# --- values.schema.json -----------------------------------------------------------------------

BAD_VALUES = {
    "zero replicas": {"daemon": {"replicas": 0}},
    "reconcile without a pushgateway": {"reconcile": {"enabled": True}},
    "pushgateway not a URL": {"reconcile": {"enabled": True, "pushgateway": "pushgateway:9091"}},
    "loopback HTTP host": {"config": {"daemon": {"http": {"host": "127.0.0.1"}}}},
    "state off the volume": {"config": {"daemon": {"state_dir": "/tmp/state"}}},
    "writable root": {"securityContext": {"readOnlyRootFilesystem": False}},
    "privilege escalation": {"securityContext": {"allowPrivilegeEscalation": True}},
    "root": {"podSecurityContext": {"runAsNonRoot": False}},
    "unknown monitor kind": {"monitoring": {"monitor": {"kind": "Probe"}}},
    "runbook base with an anchor": {"monitoring": {"prometheusRule": {"runbookBase": "https://x/r.md#a"}}},
    "misspelt key": {"deamon": {"replicas": 2}},
    "no tables": {"config": {"tables": []}},
    "bad digest": {"image": {"digest": "latest"}},
    "bad scrape interval": {"monitoring": {"monitor": {"interval": "30 seconds"}}},
    "reconcile interval as text": {"reconcile": {"expectedInterval": "1d"}},
    "network policy admitting no scraper": {"networkPolicy": {"enabled": True}},
}


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_bad_values_fail_at_install_time(chart: Any, case: str) -> None:
    with pytest.raises(helm.HelmValuesError):
        chart.render(BAD_VALUES[case], name="parity", namespace="parity", is_install=True)


# --- pods: security and probes ----------------------------------------------------------------


@pytest.mark.parametrize("case", ["defaults", "all"])
def test_pods_are_non_root_read_only_without_capabilities(chart: Any, case: str) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    uid = int(re.search(r"^USER (\d+):(\d+)$", dockerfile, re.M).group(1))  # type: ignore[union-attr]
    specs = dict(pod_specs(render(chart, CASES[case])))
    assert set(specs) == ({"daemon", "reconcile"} if case == "all" else {"daemon"})
    for spec in specs.values():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == uid and pod["fsGroup"] == uid
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes["tmp"]
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] == uid
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
            mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
            assert mounts["/tmp"]["name"] == "tmp"
            assert mounts["/var/lib/parity"]["name"] in ("state", "reports")
            assert mounts["/etc/parity/parity.yaml"]["readOnly"] is True
            assert "resources" in container and container["resources"]["requests"]


def test_daemon_probes_fit_rolling_updates(chart: Any) -> None:
    sts = one(render(chart), "StatefulSet")
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    port = yaml.safe_load((CHART / "values.yaml").read_text())["config"]["daemon"]["http"]["port"]
    assert container["ports"] == [{"name": "http-metrics", "containerPort": port, "protocol": "TCP"}]
    assert {"name": "PARITY_HTTP_PORT", "value": str(port)} in container["env"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-metrics"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http-metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-metrics"}
    # The startup probe covers a slow first start; liveness tolerates a minute of a stalled server.
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120
    assert sts["spec"]["updateStrategy"] == {"type": "RollingUpdate"}
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    assert container["args"][:3] == ["run", "--config", "/etc/parity/parity.yaml"]
    assert container["image"] == "parity:0.1.0"


def test_replicas_share_one_group_and_each_has_its_own_state(chart: Any) -> None:
    docs = render(chart, SWITCHES["daemon.replicas"])
    sts = one(docs, "StatefulSet")
    assert sts["spec"]["replicas"] == 4
    config = yaml.safe_load(one(docs, "ConfigMap", "-config")["data"]["parity.yaml"])
    assert config["kafka"]["group_id"] == "parity"
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "state"
    assert config["daemon"]["state_dir"].startswith("/var/lib/parity/")
    ephemeral = one(render(chart, SWITCHES["persistence.enabled"]), "StatefulSet")
    assert "volumeClaimTemplates" not in ephemeral["spec"]
    state = {v["name"]: v for v in ephemeral["spec"]["template"]["spec"]["volumes"]}["state"]
    assert state == {"name": "state", "emptyDir": {}}


def test_pdb_and_topology_spread(chart: Any) -> None:
    docs = render(chart)
    sts = one(docs, "StatefulSet")
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == sts["spec"]["selector"]["matchLabels"]
    spread = sts["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    assert all(c["labelSelector"]["matchLabels"] == sts["spec"]["selector"]["matchLabels"] for c in spread)
    off = render(chart, _merge(SWITCHES["daemon.pdb.enabled"], SWITCHES["daemon.topologySpread.enabled"]))
    assert "PodDisruptionBudget" not in kinds(off)
    assert "topologySpreadConstraints" not in one(off, "StatefulSet")["spec"]["template"]["spec"]


def test_the_service_account_carries_the_irsa_role_for_every_pod(chart: Any) -> None:
    docs = render(chart, _merge(SWITCHES["serviceAccount.annotations"], SWITCHES["reconcile.enabled"]))
    sa = one(docs, "ServiceAccount")
    assert sa["metadata"]["annotations"] == SWITCHES["serviceAccount.annotations"]["serviceAccount"]["annotations"]
    assert {spec["serviceAccountName"] for _, spec in pod_specs(docs)} == {sa["metadata"]["name"]}


def test_image_by_digest(chart: Any) -> None:
    sts = one(render(chart, SWITCHES["image.digest"]), "StatefulSet")
    assert sts["spec"]["template"]["spec"]["containers"][0]["image"] == "parity@sha256:" + "ab" * 32


# --- secrets as files -------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["defaults", "secrets.create", "secrets.existingSecret"])
def test_secrets_are_mounted_files_never_environment_values(chart: Any, case: str) -> None:
    docs = render(chart, CASES[case])
    spec = one(docs, "StatefulSet")["spec"]["template"]["spec"]
    secret_volume = {v["name"]: v for v in spec["volumes"]}["secrets"]["secret"]
    expected = {"defaults": "parity", "secrets.create": "parity", "secrets.existingSecret": "parity-db"}[case]
    assert secret_volume["secretName"] == expected
    assert secret_volume["defaultMode"] == 0o440
    env = spec["containers"][0]["env"]
    assert {"name": "POSTGRES_PASSWORD_FILE", "value": "/etc/parity/secrets/postgres-password"} in env
    assert not any("valueFrom" in e for e in env)  # no secretKeyRef: no secret in the environment
    assert all(e["name"].endswith("_FILE") for e in env if "/etc/parity/secrets" in str(e.get("value")))
    assert ("Secret" in kinds(docs)) == (case == "secrets.create")
    if case == "secrets.create":
        assert one(docs, "Secret")["stringData"] == {"postgres-password": "s3cret"}


# --- the rendered parity configuration --------------------------------------------------------


@pytest.mark.parametrize("case", ["defaults", "all"])
def test_the_rendered_config_passes_parity_config_check(chart: Any, case: str, tmp_path: Path) -> None:
    docs = render(chart, CASES[case])
    config = tmp_path / "parity.yaml"
    config.write_text(one(docs, "ConfigMap", "-config")["data"]["parity.yaml"])
    # As the pod sees it: each VAR_FILE of the container pointing at its mounted secret file.
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARITY_", "POSTGRES_", "AWS_"))}
    for var in one(docs, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]["env"]:
        if var["name"].endswith("_FILE"):
            path = secrets / Path(var["value"]).name
            path.write_text("pw with spaces 'and quotes'\n")
            env[var["name"]] = str(path)
    proc = subprocess.run([PARITY, "config", "check", str(config)], capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "parity.yaml: ok: 1 table(s): public.payments->Payments (verify)"


def test_a_broken_config_in_values_fails_parity_config_check(chart: Any, tmp_path: Path) -> None:
    values = {"config": {"tables": [{"source": "public.payments", "primary_key": ["id"], "target": "P",
                                     "keys": {"Id": "{nope}"}, "columns": {}}]}}
    config = tmp_path / "parity.yaml"
    config.write_text(one(render(chart, values), "ConfigMap", "-config")["data"]["parity.yaml"])
    proc = subprocess.run([PARITY, "config", "check", str(config)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "parity.yaml" in proc.stderr


def test_a_config_change_rolls_the_daemon(chart: Any) -> None:
    def checksum(values: dict[str, Any]) -> str:
        sts = one(render(chart, values), "StatefulSet")
        return str(sts["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    assert checksum({}) != checksum({"config": {"kafka": {"group_id": "parity-2"}}})


# --- scheduled reconciles ---------------------------------------------------------------------


def test_the_reconcile_cronjob_resumes_pushes_and_never_overlaps(chart: Any) -> None:
    docs = render(chart, SWITCHES["reconcile.enabled"])
    cron = one(docs, "CronJob")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert cron["spec"]["schedule"] == "17 3 * * *"
    job = cron["spec"]["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0 and job["activeDeadlineSeconds"] > 0
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert "command" not in container  # the image's entrypoint: parity
    assert container["args"] == ["reconcile", "--config", "/etc/parity/parity.yaml", "--once", "--resume",
                                 "--pushgateway", PUSHGATEWAY, "--push-job", "parity-reconcile",
                                 "--expected-interval", "86400"]
    reports = {v["name"]: v for v in pod["volumes"]}["reports"]
    assert reports["persistentVolumeClaim"]["claimName"] == one(docs, "PersistentVolumeClaim")["metadata"]["name"]
    config = yaml.safe_load(one(docs, "ConfigMap", "-config")["data"]["parity.yaml"])
    assert config["reconcile"]["report_dir"].startswith("/var/lib/parity/")
    ephemeral = render(chart, SWITCHES["reconcile.persistence.enabled"])
    assert "PersistentVolumeClaim" not in kinds(ephemeral)
    pod = one(ephemeral, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert {v["name"]: v for v in pod["volumes"]}["reports"] == {"name": "reports", "emptyDir": {}}


def test_the_reconcile_cronjob_can_run_its_reads_on_a_dask_cluster(chart: Any) -> None:
    cron = one(render(chart, SWITCHES["reconcile.cluster"]), "CronJob")
    (container,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[args.index("--cluster") + 1] == "tcp://dask-scheduler.dask:8786"
    plain = one(render(chart, SWITCHES["reconcile.enabled"]), "CronJob")
    (container,) = plain["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert "--cluster" not in container["args"]


def test_repair_is_dry_run_only(chart: Any, tmp_path: Path) -> None:
    cron = one(render(chart, SWITCHES["reconcile.repairDryRun"]), "CronJob")
    (container,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["/bin/sh", "-c"]
    (script,) = container["args"]
    assert "parity repair" in script and "--dry-run" in script and "--execute" not in script
    assert ("parity 'reconcile' '--config' '/etc/parity/parity.yaml' '--once' '--resume' '--pushgateway' "
            f"'{PUSHGATEWAY}' '--push-job' 'parity-reconcile' '--expected-interval' '86400' "
            "'--table' 'public.payments' '--segments' '16' "
            "'--workers' '4'") in script
    assert "/var/lib/parity/reports/reconcile-*.json" in script.replace("'", "")
    assert cron["spec"]["timeZone"] == "Europe/Berlin"
    assert subprocess.run(["sh", "-n", "-c", script], capture_output=True).returncode == 0
    # Run the script with stand-ins for parity: reconcile exits 1 (drift), repair is called with
    # --dry-run on the newest report, and the job keeps reconcile's exit code.
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "reconcile-old.json").write_text("{}")
    os.utime(reports / "reconcile-old.json", (1, 1))
    (reports / "reconcile-new.json").write_text("{}")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    fake = bin_dir / "parity"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {log}\n[ "$1" = reconcile ] && exit 1\nexit 0\n')
    fake.chmod(0o755)
    proc = subprocess.run(["sh", "-c", script.replace("/var/lib/parity/reports", str(reports))],
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    calls = log.read_text().splitlines()
    assert calls[1] == f"repair --config /etc/parity/parity.yaml --report {reports}/reconcile-new.json --dry-run"


# --- monitoring: one source of truth ----------------------------------------------------------


def test_the_chart_copies_equal_their_sources() -> None:
    """files/ holds byte copies (a chart reads only its own directory): `make chart-files`."""
    assert (CHART / "files" / "alerts.yml").read_bytes() == (ROOT / "prometheus" / "alerts.yml").read_bytes()
    sources = {p.name: p.read_bytes() for p in (ROOT / "grafana" / "dashboards").glob("*.json")}
    copies = {p.name: p.read_bytes() for p in (CHART / "files" / "dashboards").glob("*.json")}
    assert copies == sources


def test_the_prometheus_rule_is_alerts_yml(chart: Any) -> None:
    rule = one(render(chart, SWITCHES["monitoring.prometheusRule.enabled"]), "PrometheusRule")
    source = yaml.safe_load((ROOT / "prometheus" / "alerts.yml").read_text())
    assert rule["spec"] == {"groups": source["groups"]}


def test_the_prometheus_rule_renders_the_runbook_base_like_render_alerts(chart: Any) -> None:
    rule = one(render(chart, SWITCHES["monitoring.prometheusRule.runbookBase"]), "PrometheusRule")
    rendered = subprocess.run([sys.executable, str(ROOT / "scripts" / "render-alerts"), "--runbook-base", RUNBOOK],
                              capture_output=True, text=True, check=True).stdout
    assert rule["spec"] == {"groups": yaml.safe_load(rendered)["groups"]}
    urls = [r["annotations"]["runbook_url"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert urls and all(u.startswith(RUNBOOK + "#") for u in urls)


def test_dashboards_are_configmaps_for_the_grafana_sidecar(chart: Any) -> None:
    docs = render(chart, SWITCHES["monitoring.dashboards.enabled"])
    maps = [d for d in docs if d["kind"] == "ConfigMap" and not d["metadata"]["name"].endswith("-config")]
    sources = {p.name: json.loads(p.read_text()) for p in (ROOT / "grafana" / "dashboards").glob("*.json")}
    assert len(maps) == len(sources) >= 2
    seen: dict[str, Any] = {}
    for cm in maps:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["namespace"] == "monitoring"
        assert cm["metadata"]["annotations"] == {"grafana_folder": "parity"}
        ((name, text),) = cm["data"].items()
        seen[name] = json.loads(text)
    assert seen == sources


@pytest.mark.parametrize("kind", ["ServiceMonitor", "PodMonitor"])
def test_the_monitor_scrapes_the_daemon_port(chart: Any, kind: str) -> None:
    values = SWITCHES["monitoring.monitor.enabled" if kind == "ServiceMonitor" else "monitoring.monitor.kind"]
    docs = render(chart, values)
    monitor = one(docs, kind)
    endpoints = monitor["spec"]["endpoints" if kind == "ServiceMonitor" else "podMetricsEndpoints"]
    assert [e["port"] for e in endpoints] == ["http-metrics"] and endpoints[0]["path"] == "/metrics"
    selector = monitor["spec"]["selector"]["matchLabels"]
    if kind == "ServiceMonitor":
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        (target,) = [d for d in docs if d["kind"] == "Service"
                     and selector.items() <= d["metadata"]["labels"].items()]
        assert target["spec"]["ports"][0]["name"] == "http-metrics"
        assert target["spec"]["selector"].items() <= one(docs, "StatefulSet")["spec"]["template"]["metadata"][
            "labels"].items()
    else:
        assert selector.items() <= one(docs, "StatefulSet")["spec"]["template"]["metadata"]["labels"].items()


def test_the_network_policy_opens_only_the_metrics_port(chart: Any) -> None:
    policy = one(render(chart, SWITCHES["networkPolicy.enabled"]), "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": "http-metrics", "protocol": "TCP"}]
    assert rule["from"] == SWITCHES["networkPolicy.enabled"]["networkPolicy"]["metricsFrom"]


def test_the_chart_follows_the_project_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert meta["appVersion"] == project
    assert f"parity:{project}" in (ROOT / "Dockerfile").read_text()


def test_the_validators_are_not_vacuous(chart: Any) -> None:
    """The strict checks above do refuse a misspelt field, in both kinds of objects."""
    docs = render(chart, _merge(SWITCHES["monitoring.prometheusRule.enabled"], SWITCHES["monitoring.monitor.enabled"]))
    sts = copy.deepcopy(one(docs, "StatefulSet"))
    sts["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, KUBE_VERSIONS[0], strict=True)
    rule = copy.deepcopy(one(docs, "PrometheusRule"))
    rule["spec"]["groups"][0]["rules"][0]["fro"] = "5m"
    parsed = prom_models.PrometheusRule.model_validate(rule)
    assert _strip_none(parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")) != rule
    monitor = copy.deepcopy(one(docs, "ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["interval"] = "30 seconds"
    with pytest.raises(ValueError):
        prom_models.ServiceMonitor.model_validate(monitor)
