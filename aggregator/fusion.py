"""Fusion: what several agents heard of one device, turned into one position on the plan.

The engine is the store's grid filter (:class:`~agent.positioning.grid_filter.GridModel`, one per
store, a :class:`~agent.positioning.grid_filter.GridFilter` per device) whenever the store's device
files name the sniffers that heard the device: each agent report's RSSI per sniffer weighs the
plan (and each sniffer of that agent missing from the report counts as "not heard"), the PIR
reports weigh the zones, and the posterior gives the position (its mean), the accuracy (its
spread) and the zone. Such reports keep none of the solver's ranges described below; the device
is located while some agent has reported it within ``window_s`` (and not dropped it). Reports
that carry only an agent's own estimate, or come from sniffers the device files do not know, go
the older way described next (``engine="solver"`` forces it).

Each agent reports, per device, the distance each of its sniffers measured (``ranges``). Agents
see the same phone at slightly different moments (a probe burst is heard by all of them within
milliseconds, but phones probe only every few seconds to a minute), so per device we keep the
latest range of every (agent, sniffer) and, when the device is reported again, multilaterate all
ranges younger than ``window_s`` with the positioning engine (:class:`~agent.positioning.locator.Locator`:
robust multilateration bounded to the plan, then the walking-speed motion filter), and decide the
zone with the store's zone HMM (:class:`~agent.positioning.zone_filter.ZoneFilter`: the filter's
position and doubt, the PIRs' reports fed to :meth:`motion`, which zones touch). Ingest calls
:meth:`locate` once per device per slice of messages, so a burst from four agents costs one solve,
not four.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

from agent.config import DeviceConfig, StoreConfig, area_pirs
from agent.contract import Presence
from agent.errors import BadReading
from agent.geometry import Zone
from agent.positioning.calibration import LogDistanceModel, sigma_from_relative
from agent.positioning.grid_filter import FLOOR_DBM, GridEstimate, GridFilter, GridModel, GridSniffer
from agent.positioning.locator import Locator
from agent.positioning.multilateration import MAX_ABS_M, MIN_DISTANCE_M
from agent.positioning.zone_filter import PirBoard, ZoneFilter, ZoneModel

DEFAULT_REL_SIGMA = 0.3  # a sniffer we have no calibration for: ~30 % of the distance
MIN_SIGMA_M = 0.3
AGE_SPEED_MPS = 1.0  # how fast an unseen shopper may drift from an old range (a slow walk)
OWN_ESTIMATE = "_estimate"  # pseudo-sniffer for reports that carry only the agent's own position


@dataclass(frozen=True, slots=True)
class Fix:
    """A fused position: plan pixels, radius in metres, the zone (the HMM's decision) or None (aisle)."""

    ts: float
    x: float
    y: float
    accuracy_m: float
    zone: Zone | None
    anchors: int


@dataclass(slots=True)
class _Track:
    locator: Locator
    zones: ZoneFilter
    ranges: dict[tuple[str, str], tuple[float, float, float, float, float]] = field(default_factory=dict)
    last_ts: float = 0.0
    grid: GridFilter | None = None
    # the grid's evidence since its last update: RSSI per heard sniffer (grid index), sniffers not heard
    heard: dict[int, float] = field(default_factory=dict)
    unheard: set[int] = field(default_factory=set)
    # the RSSI last taken from each sniffer: an agent repeats a sniffer's smoothed value until it hears
    # the phone again (agent.presence: ranges up to a minute old), and a repeat is no new reading
    last_rssi: dict[int, float] = field(default_factory=dict)
    estimate: GridEstimate | None = None
    anchors: int = 0
    # per agent, the time of its latest report that went wholly to the grid (such reports keep no
    # solver ranges: the grid needs none, and building them was a third of a report's cost)
    grid_seen: dict[str, float] = field(default_factory=dict)


class Fusion:
    """Per-device range tables and tracks; not thread-safe (the event loop owns it)."""

    def __init__(self, store: StoreConfig, devices: list[DeviceConfig] | tuple[DeviceConfig, ...] = (), *,
                 window_s: float = 20.0, max_speed_mps: float = 1.6, engine: str = "grid") -> None:
        if engine not in ("grid", "solver"):
            raise ValueError(f"engine must be 'grid' or 'solver', got {engine!r}")
        self.store = store
        self.plan = store.plan
        self.mpp = store.plan.metres_per_px
        self.bounds_m = (0.0, 0.0, self.plan.width_px * self.mpp, self.plan.height_px * self.mpp)
        self.window_s = window_s
        # a PIR with an area (a strip of a department, a stretch of aisle) weighs the cells it sees, keyed
        # by its sensor name as ingest passes it to motion(): "<agent>/<pir id>"
        self.pirs = PirBoard(self.plan, area_pirs(devices))
        self.zone_model = ZoneModel(self.plan, pirs=self.pirs)
        self.max_speed_mps = max_speed_mps
        self.models: dict[tuple[str, str], LogDistanceModel] = {}
        # each model's relative sigma, computed once (Fusion.add: sigma_from_relative per range)
        self._rel_sigma: dict[tuple[str, str], float] = {}
        for device in devices:
            for sniffer in device.sniffers:
                try:
                    model = LogDistanceModel.fit(sniffer.calibration)
                except BadReading:
                    continue
                self.models[(device.agent_id, sniffer.id)] = model
                self._rel_sigma[(device.agent_id, sniffer.id)] = model.relative_sigma
        # The grid: every calibrated sniffer of the device files, keyed (agent, sniffer); its floor is
        # what the agent reports at all (presence.rssi_floor_dbm), above the sniffer's own sensitivity.
        self.grid: GridModel | None = None
        self._grid_index: dict[str, dict[str, int]] = {}  # agent -> sniffer -> the grid's index
        grid_sniffers: list[GridSniffer] = []
        if engine == "grid":
            for device in devices:
                for sniffer in device.sniffers:
                    model = self.models.get((device.agent_id, sniffer.id))
                    if model is None:
                        continue
                    self._grid_index.setdefault(device.agent_id, {})[sniffer.id] = len(grid_sniffers)
                    x_m, y_m = self.plan.px_to_m(sniffer.position_px)
                    floor = max(FLOOR_DBM, device.presence.rssi_floor_dbm)
                    grid_sniffers.append(GridSniffer(x_m, y_m, sniffer.height_m, model, floor))
            if grid_sniffers:
                self.grid = GridModel(self.plan, grid_sniffers, pirs=self.pirs)
        self.tracks: dict[str, _Track] = {}
        self.failures = 0

    def add(self, p: Presence) -> None:
        """Remember this report's ranges (or the agent's own estimate when it sent none)."""
        track = self.tracks.get(p.device)
        if track is None:
            track = _Track(Locator(self.bounds_m, max_speed_mps=self.max_speed_mps), ZoneFilter(self.zone_model))
            self.tracks[p.device] = track
        mpp = self.mpp
        if p.ranges and self.grid is not None and self._grid_evidence(track, p):
            seen = track.grid_seen.get(p.agent)
            if seen is None or p.ts > seen:
                track.grid_seen[p.agent] = p.ts
            return
        if p.ranges:
            ts, agent, rel_sigma = p.ts, p.agent, self._rel_sigma
            # unpacked, not r.x: the aggregator's ranges arrive as plain tuples in Range's field order
            for sniffer, rx, ry, _rssi, d in p.ranges:
                key = (agent, sniffer)
                rel = rel_sigma.get(key)
                sigma = max(MIN_SIGMA_M, DEFAULT_REL_SIGMA * d) if rel is None else sigma_from_relative(rel, d)
                track.ranges[key] = (ts, rx * mpp, ry * mpp, d, sigma)
        else:
            track.ranges[(p.agent, OWN_ESTIMATE)] = (p.ts, p.x * mpp, p.y * mpp, 0.1, max(MIN_SIGMA_M, p.accuracy_m))

    def _grid_evidence(self, track: _Track, p: Presence) -> bool:
        """The report's RSSI per known sniffer, and its agent's other sniffers as not heard.

        True when every range went to the grid (a known sniffer, a plausible RSSI): the solver's
        ranges are then not needed."""
        index = self._grid_index.get(p.agent)
        if index is None:
            return False
        heard = track.heard
        unheard = track.unheard
        last = track.last_rssi
        got = []
        for sniffer, _rx, _ry, rssi, _d in p.ranges:
            i = index.get(sniffer)
            if i is not None and -150.0 <= rssi <= 20.0:  # what check_rssi accepts; NaN fails both
                got.append(i)
                if last.get(i) == rssi:
                    continue
                last[i] = rssi
                heard[i] = rssi
                unheard.discard(i)
        if got:
            for i in index.values():
                if i not in heard and i not in got:
                    unheard.add(i)
        return len(got) == len(p.ranges)

    def motion(self, zone: str, sensor: str, active: bool, ts: float) -> None:
        """A PIR report: evidence for the zone decisions of every shopper from now on."""
        self.pirs.motion(zone, sensor, active, ts)

    def drop_agent(self, device: str, agent: str) -> None:
        """The agent reported the device gone: its ranges no longer count."""
        track = self.tracks.get(device)
        if track is not None:
            for key in [k for k in track.ranges if k[0] == agent]:
                del track.ranges[key]
            track.grid_seen.pop(agent, None)

    def forget(self, device: str) -> None:
        self.tracks.pop(device, None)

    def locate(self, device: str, ts: float) -> Fix | None:
        """The fused position at ``ts`` from the ranges younger than the window, or None."""
        step = self._locate(device, ts)
        return self._grid_fixes([step])[0] if isinstance(step, _GridStep) else step

    def locate_many(self, requests: list[tuple[str, float]]) -> list[Fix | None]:
        """:meth:`locate` for several devices (each once), their grid updates made together
        (:meth:`~agent.positioning.grid_filter.GridFilter.update_many`: one numpy call per step for all)."""
        fixes: list[Fix | None] = []
        grid: list[tuple[int, _GridStep]] = []
        for device, ts in requests:
            step = self._locate(device, ts)
            if isinstance(step, _GridStep):
                grid.append((len(fixes), step))
                step = None
            fixes.append(step)
        if grid:
            for (i, _step), fix in zip(grid, self._grid_fixes([step for _i, step in grid]), strict=True):
                fixes[i] = fix
        return fixes

    def _locate(self, device: str, ts: float) -> Fix | _GridStep | None:
        track = self.tracks.get(device)
        if track is None:
            return None
        cutoff = ts - self.window_s
        grid_fresh = any(seen >= cutoff for seen in track.grid_seen.values())
        if not track.ranges:  # every report went to the grid
            return _GridStep(track, max(ts, track.last_ts)) if grid_fresh else None
        # The solver's columns, built and checked here (the solver's own limits as comparisons, which
        # a NaN fails) rather than as Anchors that Locator.update would validate again per anchor:
        # validation and Anchor objects were ~a quarter of the solver's cost in the ingest profile.
        xs: list[float] = []
        ys: list[float] = []
        ds: list[float] = []
        ss: list[float] = []
        stale = []
        lim = MAX_ABS_M
        in_range = True
        for key, (rts, x, y, d, sigma) in track.ranges.items():
            if rts < cutoff:
                stale.append(key)
                continue
            age = ts - rts
            if age > 0.5:  # the shopper may have walked since: an old range counts for less
                sigma = math.hypot(sigma, AGE_SPEED_MPS * age)
            if not (-lim <= x <= lim and -lim <= y <= lim and 0.0 <= d <= lim and 0.0 < sigma <= lim):
                in_range = False
            xs.append(x)
            ys.append(y)
            ds.append(MIN_DISTANCE_M if MIN_DISTANCE_M > d else d)  # max(d, MIN_DISTANCE_M), as the solver's check
            ss.append(sigma)
        for key in stale:
            del track.ranges[key]
        if not xs and not grid_fresh:
            return None
        if not in_range:
            self.failures += 1
            return None
        fix_ts = max(ts, track.last_ts)  # agents' clocks differ by milliseconds; the filter needs order
        if self.grid is not None and (track.heard or track.estimate is not None):
            return _GridStep(track, fix_ts)
        if not xs:
            return None
        try:
            est = track.locator.update_checked(fix_ts, (xs, ys, ds, ss))
            x_px, y_px = self.plan.clamp((est.x_m / self.mpp, est.y_m / self.mpp))
            motion = track.locator.motion
            if motion is None:
                raise BadReading("the motion filter has no state after an update")
            zone = track.zones.update(fix_ts, motion)
        except BadReading:
            self.failures += 1
            return None
        if not math.isfinite(est.accuracy_m):
            self.failures += 1
            return None
        track.last_ts = fix_ts
        return Fix(fix_ts, x_px, y_px, est.accuracy_m, zone, len(xs))

    def _grid_fixes(self, steps: list[_GridStep]) -> list[Fix | None]:
        """The grid's estimates after the evidence gathered since each track's last update (none new: the last one)."""
        grid = self.grid
        assert grid is not None
        pending = [step for step in steps if step.track.heard]
        probes = []
        for step in pending:
            track = step.track
            if track.grid is None:
                track.grid = GridFilter(grid)
            probes.append((track.grid, step.fix_ts, track.heard.items(), track.unheard))
        for step, est in zip(pending, GridFilter.update_many(grid, probes), strict=True):
            track = step.track
            track.anchors = len(track.heard)
            track.heard = {}
            track.unheard = set()
            if not (math.isfinite(est.x_m) and math.isfinite(est.y_m) and math.isfinite(est.accuracy_m)):
                self.failures += 1
                assert track.grid is not None
                track.grid.reset()
                track.estimate = None
            else:
                track.estimate = est
        fixes: list[Fix | None] = []
        for step in steps:
            track, est = step.track, step.track.estimate
            if est is None:
                fixes.append(None)
                continue
            track.last_ts = step.fix_ts
            x_px, y_px = self.plan.clamp((est.x_m / self.mpp, est.y_m / self.mpp))
            fixes.append(Fix(step.fix_ts, x_px, y_px, est.accuracy_m, est.zone, track.anchors))
        return fixes


class _GridStep(NamedTuple):
    """A device whose fix is the grid's: its track and the fix's time (made together: :meth:`Fusion.locate_many`)."""

    track: _Track
    fix_ts: float
