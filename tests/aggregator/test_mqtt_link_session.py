"""MqttLink's session rules against a scripted MQTT 5 peer, where a real broker cannot be made to
misbehave on cue: our QoS 1 publishes stay within the peer's Receive Maximum and are sent again,
flagged duplicate, after a dropped connection; a silent broker is detected by keepalive; a malformed
packet ends the connection, and the link reconnects."""

from __future__ import annotations

import asyncio
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import mqtt5
import pytest

from agent.config import MqttSettings
from aggregator import mqtt_link
from aggregator.mqtt_link import Incoming, MqttLink
from tests.aggregator.conftest import wait_until


class Peer:
    """A listening socket whose accepted connections run ``script(conn, packets)`` in a thread, one at a
    time; ``packets`` yields what the link sends, decoded by the codec. Events go to ``self.log``."""

    def __init__(self, *scripts: Callable[[socket.socket, Iterator[Any]], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.log: queue.Queue[Any] = queue.Queue()
        self.scripts = list(scripts)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        for script in self.scripts:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                try:
                    script(conn, _packets(conn))
                except (OSError, StopIteration):
                    pass

    def close(self) -> None:
        self.listener.close()
        self.thread.join(5)


def _packets(conn: socket.socket) -> Iterator[Any]:
    buf = bytearray()
    while True:
        try:
            packet, n = mqtt5.read(memoryview(bytes(buf)))
        except IndexError:
            data = conn.recv(65536)
            if not data:
                return
            buf += data
            continue
        del buf[:n]
        yield packet


def _accept(conn: socket.socket, packets: Iterator[Any], *, receive_max: int = 65535, session: bool = False) -> Any:
    connect = next(packets)
    assert type(connect) is mqtt5.ConnectPacket
    conn.sendall(mqtt5.ConnAckPacket(session_present=session, receive_max=receive_max).write())
    return connect


def _link(port: int, **kwargs: Any) -> MqttLink:
    settings = MqttSettings(host="127.0.0.1", port=port, keepalive_s=kwargs.pop("keepalive_s", 60))
    return MqttLink(settings, "scripted", kwargs.pop("subscriptions", []), reconnect_min_s=0.05,
                    reconnect_max_s=0.2, **kwargs)


async def _get(peer: Peer, timeout_s: float = 10.0) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, peer.log.get, True, timeout_s)


async def test_qos1_publishes_respect_receive_maximum_and_are_resent_as_duplicates_after_a_drop() -> None:
    def first(conn: socket.socket, packets: Iterator[Any]) -> None:
        connect = _accept(conn, packets, receive_max=2)
        assert connect.clean_start is False and connect.session_expiry_interval > 0  # a persistent session
        for _ in range(2):  # the window: two in flight, the rest wait for a PUBACK that never comes
            packet = next(packets)
            peer.log.put(("first", packet.topic, packet.payload, packet.packet_id, packet.duplicate))
        conn.settimeout(0.5)
        try:
            peer.log.put(("first, beyond the window", next(packets)))
        except TimeoutError:
            peer.log.put(("first", "nothing more"))
        # dropped without a PUBACK

    def second(conn: socket.socket, packets: Iterator[Any]) -> None:
        _accept(conn, packets, session=True)
        while True:
            packet = next(packets)
            if type(packet) is mqtt5.DisconnectPacket:
                peer.log.put(("second", "disconnect"))
                return
            peer.log.put(("second", packet.topic, packet.payload, packet.packet_id, packet.duplicate))
            conn.sendall(mqtt5.PubAckPacket(packet.packet_id).write())

    peer = Peer(first, second)
    link = _link(peer.port)
    try:
        link.start(asyncio.get_running_loop())
        await wait_until(lambda: link.connected)
        link.publish_batch([("t/q", b"%d" % i, 1, False) for i in range(4)])
        got = [await _get(peer) for _ in range(3)]
        assert [g[:3] for g in got[:2]] == [("first", "t/q", b"0"), ("first", "t/q", b"1")]
        assert not any(g[4] for g in got[:2])
        assert got[2] == ("first", "nothing more")
        ids = [g[3] for g in got[:2]]
        again = [await _get(peer) for _ in range(4)]
        # the two in flight again, same packet ids, flagged duplicate; then the two that waited
        assert again[:2] == [("second", "t/q", b"0", ids[0], True), ("second", "t/q", b"1", ids[1], True)]
        assert [(g[2], g[4]) for g in again[2:]] == [(b"2", False), (b"3", False)]
        await wait_until(lambda: link.in_flight == 0)
        assert link.published == 4 and link.connects == 2 and link.disconnects == 1
    finally:
        link.stop()
        peer.close()
    assert await _get(peer) == ("second", "disconnect")


async def test_a_broker_that_stops_answering_is_left_by_keepalive() -> None:
    def silent(conn: socket.socket, packets: Iterator[Any]) -> None:
        _accept(conn, packets)
        for packet in packets:  # reads on, answers nothing
            peer.log.put(type(packet).__name__)

    def answering(conn: socket.socket, packets: Iterator[Any]) -> None:
        _accept(conn, packets)
        peer.log.put("second connection")
        for _ in packets:
            pass

    peer = Peer(silent, answering)
    link = _link(peer.port, keepalive_s=1)
    try:
        link.start(asyncio.get_running_loop())
        assert await _get(peer) == "PingReqPacket"  # after a quiet second
        assert await _get(peer) == "second connection"  # within another half second: gone, reconnected
        assert link.last_error == "the broker stopped answering"
        await wait_until(lambda: link.connects == 2)
    finally:
        link.stop()
        peer.close()


async def test_a_malformed_packet_ends_the_connection_and_the_link_reconnects() -> None:
    def garbled(conn: socket.socket, packets: Iterator[Any]) -> None:
        _accept(conn, packets)
        ok = mqtt5.PublishPacket("t/a", b"before", qos=mqtt5.QoS.AT_LEAST_ONCE, packet_id=7).write()
        conn.sendall(ok + b"\x00\x00")  # packet type 0 does not exist
        for _ in packets:
            pass

    def fine(conn: socket.socket, packets: Iterator[Any]) -> None:
        _accept(conn, packets)
        conn.sendall(mqtt5.PublishPacket("t/a", b"after", qos=mqtt5.QoS.AT_LEAST_ONCE, packet_id=7).write())
        for packet in packets:
            peer.log.put(type(packet).__name__)

    received: list[Incoming] = []
    peer = Peer(garbled, fine)
    link = _link(peer.port, on_batch=received.extend)
    try:
        link.start(asyncio.get_running_loop())
        await wait_until(lambda: [i.payload for i in received] == [b"before", b"after"])
        assert link.last_error.startswith("malformed packet")
        assert link.connects == 2 and link.disconnects == 1
        link.ack([(received[0].mid, 1)])  # of the dropped connection: the broker redelivers it
        link.ack([(received[1].mid, 1)])
        assert await _get(peer) == "PubAckPacket"
        await wait_until(lambda: link.stale_acks == 1)
    finally:
        link.stop()
        peer.close()


@pytest.mark.parametrize("bad", ["t/+", "", "t/#"])
async def test_a_topic_one_cannot_publish_to_is_refused_before_it_is_queued(bad: str) -> None:
    link = _link(1)  # never connects: the check needs no broker
    try:
        link.start(asyncio.get_running_loop())
        link.publish_batch([(bad, b"x", 1, False), ("t/ok", b"y", 1, False)])
        await wait_until(lambda: link.publish_errors == 1 and link.published == 1)
        assert link.in_flight == 1  # the good one waits for a connection
    finally:
        link.stop()


async def test_a_stop_reads_to_the_broker_s_end_of_stream_however_old_the_link_is(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """stop() half-closes and reads until the broker closes: keepalive must not take the link, now
    "not connected", for one still waiting for its CONNACK and close it early (unread bytes -> a reset
    -> the last PUBACKs lost). The peer closes a second after the DISCONNECT; the link is older than
    the CONNACK timeout (lowered here to 0.3 s)."""
    monkeypatch.setattr(mqtt_link, "CONNECT_TIMEOUT_S", 0.3)

    def slow_to_close(conn: socket.socket, packets: Iterator[Any]) -> None:
        _accept(conn, packets)
        conn.sendall(b"".join(mqtt5.PublishPacket("t/a", b"%d" % i, qos=mqtt5.QoS.AT_LEAST_ONCE,
                                                  packet_id=i + 1).write() for i in range(3)))
        for packet in packets:
            if type(packet) is mqtt5.PubAckPacket:
                peer.log.put(("puback", packet.packet_id))
            elif type(packet) is mqtt5.DisconnectPacket:
                peer.log.put(("disconnect", packet.reason_code.name))
                break
        conn.settimeout(5)
        peer.log.put(("end of stream", conn.recv(1) == b""))  # the link's half-close
        time.sleep(1.0)  # a broker slow to close its side: the link must keep reading meanwhile
        conn.sendall(mqtt5.PingRespPacket().write())  # unread if the link closed early: a reset

    received: list[Incoming] = []
    peer = Peer(slow_to_close)
    link = _link(peer.port, on_batch=received.extend)
    try:
        link.start(asyncio.get_running_loop())
        await wait_until(lambda: len(received) == 3)
        started = time.monotonic()
        await wait_until(lambda: time.monotonic() - started > 2 * mqtt_link.CONNECT_TIMEOUT_S)  # the link ages
        link.ack([(i.mid, i.qos) for i in received])
    finally:
        link.stop()
        peer.close()
    got = [peer.log.get(timeout=5) for _ in range(5)]
    assert got == [("puback", 1), ("puback", 2), ("puback", 3), ("disconnect", "NORMAL_DISCONNECTION"),
                   ("end of stream", True)]
    assert link.last_error == ""
    assert link.stale_acks == 0


async def test_a_reconnect_resends_no_more_than_the_new_receive_maximum() -> None:
    """Five left unacknowledged, and the next CONNACK allows two in flight: two go again, flagged
    duplicate; the other three wait at the front of the queue and follow, in order."""
    def first(conn: socket.socket, packets: Iterator[Any]) -> None:
        _accept(conn, packets)
        for _ in range(5):
            next(packets)
        peer.log.put("five sent")
        # dropped without a PUBACK

    def second(conn: socket.socket, packets: Iterator[Any]) -> None:
        _accept(conn, packets, receive_max=2, session=True)
        for packet in packets:
            if type(packet) is mqtt5.DisconnectPacket:
                return
            peer.log.put((packet.payload, packet.duplicate))
            conn.sendall(mqtt5.PubAckPacket(packet.packet_id).write())

    peer = Peer(first, second)
    link = _link(peer.port)
    try:
        link.start(asyncio.get_running_loop())
        await wait_until(lambda: link.connected)
        link.publish_batch([("t/q", b"%d" % i, 1, False) for i in range(5)])
        assert await _get(peer) == "five sent"
        got = [await _get(peer) for _ in range(5)]
        assert got == [(b"0", True), (b"1", True), (b"2", False), (b"3", False), (b"4", False)]
        await wait_until(lambda: link.in_flight == 0)
    finally:
        link.stop()
        peer.close()


async def test_refused_publishes_are_counted_and_the_broker_s_keep_alive_is_used(
        caplog: pytest.LogCaptureFixture) -> None:
    """A PUBACK with a failure reason is a publish the broker did not take: counted, logged once per
    reason. A CONNACK's Server Keep Alive replaces ours (1 s against our 60: a PINGREQ comes within 2 s)."""
    def refusing(conn: socket.socket, packets: Iterator[Any]) -> None:
        next(packets)  # CONNECT
        conn.sendall(mqtt5.ConnAckPacket(server_keep_alive=1).write())
        for packet in packets:
            if type(packet) is mqtt5.PublishPacket:
                conn.sendall(mqtt5.PubAckPacket(packet.packet_id,
                                                reason_code=mqtt5.PubAckReasonCode.QUOTA_EXCEEDED).write())
            else:
                peer.log.put(type(packet).__name__)

    peer = Peer(refusing)
    link = _link(peer.port, keepalive_s=60)
    try:
        link.start(asyncio.get_running_loop())
        await wait_until(lambda: link.connected)
        link.publish_batch([("t/q", b"%d" % i, 1, False) for i in range(3)])
        await wait_until(lambda: link.publish_errors == 3 and link.in_flight == 0)
        assert link.published == 3
        assert caplog.text.count("event=publish-refused reason=QUOTA_EXCEEDED") == 1
        assert await _get(peer, timeout_s=2.0) == "PingReqPacket"
    finally:
        link.stop()
        peer.close()


async def test_a_connect_the_codec_refuses_is_a_failed_attempt_before_any_socket() -> None:
    """A Keep Alive beyond 16 bits cannot be encoded: the attempt fails like a refused connection
    (an error, back-off), and no TCP connection is opened for it (none leaked, none retried at once)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    link = _link(listener.getsockname()[1], keepalive_s=70_000)
    try:
        link.start(asyncio.get_running_loop())
        await wait_until(lambda: link.last_error.startswith("OverflowError"))
        assert not link.connected and link.connects == 0
    finally:
        link.stop()
    with listener, pytest.raises(BlockingIOError):
        listener.accept()  # nothing connected
