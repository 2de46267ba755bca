"""The simulated world: deterministic from seed and time, shoppers walk entrance -> zones -> exit."""

from __future__ import annotations

import itertools

import pytest

from agent.config import load_store
from agent.contract import Scenario, ScenarioStep
from agent.mock.devices import FIXTURE_MODEL, FRAMES_PER_BURST, MODELS, ROTATE_S, SEQ_GAP_FRAMES, SEQ_MODULO
from agent.mock.world import FIXTURE_PROBE_INTERVAL_S, MAX_VISIT_S, WALL_LOSS_DB, Shopper, World
from agent.privacy import is_randomized
from tests.agent.helpers import REPO

STORE = load_store(REPO / "firmware-config" / "store.toml")
NOW = 1_795_435_593.0


def world(seed: int = 7, **kw: object) -> World:
    return World(STORE, seed=seed, shoppers=20, customers=[str(i) for i in range(1, 51)], **kw)  # type: ignore[arg-type]


def test_same_seed_same_shoppers_in_separate_worlds() -> None:
    a, b = world(), world()
    assert [s.key for s in a.active(NOW)] == [s.key for s in b.active(NOW)]
    assert [(s.mac, s.track, s.bursts) for s in a.active(NOW)] == [(s.mac, s.track, s.bursts) for s in b.active(NOW)]


def test_other_seed_other_shoppers() -> None:
    assert {s.mac for s in world(7).active(NOW)} != {s.mac for s in world(8).active(NOW)}


def test_store_is_already_busy_when_a_process_starts() -> None:
    counts = [len(world().active(NOW + i * 97.0)) for i in range(20)]
    assert min(counts) >= 5 and 10 <= sum(counts) / len(counts) <= 35


def test_visits_run_from_entrance_to_exit_inside_the_plan() -> None:
    for shopper in world().active_between(NOW, NOW + 600):
        assert shopper.track[0][1:] == STORE.entrance and shopper.track[-1][1:] == STORE.exit
        assert 0 < shopper.end_ts - shopper.start_ts <= MAX_VISIT_S
        assert all(STORE.plan.contains((x, y)) for _, x, y in shopper.track)
        assert shopper.bursts and all(shopper.start_ts <= b <= shopper.end_ts for b in shopper.bursts)
        mid = shopper.position_at((shopper.start_ts + shopper.end_ts) / 2)
        assert mid is not None and STORE.plan.contains(mid)
        assert shopper.position_at(shopper.end_ts + 1) is None


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_randomized_share(share: float) -> None:
    shoppers = [s for s in world(randomized_share=share, loyalty_share=0.0).active_between(NOW, NOW + 3600)]
    assert all(is_randomized(s.mac) == (share == 1.0) for s in shoppers)


def test_loyalty_shoppers_come_from_the_customers_file() -> None:
    shoppers = world(loyalty_share=0.5).active_between(NOW, NOW + 3600)
    loyal = [s for s in shoppers if s.customer_id]
    assert 0.25 < len(loyal) / len(shoppers) < 0.75
    assert all(1 <= int(s.customer_id) <= 50 and not is_randomized(s.mac) for s in loyal)  # type: ignore[arg-type]


def test_bursts_between_are_in_time_order_and_half_open() -> None:
    w = world()
    found = [ts for _, ts in w.bursts_between(NOW, NOW + 60)]
    assert found == sorted(found) and all(NOW < t <= NOW + 60 for t in found)
    assert len(found) == len([t for _, t in w.bursts_between(NOW, NOW + 30)] +
                             [t for _, t in w.bursts_between(NOW + 30, NOW + 60)])


