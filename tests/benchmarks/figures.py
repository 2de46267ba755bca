"""What a benchmark reports: named figures with a unit, a target and the published reference."""

from __future__ import annotations

import operator
from dataclasses import dataclass

_OPS = {">=": operator.ge, "<=": operator.le, "==": operator.eq, ">": operator.gt, "<": operator.lt}


@dataclass(frozen=True)
class Figure:
    """One measured number. ``target`` reads like ``">= 20000"``; ``reference`` is someone else's figure."""

    figure: str
    value: float | int | None
    unit: str = ""
    target: str | None = None
    reference: str | None = None
    note: str = ""

    def met(self) -> bool | None:
        """True/False against the target, None when there is no target or no value."""
        if self.target is None or self.value is None:
            return None
        op, _, number = self.target.partition(" ")
        if op not in _OPS:
            return None
        return bool(_OPS[op](self.value, float(number)))

    def as_json(self) -> dict[str, object]:
        return {"figure": self.figure, "value": self.value, "unit": self.unit, "target": self.target,
                "reference": self.reference, "met": self.met(), "note": self.note}
