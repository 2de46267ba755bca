"""Alerts without Prometheus: the store file's ``[[alerts.rules]]`` posted as JSON to a webhook.

For a store with no monitoring stack (seed 002's alert system did this for Slack and Discord):
occupancy over a limit (the store or one zone), an agent offline for N minutes, dead letters
rising. Each rule has a hold-off (the condition must last ``for_s``; for an agent, its minutes)
and a recovery message when the condition clears. Posts wait in an outbox, are retried with
exponential back-off until the receiver answers 2xx, and are kept in a small JSON file beside
the database (with which alerts are firing and the recent history), so a restart neither loses
a post nor forgets to send a recovery, nor sends a false one on inputs that start empty
(:meth:`Alerts.warmup_s`).

The occupancy source is a callable giving ``(store people, {zone: people})``; :func:`people_occupancy`
reads the live people estimator, as ``/api/occupancy`` does.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from agent.config import AlertRule, AlertsConfig
from aggregator.appkeys import DB_PATH, INGEST, STORE_CONFIG

log = logging.getLogger(__name__)

EVALUATE_INTERVAL_S = 1.0
RETRY_MIN_S = 1.0
RETRY_MAX_S = 300.0
POST_TIMEOUT_S = 10.0
RECENT_MAX = 200
PENDING_MAX = 1000  # a receiver gone for days must not grow the file without bound: oldest dropped, counted
# After a restart the live occupancy starts empty and fills as phones are heard again (they probe every
# 8-30 s; a device counts from its first report, docs/OCCUPANCY.md): an occupancy alert that was firing
# is not called recovered on the empty estimate of the first minute.
OCCUPANCY_WARMUP_S = 60.0

Occupancy = Callable[[], tuple[int, Mapping[str, int]]]


def people_occupancy(app: web.Application) -> Occupancy:
    """Store and zone people from the live estimator (aggregator.occupancy_live, docs/OCCUPANCY.md): the
    same rounded figures as ``/api/occupancy`` and the retained occupancy topics, so an alert never
    disagrees with what the map and Home Assistant show."""
    ingest = app[INGEST]

    def read() -> tuple[int, dict[str, int]]:
        occ = ingest.occupancy.estimate(ingest.stream_now())
        return round(occ.people), {name: round(z.people) for name, z in occ.zones.items()}

    return read


@dataclass
class Observation:
    """One alert instance's condition now: true or not, the value and the limit, for the message."""

    key: str
    rule: AlertRule
    active: bool
    subject: str
    value: float
    limit: float


