"""``floorwalker-agent calibrate``: the install walk test that writes a sniffer's calibration table.

The installer stands with a reference phone at 1, 2, 4 and 8 m from the sniffer; at each distance
we collect that phone's probes for a while and keep the median RSSI (the median ignores the odd
frame blocked by the installer's own body). The result is checked the way the device file is
(RSSI must fall with distance) and printed as the TOML to paste under the sniffer.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

from agent.config import CalibrationPoint, load_device
from agent.errors import BadCalibration, FloorwalkerError
from agent.positioning.calibration import LogDistanceModel
from agent.sources.parser import Probe, normalise_mac, parse_line
from agent.sources.serial_reader import SerialLineReader


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate", help="walk test: measure a reference phone at 1, 2, 4, 8 m and print the calibration table",
        description="Walk test at install. Stand with a reference phone (Wi-Fi settings screen open, so it "
                    "probes every few seconds) at each distance from the sniffer; press Enter; keep still while "
                    "the agent listens. The median RSSI per distance becomes the sniffer's calibration table, "
                    "printed as TOML to paste into the device file (or written with --out). The phone's MAC is "
                    "only compared in memory, never printed or stored.")
    p.add_argument("--config", required=True, metavar="DEVICE", help="device file of this sensor Pi")
    p.add_argument("--sniffer", default=None, help="sniffer id to calibrate (default: the first)")
    p.add_argument("--mac", required=True, help="Wi-Fi MAC of the reference phone (Settings > About > Wi-Fi address; "
                                                "turn off MAC randomisation for the store network)")
    p.add_argument("--distances", default="1,2,4,8", help="distances in metres, comma-separated (default 1,2,4,8)")
    p.add_argument("--seconds", type=float, default=20.0, help="how long to listen at each distance (default 20)")
    p.add_argument("--port", default=None, help="serial port, if not the one in the device file")
    p.add_argument("--no-prompt", action="store_true", help="do not wait for Enter between distances")
    p.add_argument("--out", type=Path, default=None, help="also write the TOML table to this file")
    p.set_defaults(func=run)


class _Collector:
    """Keeps the RSSI of one phone's probes; the rest of the serial stream is ignored."""

    def __init__(self, mac: str) -> None:
        self.mac = mac
        self.lock = threading.Lock()
        self.rssi: list[int] = []
        self.listening = False

    def on_line(self, raw: bytes, ts: float) -> None:
        result = parse_line(raw)
        if isinstance(result, Probe) and result.mac == self.mac and self.listening:
            with self.lock:
                self.rssi.append(result.rssi_dbm)

    def take(self) -> list[int]:
        with self.lock:
            out, self.rssi = self.rssi, []
        return out


def run(args: argparse.Namespace) -> int:
    device = load_device(args.config)
    sniffers = {s.id: s for s in device.sniffers}
    sniffer = sniffers.get(args.sniffer) if args.sniffer else next(iter(sniffers.values()), None)
    if sniffer is None:
        raise FloorwalkerError(f"{device.path}: no sniffer {args.sniffer or ''} to calibrate "
                               f"(sniffers: {', '.join(sniffers) or 'none'})")
    mac = normalise_mac(args.mac.strip())
    if mac is None:
        raise FloorwalkerError("--mac: six hex octets such as a4:83:e7:12:34:56")
    try:
        distances = [float(d) for d in args.distances.split(",")]
    except ValueError:
        raise FloorwalkerError(f"--distances: numbers separated by commas, got {args.distances!r}") from None
    collector = _Collector(mac)
    reader = SerialLineReader(args.port or sniffer.port, baud=sniffer.baud, name=sniffer.id, on_line=collector.on_line)
    reader.open()
    reader.start()
    points: list[CalibrationPoint] = []
    try:
        for d in distances:
            if not args.no_prompt:
                input(f"Stand {d:g} m from sniffer {sniffer.id} with the reference phone, then press Enter ")
            print(f"measuring at {d:g} m for {args.seconds:g} s", flush=True)
            collector.take()
            collector.listening = True
            time.sleep(args.seconds)
            collector.listening = False
            readings = collector.take()
            if not readings:
                raise FloorwalkerError(f"no probe from the reference phone at {d:g} m in {args.seconds:g} s: is its "
                                       "Wi-Fi on, MAC randomisation off, and the sniffer on the right port?")
            median = statistics.median(readings)
            print(f"  {len(readings)} probes, median {median:.1f} dBm", flush=True)
            points.append(CalibrationPoint(d, float(median)))
    finally:
        reader.stop()
    try:
        model = LogDistanceModel.fit(points)
    except BadCalibration as exc:
        raise FloorwalkerError(f"the measurements do not fall with distance ({exc.expected}); repeat the walk "
                               "test with a clear line of sight") from None
    rows = ",\n".join(f"  {{ distance_m = {p.distance_m:g}, rssi_dbm = {p.rssi_dbm:.0f} }}" for p in points)
    table = f"# sniffer {sniffer.id}: rssi_at_1m {model.rssi_at_1m:.1f} dBm, path-loss exponent {model.n:.2f}\n" \
            f"calibration = [\n{rows},\n]\n"
    print(table, end="")
    if args.out:
        args.out.write_text(table)
        print(f"written to {args.out}", file=sys.stderr)
    return 0
