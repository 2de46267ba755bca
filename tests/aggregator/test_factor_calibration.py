"""The people-per-device factor calibrated from door counts or head counts, on synthetic days with a known factor."""

from __future__ import annotations

import contextlib
import io
import json
import random
import shutil
from pathlib import Path

import pytest

from agent.config import ConfigError, load_store
from agent.contract import AgentMessage, Door, Presence, Range, encode_agent
from agent.occupancy import DEFAULT_TUNING
from aggregator.cli import main
from aggregator.commands.calibrate_factor import parse_count
from aggregator.factor_calibration import (
    CalibrationError,
    Sample,
    device_series,
    fit_from_counts,
    fit_from_door,
)
from aggregator.store import create_schema
from tests.conftest import CONFIG_DIR

STORE = load_store(CONFIG_DIR / "store.toml")
T0 = 1_795_392_000.0  # 2026-11-23 00:00 UTC
OPEN_S = 10 * 3600.0


def synthetic_day(devices_per_person: tuple[int, ...], *, seed: int = 1, people: int = 300, staff: int = 2,
                  missed_exits: float = 0.0, report_s: float = 20.0) -> tuple[list[AgentMessage], float]:
    """A 10 h day: ``people`` shoppers arriving at random, staying 5-40 min, each carrying a number of
    devices drawn from ``devices_per_person`` (each device reports every ``report_s``, exits when its
    owner leaves); ``staff`` people in all day with one device each, never seen by the door; the door
    counts every passage but misses a share of the exits (a beam counter's drift). Returns the messages
    in time order and the true factor: people over devices, each summed over the time they are in."""
    rng = random.Random(seed)
    events: list[tuple[float, int, AgentMessage]] = []
    n = 0

    def add(msg: AgentMessage) -> None:
        nonlocal n
        n += 1
        events.append((msg.ts, n, msg))

    def device(name: str, start: float, end: float) -> None:
        ranges = (Range("s1", 600.0, 330.0, -60.0, 3.0),)
        t, kind = start + rng.uniform(0, report_s), "enter"
        while t < end:
            add(Presence(kind, f"a1:{name}:{t}", "agent-1", t, name, 600.0, 330.0, 3.0, -60.0, 3.0, False, ranges))
            t, kind = t + rng.uniform(0.5, 1.5) * report_s, "move"
        add(Presence("exit", f"a1:{name}:x", "agent-1", end + 1.0, name, 600.0, 330.0, 3.0, -60.0, 3.0))

    person_s = device_s = 0.0
    for i in range(staff):
        device(f"staff{i}", T0, T0 + OPEN_S)
        person_s += OPEN_S
        device_s += OPEN_S
    for i in range(people):
        start = T0 + rng.uniform(0, OPEN_S - 3600)
        end = start + rng.uniform(300, 2400)
        add(Door(f"d:{i}:in", "agent-1", start, "door-1", "in"))
        if rng.random() >= missed_exits:
            add(Door(f"d:{i}:out", "agent-1", end, "door-1", "out"))
        k = rng.choice(devices_per_person)
        person_s += end - start
        device_s += k * (end - start)
        for j in range(k):
            device(f"p{i}d{j}", start, end)
    events.sort()
    return [m for _, _, m in events], person_s / device_s


@pytest.mark.parametrize(("devices_per_person", "missed_exits"), [((1,), 0.0), ((2,), 0.05), ((1, 1, 2), 0.02),
                                                                  ((1, 1, 1, 0), 0.0)])
def test_the_door_method_recovers_a_known_factor(devices_per_person: tuple[int, ...], missed_exits: float) -> None:
    messages, truth = synthetic_day(devices_per_person, missed_exits=missed_exits)
    c = fit_from_door(device_series(STORE, messages), not_at_door=2)  # the staff
    assert c.method == "door" and c.crossings > 500
    # within the uncertainty, or 5 % (devices are first heard up to a report interval after the door)
    assert abs(c.factor - truth) < max(3 * c.sigma, 0.05 * truth), (c, truth)
    assert c.sigma < 0.12 * truth, c  # and a day of door counts pins the factor down


