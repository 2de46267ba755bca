"""``floorwalker-agent locate``: positions from recorded RSSI, to judge a sensor layout before going live.

An installer places receivers, walks a phone around (optionally noting where they were), and
runs this on the recording: it writes one position per device per time window and, with the
ground truth, prints how far off it was. Same engine as the live system (agent/positioning).
"""

from __future__ import annotations

import argparse
import bisect
import csv
import json
import logging
import math
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from agent.errors import BadCalibration, BadReading, ConfigError
from agent.positioning.calibration import MIN_INDOOR_N, LogDistanceModel, fit_receivers
from agent.positioning.locator import Locator
from agent.positioning.multilateration import locate
from agent.positioning.receivers import Receiver, anchor_for
from agent.positioning.scenario import percentile
from agent.positioning.smoothing import RssiSmoother, check_rssi

log = logging.getLogger("floorwalker.locate")

DEFAULT_MODEL = LogDistanceModel(-59.0, 3.0)  # ESPresense's firmware defaults


@dataclass(frozen=True)
class ReceiverRow:
    """A row of the receivers file; ``model`` is None when it has no calibration columns."""

    id: str
    x_m: float
    y_m: float
    z_m: float
    model: LogDistanceModel | None


@dataclass(frozen=True)
class Reading:
    ts: float
    receiver: str
    device: str
    rssi: float


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "locate", help="positions from recorded RSSI readings (site survey); with --truth, the error",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Turn a recording of RSSI readings into positions, with the same engine the live system "
                    "uses, to judge a receiver layout before going live.\n\n"
                    "  --receivers R.csv  id,x,y,z[,rssi_at_1m,n]   receiver positions (metres), optional calibration\n"
                    "  --readings  S.csv  ts,receiver,device,rssi   ts in seconds, rssi in dBm\n"
                    "  --truth     T.csv  ts,device,x,y             where the phone really was (optional)\n"
                    "  --out       P.csv  ts,device,x,y,accuracy    the positions (default: stdout without --truth)\n\n"
                    "Calibration: the receivers file's rssi_at_1m,n columns if present; otherwise fitted from "
                    "the readings and the truth when --truth is given (an rssi_at_1m per receiver, one n for "
                    "all, at least 1.6); otherwise -59 dBm at 1 m, n = 3.0. "
                    "The command says which it used. Bad rows (not a number, unknown receiver) are skipped "
                    "and counted. With --truth it prints the median, p95 and mean error in metres as JSON.",
        epilog="example: floorwalker-agent locate --receivers receivers.csv --readings walk.csv "
               "--truth truth.csv --out positions.csv")
    p.add_argument("--receivers", required=True, metavar="R.csv", help="receivers: id,x,y,z[,rssi_at_1m,n] (metres)")
    p.add_argument("--readings", required=True, metavar="S.csv", help="readings: ts,receiver,device,rssi")
    p.add_argument("--truth", metavar="T.csv", help="ground truth: ts,device,x,y (metres); prints the error")
    p.add_argument("--out", metavar="P.csv", help="write positions here (ts,device,x,y,accuracy)")
    p.add_argument("--window-s", type=float, default=1.0,
                   help="readings of one device within this many seconds make one position (default 1.0)")
    p.add_argument("--no-filter", action="store_true",
                   help="solve every window on its own (no motion filter along the track)")
    p.add_argument("--bounds", metavar="XMIN,YMIN,XMAX,YMAX",
                   help="the floor area positions must stay in, metres (default: the box around the receivers, "
                        "which usually sit on the walls; give the room's extent when they do not)")
    p.add_argument("--device-height-m", type=float, default=None,
                   help="phone height; with the receivers' z it turns slant distances into floor distances "
                        "(default: ignore z, as the ESPresense reference does)")
    p.set_defaults(func=run)


def _num(row: dict[str, str], key: str, file: str, line: int) -> float:
    try:
        value = float(row[key])
    except (KeyError, TypeError, ValueError):
        raise ConfigError(file, f"line {line}: {key}", f"a number, got {row.get(key)!r}") from None
    if not math.isfinite(value):
        raise ConfigError(file, f"line {line}: {key}", f"a finite number, got {row[key]!r}")
    return value


def _rows(path: str, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    with Path(path).open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip() for f in (reader.fieldnames or [])]
        missing = [c for c in required if c not in fields]
        if missing:
            raise ConfigError(path, "header", f"columns {','.join(required)}; missing {','.join(missing)}")
        reader.fieldnames = fields
        return [(i + 2, {k: (v or "").strip() for k, v in row.items() if k}) for i, row in enumerate(reader)]


