"""The simulated world: deterministic from seed and time, shoppers walk entrance -> zones -> exit."""

from __future__ import annotations

import pytest

from agent.config import load_store
from agent.contract import Scenario, ScenarioStep
from agent.mock.world import MAX_VISIT_S, World
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
