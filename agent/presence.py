"""Per device: is it in the store, where, and when did it leave.

Phones probe in bursts (a few frames within ~100 ms, then silence for seconds to minutes) and
RSSI jumps by 5-10 dB between frames. So, per device:

* RSSI is smoothed per sniffer (:class:`RssiSmoother`, from the positioning engine);
* ``enter`` once it has been heard ``min_sightings`` times above ``rssi_floor_dbm`` — a phone on
  the street outside is weak and brief, and never gets there (the passer-by filter);
* ``move`` when the estimate (position, or a sniffer's distance) changed by ``move_threshold_px``,
  at most once per :data:`MIN_UPDATE_INTERVAL_S` (one update per burst, not per frame);
* ``exit`` after ``absence_s`` of silence;
* a device heard without a break for ``static_after_s`` (a printer, a till PC) is learned as a
  fixture: it gets an ``exit`` and is ignored from then on.

With one sniffer the position is the sniffer's own and the accuracy is the distance; with several
the agent multilaterates (:func:`locate`). Every update carries ``ranges`` so the aggregator can
multilaterate across agents.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import NamedTuple

from agent.config import DeviceConfig, SnifferConfig
from agent.contract import Range
from agent.errors import BadReading
from agent.positioning.calibration import LogDistanceModel
from agent.positioning.multilateration import Anchor, locate
from agent.positioning.smoothing import RssiSmoother

MIN_UPDATE_INTERVAL_S = 1.0  # a probe burst lasts ~0.1 s: one update per burst is enough
RANGE_STALE_S = 60.0  # a sniffer that has not heard the device for a minute no longer says where it is
PHONE_HEIGHT_M = 1.2  # phones are held or pocketed at about this height


class Sighting(NamedTuple):
    """A probe after privacy: hashed device id, never a MAC.

    A named tuple, not a frozen dataclass: as immutable, and built in a fifth of the time (one per
    probe, on the agent's hot path; 2.3 -> 0.4 us), like :class:`agent.contract.Presence`."""

    ts: float
    sniffer: str
    device: str  # the linked pseudo-device (agent.linking), or the MAC's own id
    rssi_dbm: float
    randomized: bool = False
    kind: str = "person"  # person, fixture or neighbour (agent.device_kinds)
    macs: int = 1  # MACs linked into the pseudo-device so far
    mac_ids: tuple[str, ...] = ()  # a linked chain's latest MAC ids (agent.linking.MacLinker.mac_ids)


class PresenceUpdate(NamedTuple):
    """One enter, move or exit, before it becomes a :class:`agent.contract.Presence` (a named tuple
    for the reason :class:`Sighting` is one)."""

    kind: str  # enter, move, exit
    ts: float
    device: str
    x: float
    y: float
    accuracy_m: float
    rssi_dbm: float
    distance_m: float
    randomized: bool
    ranges: tuple[Range, ...]
    device_kind: str = "person"  # person, fixture or neighbour
    macs: int = 1
    mac_ids: tuple[str, ...] = ()


class _Sniffer:
    __slots__ = ("height_m", "id", "model", "x_m", "x_px", "y_m", "y_px")

    def __init__(self, config: SnifferConfig, metres_per_px: float) -> None:
        self.id = config.id
        self.x_px, self.y_px = config.position_px
        self.x_m, self.y_m = self.x_px * metres_per_px, self.y_px * metres_per_px
        self.model = LogDistanceModel.fit(config.calibration)
        self.height_m = config.height_m

    def floor_distance_m(self, rssi_dbm: float) -> float:
        """Distance along the floor: the model gives the slant distance to a sniffer mounted high."""
        slant = self.model.distance_m(rssi_dbm)
        dh = self.height_m - PHONE_HEIGHT_M
        return math.sqrt(max(slant * slant - dh * dh, 0.01))


@dataclass(slots=True)
class _Track:
    first_ts: float
    last_ts: float
    randomized: bool
    sightings: int = 0
    entered: bool = False
    kind: str = "person"
    macs: int = 1
    mac_ids: tuple[str, ...] = ()
    last_update_ts: float = -math.inf
    smoothers: dict[str, RssiSmoother] = field(default_factory=dict)
    heard_ts: dict[str, float] = field(default_factory=dict)
    last: PresenceUpdate | None = None


def _distance(r: Range) -> float:
    return r.distance_m


class PresenceTracker:
    """Sightings in, presence updates out. Not thread-safe: the runtime calls it from one thread."""

    def __init__(self, device: DeviceConfig) -> None:
        self.settings = device.presence
        plan = device.store.plan
        self.plan = plan
        self.sniffers = {s.id: _Sniffer(s, plan.metres_per_px) for s in device.sniffers}
        self.bounds_m = (0.0, 0.0, plan.width_px * plan.metres_per_px, plan.height_px * plan.metres_per_px)
        self.move_threshold_m = plan.length_px_to_m(self.settings.move_threshold_px)
        # Ordered by last sighting (oldest first), so tick() looks only at the devices that went quiet.
        self.tracks: OrderedDict[str, _Track] = OrderedDict()
        self.static: set[str] = set()
        self.stats = {"sightings": 0, "weak": 0, "static_ignored": 0, "unknown_sniffer": 0, "passers_by": 0,
                      "entered": 0, "learned_static": 0}

    @property
    def present(self) -> int:
        return sum(1 for t in self.tracks.values() if t.entered)

    def sighting(self, s: Sighting) -> PresenceUpdate | None:
        ts, sniffer, device, rssi_dbm, randomized, kind, macs, mac_ids = s  # once: this runs per probe
        stats = self.stats
        settings = self.settings
        stats["sightings"] += 1
        if device in self.static:
            stats["static_ignored"] += 1
            return None
        if rssi_dbm < settings.rssi_floor_dbm:
            stats["weak"] += 1
            return None
        if sniffer not in self.sniffers:
            stats["unknown_sniffer"] += 1
            return None
        tracks = self.tracks
        track = tracks.get(device)
        if track is None:
            track = tracks[device] = _Track(first_ts=ts, last_ts=ts, randomized=randomized)
        else:
            tracks.move_to_end(device)
            if track.entered and ts - track.first_ts >= settings.static_after_s:
                return self._learn_fixture(device, track, ts)
        if ts > track.last_ts:
            track.last_ts = ts
        track.sightings += 1
        track.kind, track.macs, track.mac_ids = kind, macs, mac_ids
        smoother = track.smoothers.get(sniffer)
        if smoother is None:
            smoother = track.smoothers[sniffer] = RssiSmoother()
        try:
            smoother.update(ts, rssi_dbm)
        except BadReading:
            return None
        track.heard_ts[sniffer] = ts
        if not track.entered:
            if track.sightings < settings.min_sightings:
                return None
            track.entered = True
            stats["entered"] += 1
            return self._emit(track, "enter", device, ts)
        if ts - track.last_update_ts < MIN_UPDATE_INTERVAL_S:
            return None
        update = self._estimate(track, "move", device, ts)
        # a new MAC joined the chain: reported even when the device did not move, so the aggregator
        # learns the MAC ids other agents may name this phone by (agent.linking.MacLinker.mac_ids)
        if update is None or not (self._changed(track.last, update) or update.macs != track.last.macs):  # type: ignore[union-attr]
            return None
        track.last, track.last_update_ts = update, ts
        return update

    def _emit(self, track: _Track, kind: str, device: str, ts: float) -> PresenceUpdate | None:
        update = self._estimate(track, kind, device, ts)
        if update is not None:
            track.last, track.last_update_ts = update, ts
        return update

    def _changed(self, before: PresenceUpdate | None, after: PresenceUpdate) -> bool:
        if before is None:
            return True
        if math.hypot(after.x - before.x, after.y - before.y) >= self.settings.move_threshold_px:
            return True
        old = {r.sniffer: r.distance_m for r in before.ranges}
        for r in after.ranges:
            if r.sniffer not in old or abs(r.distance_m - old[r.sniffer]) >= self.move_threshold_m:
                return True
        return len(after.ranges) != len(before.ranges)

    def _estimate(self, track: _Track, kind: str, device: str, ts: float) -> PresenceUpdate | None:
        ranges: list[Range] = []
        heard: list[tuple[_Sniffer, float]] = []  # each range's sniffer and unrounded distance
        heard_ts = track.heard_ts
        for sniffer_id, smoother in track.smoothers.items():
            value = smoother.value
            if value is None or ts - heard_ts.get(sniffer_id, -math.inf) > RANGE_STALE_S:
                continue
            sn = self.sniffers[sniffer_id]
            d = sn.floor_distance_m(value)
            ranges.append(Range(sniffer_id, sn.x_px, sn.y_px, round(value, 1), round(d, 2)))
            heard.append((sn, d))
        if not ranges:
            return None
        if len(ranges) == 1:  # the common case: no multilateration, so no anchors to build
            best = ranges[0]
            x, y, accuracy = best.x, best.y, best.distance_m
        else:
            best = min(ranges, key=_distance)
            try:
                est = locate([Anchor(sn.x_m, sn.y_m, d, sn.model.sigma_m(d)) for sn, d in heard], self.bounds_m)
            except BadReading:
                return None
            x, y = self.plan.m_to_px((est.x_m, est.y_m))
            accuracy = est.accuracy_m
        return PresenceUpdate(kind, ts, device, round(x, 1), round(y, 1), round(accuracy, 2), best.rssi_dbm,
                              best.distance_m, track.randomized, tuple(ranges), track.kind, track.macs,
                              track.mac_ids)

    def _learn_fixture(self, device: str, track: _Track, ts: float) -> PresenceUpdate | None:
        """Heard without a break for ``static_after_s``: a printer or a till PC, not a shopper."""
        del self.tracks[device]
        self.static.add(device)
        self.stats["learned_static"] += 1
        return self._exit(device, track, ts)

    @staticmethod
    def _exit(device: str, track: _Track, ts: float) -> PresenceUpdate | None:
        last = track.last
        if last is None:
            return None
        return PresenceUpdate("exit", ts, device, last.x, last.y, last.accuracy_m, last.rssi_dbm, last.distance_m,
                              track.randomized, (), track.kind, track.macs, track.mac_ids)

    def tick(self, now: float) -> list[PresenceUpdate]:
        """Exits of devices silent for ``absence_s`` (oldest first; stops at the first one still heard)."""
        out: list[PresenceUpdate] = []
        absence = self.settings.absence_s
        tracks = self.tracks
        while tracks:
            device, track = next(iter(tracks.items()))
            if now - track.last_ts < absence:
                break
            del tracks[device]
            if not track.entered:
                self.stats["passers_by"] += 1
                continue
            if (update := self._exit(device, track, now)) is not None:
                out.append(update)
        return out
