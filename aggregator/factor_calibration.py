"""A store's people-per-device factor, calibrated from its own door counter or from head counts.

The occupancy estimate's level is ``factor x devices`` (docs/OCCUPANCY.md): how many people one counted
device stands for differs between stores (people carrying laptops as well as phones, staff without
Wi-Fi, phones that do not probe). This module measures it from what a store already records, offline:

* **from the door counter** (:func:`fit_from_door`): over a day that starts and ends with the store
  closed and empty, people = the door's in - out with the day's end balance (the counter's drift: a
  beam counter garbles overlapping passages) taken off in proportion to the crossings so far, plus the
  people in all day the counter never sees (staff through a back door); the factor is the sum of people
  over the sum of devices, minute by minute. Levels, not changes: the device count answers to people
  with a lag and counts a shopper who randomises their MAC at first by part, so its changes follow the
  door's at about half their size (the simulated store), while its level over a day matches the
  people's; and the estimator's model is the level, people = factor x devices.
* **from head counts** (:func:`fit_from_counts` offline, :func:`add_head_count` live): people counted by
  hand at a few moments, divided by the devices counted then (sums over the counts, so a busy moment
  weighs more than a quiet one).

Both read the devices as the live estimator counts them with factor 1 (:func:`device_series`), so the
factor they give is what ``[store] occupancy_factor`` needs to turn that count into people.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
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
# Beam counters miscount 1-5 % of passages; more than this at the end of a day is not drift (the store was not
# empty at one end of the range, or the counter counts another entrance).
MAX_DRIFT = 0.1
# A factor less certain than this (relative 1-sigma) is flagged: the simulated store's counter, 1.6 % end balance
# but most of it in the first hours, leaves +-20 % (docs/OCCUPANCY.md).
UNCERTAIN_REL = 0.1


class CalibrationError(FloorwalkerError, ValueError):
    """The data cannot give a factor (no door counts, nobody came, a factor no store could have)."""


@dataclass(frozen=True, slots=True)
class Sample:
    """The live estimator's view at the end of one minute, with factor 1."""

    ts: float
    devices: float  # weighted person devices (agent.occupancy's evidence "weighted_devices")
    door_in: int  # since the series started (its first message)
    door_out: int


@dataclass(frozen=True, slots=True)
class Calibration:
    """A measured factor, with what it rests on: what ``calibrate-factor`` prints and the head-count
    endpoint answers."""

    factor: float  # people per device
    sigma: float  # its 1-sigma uncertainty (door: blocks' scatter and the drift's timing; counts: Poisson)
    method: str  # "door" or "counts"
    used: int  # minutes (door) or head counts (counts)
    crossings: int  # door crossings in the data (0 for counts)
    devices_mean: float  # mean devices over the samples used

    @property
    def uncertain(self) -> bool:
        """More than :data:`UNCERTAIN_REL` relative error: better counted by hand (the door's end balance
        was large, or the day short)."""
        return self.sigma > UNCERTAIN_REL * self.factor

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "factor": round(self.factor, 3), "sigma": round(self.sigma, 3), "method": self.method,
            "used": self.used, "crossings": self.crossings, "devices_mean": round(self.devices_mean, 2),
            "uncertain": self.uncertain, "store_toml": f"occupancy_factor = {self.factor:.2f}"}
        if self.uncertain:
            out["advice"] = (f"the factor is uncertain by more than {UNCERTAIN_REL:.0%}: check it with head counts "
                             "(--count TIME=PEOPLE, a few on a busy day) before putting it in store.toml")
        return out


def device_series(store: StoreConfig, messages: Iterable[AgentMessage], *, step_s: float = SAMPLE_S,
                  area_pirs: Iterable[str] = ()) -> list[Sample]:
    """Agent messages in time order (as ingest got them) through the live estimator with factor 1, sampled
    at the end of every ``step_s`` from the first message to the last. ``area_pirs``: the sensor names of
    the PIRs that watch a rectangle (:func:`agent.config.area_pirs`), whose motion the estimate leaves out
    as ingest's does."""
    live = LiveOccupancy(store, NullPublisher(), factor=1.0, area_pirs=area_pirs)
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