class Alerts:
    """Evaluates the rules once a second and queues a post per firing and recovery."""

    def __init__(self, config: AlertsConfig, store_id: str, state_file: Path, *, occupancy: Occupancy,
                 agents: Callable[[], Mapping[str, str]], dead_letters: Callable[[], int],
                 now: Callable[[], float] = time.time) -> None:
        self.config = config
        self.store_id = store_id
        self.occupancy = occupancy
        self.agents = agents
        self.dead_letters = dead_letters
        self.now = now
        self.outbox = WebhookOutbox(config.webhook_url, state_file)
        self.since: dict[str, float] = {}  # key -> when its condition became true (not yet fired, or firing)
        self.firing: dict[str, dict[str, Any]] = {}
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=RECENT_MAX)
        self._dead_samples: collections.deque[tuple[float, int]] = collections.deque()
        self.restored: set[str] = set()  # firing when the state file was read, not yet seen after warm-up
        self.loaded_at = 0.0

    # ------------------------------------------------------------------ state file

    def load(self) -> None:
        """Pending posts, firing alerts and recent history from the state file (blocking: executor)."""
        data = self.outbox.load()
        self.firing = {k: v for k, v in data.get("firing", {}).items() if isinstance(v, dict)}
        self.recent.extend(data.get("recent", [])[-RECENT_MAX:])
        for key, alert in self.firing.items():
            self.since[key] = float(alert.get("since", self.now()))
        self.restored = set(self.firing)
        self.loaded_at = self.now()

    @staticmethod
    def warmup_s(rule: AlertRule) -> float:
        """How long after a restart a restored firing alert's clear condition is not yet believed: the
        inputs rebuilt from nothing (the occupancy estimate; the dead-letter counter, which restarts at
        zero, so "no rise" needs a whole window) must have had time to say so. Agents' retained statuses
        arrive with the subscription, and a named agent not heard yet counts as offline: no wait."""
        if rule.kind == "occupancy":
            return max(OCCUPANCY_WARMUP_S, rule.for_s)
        if rule.kind == "dead-letters":
            return rule.window_s
        return 0.0

    def snapshot(self) -> dict[str, Any]:
        return {"firing": self.firing, "recent": list(self.recent)}

    # ------------------------------------------------------------------ evaluation

    def observe(self, now: float) -> list[Observation]:
        """Every rule's instances and whether each condition holds now."""
        out: list[Observation] = []
        people, zones = self.occupancy()
        dead_total = self.dead_letters()
        self._dead_samples.append((now, dead_total))
        longest = max((r.window_s for r in self.config.rules if r.kind == "dead-letters"), default=0.0)
        while len(self._dead_samples) > 1 and self._dead_samples[1][0] <= now - longest:
            self._dead_samples.popleft()
        agents = self.agents()
        for rule in self.config.rules:
            if rule.kind == "occupancy":
                value = zones.get(rule.zone, 0) if rule.zone else people
                subject = f"zone {rule.zone}" if rule.zone else "store"
                out.append(Observation(rule.name, rule, value > rule.max_people, subject, value, rule.max_people))
            elif rule.kind == "agent-offline":
                # A named agent never heard of counts as offline (it should be there); watching every
                # agent, only a status that says offline counts (an agent heard without one is "unknown").
                names = [rule.agent] if rule.agent else sorted(agents)
                for agent in names:
                    state = agents.get(agent, "offline")
                    offline = state != "online" if rule.agent else state == "offline"
                    out.append(Observation(f"{rule.name}:{agent}", rule, offline, f"agent {agent}",
                                           0 if offline else 1, rule.for_s / 60.0))
            else:
                rise = dead_total - self._dead_base(now - rule.window_s)
                out.append(Observation(rule.name, rule, rise > rule.max_new, "dead letters", rise, rule.max_new))
        return out

    def _dead_base(self, since: float) -> int:
        """The dead-letter total at the window's start: the last sample at or before it (else the oldest),
        as Prometheus' ``increase`` counts from the sample before the range."""
        base = self._dead_samples[0][1]
        for ts, total in self._dead_samples:
            if ts > since:
                break
            base = total
        return base

    def evaluate(self) -> int:
        """Apply hold-offs, fire and recover; returns how many posts were queued."""
        now = self.now()
        queued = 0
        for obs in self.observe(now):
            if obs.active:
                since = self.since.setdefault(obs.key, now)
                if obs.key not in self.firing and now - since >= obs.rule.for_s:
                    self._notify(obs, "firing", now, since)
                    queued += 1
            else:
                if obs.key in self.restored and now - self.loaded_at < self.warmup_s(obs.rule):
                    continue  # firing before the restart; the rebuilt input may not show it yet
                self.since.pop(obs.key, None)
                if obs.key in self.firing:
                    self._notify(obs, "recovered", now, self.firing[obs.key]["since"])
                    queued += 1
        return queued

    def _notify(self, obs: Observation, state: str, now: float, since: float) -> None:
        self.restored.discard(obs.key)
        alert = {"rule": obs.rule.name, "kind": obs.rule.kind, "state": state, "store": self.store_id,
                 "subject": obs.subject, "value": obs.value, "limit": obs.limit, "since": since, "ts": now}
        if state == "firing":
            self.firing[obs.key] = alert
        else:
            self.firing.pop(obs.key, None)
        self.recent.append(alert)
        self.outbox.add(webhook_body(self.config.format, alert, message(alert)), self.snapshot())
        log.warning("event=alert-%s rule=%s subject=%s value=%s limit=%s", state, obs.rule.name, obs.subject,
                    obs.value, obs.limit)

    def listing(self, limit: int) -> dict[str, Any]:
        """What ``/api/alerts`` answers: recent alerts newest first, what is firing, the outbox's state."""
        items = list(self.recent)[-limit:][::-1]
        return {"items": items, "firing": sorted(self.firing.values(), key=lambda a: a["ts"]),
                "pending_posts": len(self.outbox.pending), "posted": self.outbox.posted,
                "failed_attempts": self.outbox.failures, "dropped": self.outbox.dropped}


def message(alert: Mapping[str, Any]) -> str:
    """One human line for chat receivers."""
    head = f"[Floorwalker {alert['store']}]"
    subject, kind, rule, value, limit = alert["subject"], alert["kind"], alert["rule"], alert["value"], alert["limit"]
    if alert["state"] == "recovered":
        return f"{head} RECOVERED {rule}: {subject} is back to normal"
    if kind == "occupancy":
        return f"{head} ALERT {rule}: {subject} has {value} people (limit {limit})"
    if kind == "agent-offline":
        return f"{head} ALERT {rule}: {subject} offline for {limit:g} min"
    return f"{head} ALERT {rule}: {value} new dead letters (limit {limit})"


def webhook_body(fmt: str, alert: Mapping[str, Any], text: str) -> dict[str, Any]:
    """Slack reads ``text``, Discord ``content``; a plain JSON receiver gets the alert's fields too."""
    if fmt == "slack":
        return {"text": text}
    if fmt == "discord":
        return {"content": text}
    return {"text": text, "alert": dict(alert)}


