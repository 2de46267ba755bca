"""Prometheus metrics through ``prometheus_client``: the one adapter between the core's counters and /metrics.

Why an adapter rather than counters inside the pipeline: ingest, the MQTT link and the store
writer keep plain integer counters (cheap at tens of thousands of messages a second, and theirs
to restructure); this module reads them at scrape time through their public attributes
(``Ingest.counters``, ``Store.stats``, ``LinkBase.state()``) and turns them into metric families,
so a change there touches one place here. Only the histograms need each event: ingest calls
:meth:`Metrics.committed` once per committed batch (``Ingest.on_committed``), on the event loop
when the writer reports the commit (``Histogram.observe`` is thread-safe as well).

Names follow Prometheus' conventions (``_total`` counters, ``_seconds``, ``_bytes``); a labelled
family with nothing to report has no samples (no ``{reason="none"} 0``). Each application has its
own registry, with the ``process_*`` and ``python_gc_*`` collectors, so tests that start many
applications in one process do not share series.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.process_collector import ProcessCollector

from aggregator.alerts import ALERTS
from aggregator.appkeys import BUS, DB_PATH, INGEST, LINK, STORE

# Commits take ~1-20 ms on this machine's SSD at the benchmark's batch sizes (docs/PERFORMANCE.md,
# ingest.commit_ms) and seconds when the disk stalls; receipt-to-commit adds the batching wait.
COMMIT_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Event age adds the agent's side: live, a second or two (the agent's publish, the broker); an agent's
# spool replayed after a broker outage, minutes to hours.
EVENT_AGE_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _labelled_counter(name: str, doc: str, label: str, values: dict[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def database_bytes(path: Path) -> int:
    """The database file with its WAL and shared-memory files (what retention and checkpoints keep bounded)."""
    total = 0
    for suffix in ("", "-wal", "-shm"):
        try:
            total += os.stat(f"{path}{suffix}").st_size
        except OSError:
            pass
    return total


class FloorwalkerCollector:
    """Reads the application's live counters at scrape time (a prometheus_client custom collector)."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        yield from self._ingest()
        yield from self._store()
        yield from self._mqtt()
        yield from self._live()
        yield from self._alerts()

    def _ingest(self) -> Iterator[Metric]:
        c = self.app[INGEST].counters
        yield _counter("floorwalker_messages_received", "Agent-tier messages received.", c.received)
        yield _labelled_counter("floorwalker_messages_accepted", "Valid new messages, by kind.", "kind",
                                dict(c.by_kind))
        yield _labelled_counter("floorwalker_messages_rejected", "Messages dead-lettered, by reason.", "reason",
                                dict(c.rejected))
        yield _counter("floorwalker_messages_duplicate", "Duplicates dropped by message id.",
                       c.duplicates + self.app[STORE].stats.duplicates)
        yield _counter("floorwalker_messages_acked", "Messages acknowledged to the broker after commit.", c.acked)
        yield _counter("floorwalker_fixes", "Fused positions.", c.fixes)
        yield _counter("floorwalker_fusion_failures", "Reports that could not be fused into a position.",
                       c.fusion_failures)
        yield _gauge("floorwalker_ingest_lag_seconds", "Receipt to commit of the last committed batch.",
                     c.last_lag_s)

    def _store(self) -> Iterator[Metric]:
        store = self.app[STORE]
        st = store.stats
        yield _counter("floorwalker_batch_commits", "SQLite commits.", st.commits)
        yield _counter("floorwalker_store_rows", "Rows written.", st.rows)
        yield _counter("floorwalker_store_errors", "Failed commits and writer restarts (retried).", st.errors)
        yield _counter("floorwalker_retention_deleted_rows", "Rows deleted by retention.", st.retention_deleted)
        yield _gauge("floorwalker_writer_queue_batches", "Batches handed to the writer, not yet committed.",
                     store.queue_depth)
        path = self.app[DB_PATH]
        yield _gauge("floorwalker_database_size_bytes", "The database with its WAL and -shm files.",
                     database_bytes(path))
        try:
            fs = os.statvfs(path.parent if str(path.parent) else ".")
        except OSError:
            return
        yield _gauge("floorwalker_disk_free_bytes", "Free space (for this user) on the database's filesystem.",
                     fs.f_bavail * fs.f_frsize)
        yield _gauge("floorwalker_disk_size_bytes", "Size of the database's filesystem.", fs.f_blocks * fs.f_frsize)

    def _mqtt(self) -> Iterator[Metric]:
        link = self.app[LINK]
        state = link.state() if link is not None else {}
        yield _gauge("floorwalker_mqtt_connected", "1 when connected to the broker.", int(bool(state.get("connected"))))
        yield _counter("floorwalker_mqtt_connects", "Successful connections to the broker.", state.get("connects", 0))
        yield _counter("floorwalker_mqtt_published", "Messages handed to the broker.", state.get("published", 0))
        yield _counter("floorwalker_mqtt_publish_errors", "Messages that could not be published.",
                       state.get("publish_errors", 0))
        yield _counter("floorwalker_mqtt_qos0_dropped", "QoS 0 messages (moves) published while disconnected.",
                       state.get("dropped_qos0", 0))
        yield _counter("floorwalker_mqtt_stale_acks",
                       "Acknowledgements dropped: already acknowledged, or of an earlier connection.",
                       state.get("stale_acks", 0))
        yield _counter("floorwalker_mqtt_process_restarts", "MQTT connection processes that died and were replaced.",
                       link.restarts if link is not None else 0)

    def _live(self) -> Iterator[Metric]:
        ingest = self.app[INGEST]
        agents = GaugeMetricFamily("floorwalker_agent_up", "1 while an agent's retained status is online.",
                                   labels=["agent"])
        for name, agent in sorted(ingest.agents.items()):
            agents.add_metric([name], 1 if agent.state == "online" else 0)
        yield agents
        yield _gauge("floorwalker_agents_online", "Agents whose last status is online.",
                     sum(1 for a in ingest.agents.values() if a.state == "online"))
        yield _gauge("floorwalker_shoppers_in_store", "Open visits.", len(ingest.visits.open))
        tier = ingest.tier
        yield _labelled_counter("floorwalker_customer_published", "Customer-tier events published (all shoppers).",
                                "kind", dict(tier.published))
        yield _labelled_counter("floorwalker_customer_anonymous_published",
                                "Of those, shoppers linked to no customer (shopper topic or integer ids).",
                                "kind", dict(tier.anonymous))
        yield _counter("floorwalker_customer_moves_suppressed", "Moves not published (too small, too soon).",
                       tier.suppressed_moves)
        yield _counter("floorwalker_bus_dropped", "Bus events dropped for slow subscribers.", self.app[BUS].dropped)

    def _alerts(self) -> Iterator[Metric]:
        alerts = self.app.get(ALERTS)
        if alerts is None:
            return
        yield _gauge("floorwalker_alerts_firing", "Webhook alerts firing now (store file rules).", len(alerts.firing))
        yield _counter("floorwalker_alert_posts", "Alert posts the webhook accepted.", alerts.outbox.posted)
        yield _counter("floorwalker_alert_post_failures", "Alert posts that failed (retried with back-off).",
                       alerts.outbox.failures)
        yield _gauge("floorwalker_alert_posts_pending", "Alert posts waiting for the webhook.",
                     len(alerts.outbox.pending))