def test_scenario_is_the_same_phone_in_every_world() -> None:
    scenario = Scenario("2", (ScenarioStep("ENTER", 937, 50), ScenarioStep("FOCUS", 700, 550),
                              ScenarioStep("EXIT", 1071, 50)), step_s=2.0)
    a, b = world().add_scenario(scenario, NOW), world().add_scenario(scenario, NOW + 0.05)
    assert a.mac == b.mac and a.customer_id == "2"
    assert a.end_ts - a.start_ts == pytest.approx(2.0 * 3)  # FOCUS holds the point one step longer
    assert a.position_at(a.start_ts + 3.0) == pytest.approx((700, 550))


# ----------------------------------------------------------------------------- made honest (issue 17)


def _hour(w: World) -> list[Shopper]:
    return [s for s in w.active_between(NOW, NOW + 3600) if len(s.bursts) >= 3]


def test_randomising_phones_change_mac_while_the_sequence_number_runs_on() -> None:
    shoppers = _hour(world(randomized_share=1.0, loyalty_share=0.0))
    per_burst = timed = 0
    for s in shoppers:
        frames = [s.radio.frame(b, f) for b in range(len(s.bursts)) for f in range(FRAMES_PER_BURST)]
        assert all(is_randomized(mac) for mac, _ in frames)
        steps = [(b[1] - a[1]) % SEQ_MODULO for a, b in itertools.pairwise(frames)]
        assert all(1 <= step <= 1 + SEQ_GAP_FRAMES[1] for step in steps), steps  # 12 bits, wrapping
        assert all(0 <= seq < SEQ_MODULO for _, seq in frames)
        if s.radio.model.rotate_per_burst:
            per_burst += 1
            assert s.radio.distinct_macs == len(s.bursts)
        else:
            timed += 1
            changes = [s.bursts[i] for i in range(1, len(s.bursts)) if s.radio.macs[i] != s.radio.macs[i - 1]]
            assert all(b - a >= ROTATE_S[0] for a, b in itertools.pairwise([s.bursts[0], *changes]))
    assert per_burst and timed


def test_sequence_numbers_wrap_at_12_bits() -> None:
    seqs = [seq for s in _hour(world()) for b in range(len(s.bursts)) for _, seq in [s.radio.frame(b, 2)]]
    assert max(seqs) < SEQ_MODULO and min(seqs) >= 0
    wrapped = [s for s in _hour(world()) if any(b < a for a, b in itertools.pairwise(s.radio.seqs))]
    assert wrapped, "no phone's counter wrapped in an hour of shoppers"


def test_phones_not_randomising_keep_one_vendor_mac() -> None:
    for s in _hour(world(randomized_share=0.0)):
        assert s.radio.distinct_macs == 1 and not is_randomized(s.mac) and s.radio.macs[0] == s.mac


def test_a_fingerprint_is_fixed_per_model_and_two_phones_share_a_model() -> None:
    shoppers = _hour(world())
    by_model: dict[str, set[str]] = {}
    for s in shoppers:
        by_model.setdefault(s.radio.model.name, set()).add(s.radio.model.ie_hex)
    assert all(len(ies) == 1 for ies in by_model.values())
    assert len({m.ie_hex for m in MODELS}) == len(MODELS) >= 4
    assert max(sum(1 for s in shoppers if s.radio.model.name == m) for m in by_model) >= 2
    for model in (*MODELS, FIXTURE_MODEL):  # well-formed elements, wildcard SSID first
        ies = bytes.fromhex(model.ie_hex)
        ids, i = [], 0
        while i < len(ies):
            ids.append(ies[i])
            i += 2 + ies[i + 1]
        assert i == len(ies) and ids[:2] == [0, 1] and ies[1] == 0 and {50, 45, 127} <= set(ids)


def test_about_the_share_of_phones_randomise() -> None:
    shoppers = _hour(world(loyalty_share=0.0))
    share = sum(s.randomized for s in shoppers) / len(shoppers)
    assert 0.25 <= share <= 0.55, share


