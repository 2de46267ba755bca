"""Turns the simulated world into sensor signals for the agent's real code.

* Probe bursts become sniffer lines (both protocol forms, mixed) written into the master side of a
  pseudo-terminal; the agent's real :class:`SerialLineReader` reads the slave side, as it would a
  USB sniffer. Each frame carries the MAC and 802.11 sequence number its radio gives it
  (:mod:`agent.mock.devices`) and the probe's information elements. RSSI is the sniffer's own
  calibration run forwards
  (:meth:`LogDistanceModel.rssi_at`) at the true slant distance, less a wall's loss for the shop next
  door, plus Gaussian shadowing (``sigma_db``); frames weaker than the sniffer's sensitivity are not
  heard.
* PIR pins go high while someone is in the sensor's view (its zone, or its ``area``) and stay high
  ``PIR_MODULE_HOLD_S`` after (an AM312 module's own retrigger time); door beams are broken A-then-B when a
  shopper comes in and B-then-A when they leave, through gpiozero's MockFactory pins.
* Loyalty shoppers are announced to the agent (which hashes the MAC and publishes ``link``).
* ``truth`` gets, once a second, each shopper's and staff member's true position (hashed id of its
  first MAC, never a MAC) and one ``{"kind": "occupancy"}`` line: people in the store, per zone.
"""

from __future__ import annotations

import heapq
import json
import logging
import math
import os
import queue
import random
import threading
import time
import tty
from collections.abc import Callable
from typing import IO, Any

from agent.config import DeviceConfig
from agent.contract import Scenario
from agent.mock.devices import FRAMES_PER_BURST, burst_index
from agent.mock.world import Shopper, World
from agent.positioning.calibration import LogDistanceModel
from agent.presence import PHONE_HEIGHT_M
from agent.privacy import DeviceHasher
from agent.sources.parser import Probe, format_json, format_text

log = logging.getLogger(__name__)

STEP_S = 0.1
SENSITIVITY_DBM = -95.0  # ESP32 receive sensitivity for 1 Mb/s management frames is about -97 dBm
CHANNELS = (1, 6, 11)
TEXT_FORM_SHARE = 0.3  # frames printed in the text form (with Seq: and IE:), the rest as JSON lines
# An AM312 PIR module holds its output high ~2 s after the last motion it sees (HC-SR501: adjustable,
# ~3 s at its shortest); the agent's hold_off_s runs from the pin's fall. tests/benchmarks/bench_positioning.py
# simulates the same.
PIR_MODULE_HOLD_S = 2.0
BEAM_STEP_S = 0.15  # a walking person's body crosses two beams 5 cm apart in ~0.1-0.2 s


