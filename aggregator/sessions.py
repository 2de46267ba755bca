"""Browser sessions after one login: signed cookie values, checked in constant time, revocable.

A session is ``<expires_ts>.<nonce>.<signature>``: the signature is an HMAC-SHA256 over the first
two parts with a key derived from the API token, so

- nothing is stored per session (an aggregator restart does not log the store's screens out),
- a new API token ends every session at once (the key changes with it),
- a logout revokes its nonce for the rest of the session's life (kept in memory: the browser has
  dropped the cookie too, so a restart only matters for a copy of the cookie taken before logout).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Final

from aiohttp import web

COOKIE_NAME: Final = "floorwalker_session"
# A week: a wall display is not sent back to the login page every morning; a logout or a new
# API token ends a session sooner.
SESSION_MAX_AGE_S: Final = 7 * 24 * 3600
_KEY_LABEL: Final = b"floorwalker browser session v1"
_MAX_COOKIE_CHARS: Final = 200  # a real value is ~100 characters; anything longer is not ours


class Sessions:
    """Issues and checks session cookie values for one API token (none: no sessions at all)."""

    def __init__(self, token: str, *, max_age_s: float = SESSION_MAX_AGE_S) -> None:
        self.enabled = bool(token)
        self.max_age_s = max_age_s
        self._token = token.encode()
        self._key = hmac.new(self._token, _KEY_LABEL, hashlib.sha256).digest()
        self._revoked: dict[str, float] = {}  # nonce -> expires_ts

    def token_matches(self, presented: str) -> bool:
        """The API token itself, compared in constant time (never true without a token)."""
        return self.enabled and hmac.compare_digest(presented.encode(), self._token)

    def issue(self, now_s: float | None = None) -> str:
        expires = int((time.time() if now_s is None else now_s) + self.max_age_s)
        payload = f"{expires}.{secrets.token_urlsafe(18)}"
        return f"{payload}.{self._sign(payload)}"

    def expires_ts(self, value: str, now_s: float | None = None) -> float | None:
        """When this cookie value's session ends, or None when it is not a live session."""
        if not self.enabled or not value or len(value) > _MAX_COOKIE_CHARS or value.count(".") != 2:
            return None
        payload, _, signature = value.rpartition(".")
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            return None
        expires_raw, _, nonce = payload.partition(".")
        try:
            expires = float(int(expires_raw))
        except ValueError:
            return None
        now = time.time() if now_s is None else now_s
        if expires <= now or nonce in self._revoked:
            return None
        return expires

    def valid(self, value: str, now_s: float | None = None) -> bool:
        return self.expires_ts(value, now_s) is not None

    def revoke(self, value: str, now_s: float | None = None) -> None:
        """End this session even if a copy of the cookie is presented again (logout)."""
        now = time.time() if now_s is None else now_s
        expires = self.expires_ts(value, now)
        self._revoked = {n: t for n, t in self._revoked.items() if t > now}  # forget the expired
        if expires is not None:
            self._revoked[value.split(".")[1]] = expires

    def _sign(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()


SESSIONS = web.AppKey("sessions", Sessions)
