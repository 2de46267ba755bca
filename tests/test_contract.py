"""The MQTT contract: topics, round trips, the seed-000 examples, and typed rejections."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent import contract as c


def presence(kind: str = "move", **over: object) -> c.Presence:
    fields = dict(kind=kind, msg_id="agent-1:42", agent="agent-1", ts=1795435593.25, device="d-4f2a9c",
                  x=700.5, y=300.0, accuracy_m=2.5, rssi_dbm=-67.0, distance_m=3.1, randomized=True,
                  ranges=(c.Range("s1", 600.0, 330.0, -67.0, 3.1),))
    fields.update(over)
    return c.Presence(**fields)


AGENT_MESSAGES = [
    presence("enter"), presence("move"), presence("exit", ranges=()),
    presence("enter", device_kind="fixture", macs=3), presence("move", device_kind="neighbour"),
    c.Motion("agent-1:43", "agent-1", 1795435594.0, "pir-womens", "Women's", True),
    c.Door("agent-1:44", "agent-1", 1795435595.0, "door-main", "in"),
    c.Link("agent-1:45", "agent-1", 1795435596.0, "d-4f2a9c", "7"),
    c.Health("agent-1:46", "agent-1", 1795435597.0, 3600.0, 12.5, 0, 3, 1, {"garbage": 2}),
    c.online("agent-1", 1795435598.0), c.offline("agent-1"),
]


@pytest.mark.parametrize("message", AGENT_MESSAGES, ids=lambda m: type(m).__name__ + ":" + m.kind)
def test_agent_round_trip(message: c.AgentMessage) -> None:
    topic = c.agent_topic("demo", "agent-1", message.kind)
    assert c.parse_agent_topic(topic) == ("demo", "agent-1", message.kind)
    assert c.decode_agent(topic, c.encode_agent(message)) == message


def test_topics_refuse_wildcards_and_unknown_kinds() -> None:
    for bad in ("a/b", "+", "#", ""):
        with pytest.raises(ValueError):
            c.agent_topic("demo", bad, "move")
    with pytest.raises(ValueError, match="unknown agent message kind"):
        c.agent_topic("demo", "agent-1", "teleport")
    assert c.agent_subscription("demo") == "floorwalker/demo/agents/+/+"
    with pytest.raises(ValueError, match="wildcards"):
        c.CustomerTopics.from_env({"MOVE_TOPIC": "customer/#"})


def test_customer_topics_from_env() -> None:
    topics = c.CustomerTopics.from_env({"ENTER_TOPIC": "shop/in", "COUPON_PREDICTION_TOPIC": "shop/coupon"})
    assert topics.enter == "shop/in" and topics.prediction == "shop/coupon" and topics.move == "customer/move"
    assert topics.kind_of("shop/coupon") == "prediction" and topics.kind_of("x") is None


TOPIC = "floorwalker/demo/agents/agent-1/move"
GOOD = json.loads(c.encode_agent(presence()))


@pytest.mark.parametrize(("payload", "reason"), [
    (b"not json", "not-json"),
    (b"\xff\xfe\x00garbage", "not-json"),
    (b"[1,2,3]", "not-object"),
    (b"{" * 5000 + b"}" * 5000, "not-json"),
    (b'{"a":"' + b"x" * (c.MAX_PAYLOAD_BYTES + 1) + b'"}', "too-large"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "device"}).encode(), "missing-field"),
    (json.dumps({**GOOD, "x": "700"}).encode(), "wrong-type"),
    (json.dumps({**GOOD, "x": True}).encode(), "wrong-type"),
    (json.dumps({**GOOD, "ts": -5}).encode(), "bad-value"),
    (json.dumps({**GOOD, "accuracy_m": -1}).encode(), "bad-value"),
    (json.dumps({**GOOD, "agent": "agent-2"}).encode(), "agent-mismatch"),
    (json.dumps({**GOOD, "ranges": "lots"}).encode(), "wrong-type"),
    (json.dumps({**GOOD, "device": ""}).encode(), "bad-value"),
    (json.dumps({**GOOD, "device": "AA-BB-CC-DD-EE-0F"}).encode(), "raw-mac"),
    (json.dumps({**GOOD, "device": "aabbccddee0f"}).encode(), "raw-mac"),
    (b'{"msg_id":"a","agent":"agent-1","ts":1e999,"device":"d","x":1,"y":1}', "not-json"),  # not a double: RFC 8259
    (b'{"msg_id":"a","agent":"agent-1","ts":NaN}', "not-json"),  # NaN is not JSON (RFC 8259)
    (json.dumps({**GOOD, "kind": 3}).encode(), "wrong-type"),
    (json.dumps({**GOOD, "kind": "ghost"}).encode(), "bad-value"),
    (json.dumps({**GOOD, "macs": 1.5}).encode(), "wrong-type"),
    (json.dumps({**GOOD, "macs": True}).encode(), "wrong-type"),
    (json.dumps({**GOOD, "macs": 0}).encode(), "bad-value"),
])
def test_bad_agent_payloads_are_typed_rejections(payload: bytes, reason: str) -> None:
    result = c.decode_agent(TOPIC, payload)
    assert isinstance(result, c.Rejection), result
    assert result.reason == reason, result
    assert not result


@pytest.mark.parametrize(("changes", "reason"), [
    ({"agent": "agent-2", "x": "700", "device": None}, "agent-mismatch"),  # the agent match comes before the rest
    ({"x": "700", "msg_id": None}, "missing-field"),  # msg_id first, wherever its key is
    ({"y": None, "ts": -5}, "bad-value"),  # ts before the position
    ({"mac_ids": [7], "device": "aa:bb:cc:dd:ee:ff"}, "raw-mac"),  # device before mac_ids
    ({"x": "700", "extra": float("nan")}, "not-json"),  # what is not JSON is said first
    ({"accuracy_m": -1, "distance_m": "x"}, "wrong-type"),  # both numbers before both >= 0
    # in a range, distance_m is looked at first
    ({"ranges": [{"sniffer": 1, "x": 1.0, "y": 1.0, "rssi_dbm": 1.0, "distance_m": -1}]}, "bad-value"),
])
def test_a_payload_with_several_faults_is_counted_under_the_first_in_the_contracts_order(
        changes: dict[str, object], reason: str) -> None:
    doc = {**GOOD, **changes}
    ordered = dict(sorted(doc.items(), key=lambda kv: kv[0] not in ("x", "y", "extra", "mac_ids")))  # faults first
    for data in (doc, ordered):
        result = c.decode_agent(TOPIC, json.dumps(data, allow_nan=True).encode())
        assert isinstance(result, c.Rejection) and result.reason == reason, (data, result)


def test_kind_and_macs_are_optional_with_defaults_and_left_out_when_default() -> None:
    payload = c.encode_agent(presence())
    assert b'"kind"' not in payload and b'"macs"' not in payload  # an older aggregator reads it as before
    decoded = c.decode_agent(TOPIC, payload)
    assert decoded.device_kind == "person" and decoded.macs == 1
    linked = c.decode_agent(TOPIC, json.dumps({**GOOD, "kind": "fixture", "macs": 4}).encode())
    assert linked.device_kind == "fixture" and linked.macs == 4
    fields = c.presence_fields(TOPIC, json.dumps({**GOOD, "kind": "neighbour", "macs": 2}).encode())
    assert fields is not None and fields[12:] == ("neighbour", 2, ())


MAC_IDS = ["d-1a2b3c4d5e6f7081", "d-2b3c4d5e6f708192"]  # as agent.privacy.DeviceHasher makes them


def test_mac_ids_are_optional_left_out_when_empty_and_round_trip() -> None:
    """A linked chain's latest MAC ids (keyed hashes) let the aggregator join agents' chains of one phone."""
    assert b'"mac_ids"' not in c.encode_agent(presence())  # an older aggregator reads it as before
    assert c.decode_agent(TOPIC, c.encode_agent(presence())).mac_ids == ()
    linked = presence()._replace(macs=2, mac_ids=tuple(MAC_IDS))
    payload = c.encode_agent(linked)
    assert json.loads(payload)["mac_ids"] == MAC_IDS
    assert c.decode_agent(TOPIC, payload) == linked
    fields = c.presence_fields(TOPIC, payload)  # the aggregator's MQTT process agrees with decode_agent
    assert fields is not None and c.Presence(*fields[:11], tuple(c.Range(*r) for r in fields[11]),
                                             *fields[12:]) == linked


@pytest.mark.parametrize(("mac_ids", "reason"), [
    ("d-1a2b3c4d5e6f7081", "wrong-type"),  # not a list
    ([f"d-{i:016x}" for i in range(c.MAX_MAC_IDS + 1)], "wrong-type"),  # too many
    ([7], "wrong-type"),
    ([""], "wrong-type"),
    (["aa:bb:cc:dd:ee:ff"], "raw-mac"),  # a leak: refused, never stored
])
def test_bad_mac_ids_are_typed_rejections_on_both_paths(mac_ids: object, reason: str) -> None:
    payload = json.dumps({**GOOD, "mac_ids": mac_ids}).encode()
    result = c.decode_agent(TOPIC, payload)
    assert isinstance(result, c.Rejection) and result.reason == reason, result
    assert c.presence_fields(TOPIC, payload) is None  # the fast path leaves it to decode_agent


def test_bad_topic_is_a_rejection() -> None:
    assert c.decode_agent("floorwalker/demo/agents/agent-1/teleport", b"{}").reason == "bad-topic"
    assert c.decode_agent("customer/move", b"{}").reason == "bad-topic"


def test_customer_events_emit_integers() -> None:
    move = json.loads(c.encode_customer(c.CustomerEvent("move", "4", 1735747200.9, 957.43, 219.47)))
    assert move == {"id": "4", "ts": 1735747200, "x": 957, "y": 219}
    assert json.loads(c.encode_customer(c.CustomerEvent("enter", "2", 1795435593.0))) == {"id": "2", "ts": 1795435593}
    browse = json.loads(c.encode_customer(c.CustomerEvent("browsing", "7", 5.0, 10.2, 20.7, "Men")))
    assert browse == {"id": "7", "ts": 5, "dep": "Men", "x": 10, "y": 21}


def test_prediction_fills_how_many_from_the_services_spelling() -> None:
    p = c.Prediction("11", {"id": "1", "how_many_products_required": 3}, 1618300000.5)
    out = json.loads(c.encode_prediction(p))
    assert out["customer"] == {"id": "11"} and out["coupon"]["how_many"] == 3 and out["ts"] == 1618300000


def _examples(shared_dir: Path) -> dict[str, object]:
    return json.loads((shared_dir / "reference/retail-demo/mqtt_payload_examples.json").read_text())


def test_every_seed000_customer_example_decodes(shared_dir: Path) -> None:
    examples = _examples(shared_dir)
    decoded = 0
    for name, payload in examples.items():
        if not name.startswith("customer/"):
            continue
        kind = name.split()[0].split("/")[1]
        if kind == "focus":  # an internal topic of the demo's recommendation service, not in our contract
            continue
        result = c.decode_customer(kind, json.dumps(payload))
        assert not isinstance(result, c.Rejection), (name, result)
        decoded += 1
        if isinstance(result, c.CustomerEvent):
            again = c.decode_customer(kind, c.encode_customer(result))
            assert again.id == result.id and int(again.ts) == int(result.ts)
    assert decoded == 8


def test_seed000_scenario_decodes(shared_dir: Path) -> None:
    raw = (shared_dir / "reference/retail-demo/example_ui_scenario.json").read_text()
    scenario = c.decode_scenario(raw)
    assert isinstance(scenario, c.Scenario)
    assert scenario.customer_id == "2" and [s.type for s in scenario.path] == ["ENTER", "MOVE", "MOVE", "MOVE", "EXIT"]
    assert c.decode_scenario(c.encode_scenario(scenario)) == scenario
    assert c.decode_scenario('{"customer":{},"path":[]}').reason == "missing-field"
    too_long = {"customer": {"customer_id": 1}, "path": [{"type": "MOVE", "location": {"x": 1, "y": 1}}] * 101}
    assert c.decode_scenario(json.dumps(too_long)).reason == "too-large"


@pytest.mark.parametrize("payload", [b"{}", b'{"id": null, "ts": 1}', b'{"id": true, "ts": 1}',
                                     b'{"id": "1", "ts": "soon"}', b'{"id": "1"}'])
def test_bad_customer_payloads_rejected(payload: bytes) -> None:
    assert isinstance(c.decode_customer("move", payload), c.Rejection)


def test_customer_encoding_matches_the_general_encoder_byte_for_byte():
    """encode_customer's fast path (orjson) must write what the general json encoder writes."""
    cases = [c.CustomerEvent("move", "a\u2028b\n\x01\"\\é/", 1796120983.7, -5.4, 10.0 ** 15),
             c.CustomerEvent("browsing", "Ünïcode", 5.0, 10.2, 20.7, "Électronique \t"),
             c.CustomerEvent("enter", "2", 1795435593.0),
             c.CustomerEvent("move", "big", 1.0, 1e30, 2.0)]  # an int beyond 64 bits: the general path
    for event in cases:
        data = json.loads(c.encode_customer(event))
        assert c.encode_customer(event) == c._dump(data)


