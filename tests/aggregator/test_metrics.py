"""/metrics through prometheus_client, and the shipped Grafana dashboard and Prometheus rules against it."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
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
DASHBOARDS = sorted((REPO / "deploy" / "grafana").glob("*.json"))
RULE_FILES = sorted(p for p in (REPO / "deploy" / "prometheus").iterdir() if p.suffix in (".yml", ".yaml"))
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


def _panels(panels: list[dict]) -> Iterator[dict]:  # type: ignore[type-arg]
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # a collapsed row keeps its panels inside


def dashboard_expressions(path: Path) -> list[str]:
    """Every query of the dashboard: panel targets (rows included), template variables, annotations."""
    dash = json.loads(path.read_text())
    exprs = [t["expr"] for p in _panels(dash["panels"]) for t in p.get("targets", []) if "expr" in t]
    for item in [*dash.get("templating", {}).get("list", []), *dash.get("annotations", {}).get("list", [])]:
        query = item.get("query") or item.get("expr")
        query = query.get("query") if isinstance(query, dict) else query
        if isinstance(query, str) and item.get("type", "query") == "query":
            exprs.append(query)
    return exprs


QUERY_IN_TEMPLATE = re.compile(r'query\s+"((?:[^"\\]|\\.)*)"')


def rule_expressions(path: Path) -> list[str]:
    """Every rule's expression, and the queries its annotations run (``{{ with query "..." }}``)."""
    doc = yaml.safe_load(path.read_text())
    exprs: list[str] = []
    for group in doc["groups"]:
        for rule in group["rules"]:
            exprs.append(str(rule["expr"]))
            for text in (rule.get("annotations") or {}).values():
                exprs += [q.replace('\\"', '"') for q in QUERY_IN_TEMPLATE.findall(str(text))]
    return exprs


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
    # end to end: from the agents' event time (the visit was stamped 30-21 s ago), not from receipt
    ages = after["floorwalker_event_age_seconds_count"][0][1]
    assert 1 <= ages <= latency_count
    assert after["floorwalker_event_age_seconds_sum"][0][1] / ages >= 20
    assert after["floorwalker_ingest_latency_seconds_sum"][0][1] / latency_count < 20
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
    assert GRAFANA in DASHBOARDS and RULES in RULE_FILES
    dashboard = used_metrics([e for path in DASHBOARDS for e in dashboard_expressions(path)])
    rules = used_metrics([e for path in RULE_FILES for e in rule_expressions(path)])
    assert len(dashboard) >= 20 and len(rules) >= 6
    assert {"floorwalker_writer_queue_batches", "floorwalker_database_size_bytes"} <= rules  # annotation queries
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


def documented_metrics(text: str) -> set[str]:
    """Metric names in docs/API.md, where ``a_{b,c{label}}_total`` stands for ``a_b_total`` and ``a_c_total``."""
    names: set[str] = set()
    for code in re.findall(r"`([a-z0-9_{},]+)`", text):
        code = re.sub(r"\{[a-z_]+\}", "", code)  # a label list after a name (no comma inside)
        match = re.fullmatch(r"([a-z0-9_]*)\{([a-z0-9_,]+)\}([a-z0-9_]*)", code)
        names |= {f"{match[1]}{alt}{match[3]}" for alt in match[2].split(",")} if match else {code}
    return names


def test_documented_metrics_expand_their_braces() -> None:
    text = "`floorwalker_messages_{received,accepted{kind}}_total`, `floorwalker_agent_up{agent}`, `x_y`"
    assert documented_metrics(text) == {"floorwalker_messages_received_total", "floorwalker_messages_accepted_total",
                                        "floorwalker_agent_up", "x_y"}


async def test_every_exported_family_is_in_api_md(aiohttp_client, settings: Settings, mqtt_broker: Broker) -> None:
    client = await aiohttp_client(create_app(settings))
    await wait_until(lambda: client.app[LINK].subscribed)
    _, text = await scrape(client)
    # (prometheus_client's <histogram>_created series are the histograms' own, not families of ours)
    families = {f.name + ("_total" if f.type == "counter" else "") for f in text_string_to_metric_families(text)
                if f.name.startswith("floorwalker_") and not f.name.endswith("_created")}
    documented = documented_metrics((REPO / "docs" / "API.md").read_text())
    assert len(families) >= 30
    assert not families - documented, f"exported, not in docs/API.md's /metrics row: {sorted(families - documented)}"
