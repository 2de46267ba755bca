"""Successive random MACs of one phone, joined into one pseudo-device.

A phone that randomises its MAC changes it every few minutes or every scan, but (Vanhoef et al.
2016, sec. 5; Simončič et al. 2023) it usually keeps counting 802.11 sequence numbers across the
change, sends the same information elements (:mod:`agent.fingerprint`) and is heard at about the
same signal strength. So when a MAC the agent has never heard appears, and a pseudo-device with
the same fingerprint fell silent at most ``gap_s`` ago with a sequence number a few steps behind
and a compatible RSSI, the new MAC joins it. Among several candidates the one whose sequence
number continues most closely wins: two phones of one model, interleaved, stay two, as their
counters are hundreds apart.

Only randomised MACs are linked (a globally administered MAC is the phone's own, and stable), and
only MACs with a sequence number and a fingerprint: without them there is nothing to link on.

State is bounded: open chains older than ``gap_s`` are dropped as time passes, and the map from
MAC ids to pseudo-devices is a least-recently-used cache of ``max_macs`` entries. Everything is
already a keyed hash here (MAC ids from :mod:`agent.privacy`, fingerprints from
:class:`agent.fingerprint.FingerprintHasher`).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

# How many of a chain's latest MAC ids a presence report carries (``mac_ids``, docs/MQTT.md): enough that
# two agents that report the same phone a few bursts apart share one, few enough to keep reports short.
RECENT_MACS = 4


@dataclass(slots=True)
class _Chain:
    device: str  # the pseudo-device id: the MAC id of the chain's first MAC
    fingerprint: str
    last_ts: float
    last_seq: int
    rssi_dbm: float
    mac: str  # the MAC id heard last
    macs: int = 1
    recent: tuple[str, ...] = ()  # the latest RECENT_MACS MAC ids linked into it, oldest first


class MacLinker:
    """MAC id in, pseudo-device id out. One thread (the agent's pipeline, or replay)."""

    def __init__(self, *, gap_s: float = 60.0, max_seq_step: int = 128, rssi_tolerance_db: float = 15.0,
                 max_macs: int = 50_000) -> None:
        # gap_s: the Brno days' same-fingerprint successors follow within seconds when the sequence
        # number continues (docs/OCCUPANCY.md); a minute leaves room for a missed burst.
        self.gap_s = gap_s
        # max_seq_step: a scan burst sends one probe per channel (13 on 2.4 GHz) and the phone sends
        # other frames between bursts; 128 steps is a few bursts, still 3 % of the 4,096 numbers.
        self.max_seq_step = max_seq_step
        self.rssi_tolerance_db = rssi_tolerance_db
        self.max_macs = max_macs
        self._by_mac: OrderedDict[str, _Chain] = OrderedDict()  # MAC id -> its chain (LRU)
        self._open: OrderedDict[str, _Chain] = OrderedDict()  # device -> chain, by last_ts (oldest first)
        self.stats = {"macs": 0, "linked": 0}  # random MACs with seq and fingerprint; of those, linked

    def link(self, ts: float, mac: str, *, randomized: bool, seq: int | None, fingerprint: str | None,
             rssi_dbm: float) -> tuple[str, int]:
        """``(pseudo-device id, MACs linked into it so far)`` for a sighting of MAC id ``mac``."""
        chain = self._by_mac.get(mac)
        if chain is not None:
            self._by_mac.move_to_end(mac)
            self._heard(chain, ts, seq, rssi_dbm, mac)
            return chain.device, chain.macs
        if not randomized or seq is None or fingerprint is None:
            return mac, 1  # nothing to link on, so nothing to remember (the agent's hot path)
        self.stats["macs"] += 1
        self._expire(ts)
        chain = self._best(ts, seq, fingerprint, rssi_dbm)
        if chain is None:
            chain = _Chain(mac, fingerprint, ts, seq, rssi_dbm, mac, recent=(mac,))
        else:
            chain.macs += 1
            chain.recent = (*chain.recent[1 - RECENT_MACS:], mac)
            self.stats["linked"] += 1
        self._remember(mac, chain)
        self._heard(chain, ts, seq, rssi_dbm, mac)
        return chain.device, chain.macs

    def mac_ids(self, mac: str) -> tuple[str, ...]:
        """The latest MAC ids of the chain ``mac`` belongs to (oldest first), or () when it is in none.

        Agents link on their own and name a chain after the first MAC each heard, so two agents that
        heard one rotating phone from different first MACs name it differently; these ids (keyed hashes,
        like the device id) let the aggregator see that the two chains share a MAC and are one phone."""
        chain = self._by_mac.get(mac)
        return () if chain is None else chain.recent

    def _best(self, ts: float, seq: int, fingerprint: str, rssi_dbm: float) -> _Chain | None:
        best: _Chain | None = None
        best_step = self.max_seq_step + 1
        for chain in self._open.values():
            if chain.fingerprint != fingerprint or chain.last_seq < 0:
                continue
            step = (seq - chain.last_seq) % 4096
            if 0 < step < best_step and abs(rssi_dbm - chain.rssi_dbm) <= self.rssi_tolerance_db \
                    and ts - chain.last_ts <= self.gap_s:
                best, best_step = chain, step
        return best

    def _heard(self, chain: _Chain, ts: float, seq: int | None, rssi_dbm: float, mac: str) -> None:
        if ts >= chain.last_ts:
            chain.last_ts = ts
            if seq is not None:
                chain.last_seq = seq
            chain.mac = mac
        chain.rssi_dbm += 0.3 * (rssi_dbm - chain.rssi_dbm)  # smoothed: RSSI jumps 5-10 dB frame to frame
        if chain.fingerprint and chain.last_seq >= 0:
            self._open[chain.device] = chain
            self._open.move_to_end(chain.device)

    def _remember(self, mac: str, chain: _Chain) -> None:
        self._by_mac[mac] = chain
        if len(self._by_mac) > self.max_macs:
            self._by_mac.popitem(last=False)

    def _expire(self, now: float) -> None:
        horizon = now - self.gap_s
        opened = self._open
        while opened:
            chain = next(iter(opened.values()))
            if chain.last_ts >= horizon:
                break
            opened.popitem(last=False)

    @property
    def tracked_macs(self) -> int:
        return len(self._by_mac)

    @property
    def open_chains(self) -> int:
        return len(self._open)
