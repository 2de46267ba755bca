"""Linking random MACs into pseudo-devices: sequence numbers, fingerprints, RSSI and timing."""

from __future__ import annotations

from pathlib import Path

from agent import contract
from agent.config import load_device
from agent.linking import MacLinker
from agent.runtime import CountingSink, Pipeline
from agent.sources.parser import Probe, format_json
from tests.agent.helpers import write_device

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


def test_a_chain_names_its_latest_macs_and_a_lone_mac_names_none() -> None:
    linker = MacLinker()
    for i in range(6):  # a MAC per burst, the sequence number running on
        device, macs = link(linker, 20.0 * i, f"d-mac{i}", 100 + 14 * i)
    assert device == "d-mac0" and macs == 6
    assert linker.mac_ids("d-mac5") == ("d-mac2", "d-mac3", "d-mac4", "d-mac5")  # RECENT_MACS, oldest first
    link(linker, 500.0, "d-other", 9, fp=IPHONE)
    assert linker.mac_ids("d-other") == ("d-other",) and linker.mac_ids("d-never") == ()


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


class _Collect(CountingSink):
    def __init__(self, agent_id: str) -> None:
        super().__init__(agent_id)
        self.payloads: list[bytes] = []
        self.messages: list[contract.AgentMessage] = []

    def publish(self, message: contract.AgentMessage, seq: int) -> None:
        super().publish(message, seq)
        self.messages.append(message)
        self.payloads.append(contract.encode_agent(message))


IES = bytes.fromhex("0000" "010402040b16" "32080c1218243048606c" "2d1aef011bffff000000000000000000000000000000000000"
                    "dd070050f2080010ff")


def test_the_live_pipeline_links_a_phone_across_its_mac_change_and_keeps_the_fingerprint_inside(
        config_dir: Path) -> None:
    device = load_device(write_device(config_dir))
    sink = _Collect(device.agent_id)
    pipeline = Pipeline(device, sink)
    lines = [(0.0, "da:a1:19:00:00:01", 100), (0.1, "da:a1:19:00:00:01", 101), (20.0, "da:a1:19:00:00:02", 104),
             (20.1, "da:a1:19:00:00:02", 105), (40.0, "d6:00:00:00:00:09", 3000)]  # the last: another phone
    for ts, mac, seq in lines:
        probe = Probe(mac, -55, 6, seq)
        pipeline.line("s1", format_json(probe, ie=IES).rstrip(b"\n"), ts)
        pipeline.tick(ts)
    pipeline.tick(1000.0)
    presences = [m for m in sink.messages if isinstance(m, contract.Presence)]
    exits = [m for m in presences if m.kind == "exit"]
    assert len({m.device for m in presences}) == 1  # the other phone was heard once: a passer-by, no enter
    assert exits[-1].macs == 2 and exits[-1].device_kind == "person"
    assert pipeline.linker.stats == {"macs": 3, "linked": 1}
    blob = b"".join(sink.payloads)
    assert IES.hex().encode() not in blob and b"da:a1:19" not in blob and b"f-" not in blob


def test_a_bad_ie_on_the_wire_is_a_counted_rejection(config_dir: Path) -> None:
    pipeline = Pipeline(load_device(write_device(config_dir)), CountingSink("agent-t"))
    pipeline.line("s1", b'{"rssi":-55,"addr2":"da:a1:19:00:00:01","seq":1,"ie":"0z"}', 0.0)
    pipeline.line("s1", b'{"rssi":-55,"addr2":"da:a1:19:00:00:01","seq":99999}', 0.0)
    pipeline.line("s1", b'{"rssi":-55,"addr2":"da:a1:19:00:00:01","ie_ids":[1,2,"x"]}', 0.0)
    assert pipeline.rejected == {"bad-field": 3} and pipeline.readings == 0