# ----------------------------------------------------------------------------- presence_fields (plain values)

_VARIANTS: list[object] = [None, 0, 1, -1, 7.5, -7.5, 0.0, -0.0, 1e308, True, False, "", "x", "x" * 129, "x" * 161,
                           "agent-1", "AA:BB:CC:DD:EE:0F", [], {}, [1.0], {"a": 1}]


def _mutations() -> list[tuple[str, dict[str, object]]]:
    """Well-formed reports, and each field (top level and in a range) replaced, removed or added."""
    base = json.loads(c.encode_agent(presence()))
    two = json.loads(c.encode_agent(presence(ranges=(c.Range("s1", 1.0, 2.0, -60.0, 0.0),
                                                     c.Range("s2", 3.0, 4.0, -70.5, 12.25)))))
    out: list[tuple[str, dict[str, object]]] = [("move", base), ("enter", two), ("exit", {**base, "ranges": None}),
                                                ("move", {k: v for k, v in base.items() if k not in ("ranges",
                                                                                                      "randomized")})]
    for key in [*base, "extra", "kind", "macs"]:
        out.append(("move", {k: v for k, v in base.items() if k != key}))
        out += [("move", {**base, key: value}) for value in _VARIANTS]
    for key in base["ranges"][0]:  # type: ignore[index]
        r = base["ranges"][0]  # type: ignore[index]
        out.append(("move", {**base, "ranges": [{k: v for k, v in r.items() if k != key}]}))
        out += [("move", {**base, "ranges": [{**r, key: value}]}) for value in _VARIANTS]
    out += [("move", {**base, "ranges": base["ranges"] * n}) for n in (0, 32, 33)]  # type: ignore[operator]
    out += [("move", {**base, "ranges": ["s1"]}), ("move", {**base, "ranges": {"s1": 1}})]
    out += [("move", {**base, "device": "d-" + "a" * 126}), ("move", {**base, "msg_id": "m" * 160})]
    return out


