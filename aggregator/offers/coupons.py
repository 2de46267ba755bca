"""Coupons from the seed-000 coupons file, and which one a fired rule gets.

The demo names one department several ways (zones "Women's", "Boy's", "Sport"; coupons "Women",
"Boys"; its UI "Sports"), so departments are compared by a normalised key: lower case, apostrophes
dropped, one trailing "s" dropped — Women/Women's -> women, Boys/Boy's -> boy, Sport/Sports/Sport's
-> sport. The demo's coupons file has no Sport department: an offer whose department has no
coupons falls back to the rule's department for the shopper's gender (Women for F, Men for M by
default); when that has none either, the offer is still logged and stored, without a coupon and
without a prediction message (counted as ``no_coupon``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.errors import ConfigError
from aggregator.offers.rules import CouponPolicy


def department_key(name: str) -> str:
    """Women/Women's -> "women", Boys/Boy's -> "boy", Sport/Sports/Sport's -> "sport"."""
    key = name.strip().lower().replace("'", "").replace("\u2019", "")
    return key[:-1] if key.endswith("s") and len(key) > 1 and not key.endswith("ss") else key


class CouponBook:
    """The coupons file indexed by normalised department; picks coupons by type preference."""

    def __init__(self, departments: dict[str, list[dict[str, Any]]]) -> None:
        self._by_key: dict[str, list[dict[str, Any]]] = {}
        self.names: dict[str, str] = {}
        for name, coupons in departments.items():
            key = department_key(name)
            self._by_key.setdefault(key, []).extend(coupons)
            self.names.setdefault(key, name)

    @classmethod
    def load(cls, path: str | Path) -> CouponBook:
        """Read a seed-000 coupons file: ``[{"department", "coupons": [{id, type, ...}]}]``."""
        path = Path(path)
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(str(path), "(file)", "an existing coupons file") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(str(path), "(syntax)", f"valid JSON ({exc})") from None
        return cls.parse(data, str(path))

    @classmethod
    def parse(cls, data: Any, source: str = "<coupons>") -> CouponBook:
        if not isinstance(data, list):
            raise ConfigError(source, "(top level)", "a list of departments")
        departments: dict[str, list[dict[str, Any]]] = {}
        for i, entry in enumerate(data):
            if not isinstance(entry, dict) or not isinstance(entry.get("department"), str):
                raise ConfigError(source, f"[{i}].department", "a department name")
            coupons = entry.get("coupons", [])
            if not isinstance(coupons, list) or not all(isinstance(c, dict) and "id" in c for c in coupons):
                raise ConfigError(source, f"[{i}].coupons", "a list of coupons with an id")
            departments.setdefault(entry["department"], []).extend(coupons)
        return cls(departments)

    def coupons(self, department: str) -> list[dict[str, Any]]:
        return self._by_key.get(department_key(department), [])

    def pick(self, policy: CouponPolicy, *, zone_department: str | None, gender: str | None
             ) -> tuple[str | None, dict[str, Any] | None]:
        """(department, coupon) for a fired rule; the coupon is None when no department has one."""
        wanted = zone_department if policy.department == "zone" else policy.department
        candidates = [wanted] if wanted else []
        fallback = policy.fallback_by_gender.get(gender or "")
        if fallback:
            candidates.append(fallback)
        for department in candidates:
            coupons = self.coupons(department)
            if coupons:
                return self.names[department_key(department)], _preferred(coupons, policy.types)
        return (candidates[0] if candidates else None), None


def _preferred(coupons: list[dict[str, Any]], types: tuple[str, ...]) -> dict[str, Any]:
    rank = {t: i for i, t in enumerate(types)}
    return min(coupons, key=lambda c: rank.get(c.get("type"), len(rank)))
