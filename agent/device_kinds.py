"""Which pseudo-devices are people: fixtures and neighbours, learned from what the sniffers hear.

* **neighbour**: heard only through a wall or from the street. Its signal profile says so: at every
  sniffer that hears it, its smoothed RSSI stays below that sniffer's ``floor_dbm``. The default
  floor is fitted on the shared Brno days (docs/OCCUPANCY.md); a store sets its own per sniffer
  (the walls and the sniffer's place differ). A device that comes closer (the smoothed RSSI rises
  above the floor at any sniffer) is a person again.
* **fixture**: heard for hours without leaving: at least ``fixture_after_s`` between its first and
  last sighting, with no silence longer than ``fixture_gap_s``. A PC, a printer, a till. Once
  learned it stays learned (day after day: while ids do not rotate daily the agent recognises it
  at once the next morning). The default, 12 h, is longer than any shift or class a person spends
  in one room; the Brno lab's own computers are on for at most 5 h a day while people are in, and
  are counted as the evidence of people they are there.

State is bounded: at most ``max_devices`` devices (least recently heard forgotten first) and
``max_fixtures`` fixtures.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

PERSON, FIXTURE, NEIGHBOUR = "person", "fixture", "neighbour"
# Fitted on the shared Brno days (docs/OCCUPANCY.md; grid -80/-75/-70, chosen by 7 of 8 leave-one-
# day-out folds): the smoothed RSSI below which a device is heard through the wall. In-room phones
# and PCs there read -35 to -65 dBm, the devices heard all day through the wall -81 to -93.
DEFAULT_FLOOR_DBM = -70.0
RSSI_SMOOTHING = 0.3  # EMA weight of a new reading: RSSI jumps 5-10 dB from frame to frame


@dataclass(slots=True)
class _Profile:
    first_ts: float
    last_ts: float
    run_start_ts: float  # start of the current run of sightings without a gap over fixture_gap_s
    rssi_dbm: dict[str, float] = field(default_factory=dict)  # sniffer -> smoothed RSSI


class DeviceKinds:
    """``observe(ts, device, sniffer, rssi_dbm)`` -> ``person``, ``fixture`` or ``neighbour``."""

    def __init__(self, *, floor_dbm: float = DEFAULT_FLOOR_DBM, floors_dbm: Mapping[str, float] | None = None,
                 fixture_after_s: float = 12 * 3600.0, fixture_gap_s: float = 3600.0,
                 max_devices: int = 50_000, max_fixtures: int = 10_000) -> None:
        self.floor_dbm = floor_dbm
        self.floors_dbm = dict(floors_dbm or {})
        self.fixture_after_s = fixture_after_s
        self.fixture_gap_s = fixture_gap_s
        self.max_devices = max_devices
        self.max_fixtures = max_fixtures
        self._profiles: OrderedDict[str, _Profile] = OrderedDict()
        self.fixtures: OrderedDict[str, None] = OrderedDict()
        self.stats = {"fixtures_learned": 0}

    def observe(self, ts: float, device: str, sniffer: str, rssi_dbm: float) -> str:
        if device in self.fixtures:
            return FIXTURE
        profiles = self._profiles
        p = profiles.get(device)
        if p is None:
            p = profiles[device] = _Profile(ts, ts, ts)
            if len(profiles) > self.max_devices:
                profiles.popitem(last=False)
        else:
            profiles.move_to_end(device)
            if ts - p.last_ts > self.fixture_gap_s:
                p.run_start_ts = ts
            p.last_ts = max(p.last_ts, ts)
            if p.last_ts - p.run_start_ts >= self.fixture_after_s:
                self._learn_fixture(device)
                return FIXTURE
        old = p.rssi_dbm.get(sniffer)
        p.rssi_dbm[sniffer] = rssi_dbm if old is None else old + RSSI_SMOOTHING * (rssi_dbm - old)
        return self._by_signal(p)

    def kind(self, device: str) -> str:
        """The device's kind as last learned (``person`` for a device never heard)."""
        if device in self.fixtures:
            return FIXTURE
        p = self._profiles.get(device)
        return PERSON if p is None else self._by_signal(p)

    def _by_signal(self, p: _Profile) -> str:
        floors = self.floors_dbm
        for sniffer, rssi in p.rssi_dbm.items():
            if rssi >= floors.get(sniffer, self.floor_dbm):
                return PERSON
        return NEIGHBOUR

    def _learn_fixture(self, device: str) -> None:
        self._profiles.pop(device, None)
        self.fixtures[device] = None
        self.stats["fixtures_learned"] += 1
        if len(self.fixtures) > self.max_fixtures:
            self.fixtures.popitem(last=False)
