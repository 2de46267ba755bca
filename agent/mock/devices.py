"""The simulated phones' radios: which MAC and sequence number each probe frame carries, and its IEs.

Real phones do not send one MAC for a whole visit. Most modern phones send probe requests from a
locally administered random MAC that changes per scan burst or every few minutes, while the
802.11 sequence number keeps counting across the change and the information elements (rates,
HT/VHT/extended capabilities, vendor elements) stay those of the phone model (Vanhoef et al.,
"Why MAC address randomization is not enough", AsiaCCS 2016; Martin et al., "A study of MAC
address randomization in mobile devices and when it fails", PETS 2017). The mock world gives each
phone a :class:`Radio` built here, so the agent's linking has the same evidence as on real data,
and two phones of one model exist, as they do in a real store.

Deterministic: everything comes from the caller's seeded generator.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass

SEQ_MODULO = 4096  # the 802.11 sequence number is 12 bits
FRAMES_PER_BURST = 3  # one probe per channel scanned (1, 6, 11), ~30 ms apart
# Frames a phone sends between two of its probe bursts on the same counter (other probes, nulls);
# Vanhoef et al. 2016 saw small increments between bursts of one device, which is what links them.
SEQ_GAP_FRAMES = (0, 12)
# A phone that rotates on a timer keeps a random MAC for a few minutes (Martin et al. 2017: Android
# rotated per scan or every few minutes depending on version and screen state).
ROTATE_S = (120.0, 600.0)
# Phone vendor OUIs (IEEE registry: Apple, Samsung, Xiaomi, Huawei, Google): globally administered.
OUIS = ("a4:83:e7", "f0:18:98", "8c:f5:a3", "50:8f:4c", "64:09:80", "3c:28:6d", "dc:a6:32")


def _element(element_id: int, body: bytes) -> bytes:
    return bytes((element_id, len(body))) + body


@dataclass(frozen=True, slots=True)
class PhoneModel:
    """A phone model: the probe request's information elements, and how it randomises."""

    name: str
    ie: bytes  # tagged parameters as in the frame: wildcard SSID first, then what the model sends
    rotate_per_burst: bool  # True: a new MAC every scan burst; False: every ROTATE_S

    @property
    def ie_hex(self) -> str:
        return self.ie.hex()


def _model(name: str, *, rates: bytes, ext_rates: bytes, ht: bytes, ext_caps: bytes, vht: bytes | None,
           vendor: tuple[bytes, ...], per_burst: bool) -> PhoneModel:
    ies = _element(0, b"") + _element(1, rates) + _element(50, ext_rates) + _element(45, ht)
    ies += _element(127, ext_caps)
    if vht is not None:
        ies += _element(191, vht)
    for v in vendor:
        ies += _element(221, v)
    return PhoneModel(name, ies, per_burst)


