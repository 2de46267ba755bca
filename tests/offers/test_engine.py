"""Every transition of SPEC section 8 (seed 001's offer rule) through the default rules file."""

from __future__ import annotations

import dataclasses

import pytest

from aggregator.offers.engine import NS_PER_S, Click, OfferEngine
from aggregator.offers.rules import EngineLimits, Segment
from tests.offers.helpers import click, default_rules


def run(rows: list[Click], engine: OfferEngine | None = None) -> tuple[OfferEngine, list[tuple[str, str | None]]]:
    engine = engine or OfferEngine(default_rules())
    seen = []
    for row in rows:
        seen += [(t.state, t.offer) for t in engine.process(row)]
    return engine, seen


def test_clothing_shoes_other_clothing_fires_offer2_for_a_woman():
    engine, seen = run([click(0, "C1", "clothing"), click(3, "S1", "shoes"), click(6, "C2", "clothing")])
    assert seen == [("clothes_visited", None), ("shoes_visited", None), ("offer", "offer2")]
    assert engine.state_of("u1") == "init"
    assert len(engine) == 0  # nothing left to remember after the offer (no cooldown)


def test_a_man_in_his_segment_gets_offer1():
    _, seen = run([click(0, "C1", "clothing", gender="M", age=40), click(1, "S1", "shoes", gender="M", age=40),
                   click(2, "C2", "clothing", gender="M", age=40)])
    assert seen[-1] == ("offer", "offer1")


def test_offer_name_follows_the_offer_rows_gender_not_the_first():
    # The segment is checked on the first row only; the offer name on the row that fires it.
    _, seen = run([click(0, "C1", "clothing", gender="F", age=30), click(1, "S1", "shoes", gender="F", age=30),
                   click(2, "C2", "clothing", gender="M", age=30)])
    assert seen[-1] == ("offer", "offer1")


@pytest.mark.parametrize(("gender", "age"), [(None, 30), ("F", None), (None, None)])
def test_rows_without_gender_or_age_are_ignored_entirely(gender, age):
    engine = OfferEngine(default_rules())
    engine.process(click(0, "C1", "clothing"))
    assert engine.process(click(1, "S1", "shoes", gender=gender, age=age)) == []
    assert engine.state_of("u1") == "clothes_visited"  # not reset: the row was never seen
    assert engine.counts["ignored"] == 1


def test_page_refresh_is_skipped_and_state_untouched():
    engine, seen = run([click(0, "C1", "clothing"), click(1, "S1", "shoes"), click(2, "S1", "shoes")])
    assert seen == [("clothes_visited", None), ("shoes_visited", None)]
    assert engine.state_of("u1") == "shoes_visited"
    assert engine.counts["refresh"] == 1
    _, seen = run([click(3, "C2", "clothing")], engine)
    assert seen == [("offer", "offer2")]


def test_page_refresh_is_compared_with_the_last_stored_row_not_any_row():
    # C1, S1, C1 (same as first -> back to clothes_visited), then S1 again is a new row, not a refresh.
    _, seen = run([click(0, "C1", "clothing"), click(1, "S1", "shoes"), click(2, "C1", "clothing"),
                   click(3, "S1", "shoes")])
    assert seen == [("clothes_visited", None), ("shoes_visited", None), ("clothes_visited", None),
                    ("shoes_visited", None)]


def test_refresh_check_does_not_apply_in_init():
    # After an offer the sequence is empty: the same product again starts a new sequence.
    _, seen = run([click(0, "C1", "clothing"), click(1, "S1", "shoes"), click(2, "C2", "clothing"),
                   click(3, "C2", "clothing")])
    assert seen[-1] == ("clothes_visited", None)


def test_clothing_while_clothes_visited_stays_and_is_recorded():
    engine, seen = run([click(0, "C1", "clothing"), click(1, "C2", "clothing"), click(2, "C2", "clothing")])
    assert seen == [("clothes_visited", None), ("clothes_visited", None)]  # the third is a refresh of C2
    assert engine.counts["refresh"] == 1


def test_different_item_is_compared_with_the_first_row_not_the_latest_clothing():
    # C1, C2, shoes, C2: C2 differs from the first row (C1) -> offer, though it equals the latest clothing.
    _, seen = run([click(0, "C1", "clothing"), click(1, "C2", "clothing"), click(2, "S1", "shoes"),
                   click(3, "C2", "clothing")])
    assert seen[-1] == ("offer", "offer2")


