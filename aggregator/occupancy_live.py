"""The aggregator's live occupancy: the people in the store now, from what the agents report.

Runs :class:`agent.occupancy.OccupancyEstimator` (the one estimator, also used by ``replay``) on the
event loop, fed by ingest with the agent tier's messages:

* presence (``enter``/``move``/``exit`` of linked pseudo-devices, with the agent's ``kind``: person,
  fixture or neighbour, judged across agents: :attr:`_Present.kind`). An agent reports a device when
  it enters, when its estimate moves and after ``absence_s`` (180 s) of silence; with visits of a few
  minutes, counting every device until that exit counts most shoppers for minutes after they left.
  So a device counts while it keeps reporting: until silent for a few of its own usual gaps
  (:meth:`_Present.hold_s`), until every agent that reported it sent its ``exit``, and it is
  forgotten after :data:`STALE_S` without any report (an agent went offline, its exits never came);
* which agents' devices are one phone: reports that share a MAC id (``device`` or ``mac_ids``) are
  joined under one id (:class:`aggregator.device_aliases.DeviceAliases`), so a rotating phone that
  agents named after different first MACs counts once;
* the zone each device was last fused into (ingest's positions, not one agent's, which with a single
  sniffer is the sniffer's own spot);
* door crossings and PIR states: a zone PIR's. A PIR that watches only part of its zone or a stretch of
  aisle (an area PIR, ``area_pirs``) is left out: its quiet does not say its zone is empty (it weighs
  only the grid's cells, :mod:`aggregator.fusion`).

``tick`` (once a second, from ingest's sweep) publishes the retained store and zone topics
(docs/MQTT.md, Occupancy) when a rounded number changes, and at least every :data:`PUBLISH_EVERY_S`
so a subscriber sees the estimate is alive. ``GET /api/occupancy`` reads :meth:`LiveOccupancy.estimate`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.config import StoreConfig, pir_sensor
from agent.contract import (
    Door,
    Motion,
    Presence,
    encode_occupancy,
    encode_zone_occupancy,
    occupancy_payload,
    occupancy_topic,
    zone_occupancy_topics,
)
from agent.occupancy import Occupancy, OccupancyEstimator
from aggregator.device_aliases import DeviceAliases
from aggregator.mqtt_link import Publisher

PUBLISH_EVERY_S = 60.0
# A device counts while silent for less than HOLD_GAPS of its mean gap between reports, at least MIN_HOLD_S,
# until its exits come (the agents' absence_s, 180 s by default, is a store-wide bound: with visits of a
# few minutes, counting every device until then counts most shoppers for minutes after they left).
# Two missed reports in a row: phones in use probe every 8-30 s (Freudiger, WiSec 2015). Fitted on the mock's
# development seed 5 (docs/OCCUPANCY.md; 2, 2.5, 3 x 20, 30, 45, 60 s): at 3 gaps shoppers who left were
# still counted, +1.0 person of bias; at 2 gaps and 45 s, +0.1.
HOLD_GAPS = 2.0
MIN_HOLD_S = 45.0
FIRST_GAP_S = 30.0  # before a device's second report: the slow end of a phone in use
GAP_WEIGHT = 0.3
SAME_BURST_S = 0.5  # several agents reporting one probe burst: one report (ingest's COALESCE_S)
# Agents send an exit after absence_s of silence (180 s by default): a device with no report for five
# times that lost its exits (agent offline, broker outage); it no longer counts.
STALE_S = 900.0
MAX_HEAD_COUNTS = 100  # head counts kept for the factor (a count a day for three months)


@dataclass(slots=True)
class _Present:
    """A device some agent has reported and not yet said goodbye to, with what each agent makes of it."""

    last_ts: float
    randomized: bool = False
    # (agent, the agent's device id) -> person, fixture or neighbour: one phone may be several agents'
    # devices, and after a join even two of one agent's (a chain it lost and started again)
    kinds: dict[tuple[str, str], str] = field(default_factory=dict)
    first_ts: float = 0.0  # first report: how long it has been heard is evidence it is a device
    macs: int = 1  # the most MACs any agent linked into it
    zone: str | None = None
    gap_s: float = FIRST_GAP_S  # running mean of the time between its reports (several agents' count as one)
    counted: bool = True  # in the estimator now

    def merge(self, other: _Present) -> None:
        """``other`` turned out to be this phone (they share a MAC id)."""
        self.kinds.update(other.kinds)
        self.first_ts = min(self.first_ts, other.first_ts)
        self.last_ts = max(self.last_ts, other.last_ts)
        self.macs = max(self.macs, other.macs)
        self.randomized = self.randomized or other.randomized
        if self.zone is None:
            self.zone = other.zone

    def heard(self, ts: float) -> None:
        gap = ts - self.last_ts
        if gap > SAME_BURST_S:
            self.gap_s += GAP_WEIGHT * (min(gap, STALE_S) - self.gap_s)
        self.last_ts = max(self.last_ts, ts)

    def hold_s(self) -> float:
        """How long a silence still means "here": a few of its usual gaps, as a phone that reported every
        10 s and went quiet for a minute has most likely left, while one that reports every two minutes
        has not."""
        return max(MIN_HOLD_S, HOLD_GAPS * self.gap_s)

    @property
    def kind(self) -> str:
        """Across agents: a fixture if any agent learned so (it needs hours of evidence); else a person if
        any agent hears one; else a neighbour. Each agent judges "only heard through the wall" from its
        own sniffers, and a shopper at the far end of the store is weak at every one of them too."""
        kinds = self.kinds.values()
        if "fixture" in kinds:
            return "fixture"
        return "person" if "person" in kinds else "neighbour"


class LiveOccupancy:
    """The store's running estimate: evidence in from ingest, retained MQTT topics and the API out."""

    def __init__(self, store: StoreConfig, publisher: Publisher, *, factor: float | None = None,
                 tuning: Mapping[str, float] | None = None, area_pirs: Iterable[str] = ()) -> None:
        """``area_pirs``: the sensor names (:func:`agent.config.pir_sensor`) of the PIRs that watch a
        rectangle, not their whole zone (:func:`agent.config.area_pirs` of the device files)."""
        self.publisher = publisher
        self.area_pirs = frozenset(area_pirs)
        self.zone_names = tuple(z.name for z in store.plan.zones)
        self.topic = occupancy_topic(store.id)
        self.zone_topics = zone_occupancy_topics(store.id, self.zone_names)
        self.estimator = OccupancyEstimator(zones=self.zone_names, factor=factor, **dict(tuning or {}))
        self.present: dict[str, _Present] = {}  # by the phone's canonical id (self.aliases)
        self.aliases = DeviceAliases()
        self.published = 0
        self._sent: dict[str, tuple[Any, float]] = {}  # topic -> (what was rounded, when)
        # (people counted by hand, devices counted then): POST /api/occupancy/head-count, the store's factor
        self.head_counts: deque[tuple[float, float]] = deque(maxlen=MAX_HEAD_COUNTS)

    # ------------------------------------------------------------------ evidence (ingest, event loop)

    def presence(self, p: Presence) -> None:
        if p.kind == "exit":
            self._exit(p)
            return
        device, absorbed = self.aliases.join(p.device, p.mac_ids)
        entry = self.present.get(device)
        if entry is None:
            entry = self.present[device] = _Present(p.ts, first_ts=p.ts)
        for other in absorbed:  # reports of one phone under ids that only now share a MAC: one device
            gone = self.present.pop(other, None)
            if gone is not None:
                entry.merge(gone)
                self.estimator.gone(p.ts, other)
        entry.kinds[(p.agent, p.device)] = p.device_kind
        entry.heard(p.ts)
        entry.counted = True
        entry.macs = max(entry.macs, p.macs, self.aliases.size(device))
        # ranges are Range tuples, or plain tuples in Range's order from the MQTT process: index, not name
        sniffer = f"{p.agent}/{p.ranges[0][0]}" if p.ranges else p.agent
        # the estimator weighs a randomised pseudo-device by the evidence that it is a continuing device
        # (MACs linked, time heard): the same judgement live as in replay
        entry.randomized = entry.randomized or p.randomized
        self._count(entry, device, p.ts, sniffer=sniffer, rssi_dbm=p.rssi_dbm)

    def _exit(self, p: Presence) -> None:
        device = self.aliases.find(p.device)
        entry = self.present.get(device)
        if entry is not None:
            entry.kinds.pop((p.agent, p.device), None)
            if not entry.kinds:
                self._forget(p.ts, device)

    def _forget(self, ts: float, device: str) -> None:
        del self.present[device]
        self.aliases.forget(device)
        self.estimator.gone(ts, device)

    def _count(self, entry: _Present, device: str, ts: float, *, sniffer: str | None = None,
               rssi_dbm: float | None = None) -> None:
        self.estimator.sighting(ts, device, rssi_dbm=rssi_dbm, sniffer=sniffer, zone=entry.zone, kind=entry.kind,
                                randomized=entry.randomized, macs=entry.macs, span_s=entry.last_ts - entry.first_ts,
                                counted_for_s=entry.hold_s())

    def placed(self, device: str, zone: str | None) -> None:
        """Ingest fused ``device`` into ``zone`` (None: between zones)."""
        entry = self.present.get(self.aliases.find(device))
        if entry is not None:
            entry.zone = zone

    def door(self, d: Door) -> None:
        self.estimator.door(d.ts, entered=int(d.direction == "in"), left=int(d.direction == "out"))

    def motion(self, m: Motion) -> None:
        """A zone PIR's report. An area PIR's is ignored: a strip along the zone's opening going quiet while
        shoppers browse deeper in would mark the whole zone empty (and overwrite its own PIR's state)."""
        if pir_sensor(m.agent, m.sensor) in self.area_pirs:
            return
        self.estimator.motion(m.ts, m.zone, m.active)

    # ------------------------------------------------------------------ estimate out

    def estimate(self, now: float) -> Occupancy:
        """The estimate at ``now`` (the stream's clock): devices still reported and not silent for longer
        than their hold count as heard now; the others leave the estimator until they report again."""
        stale = [d for d, e in self.present.items() if now - e.last_ts > STALE_S]
        for device in stale:
            self._forget(now, device)
        for device, entry in self.present.items():
            if now - entry.last_ts <= entry.hold_s():
                self._count(entry, device, now)
            elif entry.counted:
                entry.counted = False
                self.estimator.gone(now, device)
        return self.estimator.estimate(now)

    def document(self, occ: Occupancy) -> dict[str, Any]:
        """The store topic's payload (plan zones only, in plan order), plus the evidence: ``/api/occupancy``."""
        doc = occupancy_payload(occ.ts, occ.people, occ.sigma, self._zones(occ))
        doc["evidence"] = dict(occ.evidence)
        return doc

    def tick(self, now: float) -> Occupancy:
        """Estimate, and publish what changed (or everything, once a minute)."""
        occ = self.estimate(now)
        zones = self._zones(occ)
        store_key = (round(occ.people), tuple(round(p) for p, _ in zones.values()))
        if self._due(self.topic, store_key, now):
            self._publish(self.topic, encode_occupancy(now, occ.people, occ.sigma, zones), store_key, now)
        for name, (people, sigma) in zones.items():
            topic = self.zone_topics[name]
            if self._due(topic, round(people), now):
                self._publish(topic, encode_zone_occupancy(now, people, sigma), round(people), now)
        return occ

    def _zones(self, occ: Occupancy) -> dict[str, tuple[float, float]]:
        out = {}
        for name in self.zone_names:
            z = occ.zones.get(name)
            out[name] = (z.people, z.sigma) if z is not None else (0.0, 0.0)
        return out

    def _due(self, topic: str, key: Any, now: float) -> bool:
        sent = self._sent.get(topic)
        return sent is None or sent[0] != key or now - sent[1] >= PUBLISH_EVERY_S

    def _publish(self, topic: str, payload: bytes, key: Any, now: float) -> None:
        self.publisher.publish(topic, payload, qos=1, retain=True)
        self._sent[topic] = (key, now)
        self.published += 1
