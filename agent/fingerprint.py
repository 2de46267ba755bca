"""A probe request's information-element fingerprint: what stays the same across a phone's random MACs.

A phone that randomises its MAC still sends the same set of tagged parameters, in the same order,
with the same capability contents, in every probe request (Vanhoef et al. 2016, "Why MAC address
randomization is not enough", sec. 4: the IE set and order, the supported rates, HT/VHT and
extended capabilities and the vendor elements are stable per device model and OS version). That
is the fingerprint: the element ids in order, the vendor OUIs (and vendor type), and the content of
supported rates (1), extended rates (50), HT capabilities (45), extended capabilities (127), VHT
capabilities (191) and the HE capabilities extension (255/35).

Left out on purpose: the SSID (0: identifies a home, and changes between directed probes), the DS
parameter set (3: the channel the frame went out on) and every vendor element's payload (some
carry per-frame counters). A fingerprint names a phone *model*, not a phone: two phones of one
model share it, which is why linking also needs sequence numbers and timing (:mod:`agent.linking`).

The material only lives in memory between the parser and :class:`FingerprintHasher`, which keeps it
as a keyed hash (HMAC with the store secret, like :mod:`agent.privacy` does for MACs).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Final

MAX_IE_HEX: Final = 1024  # 512 bytes of IEs: a real probe request carries 100-300 (Brno pcaps: 60-280)
MAX_IE_IDS: Final = 64  # pre-digested form: element ids; a probe request has 5-15
MAX_OUIS: Final = 16
# Elements whose content is the same in every probe request of one device (Vanhoef et al. 2016, table 2).
_CONTENT_IDS: Final = frozenset({1, 45, 50, 127, 191})
_EXT_CONTENT_IDS: Final = frozenset({35})  # element 255 (extension), HE capabilities
VENDOR_ID: Final = 221
EXTENSION_ID: Final = 255


def from_ies(ie: bytes) -> bytes:
    """The fingerprint material of raw tagged parameters; a truncated last element is left out.

    Never raises: a damaged frame gives a shorter fingerprint, which at worst links less."""
    parts: list[bytes] = []
    i, n = 0, len(ie)
    while i + 2 <= n:
        eid, length = ie[i], ie[i + 1]
        body = ie[i + 2:i + 2 + length]
        if len(body) < length:
            break
        if eid == VENDOR_ID:
            # OUI and vendor type (Microsoft WPS/WMM and Apple's elements differ by type)
            parts.append(b"v" + body[:4])
        elif eid == EXTENSION_ID and body:
            ext = body[0]
            parts.append(b"x" + bytes([ext]) + (body[1:] if ext in _EXT_CONTENT_IDS else b""))
        elif eid in _CONTENT_IDS:
            parts.append(b"c" + bytes([eid, length]) + body)
        else:
            parts.append(b"e" + bytes([eid]))
        i += 2 + length
    return b"|".join(parts)


def from_digest(ids: Sequence[int], ouis: Sequence[int]) -> bytes:
    """The material of a sniffer that reports only element ids and vendor OUIs (the Brno CSV's form).

    Coarser than :func:`from_ies` (no capability contents), so it separates fewer models."""
    return b"i" + bytes(ids) + b"|o" + b"".join(o.to_bytes(3, "big") for o in ouis)


def parse_ie_hex(value: object) -> bytes | None:
    """Raw IEs from the protocol's ``ie`` hex string, or None when it is not one (a counted rejection)."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_IE_HEX or len(value) % 2:
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None


def parse_id_list(value: object, limit: int, top: int) -> list[int] | None:
    """A list of small non-negative integers (element ids, OUIs), or None when it is not one."""
    if not isinstance(value, list) or len(value) > limit:
        return None
    out: list[int] = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= top:
            return None
        out.append(v)
    return out


class FingerprintHasher:
    """Fingerprint material -> ``f-<16 hex>``, keyed with the store secret; cached, as models repeat."""

    _CACHE_LIMIT = 10_000  # distinct models a day: a few hundred in a busy store

    def __init__(self, secret: str) -> None:
        self._key = b"fingerprint|" + secret.encode()
        self._cache: dict[bytes, str] = {}

    def hash(self, material: bytes) -> str:
        cached = self._cache.get(material)
        if cached is not None:
            return cached
        digest = "f-" + hmac.new(self._key, material, hashlib.sha256).hexdigest()[:16]
        if len(self._cache) >= self._CACHE_LIMIT:
            self._cache.clear()
        self._cache[material] = digest
        return digest