def load_receivers(path: str) -> dict[str, ReceiverRow]:
    out: dict[str, ReceiverRow] = {}
    for line, row in _rows(path, ("id", "x", "y")):
        rid = row["id"]
        if not rid or rid in out:
            raise ConfigError(path, f"line {line}: id", f"a unique, non-empty receiver id, got {rid!r}")
        model = None
        if row.get("rssi_at_1m") and row.get("n"):
            n = _num(row, "n", path, line)
            if n <= 0:
                raise BadCalibration(path, f"line {line}: n", f"a path-loss exponent > 0, got {n}")
            model = LogDistanceModel(_num(row, "rssi_at_1m", path, line), n)
        z = _num(row, "z", path, line) if row.get("z") else 0.0
        out[rid] = ReceiverRow(rid, _num(row, "x", path, line), _num(row, "y", path, line), z, model)
    if not out:
        raise ConfigError(path, "(rows)", "at least one receiver")
    return out


def load_readings(path: str, receivers: dict[str, ReceiverRow], rejected: Counter[str]) -> list[Reading]:
    out = []
    for _line, row in _rows(path, ("ts", "receiver", "device", "rssi")):
        try:
            ts = float(row["ts"])
            if not math.isfinite(ts):
                raise BadReading(f"ts: a finite number, got {row['ts']!r}")
            rssi = check_rssi(float(row["rssi"]) if row["rssi"] else math.nan)
        except (ValueError, BadReading):
            rejected["bad_number"] += 1
            continue
        if row["receiver"] not in receivers:
            rejected["unknown_receiver"] += 1
            continue
        if not row["device"]:
            rejected["no_device"] += 1
            continue
        out.append(Reading(ts, row["receiver"], row["device"], rssi))
    if not out:
        raise BadReading(f"{path}: no usable readings ({dict(rejected) or 'file is empty'})")
    out.sort(key=lambda r: (r.device, r.ts))
    return out


class Truth:
    """Ground truth per device, linearly interpolated in time."""

    def __init__(self, path: str) -> None:
        tracks: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
        for line, row in _rows(path, ("ts", "device", "x", "y")):
            tracks[row["device"]].append((_num(row, "ts", path, line), _num(row, "x", path, line),
                                          _num(row, "y", path, line)))
        if not tracks:
            raise ConfigError(path, "(rows)", "at least one ground-truth row")
        self.tracks = {d: sorted(t) for d, t in tracks.items()}
        self.times = {d: [p[0] for p in t] for d, t in self.tracks.items()}

    def at(self, device: str, ts: float) -> tuple[float, float] | None:
        track = self.tracks.get(device)
        if not track:
            return None
        i = bisect.bisect_left(self.times[device], ts)
        if i == 0:
            return track[0][1:]
        if i >= len(track):
            return track[-1][1:]
        (t0, x0, y0), (t1, x1, y1) = track[i - 1], track[i]
        f = 0.0 if t1 == t0 else (ts - t0) / (t1 - t0)
        return (x0 + f * (x1 - x0), y0 + f * (y1 - y0))


def choose_models(receivers: dict[str, ReceiverRow], readings: list[Reading], truth: Truth | None,
                  device_height_m: float | None) -> tuple[dict[str, LogDistanceModel], str]:
    """Per-receiver models and a sentence saying where they came from."""
    if all(r.model is not None for r in receivers.values()):
        return {k: r.model for k, r in receivers.items() if r.model}, "receivers file (rssi_at_1m, n columns)"
    if truth is not None:
        samples: dict[str, tuple[list[float], list[float]]] = {}
        for rd in readings:
            p = truth.at(rd.device, rd.ts)
            if p is None:
                continue
            rec = receivers[rd.receiver]
            d = math.hypot(p[0] - rec.x_m, p[1] - rec.y_m)
            if device_height_m is not None:
                d = math.hypot(d, rec.z_m - device_height_m)
            ds, rs = samples.setdefault(rd.receiver, ([], []))
            ds.append(d)
            rs.append(rd.rssi)
        fitted = fit_receivers({k: v for k, v in samples.items() if len(v[0]) >= 2})
        first = next(iter(fitted.values()))
        # a receiver the walk never reached: the building's exponent, the receivers' mean offset
        shared = LogDistanceModel(sum(m.rssi_at_1m for m in fitted.values()) / len(fitted), first.n, first.sigma_db)
        how = (f"fitted from the readings and the truth ({sum(len(v[0]) for v in samples.values())} samples), "
               f"per receiver: rssi_at_1m "
               f"{', '.join(f'{k} {m.rssi_at_1m:.1f}' for k, m in fitted.items())} dBm, n {first.n:.2f} "
               f"(one for all, >= {MIN_INDOOR_N:g}), sigma {first.sigma_db:.1f} dB")
        return {k: r.model or fitted.get(k, shared) for k, r in receivers.items()}, how
    return ({k: r.model or DEFAULT_MODEL for k, r in receivers.items()},
            "default: rssi_at_1m -59 dBm, n 3.0 (no calibration columns and no --truth)")