def test_head_counts_recover_a_known_factor() -> None:
    messages, _ = synthetic_day((2,), staff=0)
    samples = device_series(STORE, messages)
    # count the people present at a few moments from the truth the messages carry: 2 devices each
    counts = []
    for s in samples[120:540:60]:
        counts.append((s.ts - 30.0, s.devices / 2))
    c = fit_from_counts(samples, counts)
    assert c.method == "counts" and c.used == len(counts)
    assert c.factor == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize(("samples", "message"), [
    ([], "no data"),
    ([Sample(T0 + 60 * i, 3.0, 0, 0) for i in range(600)], "door crossings"),  # no door counter
    ([Sample(T0 + 60 * i, 3.0, i, 0) for i in range(600)], "closed and empty"),  # the store was not empty at the end
])
def test_the_door_method_refuses_data_without_door_counts(samples: list[Sample], message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        fit_from_door(samples)


def test_a_door_that_counts_people_the_agents_never_hear_is_refused() -> None:
    messages, _ = synthetic_day((1,))
    doors = [m for m in messages if isinstance(m, Door)]  # the agents were down all day: only the door
    with pytest.raises(CalibrationError):
        fit_from_door(device_series(STORE, doors))


@pytest.mark.parametrize(("counts", "message"), [
    ([], "no head counts"),
    ([(T0 - 86_400, 10.0)], "outside"),
    ([(T0 + 3600, -1.0)], ">= 0"),
    ([(T0 + 3600, float("nan"))], ">= 0"),
])
def test_bad_head_counts_are_refused(counts: list[tuple[float, float]], message: str) -> None:
    messages, _ = synthetic_day((1,), people=50)
    with pytest.raises(CalibrationError, match=message):
        fit_from_counts(device_series(STORE, messages), counts)


@pytest.mark.parametrize("raw", ["23", "=23", "2026-11-02T15:30=many", "yesterday=4"])
def test_a_malformed_count_option_names_the_problem(raw: str) -> None:
    with pytest.raises(CalibrationError, match="--count"):
        parse_count(raw)


def _database(tmp_path: Path, messages: list[AgentMessage]) -> Path:
    import sqlite3
    db = tmp_path / "floorwalker.db"
    create_schema(db)
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.executemany("INSERT INTO messages (msg_id, agent, kind, ts, device, payload) VALUES (?, ?, ?, ?, ?, ?)",
                         [(m.msg_id, m.agent, m.kind, m.ts, getattr(m, "device", None), encode_agent(m).decode())
                          for m in messages])
    return db


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_the_command_reads_a_stored_day_and_prints_the_store_toml_line(tmp_path: Path) -> None:
    messages, truth = synthetic_day((1, 2), missed_exits=0.02)
    db = _database(tmp_path, messages)
    day = "2026-11-23"  # T0's date
    code, out, err = _cli("calibrate-factor", "--db", str(db), "--config-dir", str(CONFIG_DIR), "--from", day,
                          "--to", day, "--not-at-door", "2")
    assert code == 0, err
    result = json.loads(out)
    assert abs(result["factor"] - truth) < 0.1 * truth
    assert result["store_toml"] == f"occupancy_factor = {result['factor']:.2f}"
    assert result["uncertain"] is False and "advice" not in result
    # and with head counts instead of the door
    code, out, err = _cli("calibrate-factor", "--db", str(db), "--config-dir", str(CONFIG_DIR), "--from", day,
                          "--to", day, "--count", "2026-11-23T03:00=12", "--count", "2026-11-23T05:30+00:00=20")
    assert code == 0, err
    assert json.loads(out)["method"] == "counts"
    # an hour of the busy day: people were in before it began, which the door cannot know
    code, out, err = _cli("calibrate-factor", "--db", str(db), "--config-dir", str(CONFIG_DIR), "--from",
                          "2026-11-23T05:00", "--to", "2026-11-23T06:00")
    assert code != 0 and out == ""
    assert "closed and empty" in err


def test_the_command_says_why_a_day_without_messages_gives_no_factor(tmp_path: Path) -> None:
    db = _database(tmp_path, [])
    code, out, err = _cli("calibrate-factor", "--db", str(db), "--config-dir", str(CONFIG_DIR), "--from",
                          "2026-11-23", "--to", "2026-11-23")
    assert code != 0 and out == ""
    assert "no data" in err


def test_store_toml_takes_the_calibrated_factor_and_refuses_an_absurd_one(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config)
    toml = config / "store.toml"
    text = toml.read_text(encoding="utf-8")
    assert load_store(toml).occupancy_factor is None  # not set: the estimator's default
    toml.write_text(text.replace("[store]\n", "[store]\noccupancy_factor = 1.05\n", 1), encoding="utf-8")
    assert load_store(toml).occupancy_factor == 1.05
    for bad in ("0", "50", '"one"'):
        toml.write_text(text.replace("[store]\n", f"[store]\noccupancy_factor = {bad}\n", 1), encoding="utf-8")
        with pytest.raises(ConfigError, match="occupancy_factor"):
            load_store(toml)


def test_the_aggregator_estimates_with_the_store_factor(sqlite_path: Path) -> None:
    from dataclasses import replace

    from agent.config import load_deployment
    from aggregator.bus import EventBus
    from aggregator.ingest import Ingest
    from aggregator.mqtt_link import NullPublisher
    from aggregator.settings import Settings
    from aggregator.store import Store

    devices = load_deployment(CONFIG_DIR)
    store = Store(sqlite_path)
    store.open()
    try:
        for factor, expected in ((None, DEFAULT_TUNING["factor"]), (1.25, 1.25)):
            config = replace(devices[0].store, occupancy_factor=factor)
            ingest = Ingest(replace(Settings(), config_dir=CONFIG_DIR, db_path=sqlite_path), config, devices, store,
                            EventBus(), NullPublisher())
            assert ingest.occupancy.estimator.tuning["factor"] == expected
    finally:
        store.close()


def test_a_counter_with_a_large_end_balance_gives_a_factor_flagged_uncertain() -> None:
    messages, _ = synthetic_day((1,), missed_exits=0.15)  # ~45 of 600 crossings wrong by the evening
    c = fit_from_door(device_series(STORE, messages), not_at_door=2)
    assert c.uncertain
    assert "head counts" in str(c.as_dict()["advice"])


TOKEN = "head-count-token"


@pytest.fixture
async def guarded(aiohttp_client, settings):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from aggregator.app import create_app
    return await aiohttp_client(create_app(replace(settings, mqtt_enabled=False, api_token=TOKEN)))


async def test_a_head_count_posted_live_gives_the_factor_so_far(guarded) -> None:  # type: ignore[no-untyped-def]
    import time

    from aggregator.appkeys import INGEST
    auth = {"Authorization": f"Bearer {TOKEN}"}
    ingest = guarded.app[INGEST]
    now = time.time()
    assert (await guarded.post("/api/occupancy/head-count", json={"people": 3})).status == 401  # token needed
    resp = await guarded.post("/api/occupancy/head-count", json={"people": 3}, headers=auth)
    assert resp.status == 400  # no device heard yet: no factor
    assert (await resp.json())["param"] == "people"
    ranges = (Range("s1", 600.0, 330.0, -60.0, 3.0),)
    for i, device in enumerate(("d1", "d2")):  # two phones with their own MACs: weight 1 each
        ingest.occupancy.presence(Presence("enter", f"a1:{i}", "agent-1", now, device, 600.0, 330.0, 3.0, -60.0,
                                           3.0, False, ranges))
    resp = await guarded.post("/api/occupancy/head-count", json={"people": 3}, headers=auth)
    assert resp.status == 201
    body = await resp.json()
    assert body["devices"] == 2.0 and body["factor"] == 1.5 and body["used"] == 1
    assert body["store_toml"] == "occupancy_factor = 1.50"
    body = await (await guarded.post("/api/occupancy/head-count", json={"people": 1}, headers=auth)).json()
    assert body["factor"] == 1.0 and body["used"] == 2  # (3 + 1) people over (2 + 2) devices


@pytest.mark.parametrize("body", [{"people": -1}, {"people": "3"}, {"people": True}, {"count": 3}, [3],
                                  {"people": 1e9}])
async def test_a_bad_head_count_is_refused_naming_the_field(guarded, body: object) -> None:  # type: ignore[no-untyped-def]
    resp = await guarded.post("/api/occupancy/head-count", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 400
    assert (await resp.json())["param"] == "people"


async def test_a_head_count_that_is_not_json_is_refused(guarded) -> None:  # type: ignore[no-untyped-def]
    resp = await guarded.post("/api/occupancy/head-count", data=b"twelve",
                              headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    assert resp.status == 400
    assert (await resp.json())["param"] == "body"
