"""Ingest: agent-tier messages -> validated, deduplicated, fused, stored, published.

Runs on the event loop, a slice of messages at a time (handed over by :class:`MqttLink`):

1. decode with :func:`agent.contract.decode_agent`; a rejection becomes a ``dead_letters`` row
   with its reason (and a counter) — hostile payloads never raise past this point;
2. drop duplicates by ``msg_id`` (QoS 1 redelivery, agent spool replay): an in-memory window of
   recent ids, primed from the database at start-up, and ``INSERT OR IGNORE`` behind it;
3. remember presence ranges, then fuse each touched device once per slice (:mod:`aggregator.fusion`);
4. visits (:mod:`aggregator.visits`), dwell (:mod:`aggregator.dwell`), customer tier
   (:mod:`aggregator.customer_tier`) and bus events for the map, WebSockets and offers;
5. hand the slice's rows to the writer as one :class:`~aggregator.store.Batch` whose commit
   acknowledges the slice's MQTT messages.
"""

from __future__ import annotations

import collections
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.config import DeviceConfig, StoreConfig, area_pirs, pir_sensor
from agent.contract import Door, Health, Link, Motion, Presence, Rejection, Status, decode_agent
from agent.geometry import Zone
from agent.privacy import redact_macs, redact_macs_bytes
from aggregator.bus import EventBus
from aggregator.customer_tier import CustomerTier
from aggregator.dwell import DwellTracker
from aggregator.events import ShopperEvent
from aggregator.fusion import Fix, Fusion
from aggregator.mqtt_link import Incoming, Publisher
from aggregator.occupancy_live import LiveOccupancy
from aggregator.recent_ids import RecentIds
from aggregator.settings import Settings
from aggregator.store import Batch, Store, connect
from aggregator.visits import Visit, VisitTracker

log = logging.getLogger(__name__)

# message ids remembered in memory: at least the last 100,000, at most 200,000 (~20 MB); at the 2,000
# msg/s of a busy store that is a minute or more, far longer than a redelivery or a spool replay takes
DEDUP_WINDOW = 100_000
MAX_AGENTS = 1000  # agent ids tracked for /api/agents; more is an attack or a misconfiguration
DEAD_LETTER_MAX_BYTES = 16 * 1024
MAX_CLOCK_SKEW_S = 60.0
# Reports of one device closer together than this are one probe burst heard by several agents: one fix.
COALESCE_S = 0.5
# A linked device seen again refreshes its link's time at most this often (one row, not one per visit).
LINK_REFRESH_S = 3600.0
LINK_EXPIRY_EVERY_S = 3600.0


@dataclass(slots=True)
class Shopper:
    """A shopper in the store now, as the map and /api/positions see them."""

    visitor: str
    device: str
    customer_id: str | None
    visit_id: str
    entered_ts: float
    ts: float
    x: float | None = None
    y: float | None = None
    accuracy_m: float | None = None
    zone: str | None = None
    dep: str | None = None
    category: str | None = None
    state: str = "moving"

    def as_dict(self) -> dict[str, Any]:
        return {"visitor": self.visitor, "id": self.visitor, "device": self.device, "customer_id": self.customer_id,
                "visit_id": self.visit_id, "entered_ts": self.entered_ts, "ts": self.ts,
                "x": None if self.x is None else round(self.x, 1), "y": None if self.y is None else round(self.y, 1),
                "accuracy_m": None if self.accuracy_m is None else round(self.accuracy_m, 2),
                "zone": self.zone, "dep": self.dep, "category": self.category, "state": self.state}


@dataclass(slots=True)
class AgentState:
    agent: str
    state: str = "unknown"  # online / offline (the retained status), unknown before any
    last_seen_ts: float | None = None
    status_ts: float | None = None
    messages: int = 0
    health: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"agent": self.agent, "state": self.state, "last_seen_ts": self.last_seen_ts,
                "status_ts": self.status_ts, "messages": self.messages, "health": self.health}