def test_presence_fields_accept_exactly_what_decode_agent_accepts_and_give_the_same_values() -> None:
    accepted = 0
    for kind, data in _mutations():
        topic = f"floorwalker/demo/agents/agent-1/{kind}"
        payload = json.dumps(data).encode()
        fields = c.presence_fields(topic, payload)
        expected = c.decode_agent(topic, payload)
        if fields is None:
            assert isinstance(expected, c.Rejection), (data, expected)  # decode_agent gives the precise reason
            continue
        accepted += 1
        assert isinstance(expected, c.Presence), (data, expected)
        assert fields[:11] == expected[:11] and fields[11] == tuple(tuple(r) for r in expected.ranges)
        assert fields[12:] == expected[12:]
        assert [type(v) for v in fields[:11]] == [type(v) for v in expected[:11]]  # 1 is not 1.0 here
        assert all(type(v) is type(w) for r, e in zip(fields[11], expected.ranges, strict=True)
                   for v, w in zip(r, e, strict=True))
    # every valid one of the mutations, integers where agents write floats included (was 90 of 115
    # through agent/_presence.c, which left those to decode_agent)
    assert accepted >= 80


def test_presence_fields_refuse_what_is_not_a_presence_report() -> None:
    good = c.encode_agent(presence())
    assert c.presence_fields("floorwalker/demo/agents/agent-1/door", good) is None
    assert c.presence_fields("floorwalker/demo/agents/agent-2/move", good) is None  # agent mismatch
    assert c.presence_fields("not/a/topic", good) is None
    assert c.presence_fields(TOPIC, b"{" * 5000 + b"}" * 5000) is None
    assert c.presence_fields(TOPIC, b"[1]") is None
    assert c.presence_fields(TOPIC, good + b" " * c.MAX_PAYLOAD_BYTES) is None