def test_same_item_as_first_row_after_shoes_goes_back_to_clothes_visited():
    engine, seen = run([click(0, "C1", "clothing"), click(1, "C2", "clothing"), click(2, "S1", "shoes"),
                        click(3, "C1", "clothing")])
    assert seen[-1] == ("clothes_visited", None)
    assert engine.state_of("u1") == "clothes_visited"
    _, seen = run([click(4, "S2", "shoes"), click(5, "C3", "clothing")], engine)
    assert seen == [("shoes_visited", None), ("offer", "offer2")]


@pytest.mark.parametrize(("state_rows", "row"), [
    ([click(0, "C1", "clothing")], click(1, "B1", "books")),  # clothes_visited + other category
    ([click(0, "C1", "clothing"), click(1, "S1", "shoes")], click(2, "S2", "shoes")),  # shoes + shoes
    ([click(0, "C1", "clothing"), click(1, "S1", "shoes")], click(2, "B1", "books")),
    ([click(0, "C1", "clothing")], click(1, "X1", None)),
])
def test_a_row_that_matches_no_transition_resets_to_init(state_rows, row):
    engine, _ = run(state_rows)
    assert engine.process(row) == []
    assert engine.state_of("u1") == "init"
    assert engine.counts["resets"] == 1


def test_the_resetting_row_does_not_start_a_new_sequence():
    engine, seen = run([click(0, "C1", "clothing"), click(1, "S1", "shoes"), click(2, "S2", "shoes"),
                        click(3, "C2", "clothing")])
    # S2 reset; C2 starts a new sequence (clothes_visited), it does not fire.
    assert seen[-1] == ("clothes_visited", None)
    # and a clothing row after expiry resets without starting anything:
    engine, seen = run([click(0, "C1", "clothing"), click(1800, "C2", "clothing")])
    assert seen == [("clothes_visited", None)]
    assert engine.state_of("u1") == "init"


def test_init_with_a_non_clothing_row_stays_init():
    engine, seen = run([click(0, "S1", "shoes"), click(1, "B1", "books")])
    assert seen == [] and len(engine) == 0


@pytest.mark.parametrize(("offer_at_ns", "fires"), [(1799 * NS_PER_S, True), (1800 * NS_PER_S - 1, True),
                                                    (1800 * NS_PER_S, False), (1801 * NS_PER_S, False)])
def test_window_is_strictly_less_than_30_minutes_from_the_first_row(offer_at_ns, fires):
    last = click(0, "C2", "clothing")
    last.ts_ns += offer_at_ns
    _, seen = run([click(0, "C1", "clothing"), click(1000, "S1", "shoes"), last])
    assert (("offer", "offer2") in seen) is fires


def test_window_is_measured_from_the_first_row_not_the_last_transition():
    # Each step is only 20 minutes after the previous one, but the third is 40 min after the first.
    engine, seen = run([click(0, "C1", "clothing"), click(1200, "S1", "shoes"), click(2400, "C2", "clothing")])
    assert seen == [("clothes_visited", None), ("shoes_visited", None)]
    assert engine.counts["expired"] == 1 and engine.state_of("u1") == "init"


def test_expiry_after_clothing_repeats_still_counts_from_the_first_row():
    _, seen = run([click(0, "C1", "clothing"), click(1000, "C2", "clothing"), click(1500, "S1", "shoes"),
                   click(1900, "C3", "clothing")])
    assert ("offer", "offer2") not in seen


@pytest.mark.parametrize(("gender", "age", "starts"), [
    ("F", 24, False), ("F", 25, True), ("F", 35, True), ("F", 36, False),
    ("M", 35, False), ("M", 36, True), ("M", 45, True), ("M", 46, False),
    ("X", 30, False),
])
def test_segment_bounds_are_inclusive(gender, age, starts):
    _, seen = run([click(0, "C1", "clothing", gender=gender, age=age)])
    assert (seen == [("clothes_visited", None)]) is starts


def test_segment_bounds_are_configurable():
    rules = default_rules()
    rule = dataclasses.replace(rules.rules[0], segments=(Segment("M", 35, 45),))  # the seed's code: 35-45
    engine = OfferEngine(dataclasses.replace(rules, rules=(rule,)))
    assert engine.process(click(0, "C1", "clothing", gender="M", age=35))
    assert not engine.process(click(0, "C1", "clothing", user="u2", gender="F", age=30))


def test_segment_is_checked_only_on_the_first_transition():
    # Age and gender of later rows are outside every segment; the sequence still completes.
    _, seen = run([click(0, "C1", "clothing", age=30), click(1, "S1", "shoes", age=80),
                   click(2, "C2", "clothing", gender="M", age=10)])
    assert seen[-1] == ("offer", "offer1")