_B_RATES = bytes.fromhex("02040b16")  # 1, 2, 5.5, 11 Mb/s (basic)
_OFDM = bytes.fromhex("0c121824")  # 6, 9, 12, 18
_EXT = bytes.fromhex("3048606c")  # 24, 36, 48, 54
_WPS = bytes.fromhex("0050f208") + bytes.fromhex("0002")  # Microsoft OUI, type 8 (many Android builds)
# A handful of models with distinct element contents, so a fingerprint tells models apart but not
# two phones of one model. The bytes are plausible capability fields, not copied from any device.
MODELS: tuple[PhoneModel, ...] = (
    _model("vendor-a phone 2021", rates=_B_RATES + _OFDM, ext_rates=_EXT,
           ht=bytes.fromhex("2d0017ff000000000000000000000000000000000000000000"),
           ext_caps=bytes.fromhex("0400000000000040"), vht=bytes.fromhex("b259820fdaff0000daff0000"),
           vendor=(bytes.fromhex("0017f20a000104000000"),), per_burst=True),
    _model("vendor-a phone 2023", rates=_B_RATES + _OFDM, ext_rates=_EXT,
           ht=bytes.fromhex("6f0117ffff0000000000000000000000000000000000000000"),
           ext_caps=bytes.fromhex("0400080000000040"), vht=bytes.fromhex("b279c333faff0c03faff0c03"),
           vendor=(bytes.fromhex("0017f20a000104000000"),), per_burst=True),
    _model("vendor-b phone", rates=_B_RATES + _OFDM, ext_rates=_EXT,
           ht=bytes.fromhex("ef0103ffff0000000000000000000000000000000000000000"),
           ext_caps=bytes.fromhex("0000080000000040"), vht=bytes.fromhex("9211c30ffaff0000faff0000"),
           vendor=(_WPS, bytes.fromhex("001018020000100000")), per_burst=False),
    _model("vendor-c phone", rates=_B_RATES + _OFDM, ext_rates=_EXT,
           ht=bytes.fromhex("2d1003ff000000000000000000000000000000000000000000"),
           ext_caps=bytes.fromhex("00000a0201404080"), vht=None, vendor=(_WPS,), per_burst=False),
    _model("vendor-d phone", rates=_B_RATES, ext_rates=_OFDM + _EXT,
           ht=bytes.fromhex("ad0117ffff0000000000000000000000000000000000000000"),
           ext_caps=bytes.fromhex("0500080000000040"), vht=bytes.fromhex("b271800ffeff0000feff0000"),
           vendor=(bytes.fromhex("00904c0408bf0c"),), per_burst=False),
)
# What a printer or a till PC's Wi-Fi adapter sends: an older chipset, no VHT.
FIXTURE_MODEL = _model("fixture adapter", rates=_B_RATES + _OFDM, ext_rates=_EXT,
                       ht=bytes.fromhex("2c0103ff000000000000000000000000000000000000000000"),
                       ext_caps=bytes.fromhex("01"), vht=None, vendor=(), per_burst=False)


def random_mac(rng: random.Random) -> str:
    """A locally administered unicast MAC, as randomising phones use."""
    first = (rng.getrandbits(8) | 0x02) & 0xFE
    return ":".join(f"{b:02x}" for b in [first, *(rng.getrandbits(8) for _ in range(5))])


def vendor_mac(rng: random.Random) -> str:
    """A globally administered MAC with a phone vendor's OUI (a phone that does not randomise)."""
    return rng.choice(OUIS) + ":" + ":".join(f"{rng.getrandbits(8):02x}" for _ in range(3))


@dataclass(frozen=True, slots=True)
class Radio:
    """One device's probe frames over one visit: per burst, the MAC and the first sequence number."""

    model: PhoneModel
    macs: tuple[str, ...]  # per burst, same order as the owner's burst times
    seqs: tuple[int, ...]

    def frame(self, burst: int, frame: int) -> tuple[str, int]:
        """``(mac, seq)`` of frame ``frame`` of burst ``burst``; seq runs on across MAC changes."""
        return self.macs[burst], (self.seqs[burst] + frame) % SEQ_MODULO

    @property
    def distinct_macs(self) -> int:
        return len(set(self.macs))


def make_radio(rng: random.Random, model: PhoneModel, bursts: tuple[float, ...], *, mac: str,
               randomized: bool) -> Radio:
    """The radio of a phone probing at ``bursts``: a fixed ``mac``, or random MACs the model's way."""
    macs: list[str] = []
    seqs: list[int] = []
    seq = rng.randrange(SEQ_MODULO)
    current = random_mac(rng) if randomized else mac
    rotate_s = rng.uniform(*ROTATE_S)
    next_rotation = (bursts[0] if bursts else 0.0) + rotate_s
    for i, ts in enumerate(bursts):
        if randomized and i > 0 and (model.rotate_per_burst or ts >= next_rotation):
            current = random_mac(rng)
            next_rotation = ts + rotate_s
        macs.append(current)
        seqs.append(seq)
        seq = (seq + FRAMES_PER_BURST + rng.randint(*SEQ_GAP_FRAMES)) % SEQ_MODULO
    return Radio(model, tuple(macs), tuple(seqs))


def burst_index(bursts: tuple[float, ...], ts: float) -> int | None:
    """Index of the burst at exactly ``ts`` (as yielded by the world), or None."""
    i = bisect.bisect_left(bursts, ts)
    return i if i < len(bursts) and bursts[i] == ts else None
