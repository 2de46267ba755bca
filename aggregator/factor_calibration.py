"""A store's people-per-device factor, calibrated from its own door counter or from head counts.

The occupancy estimate's level is ``factor x devices`` (docs/OCCUPANCY.md): how many people one counted
device stands for differs between stores (people carrying laptops as well as phones, staff without
Wi-Fi, phones that do not probe). This module measures it from what a store already records, offline:

* **from the door counter** (:func:`fit_from_door`): over a day, the device count's changes are
  regressed on the door's changes of in - out in windows of ``window_s``, through the origin:
  ``devices(t + w) - devices(t) = (net(t + w) - net(t)) / factor``. Changes, not levels: a beam
  counter's running in - out walks away over a day (overlapping passages, a back door), but over a few
  minutes it is right about how many came and went, which is all the slope needs. The door is the
  regressor because it is the exact one over a short window; the device count, noisy (Poisson, phones
  that probe every few minutes), is the response, so its noise does not bias the slope.
* **from head counts** (:func:`fit_from_counts`): people counted by hand at a few moments, divided by
  the devices counted then (sums over the counts, so a busy moment weighs more than a quiet one).

Both read the devices as the live estimator counts them with factor 1 (:func:`device_series`), so the
factor they give is what ``[store] occupancy_factor`` needs to turn that count into people.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from agent.config import OCCUPANCY_FACTOR_RANGE, StoreConfig
from agent.contract import AgentMessage, Door, Motion, Presence
from agent.errors import FloorwalkerError
from aggregator.mqtt_link import NullPublisher
from aggregator.occupancy_live import LiveOccupancy

SAMPLE_S = 60.0
DEFAULT_WINDOW_S = 600.0  # as the estimator's window: a phone that probes every few minutes is heard in it
MIN_CROSSINGS = 40  # fewer door crossings than this over the day say too little about the factor
MIN_WINDOWS = 6


class CalibrationError(FloorwalkerError, ValueError):
    """The data cannot give a factor (no door counts, nobody came, a factor no store could have)."""


@dataclass(frozen=True, slots=True)
class Sample:
    """The live estimator's view at the end of one minute, with factor 1."""

    ts: float
    devices: float  # weighted person devices (agent.occupancy's evidence "weighted_devices")
    door_in: int  # since the series started
    door_out: int


@dataclass(frozen=True, slots=True)
class Calibration:
    factor: float  # people per device
    sigma: float  # its 1-sigma uncertainty (from the windows' scatter)
    method: str  # "door" or "counts"
    used: int  # windows (door) or head counts (counts)
    crossings: int  # door crossings in the data (0 for counts)
    devices_mean: float  # mean devices over the samples used

    def as_dict(self) -> dict[str, object]:
        return {"factor": round(self.factor, 3), "sigma": round(self.sigma, 3), "method": self.method,
                "used": self.used, "crossings": self.crossings, "devices_mean": round(self.devices_mean, 2),
                "store_toml": f"occupancy_factor = {self.factor:.2f}"}


def device_series(store: StoreConfig, messages: Iterable[AgentMessage], *, step_s: float = SAMPLE_S
                  ) -> list[Sample]:
    """Agent messages in time order (as ingest got them) through the live estimator with factor 1, sampled
    at the end of every ``step_s`` from the first message to the last."""
    live = LiveOccupancy(store, NullPublisher(), factor=1.0)
    out: list[Sample] = []
    door_in = door_out = 0
    next_ts: float | None = None
    last_ts: float | None = None
    for m in messages:
        if last_ts is not None and m.ts < last_ts - 1.0:
            raise CalibrationError(f"messages out of time order ({m.ts} after {last_ts}): read them sorted by ts")
        last_ts = m.ts if last_ts is None else max(last_ts, m.ts)
        if next_ts is None:
            next_ts = math.floor(m.ts / step_s) * step_s + step_s
        while m.ts > next_ts:
            out.append(_sample(live, next_ts, door_in, door_out))
            next_ts += step_s
        if isinstance(m, Presence):
            live.presence(m)
        elif isinstance(m, Door):
            live.door(m)
            door_in += m.direction == "in"
            door_out += m.direction == "out"
        elif isinstance(m, Motion):
            live.motion(m)
    if next_ts is not None:
        out.append(_sample(live, next_ts, door_in, door_out))
    return out


