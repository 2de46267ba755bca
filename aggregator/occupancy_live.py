"""The aggregator's live occupancy: the people in the store now, from what the agents report.

Runs :class:`agent.occupancy.OccupancyEstimator` (the one estimator, also used by ``replay``) on the
event loop, fed by ingest with the agent tier's messages:

* presence (``enter``/``move``/``exit`` of linked pseudo-devices, with the agent's ``kind``: person,
  fixture or neighbour). An agent reports a device when it enters, when its estimate moves and when
  it has been silent for the agent's ``absence_s``; a phone lying still sends no ``move`` for minutes.
  So a device counts as heard from its first report until every agent that reported it has sent its
  ``exit`` (as visits do), refreshed at every estimate, and is dropped after :data:`STALE_S` without
  any report (an agent went offline and its exits never came);
* the zone each device was last fused into (ingest's positions, not one agent's, which with a single
  sniffer is the sniffer's own spot);
* door crossings and PIR states.

``tick`` (once a second, from ingest's sweep) publishes the retained store and zone topics
(docs/MQTT.md, Occupancy) when a rounded number changes, and at least every :data:`PUBLISH_EVERY_S`
so a subscriber sees the estimate is alive. ``GET /api/occupancy`` reads :meth:`LiveOccupancy.estimate`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.config import StoreConfig
from agent.contract import (
    Door,
    Motion,
    Presence,
    encode_occupancy,
    encode_zone_occupancy,
    occupancy_payload,
    occupancy_topic,
    zone_occupancy_topic,
)
from agent.occupancy import Occupancy, OccupancyEstimator
from aggregator.mqtt_link import Publisher

PUBLISH_EVERY_S = 60.0
# Agents send an exit after absence_s of silence (180 s by default): a device with no report for five
# times that lost its exits (agent offline, broker outage); it no longer counts.
STALE_S = 900.0


@dataclass(slots=True)
class _Present:
    """A device some agent has reported and not yet said goodbye to."""

    kind: str
    last_ts: float
    agents: set[str] = field(default_factory=set)
    zone: str | None = None


class LiveOccupancy:
    """The store's running estimate: evidence in from ingest, retained MQTT topics and the API out."""

    def __init__(self, store: StoreConfig, publisher: Publisher, *, factor: float | None = None,
                 tuning: Mapping[str, float] | None = None) -> None:
        self.publisher = publisher
        self.zone_names = tuple(z.name for z in store.plan.zones)
        self.topic = occupancy_topic(store.id)
        self.zone_topics = _zone_topics(store.id, self.zone_names)
        self.estimator = OccupancyEstimator(zones=self.zone_names, factor=factor, **dict(tuning or {}))
        self.present: dict[str, _Present] = {}
        self.published = 0
        self._sent: dict[str, tuple[Any, float]] = {}  # topic -> (what was rounded, when)

    # ------------------------------------------------------------------ evidence (ingest, event loop)

    def presence(self, p: Presence) -> None:
        if p.kind == "exit":
            entry = self.present.get(p.device)
            if entry is not None:
                entry.agents.discard(p.agent)
                if not entry.agents:
                    del self.present[p.device]
                    self.estimator.gone(p.ts, p.device)
            return
        kind = p.device_kind
        entry = self.present.get(p.device)
        if entry is None:
            entry = self.present[p.device] = _Present(kind, p.ts)
        entry.agents.add(p.agent)
        entry.kind = kind
        entry.last_ts = max(entry.last_ts, p.ts)
        # ranges are Range tuples, or plain tuples in Range's order from the MQTT process: index, not name
        sniffer = f"{p.agent}/{p.ranges[0][0]}" if p.ranges else p.agent
        self.estimator.sighting(p.ts, p.device, rssi_dbm=p.rssi_dbm, sniffer=sniffer, zone=entry.zone, kind=kind)

    def placed(self, device: str, zone: str | None) -> None:
        """Ingest fused ``device`` into ``zone`` (None: between zones)."""
        entry = self.present.get(device)
        if entry is not None:
            entry.zone = zone

    def door(self, d: Door) -> None:
        self.estimator.door(d.ts, entered=int(d.direction == "in"), left=int(d.direction == "out"))

    def motion(self, m: Motion) -> None:
        self.estimator.motion(m.ts, m.zone, m.active)

    # ------------------------------------------------------------------ estimate out

    def estimate(self, now: float) -> Occupancy:
        """The estimate at ``now`` (the stream's clock), every device still reported counted as heard."""
        stale = [d for d, e in self.present.items() if now - e.last_ts > STALE_S]
        for device in stale:
            del self.present[device]
            self.estimator.gone(now, device)
        for device, entry in self.present.items():
            self.estimator.sighting(now, device, zone=entry.zone, kind=entry.kind)
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


def _zone_topics(store_id: str, zone_names: tuple[str, ...]) -> dict[str, str]:
    """Each zone's topic; two names with one slug ("Men's", "Mens") get ``-2``, ``-3`` in plan order, a
    name with no letter or digit ``zone-<n>`` (its place in the plan)."""
    topics: dict[str, str] = {}
    used: set[str] = set()
    for i, name in enumerate(zone_names, 1):
        try:
            base = zone_occupancy_topic(store_id, name)
        except ValueError:
            base = f"{occupancy_topic(store_id)}/zone-{i}"
        topic, n = base, 1
        while topic in used:
            n += 1
            topic = f"{base}-{n}"
        used.add(topic)
        topics[name] = topic
    return topics
