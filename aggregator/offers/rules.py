"""Offer rules: the TOML file that says who qualifies, which steps make an offer, and which coupon.

Validated once at start-up (STYLE section 4): a bad file stops with the file, the key and the
expected value in one line (:class:`agent.errors.ConfigError`). Unknown keys are refused so a typo
cannot silently disable a rule. The format is documented in docs/OFFERS.md and in the default
firmware-config/offers.toml, whose rule reproduces SPEC section 8 (seed 001) exactly.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import ConfigError

GENDERS = ("M", "F")
COUPON_TYPES_DEFAULT = ("just_discount", "buy_more", "buy_all", "department")


@dataclass(frozen=True, slots=True)
class Segment:
    """Gender and an age range with inclusive bounds (SPEC section 8: female 25-35, male 36-45)."""

    gender: str
    age_min: int
    age_max: int

    def contains(self, gender: str, age: int) -> bool:
        return gender == self.gender and self.age_min <= age <= self.age_max


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a sequence; a row matches it by category or by zone name.

    ``different_from`` (1-based step number): the row's item must differ from the item of the row
    that first entered that step (for step 1: the sequence's first row, as seed 001 compares).
    ``same_item_returns_to``: a row that matches the category but fails ``different_from`` moves
    the shopper back to that step instead of resetting (seed 001: shoes_visited -> clothes_visited).
    ``repeat``: while in this step, another row matching it keeps the state (and is recorded).
    """

    state: str
    category: str | None = None
    zone: str | None = None
    repeat: bool = False
    different_from: int | None = None
    same_item_returns_to: int | None = None

    def matches(self, category: str | None, zone: str | None) -> bool:
        if self.category is not None:
            return category == self.category
        return zone is not None and zone == self.zone


@dataclass(frozen=True, slots=True)
class CouponPolicy:
    """How a fired rule picks its coupon from the coupons file.

    ``department``: "zone" (the department of the zone where the rule fired) or a department name.
    ``fallback_by_gender``: used when that department has no coupons (the demo has no Sport coupons)
    or the input has no zone (seed 001's click stream).
    ``types``: coupon types in order of preference; the first coupon of the best type wins.
    """

    department: str = "zone"
    fallback_by_gender: dict[str, str] = field(default_factory=lambda: {"F": "Women", "M": "Men"})
    types: tuple[str, ...] = COUPON_TYPES_DEFAULT


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    steps: tuple[Step, ...]
    segments: tuple[Segment, ...]
    window_s: float = 1800.0
    cooldown_s: float = 0.0
    offer: str = "offer2"
    offer_by_gender: dict[str, str] = field(default_factory=dict)
    coupon: CouponPolicy = field(default_factory=CouponPolicy)

    def in_segment(self, gender: str, age: int) -> bool:
        return not self.segments or any(s.contains(gender, age) for s in self.segments)

    def offer_for(self, gender: str) -> str:
        """Seed 001: ``offer1`` if the row's gender is M, else ``offer2``."""
        return self.offer_by_gender.get(gender, self.offer)


@dataclass(frozen=True, slots=True)
class EngineLimits:
    """Memory and lateness policy of the engine (docs/OFFERS.md, "Late events and memory")."""

    max_shoppers: int = 100_000
    idle_s: float | None = 3600.0  # None: never evict for idleness (exact seed-001 replay)
    late_s: float = 60.0


@dataclass(frozen=True, slots=True)
class StoreMapping:
    """How a store browsing event becomes a click: its category and its item."""

    categories: dict[str, str] = field(default_factory=lambda: {"clothing": "clothing", "sport": "shoes"})
    item: str = "zone"  # "zone" or "cell" (a square fixture cell of cell_px inside the zone)
    cell_px: float = 100.0

    def category_of(self, zone_category: str | None) -> str | None:
        if zone_category is None:
            return None
        return self.categories.get(zone_category, zone_category)

    def item_of(self, zone: str, x_px: float | None, y_px: float | None) -> str:
        if self.item == "cell" and x_px is not None and y_px is not None:
            return f"{zone}#{int(x_px // self.cell_px)},{int(y_px // self.cell_px)}"
        return zone


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...]
    limits: EngineLimits = field(default_factory=EngineLimits)
    store: StoreMapping = field(default_factory=StoreMapping)
    source: str = "<defaults>"


