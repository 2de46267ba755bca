"""Property: whatever arrives, the engine never holds state for more shoppers than its bound."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.offers.engine import NS_PER_S, Click, OfferEngine
from aggregator.offers.rules import EngineLimits
from tests.offers.helpers import default_rules

RULES = default_rules()

clicks = st.builds(
    Click,
    ts_ns=st.integers(0, 10_000).map(lambda s: s * NS_PER_S),
    user=st.sampled_from([f"u{i}" for i in range(12)]),
    item=st.sampled_from(["C1", "C2", "C3", "S1", "S2", "B1"]),
    category=st.sampled_from(["clothing", "shoes", "books", None]),
    gender=st.sampled_from(["F", "M", None]),
    age=st.sampled_from([20, 30, 40, None]),
)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(clicks, max_size=80), bound=st.integers(1, 5), idle_s=st.sampled_from([None, 60.0, 3600.0]),
       cooldown_s=st.sampled_from([0.0, 300.0]))
def test_engine_never_holds_more_shoppers_than_its_bound(rows, bound, idle_s, cooldown_s):
    import dataclasses

    rule = dataclasses.replace(RULES.rules[0], cooldown_s=cooldown_s)
    engine = OfferEngine(dataclasses.replace(RULES, rules=(rule,)),
                         limits=EngineLimits(max_shoppers=bound, idle_s=idle_s, late_s=30.0))
    for row in rows:
        for t in engine.process(row):
            assert t.state in ("clothes_visited", "shoes_visited", "offer")
        assert len(engine) <= bound
    c = engine.counts
    assert c["rows"] == len(rows)
    assert c["offers"] <= c["transitions"]


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(clicks, max_size=60))
def test_an_unbounded_engine_and_a_bounded_one_agree_while_under_the_bound(rows):
    """Eviction is the only thing a bound changes: with room for everyone the outputs are identical."""
    big = OfferEngine(RULES, limits=EngineLimits(max_shoppers=1000, idle_s=None, late_s=float("inf")))
    small = OfferEngine(RULES, limits=EngineLimits(max_shoppers=12, idle_s=None, late_s=float("inf")))
    for row in rows:
        assert [(t.user, t.state, t.offer) for t in big.process(row)] == \
               [(t.user, t.state, t.offer) for t in small.process(row)]
