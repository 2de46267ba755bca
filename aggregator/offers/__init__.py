"""Offer detection: rule-driven per-shopper state machines (SPEC sections 5 and 8, seed 001).

- :mod:`.rules` loads and validates the offers file (firmware-config/offers.toml);
- :mod:`.engine` is the pure, synchronous state-machine engine with bounded memory;
- :mod:`.inputs` maps seed 001's click rows and store browsing events onto engine clicks;
- :mod:`.coupons` picks a coupon from the seed-000 coupons file (department names normalised);
- :mod:`.service` turns transitions into seed-001 log lines and fired offers with predictions;
- :mod:`.persist` keeps sequences in progress, offers and the log in SQLite.
The aiohttp layer is aggregator/api/offers.py; the replay command aggregator/commands/offers.py.
"""

from aggregator.offers.engine import Click, OfferEngine, Transition
from aggregator.offers.rules import RuleSet, load_rules

__all__ = ["Click", "OfferEngine", "RuleSet", "Transition", "load_rules"]
