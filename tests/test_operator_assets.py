"""The operator assets (config/prometheus, config/grafana) are built on metrics that exist:
every name an alert or a dashboard panel uses is one a live ``/metrics`` serves."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from tests.test_metrics_auth import guarded, secured_sim  # noqa: F401 (fixtures)

CONFIG = Path(__file__).resolve().parent.parent / "config"
NAME = re.compile(r"\b((?:gpuctl|process)_[a-z_]+)")
HISTOGRAM_PARTS = ("_bucket", "_count", "_sum")


def alert_expressions() -> list[str]:
    rules = yaml.safe_load((CONFIG / "prometheus" / "alerts.yaml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((CONFIG / "grafana" / "gpuctl-async-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"]
            for target in panel.get("targets", ())]


def test_alerts_cover_what_the_issue_asks_for():
    rules = yaml.safe_load((CONFIG / "prometheus" / "alerts.yaml").read_text())
    alerts = {rule["alert"]: rule for group in rules["groups"] for rule in group["rules"]}
    assert alerts["GpuctlAsyncCacheNotSynced"]["for"] == "5m"
    assert "gpuctl_kubernetes_requests_total" in alerts["GpuctlAsyncKubernetesErrors"]["expr"]
    assert "gpuctl_log_lines_dropped_total" in alerts["GpuctlAsyncLogLinesDropped"]["expr"]
    assert all(rule["annotations"]["summary"] for rule in alerts.values())


def test_the_scrape_example_targets_the_shipped_service():
    scrape = yaml.safe_load((CONFIG / "prometheus" / "scrape-config.yaml").read_text())
    (job,) = [j for j in scrape["scrape_configs"] if j["job_name"] == "gpuctl-async"]
    assert job["metrics_path"] == "/metrics"
    keep = next(r for r in job["relabel_configs"] if r.get("action") == "keep")
    service = yaml.safe_load((CONFIG / "k8s" / "service.yaml").read_text())
    assert keep["regex"] == f"{service['metadata']['name']};{service['spec']['ports'][0]['name']}"


async def test_every_metric_the_assets_use_is_served(guarded, secured_sim):  # noqa: F811
    reader = secured_sim.add_user("prometheus")
    secured_sim.bind("User", "prometheus", "gpuctl-async-metrics-reader")
    await guarded.get("/ready")  # the API server probe's gauge appears after the first probe
    response = await guarded.get("/metrics", headers={"Authorization": f"Bearer {reader}"})
    assert response.status == 200
    served = set()
    for line in (await response.text()).splitlines():
        if line.startswith(("# HELP ", "# TYPE ")):
            served.add(line.split()[2])
        elif line and not line.startswith("#"):
            served.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    used = {name for expr in alert_expressions() + dashboard_expressions()
            for name in NAME.findall(expr)}
    assert len(used) > 30
    missing = sorted(name for name in used if name not in served and not any(
        name.endswith(part) and name[:-len(part)] in served for part in HISTOGRAM_PARTS))
    assert not missing, missing
