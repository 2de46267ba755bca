"""PIR motion sensors and the doorway beam counter, over gpiozero with a pin-factory seam.

gpiozero calls our callbacks on its own threads. Those callbacks do one thing: hand a
:class:`Edge` (which input, new state, when) to ``emit`` — the runtime's queue. All logic (hold-off,
door direction) runs on the runtime's thread in :class:`GpioLogic`, which is plain Python and
tested without any pins. On a Pi gpiozero picks the real pin library; tests and the simulator pass
``MockFactory`` and drive the pins.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.config import DeviceConfig, DoorConfig, PirConfig
from agent.errors import NoGpio


@dataclass(frozen=True, slots=True)
class Edge:
    """An input changed: ``sensor`` is a PIR id or ``<door id>:a`` / ``<door id>:b``."""

    sensor: str
    active: bool
    ts: float


@dataclass(frozen=True, slots=True)
class MotionEvent:
    sensor: str
    zone: str
    active: bool
    ts: float


@dataclass(frozen=True, slots=True)
class DoorEvent:
    sensor: str
    direction: str  # "in" or "out"
    ts: float


SensorEvent = MotionEvent | DoorEvent


class PirHoldOff:
    """Report motion at once; report its end only after ``hold_off_s`` of quiet.

    A PIR drops out between movements of the same person; without a hold-off one shopper browsing
    a rail would produce dozens of on/off messages a minute."""

    def __init__(self, config: PirConfig) -> None:
        self.config = config
        self.active = False
        self._quiet_since: float | None = None

    def edge(self, active: bool, ts: float) -> MotionEvent | None:
        if active:
            self._quiet_since = None
            if not self.active:
                self.active = True
                return MotionEvent(self.config.id, self.config.zone, True, ts)
        elif self.active and self._quiet_since is None:
            self._quiet_since = ts
        return None

    def tick(self, ts: float) -> MotionEvent | None:
        if self.active and self._quiet_since is not None and ts - self._quiet_since >= self.config.hold_off_s:
            self.active = False
            self._quiet_since = None
            return MotionEvent(self.config.id, self.config.zone, False, ts)
        return None


class DoorCounter:
    """Two beams a few centimetres apart: A (outside) then B (inside) is an entry, B then A an exit.

    One *passage* runs from the first beam broken until both are clear again. It counts only when
    the person went all the way through: the first beam broken and the last beam cleared are
    different, both beams were broken, and the second was broken within ``max_gap_s`` of the first.
    Someone stopping in the doorway counts when they finally pass; someone turning back (A, B, B
    clear, A clear) counts nothing. Contact bounce is filtered by gpiozero's ``bounce_time``.
    """

    def __init__(self, config: DoorConfig) -> None:
        self.config = config
        self.broken = {"a": False, "b": False}
        self._first: str | None = None
        self._first_ts = 0.0
        self._both = False
        self._gap_ok = False
        self._last_cleared: str | None = None

    def edge(self, beam: str, broken: bool, ts: float) -> DoorEvent | None:
        if self.broken[beam] == broken:
            return None  # a repeated state: nothing changed
        self.broken[beam] = broken
        if broken:
            if self._first is None:
                self._first, self._first_ts, self._both, self._gap_ok = beam, ts, False, False
            elif beam != self._first and not self._both:
                self._both = True
                self._gap_ok = ts - self._first_ts <= self.config.max_gap_s
            return None
        self._last_cleared = beam
        if any(self.broken.values()):
            return None
        first, self._first = self._first, None
        if first is None or not self._both or not self._gap_ok or self._last_cleared == first:
            return None
        return DoorEvent(self.config.id, "in" if first == "a" else "out", ts)


class GpioLogic:
    """Edges in, motion/door events out; runs on the runtime's thread only."""

    def __init__(self, device: DeviceConfig) -> None:
        self.pirs = {p.id: PirHoldOff(p) for p in device.pirs}
        self.door = DoorCounter(device.door) if device.door else None

    def edge(self, edge: Edge) -> SensorEvent | None:
        pir = self.pirs.get(edge.sensor)
        if pir is not None:
            return pir.edge(edge.active, edge.ts)
        if self.door is not None and edge.sensor.startswith(self.door.config.id + ":"):
            return self.door.edge(edge.sensor[-1], edge.active, edge.ts)
        return None

    def tick(self, ts: float) -> list[SensorEvent]:
        return [e for p in self.pirs.values() if (e := p.tick(ts)) is not None]


def default_pin_factory() -> Any:
    """gpiozero's pin factory for this machine, or :class:`NoGpio` with what to do instead."""
    from gpiozero import Device
    from gpiozero.exc import BadPinFactory

    if Device.pin_factory is not None:
        return Device.pin_factory
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gpiozero warns once per pin library it cannot load
        try:
            Device.ensure_pin_factory()
        except BadPinFactory:
            raise NoGpio("no GPIO on this machine (not a Raspberry Pi, or no pin library such as lgpio); "
                         "to try Floorwalker without sensors use `floorwalker-agent mock --config DEVICE`") from None
    return Device.pin_factory


class GpioInputs:
    """The device file's PIRs and door beams as gpiozero devices that ``emit`` :class:`Edge` s."""

    def __init__(self, device: DeviceConfig, emit: Callable[[Edge], None], *, pin_factory: Any = None,
                 clock: Callable[[], float] = time.time) -> None:
        from gpiozero import DigitalInputDevice, MotionSensor

        self._devices: list[Any] = []
        self._emit = emit
        self._clock = clock
        if not device.pirs and device.door is None:
            return
        factory = pin_factory if pin_factory is not None else default_pin_factory()
        try:
            for pir in device.pirs:
                # PIR modules (HC-SR501 and kin) drive their output both ways: no pull resistor needed.
                sensor = MotionSensor(pir.pin, pull_up=None, active_state=True, queue_len=1, sample_rate=20,
                                      pin_factory=factory)
                self._devices.append(sensor)
                sensor.when_motion = self._callback(pir.id, True)
                sensor.when_no_motion = self._callback(pir.id, False)
                if sensor.motion_detected:  # gpiozero fires nothing for the state found at start-up
                    emit(Edge(pir.id, True, clock()))
            if device.door is not None:
                door = device.door
                for beam, pin in (("a", door.pin_a), ("b", door.pin_b)):
                    # Beam-break receivers are open-collector: pulled up, low while the beam is broken.
                    beam_input = DigitalInputDevice(pin, pull_up=True, bounce_time=door.bounce_s or None,
                                                    pin_factory=factory)
                    self._devices.append(beam_input)
                    beam_input.when_activated = self._callback(f"{door.id}:{beam}", True)
                    beam_input.when_deactivated = self._callback(f"{door.id}:{beam}", False)
        except BaseException:
            self.close()  # a constructor that fails half-way closes what it opened
            raise

    def _callback(self, sensor: str, active: bool) -> Callable[[], None]:
        def fire() -> None:
            self._emit(Edge(sensor, active, self._clock()))
        return fire

    def close(self) -> None:
        devices, self._devices = self._devices, []
        for dev in devices:
            dev.close()

    def __enter__(self) -> GpioInputs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