# ---------------------------------------------------------------------------------------- loading

def load_rules(path: str | Path) -> RuleSet:
    """Read and validate an offers file. Raises ConfigError naming the file and key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(path), "(file)", "an existing offers file") from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), "(file)", "UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), "(syntax)", f"valid TOML ({exc})") from None
    return parse_rules(data, str(path))


def parse_rules(data: dict[str, Any], source: str = "<rules>") -> RuleSet:
    v = _Validator(source)
    v.keys(data, "", {"engine", "store", "rules"})
    limits = _limits(v, v.table(data, "engine"))
    store = _store(v, v.table(data, "store"))
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        v.fail("rules", "at least one [[rules]] table")
    rules = tuple(_rule(v, r, f"rules[{i}]") for i, r in enumerate(raw_rules))
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        v.fail("rules", f"unique rule names, got {names}")
    return RuleSet(rules, limits, store, source)


class _Validator:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, expected: str) -> None:
        raise ConfigError(self.source, key, expected)

    def keys(self, d: dict[str, Any], where: str, allowed: set[str]) -> None:
        extra = sorted(set(d) - allowed)
        if extra:
            self.fail(f"{where}{extra[0]}" if where else extra[0],
                      f"a known key ({', '.join(sorted(allowed))})")

    def table(self, d: dict[str, Any], key: str, where: str = "") -> dict[str, Any]:
        value = d.get(key, {})
        if not isinstance(value, dict):
            self.fail(where + key, "a table")
        return value

    def number(self, d: dict[str, Any], key: str, where: str, default: float, *, min_value: float,
               integer: bool = False) -> Any:
        value = d.get(key, default)
        ok_type = int if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, ok_type) or value < min_value or value != value:
            kind = "an integer" if integer else "a number"
            self.fail(where + key, f"{kind} >= {min_value}, got {value!r}")
        return value

    def text(self, d: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
        value = d.get(key, default)
        if not isinstance(value, str) or not value.strip():
            self.fail(where + key, f"a non-empty string, got {value!r}")
        return value

    def gender_map(self, d: dict[str, Any], key: str, where: str, default: dict[str, str]) -> dict[str, str]:
        value = d.get(key, default)
        if not isinstance(value, dict) or any(g not in GENDERS or not isinstance(n, str) or not n
                                              for g, n in value.items()):
            self.fail(where + key, f"a table with keys M/F and string values, got {value!r}")
        return dict(value)


def _limits(v: _Validator, d: dict[str, Any]) -> EngineLimits:
    v.keys(d, "engine.", {"max_shoppers", "idle_s", "late_s"})
    idle = d.get("idle_s", 3600.0)
    if idle == 0:
        idle = None  # 0 = never evict for idleness
    else:
        idle = v.number(d, "idle_s", "engine.", 3600.0, min_value=1.0)
    return EngineLimits(max_shoppers=v.number(d, "max_shoppers", "engine.", 100_000, min_value=1, integer=True),
                        idle_s=idle, late_s=v.number(d, "late_s", "engine.", 60.0, min_value=0.0))


def _store(v: _Validator, d: dict[str, Any]) -> StoreMapping:
    v.keys(d, "store.", {"categories", "item", "cell_px"})
    categories = d.get("categories", {"clothing": "clothing", "sport": "shoes"})
    if not isinstance(categories, dict) or not all(isinstance(c, str) and c for c in categories.values()):
        v.fail("store.categories", "a table of zone category = rule category strings")
    item = d.get("item", "zone")
    if item not in ("zone", "cell"):
        v.fail("store.item", f'"zone" or "cell", got {item!r}')
    cell_px = v.number(d, "cell_px", "store.", 100.0, min_value=1.0)
    return StoreMapping(dict(categories), item, float(cell_px))


def _rule(v: _Validator, d: Any, where: str) -> Rule:
    if not isinstance(d, dict):
        v.fail(where, "a table")
    w = where + "."
    v.keys(d, w, {"name", "window_s", "cooldown_s", "offer", "offer_by_gender", "segments", "steps", "coupon"})
    name = v.text(d, "name", w)
    raw_segments = d.get("segments", [])
    if not isinstance(raw_segments, list):
        v.fail(w + "segments", "a list of [[rules.segments]] tables")
    segments = tuple(_segment(v, s, f"{w}segments[{i}]") for i, s in enumerate(raw_segments))
    raw_steps = d.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        v.fail(w + "steps", "at least one [[rules.steps]] table")
    steps = tuple(_step(v, s, f"{w}steps[{i}]", i + 1) for i, s in enumerate(raw_steps))
    states = [s.state for s in steps]
    if len(set(states)) != len(states) or "init" in states:
        v.fail(w + "steps", f"unique state names other than 'init', got {states}")
    return Rule(name=name, steps=steps, segments=segments,
                window_s=float(v.number(d, "window_s", w, 1800.0, min_value=0.001)),
                cooldown_s=float(v.number(d, "cooldown_s", w, 0.0, min_value=0.0)),
                offer=v.text(d, "offer", w, "offer2"),
                offer_by_gender=v.gender_map(d, "offer_by_gender", w, {}),
                coupon=_coupon(v, v.table(d, "coupon", w), w + "coupon."))


def _segment(v: _Validator, d: Any, where: str) -> Segment:
    if not isinstance(d, dict):
        v.fail(where, "a table")
    w = where + "."
    v.keys(d, w, {"gender", "age_min", "age_max"})
    gender = d.get("gender")
    if gender not in GENDERS:
        v.fail(w + "gender", f'"M" or "F", got {gender!r}')
    age_min = v.number(d, "age_min", w, 0, min_value=0, integer=True)
    age_max = v.number(d, "age_max", w, 200, min_value=0, integer=True)
    if age_min > age_max:
        v.fail(w + "age_max", f"at least age_min ({age_min}), got {age_max}")
    return Segment(gender, age_min, age_max)


def _step(v: _Validator, d: Any, where: str, number: int) -> Step:
    if not isinstance(d, dict):
        v.fail(where, "a table")
    w = where + "."
    v.keys(d, w, {"state", "category", "zone", "repeat", "different_from", "same_item_returns_to"})
    state = v.text(d, "state", w)
    if ("category" in d) == ("zone" in d):
        v.fail(w + "category", "exactly one of category or zone")
    category = v.text(d, "category", w) if "category" in d else None
    zone = v.text(d, "zone", w) if "zone" in d else None
    repeat = d.get("repeat", False)
    if not isinstance(repeat, bool):
        v.fail(w + "repeat", f"true or false, got {repeat!r}")
    refs: dict[str, int | None] = {}
    for key in ("different_from", "same_item_returns_to"):
        ref = d.get(key)
        if ref is not None and (isinstance(ref, bool) or not isinstance(ref, int) or not 1 <= ref < number):
            v.fail(w + key, f"the number of an earlier step (1..{number - 1}), got {ref!r}")
        refs[key] = ref
    if refs["same_item_returns_to"] is not None and refs["different_from"] is None:
        v.fail(w + "same_item_returns_to", "different_from as well (it is the fallback when that check fails)")
    return Step(state, category, zone, repeat, refs["different_from"], refs["same_item_returns_to"])


def _coupon(v: _Validator, d: dict[str, Any], w: str) -> CouponPolicy:
    v.keys(d, w, {"department", "fallback_by_gender", "types"})
    types = d.get("types", list(COUPON_TYPES_DEFAULT))
    if not isinstance(types, list) or not types or not all(isinstance(t, str) and t for t in types):
        v.fail(w + "types", "a non-empty list of coupon type names")
    return CouponPolicy(department=v.text(d, "department", w, "zone"),
                        fallback_by_gender=v.gender_map(d, "fallback_by_gender", w, {"F": "Women", "M": "Men"}),
                        types=tuple(types))