def run(args: argparse.Namespace) -> int:
    if not (args.window_s > 0 and math.isfinite(args.window_s)):
        raise ConfigError("--window-s", "value", f"a positive number of seconds, got {args.window_s}")
    rows_by_id = load_receivers(args.receivers)
    rejected: Counter[str] = Counter()
    readings = load_readings(args.readings, rows_by_id, rejected)
    truth = Truth(args.truth) if args.truth else None
    models, how = choose_models(rows_by_id, readings, truth, args.device_height_m)
    print(f"calibration: {how}", file=sys.stderr)
    bounds = _bounds(args.bounds, rows_by_id)
    receivers = {rid: Receiver(rid, r.x_m, r.y_m, models[rid], r.z_m) for rid, r in rows_by_id.items()}

    rows: list[tuple[float, str, float, float, float]] = []
    by_device: dict[str, list[Reading]] = defaultdict(list)
    for rd in readings:
        by_device[rd.device].append(rd)
    for device, device_readings in by_device.items():
        locator = None if args.no_filter else Locator(bounds)
        smoothers: dict[str, RssiSmoother] = {}
        window: list[Reading] = []
        for rd in [*device_readings, None]:
            if rd is not None and (not window or rd.ts - window[0].ts < args.window_s):
                window.append(rd)
                continue
            ts = window[-1].ts
            anchors = []
            for rid in dict.fromkeys(r.receiver for r in window):
                sm = smoothers.setdefault(rid, RssiSmoother(half_life_s=args.window_s / 2))
                for r in window:
                    if r.receiver == rid:
                        sm.update(r.ts, r.rssi)
                assert sm.value is not None
                anchors.append(anchor_for(receivers, rid, sm.value, device_height_m=args.device_height_m))
            est = locator.update(ts, anchors) if locator else locate(anchors, bounds)
            rows.append((ts, device, est.x_m, est.y_m, est.accuracy_m))
            window = [rd] if rd is not None else []

    if rejected:
        print(f"rejected rows: {json.dumps(dict(rejected), sort_keys=True)}", file=sys.stderr)
    if args.out or truth is None:
        _write(rows, args.out)
    if truth is not None:
        errors = sorted(math.dist((x, y), truth.at(dev, ts) or (x, y)) for ts, dev, x, y, _ in rows)
        summary = {
            "positions": len(rows),
            "median_m": round(errors[len(errors) // 2] if len(errors) % 2 else
                              (errors[len(errors) // 2 - 1] + errors[len(errors) // 2]) / 2, 3),
            "p95_m": round(percentile(errors, 95.0), 3),
            "mean_m": round(sum(errors) / len(errors), 3),
            "calibration": how,
            "rejected": dict(rejected),
        }
        print(json.dumps(summary))
    return 0


def _bounds(text: str | None, receivers: dict[str, ReceiverRow]) -> tuple[float, ...]:
    """``--bounds`` or the receivers' bounding box (never the truth: that would leak the answer)."""
    if text:
        try:
            values = tuple(float(v) for v in text.split(","))
        except ValueError:
            values = ()
        if len(values) != 4 or not all(math.isfinite(v) for v in values) or values[0] > values[2] \
                or values[1] > values[3]:
            raise ConfigError("--bounds", "value", f"XMIN,YMIN,XMAX,YMAX in metres, got {text!r}")
        return values
    xs, ys = [r.x_m for r in receivers.values()], [r.y_m for r in receivers.values()]
    margin = 0.0 if len(receivers) > 2 and max(xs) > min(xs) and max(ys) > min(ys) else 2.0
    return (min(xs) - margin, min(ys) - margin, max(xs) + margin, max(ys) + margin)


def _write(rows: list[tuple[float, str, float, float, float]], path: str | None) -> None:
    fh = Path(path).open("w", newline="") if path else sys.stdout
    try:
        w = csv.writer(fh)
        w.writerow(["ts", "device", "x", "y", "accuracy"])
        for ts, dev, x, y, acc in sorted(rows):
            w.writerow([f"{ts:.3f}", dev, f"{x:.3f}", f"{y:.3f}", f"{acc:.3f}"])
    finally:
        if path:
            fh.close()
