"""/metrics through prometheus_client, and the shipped Grafana dashboard and Prometheus rules against it."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from agent.contract import agent_topic
from aggregator.app import create_app
from aggregator.appkeys import INGEST, LINK, STORE
from aggregator.embedded_broker import Broker
from aggregator.settings import Settings
from tests.aggregator import agents
from tests.aggregator.conftest import wait_until
from tests.conftest import REPO
from tests.mqtt_helpers import publish

pytestmark = pytest.mark.broker

GRAFANA = REPO / "deploy" / "grafana" / "floorwalker.json"
RULES = REPO / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS_OWN = {"up"}  # series Prometheus writes itself for each scrape target
METRIC = re.compile(r"\b((?:floorwalker|process|python)_[a-zA-Z0-9_]+|up)\b(?!\s*\()")


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def used_metrics(expressions: list[str]) -> set[str]:
    names: set[str] = set()
    for expr in expressions:
        expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers: names inside are labels, not metrics
        names.update(METRIC.findall(expr))
    return names


def dashboard_expressions(path: Path) -> list[str]:
    dash = json.loads(path.read_text())
    return [t["expr"] for p in dash["panels"] for t in p["targets"]]


def rule_expressions(path: Path) -> list[str]:
    doc = yaml.safe_load(path.read_text())
    return [str(r["expr"]) for g in doc["groups"] for r in g["rules"]]


async def scrape(client) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    resp = await client.get("/metrics")
    assert resp.status == 200
    return resp.headers["Content-Type"], await resp.text()


async def test_exposition_is_conventional_and_real(aiohttp_client, settings: Settings, mqtt_broker: Broker) -> None:
    client = await aiohttp_client(create_app(settings))
    await wait_until(lambda: client.app[LINK].subscribed)
    content_type, text = await scrape(client)
    assert content_type.startswith("text/plain; version=")  # Prometheus' text format (0.0.4, or 1.0.0 from 0.22)
    before = samples(text)
    assert "floorwalker_messages_rejected_total" not in before  # no {reason="none"} placeholder
    assert not any("none" in labels.values() for series in before.values() for labels, _ in series)
    assert "floorwalker_inbox_depth" not in text
    assert before["process_resident_memory_bytes"][0][1] > 0 and "process_cpu_seconds_total" in before

    t0 = time.time() - 30
    traffic = [*agents.visit("d-metrics", t0, step_s=1.0), (agent_topic("demo", "agent-1", "move"), b"not json")]
    await asyncio.to_thread(publish, mqtt_broker.host, mqtt_broker.port, traffic)
    ingest = client.app[INGEST]
    await wait_until(lambda: ingest.counters.acked >= len(traffic))
    _, text = await scrape(client)
    after = samples(text)
    families = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert after["floorwalker_messages_received_total"] == [({}, float(len(traffic)))]
    assert after["floorwalker_messages_rejected_total"] == [({"reason": "not-json"}, 1.0)]
    latency_count = after["floorwalker_ingest_latency_seconds_count"][0][1]
    assert 1 <= latency_count <= ingest.counters.batches  # one observation per committed batch
    commits = after["floorwalker_batch_commit_duration_seconds_count"][0][1]
    assert 1 <= commits <= client.app[STORE].stats.commits
    assert after["floorwalker_ingest_latency_seconds_bucket"][-1][0]["le"] == "+Inf"
    assert after["floorwalker_database_size_bytes"][0][1] > 0 and after["floorwalker_disk_free_bytes"][0][1] > 0
    assert families["floorwalker_batch_commit_duration_seconds"] == "histogram"
    for name, kind in families.items():  # the parser strips _total from counter family names
        if kind == "counter":
            assert f"{name}_total" in after or name.startswith(("python_", "process_")), name
    for name in after:
        assert not re.search(r"_(ms|millis|kb|mb|sum_seconds)$", name), name


async def test_dashboard_and_rules_use_only_exported_metrics(aiohttp_client, settings: Settings,
                                                             mqtt_broker: Broker) -> None:
    client = await aiohttp_client(create_app(settings))
    await wait_until(lambda: client.app[LINK].subscribed)
    t0 = time.time() - 30
    traffic = [*agents.visit("d-dash", t0, step_s=1.0), (agent_topic("demo", "agent-1", "move"), b"[]")]
    await asyncio.to_thread(publish, mqtt_broker.host, mqtt_broker.port, traffic)
    await wait_until(lambda: client.app[INGEST].counters.acked >= len(traffic))
    _, text = await scrape(client)
    exported = set(samples(text))
    dashboard, rules = used_metrics(dashboard_expressions(GRAFANA)), used_metrics(rule_expressions(RULES))
    assert len(dashboard) >= 20 and len(rules) >= 6
    missing = {name for name in dashboard | rules if name not in exported and name not in PROMETHEUS_OWN}
    assert not missing, f"used by deploy/grafana or deploy/prometheus, not exported: {sorted(missing)}"
    doc = yaml.safe_load(RULES.read_text())
    titles = {r["alert"] for g in doc["groups"] for r in g["rules"]}
    assert {"FloorwalkerAgentOffline", "FloorwalkerIngestLag", "FloorwalkerDeadLettersRising",
            "FloorwalkerDiskFilling"} <= titles
    for group in doc["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in ("warning", "critical") and rule["annotations"]["summary"]


def test_metric_name_extraction_sees_functions_and_labels_apart() -> None:
    expr = 'histogram_quantile(0.99, sum by (le) (rate(floorwalker_x_bucket{job="floorwalker_y"}[5m]))) > up'
    assert used_metrics([expr]) == {"floorwalker_x_bucket", "up"}