@pytest.mark.parametrize(("name", "slug"), [("Women's", "womens"), ("Boy\u2019s", "boys"),
                                            ("Home & Garden", "home-garden"), ("  Sport  ", "sport"),
                                            ("Caf\u00e9 2", "caf-2")])
def test_zone_slug(name: str, slug: str) -> None:
    assert c.zone_slug(name) == slug
    assert c.occupancy_topic("demo", name) == f"floorwalker/demo/occupancy/{slug}"


def test_occupancy_topics_refuse_what_cannot_be_a_topic() -> None:
    assert c.occupancy_topic("demo") == "floorwalker/demo/occupancy"
    with pytest.raises(ValueError):
        c.occupancy_topic("de/mo")
    with pytest.raises(ValueError):
        c.zone_slug("???")


def test_occupancy_payload_rounds_people_and_never_goes_negative() -> None:
    doc = json.loads(c.encode_occupancy(1795435593.1234, 2.6, 0.81, {"Sport": (-0.2, 0.5), "Men's": (1.49, 1)}))
    assert doc == {"ts": 1795435593.123, "people": 3, "estimate": 2.6, "sigma": 0.81,
                   "zones": {"Sport": {"people": 0, "estimate": 0.0, "sigma": 0.5},
                             "Men's": {"people": 1, "estimate": 1.49, "sigma": 1}}}
    assert json.loads(c.encode_zone_occupancy(5.0, 0.5, 0.25)) == {"ts": 5.0, "people": 0, "estimate": 0.5,
                                                                         "sigma": 0.25}