class PtySniffer:
    """A pseudo-terminal pair: we write the master, the agent's serial reader opens ``port``."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.master, view):]

    def close(self) -> None:
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError as exc:
                log.debug("event=pty-close-failed error=%s", exc)


class Simulator:
    """Advances the world in real time and drives the agent's inputs."""

    def __init__(self, device: DeviceConfig, world: World, *, sniffers: dict[str, PtySniffer],
                 announce: Callable[[str, str, float], None], pin_factory: Any = None,
                 truth: IO[str] | None = None, noise_seed: int = 0) -> None:
        self.device = device
        self.world = world
        self.sniffers = sniffers
        self.announce = announce
        self.pin_factory = pin_factory
        self.truth = truth
        self.scenarios: queue.SimpleQueue[Scenario] = queue.SimpleQueue()
        self.rng = random.Random(f"noise:{noise_seed}:{device.agent_id}")
        self.hasher = DeviceHasher(device.store.secret, rotate_daily=device.store.rotate_daily,
                                   timezone=device.store.timezone)
        self.models = {s.id: (LogDistanceModel.fit(s.calibration), s) for s in device.sniffers}
        self.frames_written = 0
        self._announced: set[str] = set()
        self._pin_actions: list[tuple[float, int, int, bool]] = []  # (ts, order, pin, high)
        self._order = 0
        self._pir_state: dict[int, bool] = {}
        self._pir_seen: dict[int, float] = {}  # pin -> when its view last held anyone
        self._last_truth_ts = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_ts: float | None = None

    # -- lifecycle

    def start(self) -> Simulator:
        self._thread = threading.Thread(target=self._run, name="mock-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step(time.time())
            except OSError as exc:  # the agent side of a pty went away: we are shutting down
                log.warning("event=simulator-write-failed error=%s", exc)
                return
            self._stop.wait(STEP_S)

    # -- one step of simulated time

    def step(self, now: float) -> None:
        while True:
            try:
                scenario = self.scenarios.get_nowait()
            except queue.Empty:
                break
            self.world.add_scenario(scenario, now)
            log.info("event=scenario-started customer=%s points=%d", scenario.customer_id, len(scenario.path))
        last = self._last_ts if self._last_ts is not None else now - STEP_S
        self._last_ts = now
        active = self.world.active_between(last, now)
        for shopper in active:
            self._doors_and_links(shopper, last, now)
        for shopper, ts in self.world.bursts_between(last, now):
            self._burst(shopper, ts)
        self._run_pin_actions(now)
        self._pirs(now)
        if self.truth is not None and now - self._last_truth_ts >= 1.0:
            self._write_truth(now)
            self._last_truth_ts = now

    def _doors_and_links(self, shopper: Shopper, last: float, now: float) -> None:
        if shopper.customer_id is not None and shopper.key not in self._announced:
            self._announced.add(shopper.key)
            self.announce(shopper.mac, shopper.customer_id, now)
        door = self.device.door
        if door is None:
            return
        if last < shopper.start_ts <= now:
            self._beams(door.pin_a, door.pin_b, shopper.start_ts)
        if last < shopper.end_ts <= now:
            self._beams(door.pin_b, door.pin_a, shopper.end_ts)

    def _beams(self, first: int, second: int, ts: float) -> None:
        """Break ``first``, then ``second``, clear ``first``, clear ``second`` (low = broken)."""
        for i, (pin, high) in enumerate(((first, False), (second, False), (first, True), (second, True))):
            self._order += 1
            heapq.heappush(self._pin_actions, (ts + i * BEAM_STEP_S, self._order, pin, high))

    def _run_pin_actions(self, now: float) -> None:
        while self._pin_actions and self._pin_actions[0][0] <= now:
            _, _, pin, high = heapq.heappop(self._pin_actions)
            if self.pin_factory is not None:
                p = self.pin_factory.pin(pin)
                p.drive_high() if high else p.drive_low()

    def _pirs(self, now: float) -> None:
        if self.pin_factory is None or not self.device.pirs:
            return
        people = (*self.world.active(now), *self.world.staff_at(now))
        positions = [p for s in people if (p := s.position_at(now)) is not None]
        plan = self.device.store.plan
        for pir in self.device.pirs:
            seen = any(pir.sees(p, plan) for p in positions)  # its area (a strip, a stretch of aisle), or its zone
            if seen:
                self._pir_seen[pir.pin] = now
            # the module's own output stays high PIR_MODULE_HOLD_S after the last motion it saw
            occupied = seen or now - self._pir_seen.get(pir.pin, -math.inf) < PIR_MODULE_HOLD_S
            if self._pir_state.get(pir.pin) != occupied:
                self._pir_state[pir.pin] = occupied
                p = self.pin_factory.pin(pir.pin)
                p.drive_high() if occupied else p.drive_low()

    def _burst(self, shopper: Shopper, ts: float) -> None:
        for sniffer_id, out in self.burst_lines(shopper, ts).items():
            pty = self.sniffers.get(sniffer_id)
            if pty is not None:
                pty.write(out)

    def burst_lines(self, shopper: Shopper, ts: float) -> dict[str, bytes]:
        """The lines each of this agent's sniffers prints for one probe burst (none for a sniffer that
        hears no frame of it). Also what tests/benchmarks/occupancy_mock.py feeds the agent offline."""
        pos = shopper.position_at(ts)
        burst = burst_index(shopper.bursts, ts)
        if pos is None or burst is None:
            return {}
        mpp = self.device.store.plan.metres_per_px
        lines: dict[str, bytes] = {}
        for sniffer_id, (model, config) in self.models.items():
            floor_m = math.hypot(pos[0] - config.position_px[0], pos[1] - config.position_px[1]) * mpp
            slant_m = math.hypot(floor_m, config.height_m - PHONE_HEIGHT_M)
            out = b""
            for frame in range(FRAMES_PER_BURST):
                rssi = model.rssi_at(slant_m) - shopper.wall_loss_db + self.rng.gauss(0.0, model.sigma_db)
                if rssi < SENSITIVITY_DBM:
                    continue
                mac, seq = shopper.radio.frame(burst, frame)
                probe = Probe(mac, max(-120, min(0, round(rssi))), CHANNELS[frame % len(CHANNELS)], seq)
                ie = shopper.radio.model.ie
                if self.rng.random() < TEXT_FORM_SHARE:
                    out += format_text(probe, ie=ie)
                else:
                    out += format_json(probe, ts_ms=int(ts * 1000) % 2**31, ie=ie)
                self.frames_written += 1
            if out:
                lines[sniffer_id] = out
        return lines

    def _write_truth(self, now: float) -> None:
        assert self.truth is not None
        plan = self.device.store.plan
        for person in (*self.world.active(now), *self.world.staff_at(now)):
            pos = person.position_at(now)
            if pos is None:
                continue
            zone = plan.zone_at(pos)
            self.truth.write(json.dumps({
                "ts": round(now, 2), "kind": person.kind, "shopper": person.key,
                "device": self.hasher.device_id(person.mac, now), "randomized": person.randomized,
                "customer_id": person.customer_id, "x": round(pos[0], 1), "y": round(pos[1], 1),
                "zone": zone.name if zone else None}) + "\n")
        truth = self.world.occupancy(now)
        self.truth.write(json.dumps({"ts": round(now, 2), "kind": "occupancy", "people": truth.people,
                                     "shoppers": truth.shoppers, "staff": truth.staff, "zones": truth.zones}) + "\n")
        self.truth.flush()

