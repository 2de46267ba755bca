"""The offers file: defaults reproduce SPEC section 8; bad values name the file and key."""

from __future__ import annotations

import tomllib

import pytest

from agent.errors import ConfigError
from aggregator.offers.rules import load_rules, parse_rules
from tests.offers.helpers import RULES_FILE


def test_default_file_is_the_seed_001_rule():
    rules = load_rules(RULES_FILE)
    (rule,) = rules.rules
    assert [s.state for s in rule.steps] == ["clothes_visited", "shoes_visited", "offer"]
    assert [s.category for s in rule.steps] == ["clothing", "shoes", "clothing"]
    assert rule.steps[0].repeat and rule.steps[2].different_from == 1 and rule.steps[2].same_item_returns_to == 1
    assert rule.window_s == 1800 and rule.cooldown_s == 0
    assert [(s.gender, s.age_min, s.age_max) for s in rule.segments] == [("F", 25, 35), ("M", 36, 45)]
    assert rule.offer_for("M") == "offer1" and rule.offer_for("F") == "offer2"
    assert rules.store.category_of("sport") == "shoes" and rules.store.category_of("clothing") == "clothing"


def base() -> dict:
    return tomllib.loads(RULES_FILE.read_text())


@pytest.mark.parametrize(("mutate", "key"), [
    (lambda d: d.update(bogus=1), "bogus"),
    (lambda d: d["rules"][0].update(window_s=0), "rules[0].window_s"),
    (lambda d: d["rules"][0].update(window_s="30m"), "rules[0].window_s"),
    (lambda d: d["rules"][0].update(cooldown_s=-1), "rules[0].cooldown_s"),
    (lambda d: d["rules"][0]["segments"][0].update(gender="W"), "rules[0].segments[0].gender"),
    (lambda d: d["rules"][0]["segments"][0].update(age_min=40), "rules[0].segments[0].age_max"),
    (lambda d: d["rules"][0]["steps"][0].update(different_from=1), "rules[0].steps[0].different_from"),
    (lambda d: d["rules"][0]["steps"][2].update(different_from=3), "rules[0].steps[2].different_from"),
    (lambda d: d["rules"][0]["steps"][2].pop("different_from"), "rules[0].steps[2].same_item_returns_to"),
    (lambda d: d["rules"][0]["steps"][1].update(zone="Sport"), "rules[0].steps[1].category"),
    (lambda d: d["rules"][0]["steps"][1].update(state="clothes_visited"), "rules[0].steps"),
    (lambda d: d["rules"][0]["steps"][1].update(colour="red"), "rules[0].steps[1].colour"),
    (lambda d: d["rules"][0].update(steps=[]), "rules[0].steps"),
    (lambda d: d.update(rules=[]), "rules"),
    (lambda d: d["rules"].append(dict(d["rules"][0])), "rules"),
    (lambda d: d["rules"][0].update(offer_by_gender={"X": "o"}), "rules[0].offer_by_gender"),
    (lambda d: d["rules"][0]["coupon"].update(types=[]), "rules[0].coupon.types"),
    (lambda d: d["engine"].update(max_shoppers=0), "engine.max_shoppers"),
    (lambda d: d["store"].update(item="shelf"), "store.item"),
])
def test_bad_values_name_the_key(mutate, key):
    data = base()
    mutate(data)
    with pytest.raises(ConfigError) as err:
        parse_rules(data, "offers.toml")
    assert err.value.field == key
    assert str(err.value).startswith("offers.toml: ")


def test_missing_and_broken_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="existing offers file"):
        load_rules(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[rules]\n")
    with pytest.raises(ConfigError, match="valid TOML"):
        load_rules(bad)


def test_idle_zero_means_never_evict():
    data = base()
    data["engine"]["idle_s"] = 0
    assert parse_rules(data).limits.idle_s is None


def test_a_zone_step_matches_by_zone_name():
    data = base()
    data["rules"][0]["steps"][1] = {"state": "at_sport", "zone": "Sport"}
    step = parse_rules(data).rules[0].steps[1]
    assert step.matches("shoes", "Sport") and not step.matches("shoes", "Men's") and not step.matches("shoes", None)