class Metrics:
    """The application's registry: live counters, three histograms, and the process collectors."""

    def __init__(self, app: web.Application) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(FloorwalkerCollector(app))
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.commit_seconds = Histogram("floorwalker_batch_commit_duration_seconds",
                                        "Time the writer took to commit a batch.", buckets=COMMIT_BUCKETS_S,
                                        registry=self.registry)
        self.latency_seconds = Histogram("floorwalker_ingest_latency_seconds",
                                         "End to end inside the aggregator: a message's receipt from the broker "
                                         "to the commit that stores and acknowledges it.",
                                         buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.event_age_seconds = Histogram("floorwalker_event_age_seconds",
                                           "End to end: an agent's event time to the commit that stores it, for "
                                           "the newest agent message of each committed batch (agent clocks "
                                           "NTP-synced; one ahead counts 0).",
                                           buckets=EVENT_AGE_BUCKETS_S, registry=self.registry)
        self._store = app[STORE]
        self._commits_seen = 0

    def committed(self, lag_s: float, event_age_s: float | None = None) -> None:
        """Ingest's hook, once per committed batch (on the loop, as the writer reports it)."""
        self.latency_seconds.observe(lag_s)
        if event_age_s is not None:
            self.event_age_seconds.observe(event_age_s)
        stats = self._store.stats
        if stats.commits != self._commits_seen:  # several batches can share one commit: count it once
            self._commits_seen = stats.commits
            self.commit_seconds.observe(stats.last_commit_s)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


METRICS = web.AppKey("metrics", Metrics)
CONTENT_TYPE = CONTENT_TYPE_LATEST


def setup(app: web.Application) -> None:
    metrics = Metrics(app)
    app[METRICS] = metrics
    app[INGEST].on_committed.append(metrics.committed)