@dataclass
class Counters:
    received: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: collections.Counter[str] = field(default_factory=collections.Counter)
    by_kind: collections.Counter[str] = field(default_factory=collections.Counter)
    fixes: int = 0
    fusion_failures: int = 0
    batches: int = 0
    last_lag_s: float = 0.0
    max_lag_s: float = 0.0
    acked: int = 0
    last_commit_ts: float = 0.0


class Ingest:
    """The ingest pipeline and the live state it keeps (shoppers in store, agents, links)."""

    def __init__(self, settings: Settings, store_config: StoreConfig, devices: list[DeviceConfig], store: Store,
                 bus: EventBus, publisher: Publisher, *, now: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.store_config = store_config
        self.store = store
        self.bus = bus
        self._now = now
        self.fusion = Fusion(store_config, devices, window_s=settings.fusion_window_s)
        self.visits = VisitTracker(passerby_s=settings.passerby_s, absence_s=settings.absence_s)
        self.dwell = DwellTracker(settings.dwell_s)
        self.tier = CustomerTier(publisher, settings.topics, store_id=store_config.id,
                                 config=store_config.customer_tier, min_interval_s=settings.move_min_interval_s,
                                 min_px=settings.move_min_px)
        self.counters = Counters()
        # each committed batch's receipt-to-commit seconds, and the age at commit of its newest agent event
        # (None: no agent message in the batch, only statuses or rejects); for the metrics
        self.on_committed: list[Callable[[float, float | None], None]] = []
        # people now: /api/occupancy, MQTT; the store's calibrated factor (store.toml occupancy_factor)
        self.occupancy = LiveOccupancy(store_config, publisher, factor=store_config.occupancy_factor,
                                       area_pirs=area_pirs(devices))
        self.links: dict[str, str] = {}
        # device -> when its link was last made or its device last started a visit: links not seen for
        # the retention period expire (with daily id rotation a device id is never seen again)
        self.link_seen: dict[str, float] = {}
        self._next_link_expiry = 0.0
        self.shoppers: dict[str, Shopper] = {}  # visitor -> state
        self.by_device: dict[str, str] = {}  # device -> visitor of its open visit
        self.agents: dict[str, AgentState] = {}
        self.seq = 0
        self._recent = RecentIds(DEDUP_WINDOW)
        self._clock_ts = 0.0
        self._clock_mono = 0.0

    # ------------------------------------------------------------------ start-up (blocking, executor)

    def load_state(self) -> None:
        """Prime links, the visit sequence, open visits and recent message ids from the database."""
        conn = connect(self.store.path, readonly=True)  # reads only: every write goes through the writer
        try:
            for device, customer_id, ts in conn.execute("SELECT device, customer_id, ts FROM links"):
                self.links[device] = customer_id
                self.link_seen[device] = float(ts or 0.0)
            self.seq = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM visits").fetchone()[0]
            for row in conn.execute("SELECT visit_id, visitor, device, customer_id, start_ts, last_seen_ts "
                                    "FROM visits WHERE end_ts IS NULL"):
                visit = Visit(row[0], row[2], row[1], row[3], row[4], row[5] or row[4])
                self.visits.restore(visit)
                self.by_device[visit.device] = visit.visitor
                self.shoppers[visit.visitor] = Shopper(visit.visitor, visit.device, visit.customer_id,
                                                       visit.visit_id, visit.start_ts, visit.last_seen_ts)
            ids = conn.execute("SELECT msg_id FROM messages ORDER BY rowid DESC LIMIT ?", (DEDUP_WINDOW,)).fetchall()
            for (msg_id,) in reversed(ids):
                self._recent.add(msg_id)
            last = conn.execute("SELECT MAX(ts) FROM messages").fetchone()[0]
            if last:
                self._advance_clock(float(last))
        except sqlite3.Error as exc:
            log.error("event=load-state-failed error=%r", exc)
            raise
        finally:
            conn.close()
        log.info("event=state-loaded links=%d open_visits=%d recent_ids=%d seq=%d", len(self.links),
                 len(self.visits.open), len(self._recent), self.seq)

    # ------------------------------------------------------------------ helpers

    def _advance_clock(self, ts: float) -> None:
        if ts > self._clock_ts and ts <= self._now() + MAX_CLOCK_SKEW_S:
            self._clock_ts = ts
            self._clock_mono = time.monotonic()

    def stream_now(self) -> float:
        """The messages' clock: the latest message time plus the wall time elapsed since it came.

        Timeouts (absence, dwell) run on this clock, so a replay of yesterday's stream closes
        visits as the original day would, and a live stream behaves like the wall clock."""
        if not self._clock_ts:
            return self._now()
        return self._clock_ts + (time.monotonic() - self._clock_mono)

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def _agent(self, agent: str) -> AgentState:
        state = self.agents.get(agent)
        if state is None:
            state = AgentState(agent)
            if len(self.agents) < MAX_AGENTS:  # beyond that: still ingested, not listed
                self.agents[agent] = state
        return state

    # ------------------------------------------------------------------ the pipeline (event loop)

    def handle(self, items: list[Incoming]) -> None:
        """Process one slice of received messages and submit their batch (acks after commit)."""
        batch = Batch()
        touched: dict[str, float] = {}
        acks: list[tuple[int, int]] = []
        counters = self.counters
        oldest = items[0].received if items else self._now()
        for item in items:
            counters.received += 1
            if item.qos > 0:
                acks.append((item.mid, item.qos))
            try:
                self._one(item, batch, touched)
            except Exception as exc:  # a bug must cost one message (dead-lettered), not the service
                log.exception("event=ingest-error topic=%s", item.topic[:200])
                self._dead_letter(batch, item, Rejection("internal-error", repr(exc)[:200]))
        # every shopper heard in the slice fused together: their grid updates are one numpy call a step
        for device, fix in zip(touched, self.fusion.locate_many(list(touched.items())), strict=True):
            self._place_fix(device, fix, batch)
        counters.batches += 1
        self._finish(batch, acks, oldest)

    def _finish(self, batch: Batch, acks: list[tuple[int, int]], oldest: float) -> None:
        counters = self.counters
        hooks = self.on_committed
        # the last message appended is the newest to arrive: its agent timestamp (messages' 4th column)
        newest_ts = batch.messages[-1][3] if batch.messages else None

        def committed() -> None:  # on the store's loop, after COMMIT: the figures (the writer acknowledged)
            counters.acked += len(acks)
            now = time.time()
            lag = now - oldest
            counters.last_lag_s = lag
            counters.max_lag_s = max(counters.max_lag_s, lag)
            counters.last_commit_ts = now
            age = max(0.0, now - newest_ts) if newest_ts is not None else None  # an agent clock ahead: 0
            for hook in hooks:
                hook(lag, age)

        batch.acks = acks  # the writer acknowledges them to the MQTT process once they are committed
        batch.on_commit.append(committed)
        self.store.submit(batch)

    def _dead_letter(self, batch: Batch, item: Incoming, rejection: Rejection) -> None:
        self.counters.rejected[rejection.reason] += 1
        payload: bytes | None = item.payload[:DEAD_LETTER_MAX_BYTES]
        if rejection.reason == "raw-mac":
            payload = None  # raw MAC addresses never reach the disk
        else:
            # A payload rejected for any other reason may still carry a MAC (a hostile or broken
            # sender): redact anything MAC-shaped before the dead letter is written down.
            payload = redact_macs_bytes(payload)
        topic = redact_macs(item.topic[:300])
        detail = redact_macs(rejection.detail[:500])
        batch.dead_letters.append((item.received, topic, rejection.reason, detail, payload))
        if sum(self.counters.rejected.values()) % 1000 == 1:
            log.warning("event=rejected reason=%s topic=%s detail=%s", rejection.reason, item.topic[:120],
                        rejection.detail[:120])

    def _one(self, item: Incoming, batch: Batch, touched: dict[str, float]) -> None:
        msg = item.decoded
        if msg is None:  # the MQTT process decodes presence reports (and rejects); the rest is ours
            msg = decode_agent(item.topic, item.payload)
        if isinstance(msg, Rejection):
            self._dead_letter(batch, item, msg)
            return
        if isinstance(msg, Status):
            self._status(msg)
            return
        msg_id, ts, counters = msg.msg_id, msg.ts, self.counters
        recent = self._recent
        if msg_id in recent:
            counters.duplicates += 1
            return
        recent.add(msg_id)
        device = getattr(msg, "device", None)
        counters.accepted += 1
        topic = item.topic
        kind = topic[topic.rfind("/") + 1:]
        counters.by_kind[kind] += 1
        agent = self._agent(msg.agent)
        agent.messages += 1
        agent.last_seen_ts = ts
        if agent.state != "online":
            agent.state = "online"
        self._advance_clock(ts)
        # the raw bytes: the writer process turns them into text (one copy less on this thread)
        batch.messages.append((msg_id, msg.agent, kind, ts, device, item.payload))
        if isinstance(msg, Presence):
            self._presence(msg, batch, touched)
        elif isinstance(msg, Door):
            batch.door_events.append((msg.msg_id, msg.ts, msg.agent, msg.sensor, msg.direction))
            self.occupancy.door(msg)
            self.bus.publish(ShopperEvent("door", msg.ts, extra={"agent": msg.agent, "sensor": msg.sensor,
                                                                  "direction": msg.direction}))
        elif isinstance(msg, Motion):
            batch.motion_events.append((msg.msg_id, msg.ts, msg.agent, msg.sensor, msg.zone, int(msg.active)))
            self.occupancy.motion(msg)  # a zone PIR's counts for its zone; an area PIR's only for the grid
            self.fusion.motion(msg.zone, pir_sensor(msg.agent, msg.sensor), msg.active, msg.ts)
            self.bus.publish(ShopperEvent("motion", msg.ts, zone=msg.zone,
                                          extra={"agent": msg.agent, "sensor": msg.sensor, "active": msg.active}))
        elif isinstance(msg, Link):
            self._link(msg.device, msg.customer_id, msg.ts, batch)
        elif isinstance(msg, Health):
            agent.health = {"ts": msg.ts, "uptime_s": msg.uptime_s, "readings_per_s": msg.readings_per_s,
                            "spool_depth": msg.spool_depth, "spool_dropped": msg.spool_dropped,
                            "serial_reconnects": msg.serial_reconnects, "rejected": msg.rejected}
            self.bus.publish(ShopperEvent("agent", msg.ts, extra={"agent": msg.agent, "state": agent.state,
                                                                   "health": agent.health}))

    def _status(self, msg: Status) -> None:
        agent = self._agent(msg.agent)
        agent.state = msg.state
        agent.status_ts = msg.ts
        self.bus.publish(ShopperEvent("agent", msg.ts or self._now(), extra={"agent": msg.agent, "state": msg.state,
                                                                            "health": agent.health}))

    def _visitor_of(self, device: str) -> tuple[str, str | None]:
        cid = self.links.get(device)
        return (cid, cid) if cid else (device, None)

    def _presence(self, p: Presence, batch: Batch, touched: dict[str, float]) -> None:
        self.occupancy.presence(p)
        # A fixture or a device next door is evidence for the occupancy estimate, not a visitor: it opens no
        # visit, and a fixture's report ends its visit as if the device had left. "Neighbour" is one agent's
        # view (weak at its sniffers): for a device another agent has in a visit, its range still helps fusion.
        kind = p.device_kind
        if p.kind == "exit" or kind == "fixture" or (kind == "neighbour" and p.device not in self.visits.open):
            if p.device in touched:
                self._fuse(p.device, touched.pop(p.device), batch)
            self.fusion.drop_agent(p.device, p.agent)
            visit = self.visits.exit(p.device, p.agent, p.ts)
            if visit is not None:
                self._closed(visit, batch)
            return
        pending = touched.get(p.device)
        if pending is not None and p.ts - pending > COALESCE_S:
            # A later probe burst, not another agent's view of the same one: fix the earlier burst
            # first, so a backlog keeps its timeline (dwell needs it) instead of collapsing into one fix.
            self._fuse(p.device, touched.pop(p.device), batch)
        visitor, cid = self._visitor_of(p.device)
        visit, opened = self.visits.seen(p.device, p.agent, p.ts, visitor, cid)
        self.fusion.add(p)
        if opened:
            if cid is not None and p.ts - self.link_seen.get(p.device, 0.0) > LINK_REFRESH_S:
                self.link_seen[p.device] = p.ts
                batch.links.append((p.device, cid, p.ts))
            visit.visitor, visit.customer_id = visitor, cid
            batch.visits[visit.visit_id] = visit.row(self._next_seq())
            self.by_device[p.device] = visitor
            self.shoppers[visitor] = Shopper(visitor, p.device, cid, visit.visit_id, p.ts, p.ts, p.x, p.y,
                                             p.accuracy_m)
            batch.customer_events.append(self.tier.enter(visitor, p.ts))
            self.bus.publish(ShopperEvent("enter", p.ts, visitor, p.device, cid, p.x, p.y, state="moving"))
        if touched.get(p.device, 0.0) < p.ts:
            touched[p.device] = p.ts

    def _fuse(self, device: str, ts: float, batch: Batch) -> None:
        self._place_fix(device, self.fusion.locate(device, ts), batch)

    def _place_fix(self, device: str, fix: Fix | None, batch: Batch) -> None:
        visitor = self.by_device.get(device)
        if fix is None or visitor is None:
            if fix is None:
                self.counters.fusion_failures += 1
            return
        self.counters.fixes += 1
        shopper = self.shoppers.get(visitor)
        visit = self.visits.open.get(device)
        if shopper is None or visit is None:
            return
        self._place(shopper, visit, fix, batch)

    def _place(self, shopper: Shopper, visit: Visit, fix: Fix, batch: Batch) -> None:
        zone = fix.zone
        self.occupancy.placed(shopper.device, zone.name if zone else None)
        shopper.ts, shopper.x, shopper.y, shopper.accuracy_m = fix.ts, fix.x, fix.y, fix.accuracy_m
        self._set_zone(shopper, zone)
        batch.sightings.append((fix.ts, shopper.visitor, shopper.device, visit.visit_id, fix.x, fix.y,
                                fix.accuracy_m, zone.name if zone else None))
        batch.visits[visit.visit_id] = visit.row(self._next_seq())
        row = self.tier.move(shopper.visitor, fix.ts, fix.x, fix.y)
        if row is not None:
            batch.customer_events.append(row)
        self.bus.publish(ShopperEvent("move", fix.ts, shopper.visitor, shopper.device, shopper.customer_id,
                                      fix.x, fix.y, shopper.zone, shopper.dep, shopper.category, shopper.state,
                                      extra={"accuracy_m": round(fix.accuracy_m, 2)}))
        started = self.dwell.update(shopper.visitor, zone, fix.ts)
        if started is not None:
            self._browsing(shopper, started, fix.ts, batch)

    def _set_zone(self, shopper: Shopper, zone: Zone | None) -> None:
        if zone is None:
            shopper.zone = shopper.dep = shopper.category = None
            shopper.state = "moving"
        elif zone.name != shopper.zone:
            shopper.zone, shopper.dep, shopper.category = zone.name, zone.department, zone.category
            shopper.state = "moving"

    def _browsing(self, shopper: Shopper, zone: Zone, ts: float, batch: Batch) -> None:
        shopper.state = "browsing"
        x = shopper.x if shopper.x is not None else zone.centroid[0]
        y = shopper.y if shopper.y is not None else zone.centroid[1]
        batch.customer_events.append(self.tier.browsing(shopper.visitor, ts, x, y, zone.department or zone.name))
        self.bus.publish(ShopperEvent("browsing", ts, shopper.visitor, shopper.device, shopper.customer_id, x, y,
                                      zone.name, zone.department, zone.category, "browsing",
                                      extra={"since_ts": self.dwell.in_zone_since(shopper.visitor)}))

    def _closed(self, visit: Visit, batch: Batch) -> None:
        batch.visits[visit.visit_id] = visit.row(self._next_seq())
        self.fusion.forget(visit.device)
        self.by_device.pop(visit.device, None)
        shopper = self.shoppers.pop(visit.visitor, None)
        self.dwell.forget(visit.visitor)
        end = visit.end_ts or visit.last_seen_ts
        batch.customer_events.append(self.tier.exit(visit.visitor, end))
        self.bus.publish(ShopperEvent("exit", end, visit.visitor, visit.device, visit.customer_id,
                                      shopper.x if shopper else None, shopper.y if shopper else None,
                                      extra={"visit_id": visit.visit_id, "passerby": visit.passerby,
                                             "duration_s": round(end - visit.start_ts, 1)}))

    def _link(self, device: str, customer_id: str, ts: float, batch: Batch) -> None:
        previous = self.links.get(device)
        self.links[device] = customer_id
        self.link_seen[device] = ts
        batch.links.append((device, customer_id, ts))
        if previous == customer_id:
            return
        old_visitor = self.by_device.get(device)
        visit = self.visits.open.get(device)
        if old_visitor is None or visit is None or old_visitor == customer_id:
            return
        # The shopper's public id changes mid-visit: the old id leaves, the customer enters where it was.
        shopper = self.shoppers.pop(old_visitor)
        batch.customer_events.append(self.tier.exit(old_visitor, ts))
        self.bus.publish(ShopperEvent("exit", ts, old_visitor, device, None, shopper.x, shopper.y,
                                      extra={"relinked_to": customer_id}))
        shopper.visitor, shopper.customer_id = customer_id, customer_id
        visit.visitor, visit.customer_id = customer_id, customer_id
        self.shoppers[customer_id] = shopper
        self.by_device[device] = customer_id
        self.dwell.rename(old_visitor, customer_id)
        batch.visits[visit.visit_id] = visit.row(self._next_seq())
        batch.customer_events.append(self.tier.enter(customer_id, ts))
        self.bus.publish(ShopperEvent("enter", ts, customer_id, device, customer_id, shopper.x, shopper.y,
                                      shopper.zone, shopper.dep, shopper.category, shopper.state))

    # ------------------------------------------------------------------ called by the API and the sweeper

    def link(self, device: str, customer_id: str, ts: float | None = None) -> None:
        """Link a device to a loyalty customer (POST /api/customers/{id}/link)."""
        batch = Batch()
        self._link(device, customer_id, ts or self._now(), batch)
        self.store.submit(batch)

    def sweep(self) -> None:
        """Close absent visits and report browsing that started without a new report."""
        now = self.stream_now()
        batch = Batch()
        for visit in self.visits.sweep(now):
            self._closed(visit, batch)
        for visitor, zone in self.dwell.due(now):
            shopper = self.shoppers.get(visitor)
            if shopper is not None:
                self._browsing(shopper, zone, now, batch)
        if batch.rows():
            self.store.submit(batch)
        self.occupancy.tick(now)
        if time.monotonic() >= self._next_link_expiry:
            self._next_link_expiry = time.monotonic() + LINK_EXPIRY_EVERY_S
            self.expire_links(self._now())

    def expire_links(self, now: float) -> int:
        """Forget links not seen for the store's retention period (its writer deletes their rows on
        the same rule: ``sqlite_writer.RETENTION_TABLES``)."""
        if self.store.retention_s <= 0:
            return 0
        cutoff = now - self.store.retention_s
        expired = [d for d, seen in self.link_seen.items() if seen < cutoff and d not in self.visits.open]
        for device in expired:
            del self.links[device], self.link_seen[device]
        if expired:
            log.info("event=links-expired count=%d cutoff_ts=%.0f", len(expired), cutoff)
        return len(expired)
