"""Agents' pseudo-devices that share a MAC id are one phone: joins, merges, bounds and forgetting."""

from __future__ import annotations

from aggregator.device_aliases import DeviceAliases


def test_reports_that_share_a_mac_id_are_one_phone() -> None:
    aliases = DeviceAliases()
    assert aliases.join("d-m1") == ("d-m1", [])  # agent-1 names the chain after m1
    assert aliases.join("d-m3") == ("d-m3", [])  # agent-2 first heard the phone at m3
    assert aliases.join("d-m1", ("d-m2", "d-m3")) == ("d-m1", ["d-m3"])  # agent-1's chain reached m3
    assert aliases.find("d-m3") == aliases.find("d-m2") == "d-m1"
    assert aliases.join("d-m3", ("d-m4",)) == ("d-m1", [])  # agent-2's later reports land on the phone
    assert aliases.size("d-m1") == 4
    assert aliases.find("d-unknown") == "d-unknown" and aliases.size("d-unknown") == 1


def test_two_phones_stay_two_and_a_forgotten_phone_names_nothing() -> None:
    aliases = DeviceAliases()
    aliases.join("d-a1", ("d-a2",))
    aliases.join("d-b1", ("d-b2",))
    assert aliases.find("d-a2") == "d-a1" and aliases.find("d-b2") == "d-b1"
    aliases.forget("d-a1")
    assert aliases.find("d-a2") == "d-a2" and len(aliases) == 2


def test_a_phone_keeps_only_its_latest_ids_and_its_own_name() -> None:
    aliases = DeviceAliases(max_ids_per_device=4)
    for i in range(1, 20):
        root, _ = aliases.join("d-m0", (f"d-m{i}",))
    assert root == "d-m0" and aliases.size(root) == 4 and len(aliases) == 4
    assert aliases.find("d-m19") == "d-m0" and aliases.find("d-m1") == "d-m1"  # the oldest went
