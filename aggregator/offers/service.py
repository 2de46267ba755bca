"""What happens when a rule fires: the engine's transitions become logged lines and offers with coupons.

Synchronous and free of I/O (the aiohttp layer in aggregator/api/offers.py publishes and stores
what this returns), so the CLI, the app and tests share it.
"""

from __future__ import annotations

import collections
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.contract import Prediction, encode_prediction
from aggregator.offers.coupons import CouponBook
from aggregator.offers.engine import NS_PER_S, Click, OfferEngine, Transition
from aggregator.offers.rules import EngineLimits, Rule, RuleSet

log = logging.getLogger("floorwalker.offers")


@dataclass(frozen=True, slots=True)
class FiredOffer:
    ts: float
    shopper: str
    customer_id: str | None
    rule: str
    offer: str
    department: str | None
    coupon: dict[str, Any] | None
    prediction: dict[str, Any] | None  # seed-000 prediction (None without a coupon)
    payload: bytes | None  # the prediction as published on MQTT

    def row(self) -> dict[str, Any]:
        coupon_id = self.coupon.get("id") if self.coupon else None
        return {"ts": self.ts, "shopper": self.shopper, "customer_id": self.customer_id, "rule": self.rule,
                "offer": self.offer, "department": self.department,
                "coupon_id": coupon_id if isinstance(coupon_id, int) else None, "prediction": self.prediction}


class OfferService:
    """Engine + coupons + the bounded transition log."""

    def __init__(self, rules: RuleSet, coupons: CouponBook | None, *, limits: EngineLimits | None = None,
                 log_size: int = 1000, track_changes: bool = True) -> None:
        self.rules = rules
        self.engine = OfferEngine(rules, limits=limits, track_changes=track_changes)
        self.coupons = coupons
        self.log: collections.deque[tuple[float, str]] = collections.deque(maxlen=log_size)
        self.pending_log: list[tuple[float, str]] = []  # not yet stored; the owner takes and clears it
        self.no_coupon = 0
        self._rules: dict[str, Rule] = {r.name: r for r in rules.rules}

    def handle(self, click: Click, *, customer_id: str | None = None) -> list[FiredOffer]:
        """Run one click through the engine; log its transitions; return the offers it fired."""
        fired: list[FiredOffer] = []
        for t in self.engine.process(click):
            ts = t.click.ts_ns / NS_PER_S
            for line in t.log_lines():
                log.info("%s", line)
                self.log.append((ts, line))
                self.pending_log.append((ts, line))
            if t.offer is not None:
                fired.append(self._fire(t, ts, customer_id))
        return fired

    def _fire(self, t: Transition, ts: float, customer_id: str | None) -> FiredOffer:
        rule = self._rules[t.rule]
        department, coupon = (None, None)
        if self.coupons is not None:
            department, coupon = self.coupons.pick(rule.coupon, zone_department=t.click.department,
                                                   gender=t.click.gender)
        target = customer_id if customer_id is not None else t.user
        prediction = payload = None
        if coupon is not None:
            payload = encode_prediction(Prediction(target, coupon, ts), offer=t.offer, rule=t.rule)
            prediction = json.loads(payload)
        else:
            self.no_coupon += 1
            log.warning("event=offer-without-coupon rule=%s offer=%s department=%s", t.rule, t.offer, department)
        return FiredOffer(ts, t.user, customer_id, t.rule, t.offer or "", department, coupon, prediction, payload)

    def recent_log(self, limit: int = 200) -> list[dict[str, Any]]:
        items = list(self.log)[-limit:]
        return [{"ts": ts, "line": line} for ts, line in reversed(items)]

    def counts(self) -> Mapping[str, int]:
        return {**self.engine.counts, "shoppers": len(self.engine), "no_coupon": self.no_coupon}
