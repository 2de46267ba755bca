"""MAC addresses become keyed hashes at the edge, the moment a line is parsed.

HMAC-SHA256 keyed with the store secret: every agent of a store computes the same id for the same
phone (so the aggregator can merge what several agents hear), while nobody without the secret can
test a guessed MAC against an id, which a plain hash would allow (the MAC space is small).
With daily rotation the day (in the store's time zone) joins the key material, so ids of two days
cannot be linked. A MAC whose first octet has the locally-administered bit (0x02) set is a
randomised MAC (iOS and Android privacy addresses), flagged so analytics can treat it with care.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

ID_PREFIX = "d-"
ID_HEX_CHARS = 16  # 64 bits: collisions among a store's few thousand daily devices are negligible
_CACHE_LIMIT = 100_000  # hashes remembered per day; a busy store sees a few thousand devices


# A MAC anywhere in a text: six hex octets with ':' or '-' or nothing between them, not part of a
# longer hex run (so a 16-hex hashed id never matches). Used wherever text from outside is written down.
MAC_IN_TEXT = re.compile(r"(?i)(?<![0-9a-f])[0-9a-f]{2}([:-]?)(?:[0-9a-f]{2}\1){4}[0-9a-f]{2}(?![0-9a-f])")
_MAC_IN_BYTES = re.compile(MAC_IN_TEXT.pattern.encode())
MAC_REDACTED = "<mac-redacted>"


def contains_mac(text: str) -> bool:
    return MAC_IN_TEXT.search(text) is not None


def redact_macs(data: str) -> str:
    """``data`` with anything MAC-shaped replaced, for text that must be kept (dead letters, logs)."""
    return MAC_IN_TEXT.sub(MAC_REDACTED, data)


def redact_macs_bytes(data: bytes) -> bytes:
    return _MAC_IN_BYTES.sub(MAC_REDACTED.encode(), data)


def is_randomized(mac: str) -> bool:
    """True when the locally-administered bit of the first octet is set (``x2``, ``x6``, ``xA``, ``xE``)."""
    return bool(int(mac[0:2], 16) & 0x02)


class DeviceHasher:
    """``device_id(mac, ts)`` -> ``d-<16 hex>``; cached, because the same phone probes again and again."""

    def __init__(self, secret: str, *, rotate_daily: bool = False, timezone: str = "UTC") -> None:
        self._key = secret.encode()
        self.rotate_daily = rotate_daily
        self._tz = ZoneInfo(timezone)
        self._cache: dict[str, str] = {}
        self._day = ""
        self._day_ends_ts = float("-inf")
        self._day_starts_ts = float("inf")

    def _day_for(self, ts: float) -> str:
        if not (self._day_starts_ts <= ts < self._day_ends_ts):
            local = datetime.fromtimestamp(ts, self._tz)
            start = local.replace(hour=0, minute=0, second=0, microsecond=0)
            end = (start + timedelta(days=1, hours=2)).replace(hour=0)  # DST-safe next local midnight
            self._day = start.date().isoformat()
            self._day_starts_ts = start.timestamp()
            self._day_ends_ts = end.timestamp()
            self._cache.clear()
        return self._day

    def device_id(self, mac: str, ts: float = 0.0) -> str:
        """The hashed id of a normalised MAC (``aa:bb:cc:dd:ee:ff``) seen at ``ts``."""
        if self.rotate_daily:
            self._day_for(ts)
        cached = self._cache.get(mac)
        if cached is not None:
            return cached
        material = bytes.fromhex(mac.replace(":", ""))
        if self.rotate_daily:
            material = self._day.encode() + b"|" + material
        digest = hmac.new(self._key, material, hashlib.sha256).hexdigest()
        device = ID_PREFIX + digest[:ID_HEX_CHARS]
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[mac] = device
        return device