def test_staff_work_shifts_with_one_address_each() -> None:
    w = world(staff=3)
    seen: dict[str, set[str]] = {}
    on_floor = []
    for i in range(0, 24 * 3600, 600):
        staff = w.staff_at(NOW + i)
        on_floor.append(len(staff))
        for s in staff:
            pos = s.position_at(NOW + i)
            assert pos is not None and STORE.plan.contains(pos) and s.kind == "staff"
            seen.setdefault(s.key.split("@")[0], set()).add(s.mac)
    assert all(len(macs) == 1 for macs in seen.values()) and len(seen) == 3
    assert min(on_floor) >= 2 and max(on_floor) == 3  # breaks are staggered: the floor is never empty
    for member in range(3):  # never 12 h without a 1 h gap, as agent.device_kinds learns a fixture
        works = [w.on_shift(member, n) for n in range(200)]
        assert max(len(run) for run in "".join("1" if x else "0" for x in works).split("0")) * 600 < 12 * 3600
    a = w.segment("staff", 0, 5)
    b = w.segment("staff", 0, 6)
    assert a.position_at(a.end_ts) == pytest.approx(b.position_at(b.start_ts))  # no jumps between segments


def test_fixtures_probe_all_the_time_from_one_place() -> None:
    w = world(fixtures=2)
    heard = [(s, ts) for s, ts in w.bursts_between(NOW, NOW + 2 * 3600) if s.kind == "fixture"]
    for name in ("fixture0", "fixture1"):
        times = [ts for s, ts in heard if s.key.startswith(name + "@")]
        assert max(b - a for a, b in itertools.pairwise(times)) <= 2 * FIXTURE_PROBE_INTERVAL_S[1]
        places = {s.position_at(ts) for s, ts in heard if s.key.startswith(name + "@")}
        macs = {s.mac for s, _ in heard if s.key.startswith(name + "@")}
        assert len(places) == 1 and len(macs) == 1 and not is_randomized(macs.pop())


def test_the_shop_next_door_is_behind_a_wall() -> None:
    w = world(neighbours=5.0)
    next_door = [s for s in w.heard_between(NOW, NOW + 3600) if s.kind == "neighbour"]
    assert len(next_door) >= 10
    for s in next_door:
        assert s.wall_loss_db == WALL_LOSS_DB
        assert all(not STORE.plan.contains((x, y)) for _, x, y in s.track)
    assert not {s.key for s in next_door} & {s.key for s in w.active_between(NOW, NOW + 3600)}


def test_no_staff_fixtures_or_neighbours_when_asked() -> None:
    w = world(staff=0, fixtures=0, neighbours=0.0)
    assert {s.kind for s in w.heard_between(NOW, NOW + 3600)} == {"shopper"}


def test_truth_counts_shoppers_and_staff_per_zone() -> None:
    w = world(staff=2)
    for i in range(0, 3600, 300):
        ts = NOW + i
        truth = w.occupancy(ts)
        assert truth.shoppers == len(w.active(ts)) and truth.staff == len(w.staff_at(ts)) >= 1
        assert truth.people == truth.shoppers + truth.staff
        assert set(truth.zones) == {z.name for z in STORE.plan.zones}
        assert 0 <= sum(truth.zones.values()) <= truth.people
        assert truth == world(staff=2).occupancy(ts)


@pytest.mark.parametrize("bad", [{"randomized_share": 1.5}, {"staff": -1}, {"neighbours": -2.0}])
def test_bad_world_parameters_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        world(**bad)


def test_a_store_that_opens_is_empty_before_and_fills_after() -> None:
    w = world(opens_ts=NOW)
    assert w.active(NOW - 1) == [] and w.occupancy(NOW).shoppers == 0
    assert all(s.start_ts >= NOW for s in w.active_between(NOW - 3600, NOW + 3600))
    assert len(w.active(NOW + 900)) >= 5
    assert [s.key for s in w.active(NOW + 900)] == [s.key for s in world().active(NOW + 900) if s.start_ts >= NOW]