# ----------------------------------------------------------------------------- customer tier and scenarios, pinned
# What decode_customer and decode_scenario accept, with which values, and what they refuse, with which reason
# and naming which field: the retail demo's services send ids as numbers or strings and numbers as strings, so
# these decoders are loose on purpose. A refusal is pinned as (reason, field): the field must appear in the
# detail (a payload with several faults is refused for the first in the order below: id, ts, x, y, dep;
# customer, coupon, customer.id, ts; customer, customer_id, path, each point's location, type, x, y,
# timestamp, then step_s), and a missing-field's detail starts with it (aggregator.scenario_builder reads it).

def _outcome(result: object) -> object:
    if isinstance(result, c.Rejection):
        return (result.reason, result.detail)
    return result


def _assert_outcome(result: object, expected: object) -> None:
    if isinstance(expected, tuple):
        assert isinstance(result, c.Rejection), result
        reason, field = expected
        assert result.reason == reason, result
        assert field in result.detail, result
        if reason == "missing-field":
            assert result.detail.split()[0].strip("`.$") == field, result
    else:
        assert result == expected
        assert [type(v) for v in vars_of(result)] == [type(v) for v in vars_of(expected)]  # "7" stays a str


def vars_of(obj: object) -> list[object]:
    return [getattr(obj, name) for name in obj.__slots__]  # type: ignore[attr-defined]


def _event(kind: str, cid: str, ts: float, x: float | None = None, y: float | None = None,
           dep: str | None = None) -> c.CustomerEvent:
    return c.CustomerEvent(kind, cid, ts, x, y, dep)


