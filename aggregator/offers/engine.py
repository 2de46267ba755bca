"""The offer engine: per-shopper state machines driven by :mod:`aggregator.offers.rules`.

Pure and synchronous on purpose: it takes one :class:`Click` at a time and returns what happened,
so it can be tested exhaustively, replayed from a file by the CLI and benchmarked without a loop.
Time is the events' own (``ts_ns``, integer nanoseconds as seed 001's stream carries them, so the
"strictly less than 30 minutes" comparison is exact); the engine never reads the wall clock.

Semantics (SPEC section 8, generalised to any ordered list of steps; docs/OFFERS.md):
- rows without gender or age are ignored;
- a row whose item equals the last recorded row's is a page refresh: skipped, state untouched;
- in ``init``: a row matching step 1 by a shopper in the segment starts a sequence (the segment
  is checked only here);
- in step k: first match wins: the row matches step k+1 (and, if asked, its item differs from the
  row that entered step ``different_from``) -> step k+1, the last step being the offer; it matches
  step k+1 but the item is the same and ``same_item_returns_to`` is set -> back to that step;
  step k has ``repeat`` and the row matches it -> stays; anything else -> ``init``, empty sequence,
  and that row does not start a new one;
- a transition only happens strictly less than ``window_s`` after the sequence's first row;
- an offer resets to ``init``; with ``cooldown_s`` the rule cannot start again for that long.

Memory is bounded: only shoppers with something to remember (a sequence in progress or a
cooldown) are kept, at most ``max_shoppers`` (least recently active evicted first), and shoppers
idle for ``idle_s`` of event time are evicted.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aggregator.offers.rules import EngineLimits, Rule, RuleSet

NS_PER_S = 1_000_000_000


@dataclass(slots=True)
class Click:
    """One input row: a seed-001 click, or a store browsing event mapped onto one."""

    ts_ns: int
    user: str
    item: str
    category: str | None
    gender: str | None
    age: int | None
    zone: str | None = None
    department: str | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """A shopper entered ``state`` of ``rule`` because of ``click``; ``offer`` is set when it fired."""

    user: str
    rule: str
    state: str
    click: Click
    offer: str | None = None

    def log_lines(self) -> list[str]:
        """The transition in seed 001's log format."""
        c = self.click
        lines = [f"[User {self.user} entered state {self.state}][Event: clicked {c.item}][Category: {c.category}]"]
        if self.offer is not None:
            lines.append(f"[User {self.user} triggered offer {self.offer}]")
        return lines


class _Seq:
    """One rule's progress for one shopper. ``state`` 0 is init (then only a cooldown is kept)."""

    __slots__ = ("cooldown_until_ns", "first_ns", "items", "last_item", "state")

    def __init__(self, state: int, first_ns: int, last_item: str | None, items: list[str | None],
                 cooldown_until_ns: int = 0) -> None:
        self.state = state
        self.first_ns = first_ns
        self.last_item = last_item
        self.items = items  # items[k-1]: the item of the row that entered step k on the current path
        self.cooldown_until_ns = cooldown_until_ns


class _Shopper:
    __slots__ = ("last_ns", "seqs")

    def __init__(self, last_ns: int, seqs: list[_Seq | None]) -> None:
        self.last_ns = last_ns
        self.seqs = seqs