def _sample(live: LiveOccupancy, ts: float, door_in: int, door_out: int) -> Sample:
    return Sample(ts, float(live.estimate(ts).evidence["weighted_devices"]), door_in, door_out)


def fit_from_door(samples: Sequence[Sample], *, window_s: float = DEFAULT_WINDOW_S) -> Calibration:
    """The factor from the door's changes of in - out against the devices' changes over ``window_s``
    (non-overlapping windows, so the scatter gives an honest uncertainty)."""
    if window_s <= 0:
        raise CalibrationError(f"window must be > 0 s, got {window_s}")
    if len(samples) < 2:
        raise CalibrationError("no data: fewer than two minutes of agent messages in the time range")
    crossings = samples[-1].door_in + samples[-1].door_out - samples[0].door_in - samples[0].door_out
    if crossings < MIN_CROSSINGS:
        raise CalibrationError(f"{crossings} door crossings in the time range, at least {MIN_CROSSINGS} are needed "
                               "(no door counter, or a day too quiet: pick a busier day or use head counts)")
    step = max(1, round(window_s / (samples[1].ts - samples[0].ts)))
    picked = samples[::step]
    pairs = [(b.door_in - b.door_out - a.door_in + a.door_out, b.devices - a.devices)
             for a, b in itertools.pairwise(picked)]
    sxx = sum(x * x for x, _ in pairs)
    if len(pairs) < MIN_WINDOWS or sxx == 0:
        raise CalibrationError(f"{len(pairs)} windows of {window_s:g} s with the door's in - out changing in "
                               f"{sum(1 for x, _ in pairs if x)}: too few to fit (a longer time range)")
    slope = sum(x * y for x, y in pairs) / sxx  # devices per person
    if slope <= 0:
        raise CalibrationError(f"the devices heard do not follow the door counts (slope {slope:.3f} devices per "
                               "person): check the agents were running and the door counter counts this store")
    residual = sum((y - slope * x) ** 2 for x, y in pairs) / (len(pairs) - 1)
    slope_sigma = math.sqrt(residual / sxx)
    devices_mean = sum(s.devices for s in samples) / len(samples)
    return _checked(Calibration(1.0 / slope, slope_sigma / slope ** 2, "door", len(pairs), crossings,
                                devices_mean))


def fit_from_counts(samples: Sequence[Sample], counts: Sequence[tuple[float, float]]) -> Calibration:
    """The factor from people counted by hand at ``counts`` = [(ts, people)]: the sum of the people over
    the sum of the devices counted at the minute each count falls in."""
    if not counts:
        raise CalibrationError("no head counts given")
    if not samples:
        raise CalibrationError("no data: no agent messages in the time range")
    ends = [s.ts for s in samples]
    people = devices = 0.0
    for ts, n in counts:
        if not (math.isfinite(n) and n >= 0):
            raise CalibrationError(f"a head count is a number of people >= 0, got {n}")
        if not samples[0].ts - SAMPLE_S <= ts <= samples[-1].ts:
            raise CalibrationError(f"head count at {ts} is outside the messages' time range "
                                   f"({samples[0].ts - SAMPLE_S} to {samples[-1].ts})")
        sample = samples[bisect.bisect_left(ends, ts)]  # the minute the count falls in
        people += n
        devices += sample.devices
    if devices <= 0 or people <= 0:
        raise CalibrationError(f"{people:g} people counted against {devices:g} devices heard: count when the store "
                               "is busy (and the agents running)")
    factor = people / devices
    # Poisson on the devices counted, as the estimator's own sigma does
    return _checked(Calibration(factor, factor / math.sqrt(devices), "counts", len(counts), 0,
                                devices / len(counts)))


def _checked(c: Calibration) -> Calibration:
    lo, hi = OCCUPANCY_FACTOR_RANGE
    if not lo <= c.factor <= hi:
        raise CalibrationError(f"calibrated factor {c.factor:.3f} is outside {lo}-{hi} people per device: the door "
                               "counter or the agents did not see the same people (another door, agents down)")
    return c