TS = 1795435593.0
CUSTOMER_CASES: list[tuple[str, str | bytes, object]] = [
    # accepted: ids as strings or numbers (always a str once decoded), numbers as numeric strings
    ("move", f'{{"id": 7, "ts": {TS:.0f}, "x": 10, "y": 20}}', _event("move", "7", TS, 10.0, 20.0)),
    ("move", f'{{"id": "abc", "ts": "{TS:.0f}", "x": "10.5", "y": "-2"}}'.encode(),
     _event("move", "abc", TS, 10.5, -2.0)),
    ("move", '{"id": 7.0, "ts": 1, "x": 0, "y": 0}', _event("move", "7", 1.0, 0.0, 0.0)),
    ("move", '{"id": 7.5, "ts": 1, "x": 0, "y": 0}', _event("move", "7.5", 1.0, 0.0, 0.0)),
    ("move", '{"id": -3, "ts": 1, "x": 0, "y": 0}', _event("move", "-3", 1.0, 0.0, 0.0)),
    ("move", '{"id": 1e20, "ts": 1, "x": 0, "y": 0}', _event("move", "100000000000000000000", 1.0, 0.0, 0.0)),
    # an integer beyond 64 bits is read as a double (orjson), so its id is that double's integer
    ("move", '{"id": 100000000000000000000000, "ts": 1, "x": 0, "y": 0}',
     _event("move", "99999999999999991611392", 1.0, 0.0, 0.0)),
    ("move", '{"id": "' + "i" * 128 + '", "ts": 1, "x": 1e308, "y": -1e308}',
     _event("move", "i" * 128, 1.0, 1e308, -1e308)),
    # a numeric string is whatever Python's float() reads: spaces, a sign, a bare dot, underscores
    ("move", '{"id": 1, "ts": " 12 ", "x": "+5", "y": ".5"}', _event("move", "1", 12.0, 5.0, 0.5)),
    ("move", '{"id": 1, "ts": "1_000", "x": "5.", "y": "1e3"}', _event("move", "1", 1000.0, 5.0, 1000.0)),
    ("enter", '{"id": "2", "ts": 1795435593}', _event("enter", "2", TS)),
    ("exit", '{"id": "2", "ts": 0, "x": null, "y": 3}', _event("exit", "2", 0.0, None, 3.0)),
    ("browsing", '{"id": 2, "ts": 5, "x": 1, "y": 2, "dep": "Men", "junk": [[{"a": [null]}]]}',
     _event("browsing", "2", 5.0, 1.0, 2.0, "Men")),
    ("browsing", '{"id": 2, "ts": 5, "dep": null}', _event("browsing", "2", 5.0)),
    ("prediction", '{"customer": {"id": 11}, "coupon": {"id": "1", "how_many_products_required": 3}, '
                   '"ts": "1618300000"}',
     c.Prediction("11", {"id": "1", "how_many_products_required": 3}, 1618300000.0)),
    ("prediction", '{"customer": {"id": "x", "name": 1}, "coupon": {}, "ts": 0}', c.Prediction("x", {}, 0.0)),
    # refused before its kind is looked at: too large, not JSON, not an object
    ("move", b'{"id": 1, "ts": 1, "x": 1, "y": 1, "pad": "' + b"p" * c.MAX_PAYLOAD_BYTES + b'"}',
     ("too-large", "bytes")),
    ("focus", b"p" * (c.MAX_PAYLOAD_BYTES + 1), ("too-large", "bytes")),
    ("move", b"", ("not-json", "")),
    ("focus", b"{", ("not-json", "")),
    ("move", b'{"id": 1, "ts": NaN, "x": 1, "y": 1}', ("not-json", "")),
    ("move", b'{"id": 1, "ts": 1e400, "x": 1, "y": 1}', ("not-json", "")),
    ("move", b'{"id": "\xff", "ts": 1, "x": 1, "y": 1}', ("not-json", "")),
    ("move", '{"id": 1, "ts": 1, "x": 1, "y": 1, "junk": ' + "[" * 2000 + "]" * 2000 + "}", ("not-json", "")),
    ("move", b"[]", ("not-object", "")),
    ("prediction", b'"x"', ("not-object", "")),
    ("enter", b"null", ("not-object", "")),
    ("focus", '{"id": 1, "ts": 1}', ("unknown-kind", "focus")),
    # missing fields, in order; null reads as absent
    ("move", "{}", ("missing-field", "id")),
    ("move", '{"id": null, "ts": "soon"}', ("missing-field", "id")),
    ("move", '{"id": 1, "x": "a"}', ("missing-field", "ts")),
    ("move", '{"id": 1, "ts": null}', ("missing-field", "ts")),
    ("move", '{"id": 1, "ts": 1, "y": 1}', ("missing-field", "x")),
    ("move", '{"id": 1, "ts": 1, "x": 1, "y": null}', ("missing-field", "y")),
    # wrong types, in order
    ("move", '{"id": true, "ts": "soon"}', ("wrong-type", "id")),
    ("enter", '{"id": "", "ts": 1}', ("wrong-type", "id")),
    ("enter", '{"id": "' + "i" * 129 + '", "ts": 1}', ("wrong-type", "id")),
    ("enter", '{"id": [1], "ts": 1}', ("wrong-type", "id")),
    ("enter", '{"id": {"id": 1}, "ts": 1}', ("wrong-type", "id")),
    ("move", '{"ts": "soon", "id": 1, "x": true}', ("wrong-type", "ts")),
    ("enter", '{"id": 1, "ts": "nan"}', ("wrong-type", "ts")),
    ("enter", '{"id": 1, "ts": "-Infinity"}', ("wrong-type", "ts")),
    ("enter", '{"id": 1, "ts": "1e400"}', ("wrong-type", "ts")),
    ("enter", '{"id": 1, "ts": true}', ("wrong-type", "ts")),
    ("enter", '{"id": 1, "ts": [1]}', ("wrong-type", "ts")),
    ("enter", '{"id": 1, "ts": 1, "x": "NaN"}', ("wrong-type", "x")),
    ("move", '{"dep": 5, "y": {}, "x": 1, "ts": 1, "id": 1}', ("wrong-type", "y")),
    ("browsing", '{"id": 1, "ts": 1, "dep": 5}', ("wrong-type", "dep")),
    ("browsing", '{"id": 1, "ts": 1, "dep": ["Men"]}', ("wrong-type", "dep")),
    # predictions: customer and coupon must be objects, then the customer's id, then ts
    ("prediction", "{}", ("missing-field", "customer")),
    ("prediction", '{"coupon": 1, "ts": "x", "customer": []}', ("missing-field", "customer")),
    ("prediction", '{"customer": {"id": 1}, "coupon": [], "ts": 1}', ("missing-field", "coupon")),
    ("prediction", '{"ts": "x", "customer": {}, "coupon": {}}', ("missing-field", "id")),
    ("prediction", '{"customer": {"id": true}, "coupon": {}, "ts": 1}', ("wrong-type", "id")),
    ("prediction", '{"customer": {"id": 1}, "coupon": {}}', ("missing-field", "ts")),
    ("prediction", '{"customer": {"id": 1}, "coupon": {}, "ts": "soon"}', ("wrong-type", "ts")),
]