class OfferEngine:
    """Feed :meth:`process` clicks in arrival order; it returns the transitions they caused."""

    def __init__(self, rules: RuleSet, *, limits: EngineLimits | None = None, track_changes: bool = False) -> None:
        self.rules: tuple[Rule, ...] = rules.rules
        self.limits = limits or rules.limits
        self._window_ns = [round(r.window_s * NS_PER_S) for r in self.rules]
        self._cooldown_ns = [round(r.cooldown_s * NS_PER_S) for r in self.rules]
        late_s = self.limits.late_s
        self._late_ns = round(late_s * NS_PER_S) if late_s != float("inf") else 1 << 127
        self._idle_ns = None if self.limits.idle_s is None else round(self.limits.idle_s * NS_PER_S)
        self._shoppers: OrderedDict[str, _Shopper] = OrderedDict()
        self.latest_ns = 0
        self.track_changes = track_changes
        self.changed: set[str] = set()
        self.counts: dict[str, int] = dict.fromkeys(
            ("rows", "ignored", "refresh", "late", "transitions", "resets", "expired", "offers",
             "evicted_idle", "evicted_full", "evicted_in_progress"), 0)

    def __len__(self) -> int:
        return len(self._shoppers)

    # ------------------------------------------------------------------------------------ input

    def process(self, click: Click) -> list[Transition]:
        counts = self.counts
        counts["rows"] += 1
        if click.gender is None or click.age is None:
            counts["ignored"] += 1
            return []
        now = click.ts_ns
        if now > self.latest_ns:
            self.latest_ns = now
            if self._idle_ns is not None:
                self._evict_idle()
        shopper = self._shoppers.get(click.user)
        if shopper is not None:
            if now < shopper.last_ns - self._late_ns:
                counts["late"] += 1
                return []
        out: list[Transition] = []
        seqs = shopper.seqs if shopper is not None else None
        new_seqs: list[_Seq | None] | None = None
        for i, rule in enumerate(self.rules):
            old = seqs[i] if seqs is not None else None
            new = self._advance(i, rule, old, click, out)
            if new is not None:
                if new_seqs is None:
                    new_seqs = [None] * len(self.rules)
                new_seqs[i] = new
        self._keep(click.user, shopper, new_seqs, now)
        return out

    # ---------------------------------------------------------------------------- one rule, one row

    def _advance(self, i: int, rule: Rule, seq: _Seq | None, c: Click, out: list[Transition]) -> _Seq | None:
        steps = rule.steps
        if seq is None or seq.state == 0:
            if seq is not None and c.ts_ns < seq.cooldown_until_ns:
                return seq  # cooling down: cannot start, nothing to reset
            if steps[0].matches(c.category, c.zone) and rule.in_segment(c.gender, c.age):  # type: ignore[arg-type]
                items: list[str | None] = [None] * len(steps)
                started = _Seq(0, c.ts_ns, None, items)
                return self._enter(i, rule, started, 1, c, out)
            return seq if seq is not None and seq.cooldown_until_ns > c.ts_ns else None
        if c.item == seq.last_item:
            self.counts["refresh"] += 1
            return seq
        if c.ts_ns - seq.first_ns >= self._window_ns[i]:
            self.counts["expired"] += 1
            return self._reset(i, seq, c)
        k = seq.state
        nxt = steps[k]
        if nxt.matches(c.category, c.zone):
            ref = nxt.different_from
            if ref is None or c.item != seq.items[ref - 1]:
                return self._enter(i, rule, seq, k + 1, c, out)
            if nxt.same_item_returns_to is not None:
                return self._enter(i, rule, seq, nxt.same_item_returns_to, c, out)
        cur = steps[k - 1]
        if cur.repeat and cur.matches(c.category, c.zone):
            seq.last_item = c.item
            self.counts["transitions"] += 1
            out.append(Transition(c.user, rule.name, cur.state, c))
            return seq
        return self._reset(i, seq, c)

    def _enter(self, i: int, rule: Rule, seq: _Seq, step: int, c: Click, out: list[Transition]) -> _Seq | None:
        self.counts["transitions"] += 1
        if step == len(rule.steps):
            offer = rule.offer_for(c.gender or "")
            self.counts["offers"] += 1
            out.append(Transition(c.user, rule.name, rule.steps[-1].state, c, offer))
            cooldown = self._cooldown_ns[i]
            return _Seq(0, 0, None, [], c.ts_ns + cooldown) if cooldown else None
        if step <= seq.state:  # back to an earlier step: the later steps are to be walked again
            for j in range(step, len(seq.items)):
                seq.items[j] = None
        seq.state = step
        if seq.items[step - 1] is None:
            seq.items[step - 1] = c.item
        seq.last_item = c.item
        out.append(Transition(c.user, rule.name, rule.steps[step - 1].state, c))
        return seq

    def _reset(self, i: int, seq: _Seq, c: Click) -> _Seq | None:
        self.counts["resets"] += 1
        if seq.cooldown_until_ns > c.ts_ns:
            return _Seq(0, 0, None, [], seq.cooldown_until_ns)
        return None

    # ------------------------------------------------------------------------------------ memory

    def _keep(self, user: str, shopper: _Shopper | None, seqs: list[_Seq | None] | None, now: int) -> None:
        shoppers = self._shoppers
        if seqs is None:
            if shopper is not None:
                del shoppers[user]
                self._changed(user)
            return
        if shopper is None:
            if len(shoppers) >= self.limits.max_shoppers:
                self._evict(shoppers.popitem(last=False), "evicted_full")
            shoppers[user] = _Shopper(now, seqs)
        else:
            shopper.seqs = seqs
            if now > shopper.last_ns:
                shopper.last_ns = now
            shoppers.move_to_end(user)
        self._changed(user)

    def _evict_idle(self) -> None:
        shoppers = self._shoppers
        horizon = self.latest_ns - self._idle_ns  # type: ignore[operator]
        while shoppers:
            user, shopper = next(iter(shoppers.items()))
            if shopper.last_ns >= horizon:
                return
            shoppers.popitem(last=False)
            self._evict((user, shopper), "evicted_idle")

    def _evict(self, item: tuple[str, _Shopper], reason: str) -> None:
        user, shopper = item
        self.counts[reason] += 1
        if any(s is not None and s.state > 0 for s in shopper.seqs):
            self.counts["evicted_in_progress"] += 1
        self._changed(user)

    def _changed(self, user: str) -> None:
        if self.track_changes:
            self.changed.add(user)

    # ------------------------------------------------------------------------ introspection, persistence

    def state_of(self, user: str, rule: str | None = None) -> str:
        """The shopper's state name for ``rule`` (default the first rule); "init" when nothing is kept."""
        index = 0 if rule is None else [r.name for r in self.rules].index(rule)
        shopper = self._shoppers.get(user)
        seq = shopper.seqs[index] if shopper is not None else None
        if seq is None or seq.state == 0:
            return "init"
        return self.rules[index].steps[seq.state - 1].state

    def export(self, user: str) -> dict[str, Any] | None:
        """A JSON-able snapshot of one shopper (None when nothing is kept), for SQLite."""
        shopper = self._shoppers.get(user)
        if shopper is None:
            return None
        rules: dict[str, Any] = {}
        for rule, seq in zip(self.rules, shopper.seqs, strict=True):
            if seq is not None:
                rules[rule.name] = {"state": seq.state, "first_ns": seq.first_ns, "last_item": seq.last_item,
                                    "items": seq.items, "cooldown_until_ns": seq.cooldown_until_ns}
        return {"last_ns": shopper.last_ns, "rules": rules}

    def take_changes(self) -> list[tuple[str, dict[str, Any] | None]]:
        """Shoppers changed since the last call, with their snapshot (None: forget them)."""
        changed, self.changed = self.changed, set()
        return [(user, self.export(user)) for user in changed]

    def restore(self, snapshots: Iterable[tuple[str, dict[str, Any]]]) -> int:
        """Load snapshots written by :meth:`export`; rules that no longer exist or changed shape are dropped."""
        by_name = {r.name: (i, r) for i, r in enumerate(self.rules)}
        restored = 0
        for user, snap in sorted(snapshots, key=lambda us: us[1].get("last_ns", 0)):
            seqs: list[_Seq | None] = [None] * len(self.rules)
            for name, s in snap.get("rules", {}).items():
                if name not in by_name:
                    continue
                i, rule = by_name[name]
                items = list(s.get("items") or [])
                state = int(s.get("state", 0))
                if state > 0 and (len(items) != len(rule.steps) or state >= len(rule.steps)):
                    continue
                seqs[i] = _Seq(state, int(s.get("first_ns", 0)), s.get("last_item"), items,
                               int(s.get("cooldown_until_ns", 0)))
            if any(s is not None for s in seqs):
                last_ns = int(snap.get("last_ns", 0))
                if len(self._shoppers) >= self.limits.max_shoppers:
                    self._evict(self._shoppers.popitem(last=False), "evicted_full")
                self._shoppers[user] = _Shopper(last_ns, seqs)
                self.latest_ns = max(self.latest_ns, last_ns)
                restored += 1
        return restored
