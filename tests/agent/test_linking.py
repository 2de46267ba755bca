"""Linking random MACs into pseudo-devices: sequence numbers, fingerprints, RSSI and timing."""

from __future__ import annotations

from agent.linking import MacLinker

PIXEL = "f-pixel7"  # fingerprint ids as agent.fingerprint.FingerprintHasher makes them
IPHONE = "f-iphone15"


def link(linker: MacLinker, ts: float, mac: str, seq: int, fp: str = PIXEL, rssi: float = -60.0,
         randomized: bool = True) -> tuple[str, int]:
    return linker.link(ts, mac, randomized=randomized, seq=seq, fingerprint=fp, rssi_dbm=rssi)


def test_sequence_numbers_continuing_across_a_mac_change_join() -> None:
    linker = MacLinker()
    first, _ = link(linker, 0.0, "d-mac1", 4090)
    link(linker, 0.02, "d-mac1", 4091)
    device, macs = link(linker, 30.0, "d-mac2", 4094)
    assert device == first and macs == 2
    device, macs = link(linker, 50.0, "d-mac3", 2)  # wrapped past 4095: still continuing
    assert device == first and macs == 3
    device, macs = link(linker, 60.0, "d-mac4", 5)
    assert device == first and macs == 4
    assert link(linker, 61.0, "d-mac2", 6)[0] == first  # an old MAC of the chain is still the device


def test_a_fingerprint_mismatch_keeps_two_devices_apart() -> None:
    linker = MacLinker()
    a, _ = link(linker, 0.0, "d-mac1", 100, fp=PIXEL)
    b, macs = link(linker, 5.0, "d-mac2", 101, fp=IPHONE)
    assert a != b and macs == 1


def test_two_phones_of_one_model_interleaved_stay_two() -> None:
    linker = MacLinker()
    seqs = {"one": 200, "two": 2900}  # counters of two phones are anywhere in 0..4095
    devices: dict[str, set[str]] = {"one": set(), "two": set()}
    for burst in range(20):  # each phone takes a new MAC for every burst, bursts alternate
        for phone, rssi in (("one", -55.0), ("two", -62.0)):
            seqs[phone] = (seqs[phone] + 7) % 4096
            device, _ = link(linker, burst * 10.0 + (phone == "two"), f"d-{phone}-{burst}", seqs[phone],
                             rssi=rssi)
            devices[phone].add(device)
    assert len(devices["one"]) == 1 and len(devices["two"]) == 1
    assert devices["one"] != devices["two"]


def test_no_link_after_a_long_gap_a_backwards_step_or_a_far_rssi() -> None:
    linker = MacLinker(gap_s=60.0, rssi_tolerance_db=15.0)
    a, _ = link(linker, 0.0, "d-mac1", 100)
    assert link(linker, 200.0, "d-mac2", 101)[0] != a  # silent too long
    b, _ = link(linker, 300.0, "d-mac3", 100)
    assert link(linker, 301.0, "d-mac4", 99)[0] != b  # the counter does not run backwards
    c, _ = link(linker, 400.0, "d-mac5", 500, rssi=-50.0)
    assert link(linker, 401.0, "d-mac6", 501, rssi=-85.0)[0] != c  # 35 dB apart: another phone


def test_global_macs_and_probes_without_seq_or_fingerprint_are_never_linked() -> None:
    linker = MacLinker()
    a, _ = link(linker, 0.0, "d-global", 100, randomized=False)
    assert a == "d-global"
    assert link(linker, 1.0, "d-rand", 101)[0] == "d-rand"  # a random MAC does not join a global one
    assert linker.link(2.0, "d-bare", randomized=True, seq=None, fingerprint=None, rssi_dbm=-60) == ("d-bare", 1)


def test_state_is_bounded() -> None:
    linker = MacLinker(max_macs=1000, gap_s=10.0)
    for i in range(20_000):
        link(linker, i * 1.0, f"d-{i}", (i * 1000) % 4096, fp=f"f-{i % 50}")
    assert linker.tracked_macs <= 1000
    assert linker.open_chains <= 11  # only chains heard in the last gap_s stay open