class WebhookOutbox:
    """Posts waiting for the webhook, retried with back-off, kept in ``state_file`` across restarts.

    The file holds the pending posts and the alerts' state (what is firing, recent history); it is
    small (at most ``PENDING_MAX`` posts) and rewritten whole, atomically, on every change."""

    def __init__(self, url: str, state_file: Path, *, retry_min_s: float = RETRY_MIN_S,
                 retry_max_s: float = RETRY_MAX_S) -> None:
        self.url = url
        self.state_file = state_file
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self.pending: collections.deque[dict[str, Any]] = collections.deque()
        self.state: dict[str, Any] = {}
        self.posted = 0
        self.failures = 0
        self.dropped = 0
        self.wake = asyncio.Event()
        self._dirty = False

    def load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:  # a torn or foreign file: start afresh, say so once
            log.error("event=alerts-state-unreadable file=%s error=%r", self.state_file, exc)
            return {}
        if not isinstance(data, dict):
            return {}
        self.pending.extend(p for p in data.get("pending", []) if isinstance(p, dict) and "body" in p)
        for post in self.pending:
            post["due"] = 0.0  # retry at once after a restart
        self.state = {k: data.get(k) for k in ("firing", "recent") if k in data}
        return data

    def add(self, body: dict[str, Any], state: dict[str, Any]) -> None:
        self.pending.append({"body": body, "attempts": 0, "due": 0.0})
        while len(self.pending) > PENDING_MAX:
            self.pending.popleft()
            self.dropped += 1
        self.state = state
        self._dirty = True
        self.wake.set()

    def save(self) -> None:
        """Write the file (blocking: called in an executor)."""
        tmp = self.state_file.with_name(self.state_file.name + ".tmp")
        data = {"pending": list(self.pending), **self.state}
        tmp.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, self.state_file)

    async def flush_state(self) -> None:
        if self._dirty:
            self._dirty = False
            await asyncio.get_running_loop().run_in_executor(None, self.save)

    async def deliver_due(self, session: aiohttp.ClientSession, now: float) -> float:
        """Post what is due, oldest first, stopping at the first failure; returns seconds to wait."""
        while self.pending:
            post = self.pending[0]
            if post["due"] > now:
                return post["due"] - now
            delivered = await self._post(session, post["body"])
            if delivered:
                self.pending.remove(post)
                self.posted += 1
            else:
                self.failures += 1
                post["attempts"] += 1
                post["due"] = now + min(self.retry_max_s, self.retry_min_s * 2 ** (post["attempts"] - 1))
            self._dirty = True
            await self.flush_state()
            if not delivered:
                return post["due"] - now
        return EVALUATE_INTERVAL_S * 10

    async def _post(self, session: aiohttp.ClientSession, body: dict[str, Any]) -> bool:
        try:
            async with session.post(self.url, json=body, timeout=aiohttp.ClientTimeout(total=POST_TIMEOUT_S)) as resp:
                if 200 <= resp.status < 300:
                    return True
                log.warning("event=alert-post-refused status=%d url=%s", resp.status, _safe_url(self.url))
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.warning("event=alert-post-failed error=%r url=%s", exc, _safe_url(self.url))
        return False

    async def run(self) -> None:
        async with aiohttp.ClientSession() as session:
            while True:
                await self.flush_state()
                wait_s = await self.deliver_due(session, time.time())
                self.wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=max(0.05, wait_s))


def _safe_url(url: str) -> str:
    """Scheme and host only: webhook URLs carry their secret in the path."""
    parts = url.split("/")
    return "/".join(parts[:3]) + "/..." if len(parts) > 3 else url


ALERTS = web.AppKey("alerts", Alerts)


def setup(app: web.Application) -> None:
    store = app[STORE_CONFIG]
    db_path = app[DB_PATH]
    ingest = app[INGEST]
    app[ALERTS] = Alerts(store.alerts, store.id, db_path.with_name(db_path.name + "-alerts.json"),
                         occupancy=people_occupancy(app),
                         agents=lambda: {name: a.state for name, a in ingest.agents.items()},
                         dead_letters=lambda: sum(ingest.counters.rejected.values()))
    app.cleanup_ctx.append(_lifecycle)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    alerts = app[ALERTS]
    tasks: list[asyncio.Task[None]] = []
    if alerts.config.rules:
        await asyncio.get_running_loop().run_in_executor(None, alerts.load)
        tasks = [asyncio.create_task(_evaluate(alerts), name="alerts-evaluate"),
                 asyncio.create_task(alerts.outbox.run(), name="alerts-webhook")]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if tasks:
            await asyncio.get_running_loop().run_in_executor(None, alerts.outbox.save)


async def _evaluate(alerts: Alerts) -> None:
    while True:
        try:
            alerts.evaluate()
        except Exception:  # one bad pass must not end alerting
            log.exception("event=alerts-evaluate-failed")
        await asyncio.sleep(EVALUATE_INTERVAL_S)
