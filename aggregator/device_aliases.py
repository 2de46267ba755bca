"""Which agents' pseudo-devices are one phone: a union-find over MAC ids, with expiry.

Each agent links a rotating phone's random MACs on its own (:mod:`agent.linking`) and names the
chain after the first MAC *it* heard, so two agents that started the chain at different MACs report
two device ids for one phone (occ-live measured 1.65 ids per per-burst-rotating phone in the
simulated store). A linked chain's presence reports carry its latest MAC ids (``mac_ids``, keyed
hashes like ``device``, docs/MQTT.md), and a device id is itself the id of a MAC (the chain's first,
or the MAC's own when nothing was linked). Two reports that share a MAC id are one phone: this joins
them under one canonical id (the root).

Merging relabels the smaller group into the larger, so a lookup is one dict access. Memory is
bounded: a group keeps its latest :data:`MAX_IDS_PER_DEVICE` ids, and the caller forgets a group when
its device leaves (:meth:`forget`), as live occupancy does on exits and after its stale bound.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

# Ids kept per phone: a phone rotating its MAC every burst (every 8-30 s in use) runs through 32 MACs in
# 4-16 minutes; agents report their chain's latest 4 ids, so older ones no longer join anything.
MAX_IDS_PER_DEVICE = 32


class DeviceAliases:
    """MAC ids in, the canonical device id of the phone they belong to out. One thread (the event loop)."""

    def __init__(self, max_ids_per_device: int = MAX_IDS_PER_DEVICE) -> None:
        self.max_ids = max_ids_per_device
        self._root: dict[str, str] = {}  # MAC id -> root
        self._members: dict[str, OrderedDict[str, None]] = {}  # root -> its MAC ids, oldest first

    def find(self, device: str) -> str:
        """The root ``device`` was joined into, or ``device`` itself."""
        return self._root.get(device, device)

    def join(self, device: str, mac_ids: Iterable[str] = ()) -> tuple[str, list[str]]:
        """Join ``device`` and ``mac_ids`` (one report's ids) into one phone.

        Returns ``(root, absorbed)``: the phone's canonical id and the roots that were merged into it
        (the caller moves what it knew under those ids to ``root``)."""
        ids = (device, *mac_ids)
        roots = list(dict.fromkeys(self._root[i] for i in ids if i in self._root))
        if len(roots) == 1:  # nearly every report: a phone already known, its ids only getting younger
            root, absorbed = roots[0], []
        elif not roots:
            root, absorbed = device, []
            self._members[root] = OrderedDict()
        else:
            root = max(roots, key=lambda r: len(self._members[r]))
            absorbed = [r for r in roots if r != root]
        members = self._members[root]
        for other in absorbed:
            for mac_id in self._members.pop(other):
                self._root[mac_id] = root
                members[mac_id] = None
        for mac_id in ids:
            self._root[mac_id] = root
            members[mac_id] = None
            members.move_to_end(mac_id)
        excess = len(members) - self.max_ids
        if excess > 0:  # the oldest ids go; the root's own stays, it names the group
            for old in [m for m in members if m != root][:excess]:
                del members[old]
                if self._root.get(old) == root:
                    del self._root[old]
        return root, absorbed

    def size(self, root: str) -> int:
        """How many MAC ids the phone was reported under (1 when it was never joined)."""
        members = self._members.get(root)
        return 1 if members is None else max(1, len(members))

    def forget(self, root: str) -> None:
        """The phone left: its ids name nothing any more."""
        for mac_id in self._members.pop(root, ()):
            if self._root.get(mac_id) == root:
                del self._root[mac_id]
        if self._root.get(root) == root:
            del self._root[root]

    def __len__(self) -> int:
        return len(self._root)