def fit_from_door(samples: Sequence[Sample], *, window_s: float = DEFAULT_WINDOW_S,
                  not_at_door: float = 0.0) -> Calibration:
    """The factor from a day's door counts: people over devices, summed over the day's minutes.

    The samples must run from a closed, empty store to a closed, empty store (opening to after closing),
    so whatever in - out says at the end is the counter's drift; it is spread over the day in proportion
    to the crossings, as the estimator's drift is (agent.occupancy: offset + drift x crossings). People
    who are in all day without passing the counter (staff through a back door) are ``not_at_door``.
    ``window_s``: the blocks whose scatter gives the uncertainty (a ratio estimator's standard error)."""
    if window_s <= 0:
        raise CalibrationError(f"window must be > 0 s, got {window_s}")
    if not (math.isfinite(not_at_door) and not_at_door >= 0):
        raise CalibrationError(f"people not seen by the door must be a number >= 0, got {not_at_door}")
    if len(samples) < 2:
        raise CalibrationError("no data: fewer than two minutes of agent messages in the time range")
    last = samples[-1]  # door counts are since the first message: the store's opening
    crossings = last.door_in + last.door_out
    if crossings < MIN_CROSSINGS:
        raise CalibrationError(f"{crossings} door crossings in the time range, at least {MIN_CROSSINGS} are needed "
                               "(no door counter, or a day too quiet: pick a busier day or use head counts)")
    drift = last.door_in - last.door_out
    if abs(drift) > MAX_DRIFT * crossings:
        raise CalibrationError(f"the door's in - out ends at {drift:+d} after {crossings} crossings: the time range "
                               "must run from the store closed and empty to closed and empty again (opening to "
                               "after closing), or the counter miscounts more than "
                               f"{MAX_DRIFT:.0%} of passages")
    people, devices = [], []
    for s in samples:
        people.append(s.door_in - s.door_out - drift * (s.door_in + s.door_out) / crossings + not_at_door)
        devices.append(s.devices)
    # more left than came, by more than a counter's miscounts so far: people were in before the range began
    for s in samples:
        net, crossed = s.door_in - s.door_out, s.door_in + s.door_out
        if net < -(3 + MAX_DRIFT * crossed):
            raise CalibrationError(f"the door's in - out falls to {net} after {crossed} crossings: the time range "
                                   "must start with the store closed and empty (pick the day from before opening)")
    total_devices = sum(devices)
    if total_devices <= 0 or sum(people) <= 0:
        raise CalibrationError(f"{sum(people) / len(people):.2f} people by the door against "
                               f"{total_devices / len(devices):.2f} devices heard on average: the agents were not "
                               "running, or the door counts another entrance")
    factor = sum(people) / total_devices
    mean_devices = total_devices / len(samples)
    # where in the day the drift happened is not known: spread evenly, the day's mean people is off by the
    # mean of a bridge of |drift| unit steps, whose variance is |drift| / 12
    drift_sigma = math.sqrt(abs(drift) / 12) / mean_devices
    sigma = math.hypot(_ratio_sigma(people, devices, factor, window_s, samples), drift_sigma)
    return _checked(Calibration(factor, sigma, "door", len(samples), crossings, mean_devices))


def _ratio_sigma(people: Sequence[float], devices: Sequence[float], factor: float, window_s: float,
                 samples: Sequence[Sample]) -> float:
    """The standard error of sum(people) / sum(devices) from its blocks of ``window_s`` (a ratio estimator's)."""
    step = max(1, round(window_s / (samples[1].ts - samples[0].ts)))
    blocks = [(sum(people[i:i + step]), sum(devices[i:i + step])) for i in range(0, len(people), step)]
    n = len(blocks)
    if n < MIN_WINDOWS:
        raise CalibrationError(f"{n} windows of {window_s:g} s: too few for an uncertainty (a longer time range)")
    mean_d = sum(d for _, d in blocks) / n
    spread = sum((p - factor * d) ** 2 for p, d in blocks) / (n - 1)
    return math.sqrt(spread / n) / mean_d


def fit_from_counts(samples: Sequence[Sample], counts: Sequence[tuple[float, float]]) -> Calibration:
    """The factor from people counted by hand at ``counts`` = [(ts, people)]: the sum of the people over
    the sum of the devices counted at the minute each count falls in."""
    if not counts:
        raise CalibrationError("no head counts given")
    if not samples:
        raise CalibrationError("no data: no agent messages in the time range")
    ends = [s.ts for s in samples]
    pairs = []
    for ts, n in counts:
        if not samples[0].ts - SAMPLE_S <= ts <= samples[-1].ts:
            raise CalibrationError(f"head count at {ts} is outside the messages' time range "
                                   f"({samples[0].ts - SAMPLE_S} to {samples[-1].ts})")
        pairs.append((n, samples[bisect.bisect_left(ends, ts)].devices))  # the minute the count falls in
    return factor_from_pairs(pairs)


def factor_from_pairs(pairs: Sequence[tuple[float, float]]) -> Calibration:
    """``[(people counted, devices counted then)]`` -> the factor: sums, so a busy moment weighs more than a
    quiet one; the uncertainty is Poisson on the devices, as the estimator's own sigma."""
    if not pairs:
        raise CalibrationError("no head counts given")
    for n, _ in pairs:
        if not (math.isfinite(n) and n >= 0):
            raise CalibrationError(f"a head count is a number of people >= 0, got {n}")
    people = sum(n for n, _ in pairs)
    devices = sum(d for _, d in pairs)
    if devices <= 0 or people <= 0:
        raise CalibrationError(f"{people:g} people counted against {devices:g} devices heard: count when the store "
                               "is busy (and the agents running)")
    factor = people / devices
    return _checked(Calibration(factor, factor / math.sqrt(devices), "counts", len(pairs), 0, devices / len(pairs)))


def add_head_count(counts: deque[tuple[float, float]], people: float, devices: float) -> Calibration:
    """A head count posted live (``POST /api/occupancy/head-count``) with the devices the live estimate
    counted at that moment, added to ``counts`` (:attr:`LiveOccupancy.head_counts`, bounded); the factor
    from all of them so far. CalibrationError, and nothing added, if they give none."""
    result = factor_from_pairs([*counts, (people, devices)])
    counts.append((people, devices))
    return result


def _checked(c: Calibration) -> Calibration:
    lo, hi = OCCUPANCY_FACTOR_RANGE
    if not lo <= c.factor <= hi:
        why = ("the time range must run from the store closed and empty to closed and empty, through its only "
               "counted entrance, with the agents running" if c.method == "door" else
               "the counts and the agents did not see the same store (agents down?)")
        raise CalibrationError(f"calibrated factor {c.factor:.3f} is outside {lo}-{hi} people per device: {why}")
    return c