@pytest.mark.parametrize(("kind", "payload", "expected"), CUSTOMER_CASES)
def test_customer_tier_decoding_pinned(kind: str, payload: str | bytes, expected: object) -> None:
    _assert_outcome(c.decode_customer(kind, payload), expected)


def _point(x: object = 1, y: object = 2, **over: object) -> dict[str, object]:
    return {"type": "MOVE", "location": {"x": x, "y": y}, **over}


def _scenario(path: object = None, customer: object = None, **over: object) -> dict[str, object]:
    return {"customer": {"customer_id": 2} if customer is None else customer,
            "path": [_point()] if path is None else path, **over}


def _steps(*steps: tuple[object, ...], cid: str = "2", step_s: float = 5.0) -> c.Scenario:
    return c.Scenario(cid, tuple(c.ScenarioStep(*s) for s in steps), step_s)


SCENARIO_CASES: list[tuple[object, object]] = [
    # accepted: types in any case (as Python upper-cases them), MOVE by default; numbers as numeric strings
    (_scenario([_point(type="enter", timestamp=1000), _point(" 3 ", "4.5", type="focus", timestamp="2000"),
                {"location": {"x": 5, "y": 6, "z": 7}, "timestamp": None}, _point(type="ex\u0131t")]),
     _steps(("ENTER", 1.0, 2.0, 1000.0), ("FOCUS", 3.0, 4.5, 2000.0), ("MOVE", 5.0, 6.0), ("EXIT", 1.0, 2.0))),
    (_scenario(customer={"customer_id": "abc", "name": 1}, step_s="7"),
     _steps(("MOVE", 1.0, 2.0), cid="abc", step_s=7.0)),
    (_scenario(customer={"customer_id": 2.0}, step_s=15), _steps(("MOVE", 1.0, 2.0), step_s=15.0)),
    (_scenario(customer={"customer_id": 2.5}, step_s=1), _steps(("MOVE", 1.0, 2.0), cid="2.5", step_s=1.0)),
    (_scenario(step_s=0), _steps(("MOVE", 1.0, 2.0))),  # a zero step reads as none: the default 5 s
    (_scenario(step_s="0"), _steps(("MOVE", 1.0, 2.0))),
    (_scenario(step_s=None), _steps(("MOVE", 1.0, 2.0))),
    (_scenario([_point(1e308, -1e308)] * c.MAX_SCENARIO_POINTS),
     _steps(*[("MOVE", 1e308, -1e308)] * c.MAX_SCENARIO_POINTS)),
    # refused: the document, then the customer, then the path, then each point in turn, then step_s
    (b"p" * (c.MAX_PAYLOAD_BYTES + 1), ("too-large", "bytes")),
    (b'{"customer": {"customer_id": 1}, "path": [{"location": {"x": NaN, "y": 1}}]}', ("not-json", "")),
    ("[" * 2000 + "]" * 2000, ("not-json", "")),
    ("[]", ("not-object", "")),
    ({}, ("missing-field", "customer")),
    (_scenario(customer=[{"customer_id": 2}], path=[]), ("missing-field", "customer")),
    (_scenario(customer="2"), ("missing-field", "customer")),
    (_scenario(customer={}, path=[]), ("missing-field", "customer_id")),
    (_scenario(customer={"customer_id": None}), ("missing-field", "customer_id")),
    (_scenario(customer={"customer_id": True}), ("wrong-type", "customer_id")),
    (_scenario(customer={"customer_id": ""}), ("wrong-type", "customer_id")),
    ({"customer": {"customer_id": 2}}, ("missing-field", "path")),
    (_scenario([]), ("missing-field", "path")),
    (_scenario({"0": _point()}), ("missing-field", "path")),
    (_scenario("MOVE"), ("missing-field", "path")),
    (_scenario([_point()] * (c.MAX_SCENARIO_POINTS + 1)), ("too-large", f"{c.MAX_SCENARIO_POINTS}")),
    (_scenario([{"type": "JUMP"}] * 200, step_s=99), ("too-large", f"{c.MAX_SCENARIO_POINTS}")),
    (_scenario([1]), ("wrong-type", "location")),
    (_scenario([_point(), {"type": "JUMP", "x": 1, "y": 2}]), ("wrong-type", "location")),
    (_scenario([{"type": "MOVE", "location": [1, 2]}]), ("wrong-type", "location")),
    (_scenario([{"type": "MOVE", "location": None}]), ("wrong-type", "location")),
    (_scenario([_point("a", type="JUMP")]), ("bad-value", "JUMP")),
    (_scenario([_point(type=None)]), ("bad-value", "NONE")),
    (_scenario([_point(type=1)]), ("bad-value", "1")),
    (_scenario([_point(type=["MOVE"])]), ("bad-value", "MOVE")),
    (_scenario([_point(type=" MOVE")]), ("bad-value", "MOVE")),
    (_scenario([{"location": {}}]), ("missing-field", "x")),
    (_scenario([{"location": {"x": None, "y": "a"}}]), ("missing-field", "x")),
    (_scenario([{"location": {"x": 1}}]), ("missing-field", "y")),
    (_scenario([_point("a", timestamp="b")]), ("wrong-type", "x")),
    (_scenario([_point(y=True)]), ("wrong-type", "y")),
    (_scenario([_point(y="nan")]), ("wrong-type", "y")),
    (_scenario([_point(y="1e400")]), ("wrong-type", "y")),
    (_scenario([_point(x={"a": [1]})]), ("wrong-type", "x")),
    (_scenario([_point(timestamp="soon")], step_s=99), ("wrong-type", "timestamp")),
    (_scenario(step_s=16), ("bad-value", "step_s")),
    (_scenario(step_s=0.5), ("bad-value", "step_s")),
    (_scenario(step_s=-1), ("bad-value", "step_s")),
    (_scenario(step_s="16"), ("bad-value", "step_s")),
    (_scenario(step_s="soon"), ("wrong-type", "step_s")),
    (_scenario(step_s=True), ("wrong-type", "step_s")),
]


@pytest.mark.parametrize(("payload", "expected"), SCENARIO_CASES)
def test_scenario_decoding_pinned(payload: object, expected: object) -> None:
    """As JSON (what the mock agents receive) and, when it is one, as the parsed object (the scenario tab's body)."""
    if isinstance(payload, (str, bytes)):
        _assert_outcome(c.decode_scenario(payload), expected)
        return
    _assert_outcome(c.decode_scenario(json.dumps(payload)), expected)
    _assert_outcome(c.decode_scenario(payload), expected)  # type: ignore[arg-type]


def test_a_parsed_scenario_is_held_to_the_same_rules_as_its_json() -> None:
    """The scenario tab hands over a parsed body: a float that JSON cannot carry, or a tuple for a list, is refused."""
    assert c.decode_scenario(_scenario([_point(float("nan"))])).reason == "wrong-type"
    assert c.decode_scenario(_scenario([_point(y=float("inf"))])).reason == "wrong-type"
    assert c.decode_scenario(_scenario(tuple([_point()]))).reason == "missing-field"
    assert c.decode_scenario(_scenario(customer={"customer_id": float("nan")})).reason == "wrong-type"
    assert c.decode_scenario(_scenario(step_s=float("nan"))).reason == "wrong-type"