def test_shoppers_are_independent():
    _, seen = run([click(0, "C1", "clothing", user="a"), click(1, "C1", "clothing", user="b"),
                   click(2, "S1", "shoes", user="a"), click(3, "B", "books", user="b"),
                   click(4, "C2", "clothing", user="a")])
    assert seen[-1] == ("offer", "offer2")


def test_log_lines_are_in_seed_001_format():
    engine = OfferEngine(default_rules())
    lines = []
    for row in [click(0, "VD55129406", "clothing", user="sad-music-boxing"),
                click(3, "VD55147564", "shoes", user="sad-music-boxing"),
                click(6, "VD55177927", "clothing", user="sad-music-boxing")]:
        for t in engine.process(row):
            lines += t.log_lines()
    assert lines == [
        "[User sad-music-boxing entered state clothes_visited][Event: clicked VD55129406][Category: clothing]",
        "[User sad-music-boxing entered state shoes_visited][Event: clicked VD55147564][Category: shoes]",
        "[User sad-music-boxing entered state offer][Event: clicked VD55177927][Category: clothing]",
        "[User sad-music-boxing triggered offer offer2]",
    ]


def test_cooldown_blocks_a_new_sequence_until_it_has_passed():
    rules = default_rules()
    rule = dataclasses.replace(rules.rules[0], cooldown_s=600)
    engine = OfferEngine(dataclasses.replace(rules, rules=(rule,)))
    seq = [("C1", "clothing"), ("S1", "shoes"), ("C2", "clothing")]
    fired = [t.offer for i, (item, cat) in enumerate(seq) for t in engine.process(click(i, item, cat)) if t.offer]
    assert fired == ["offer2"]
    assert len(engine) == 1  # the cooldown is remembered
    blocked = [t for i, (item, cat) in enumerate(seq) for t in engine.process(click(100 + i, item + "x", cat))]
    assert blocked == []
    again = [t.offer for i, (item, cat) in enumerate(seq)
             for t in engine.process(click(603 + i, item + "y", cat)) if t.offer]
    assert again == ["offer2"]


def test_late_rows_beyond_tolerance_are_rejected_and_counted():
    engine = OfferEngine(default_rules(), limits=EngineLimits(late_s=60, idle_s=None))
    engine.process(click(1000, "C1", "clothing"))
    assert engine.process(click(900, "S1", "shoes")) == []  # 100 s older than the last row
    assert engine.counts["late"] == 1 and engine.state_of("u1") == "clothes_visited"
    # within the tolerance: processed in arrival order with its own timestamp
    assert [t.state for t in engine.process(click(950, "S1", "shoes"))] == ["shoes_visited"]


def test_idle_shoppers_are_evicted_in_event_time():
    engine = OfferEngine(default_rules(), limits=EngineLimits(idle_s=3600, late_s=60))
    engine.process(click(0, "C1", "clothing", user="idle"))
    engine.process(click(3000, "C1", "clothing", user="busy"))
    assert len(engine) == 2
    engine.process(click(3601, "C2", "clothing", user="busy"))
    assert len(engine) == 1 and engine.state_of("idle") == "init"
    assert engine.counts["evicted_idle"] == 1 and engine.counts["evicted_in_progress"] == 1


def test_full_engine_evicts_the_least_recently_active():
    engine = OfferEngine(default_rules(), limits=EngineLimits(max_shoppers=2, idle_s=None))
    for i, user in enumerate(["a", "b", "a", "c"]):
        engine.process(click(i, f"C{i}", "clothing", user=user))
    assert engine.state_of("b") == "init" and engine.state_of("a") == "clothes_visited"
    assert engine.counts["evicted_full"] == 1


def test_export_and_restore_resume_a_sequence():
    engine = OfferEngine(default_rules(), track_changes=True)
    engine.process(click(0, "C1", "clothing"))
    engine.process(click(1, "S1", "shoes"))
    changes = engine.take_changes()
    assert [u for u, _ in changes] == ["u1"] and engine.take_changes() == []
    fresh = OfferEngine(default_rules())
    assert fresh.restore([(u, s) for u, s in changes if s is not None]) == 1
    assert [t.offer for t in fresh.process(click(2, "C1", "clothing"))] == [None]  # same item: back
    assert [t.offer for t in fresh.process(click(3, "S2", "shoes"))] == [None]
    assert [t.offer for t in fresh.process(click(4, "C9", "clothing"))] == ["offer2"]


def test_restore_drops_rules_that_no_longer_exist():
    fresh = OfferEngine(default_rules())
    assert fresh.restore([("u1", {"last_ns": 5 * NS_PER_S, "rules": {"gone": {"state": 1}}})]) == 0
    assert len(fresh) == 0
