"""Agent -> broker -> aggregator over TLS with per-account credentials, through the real parts.

The agent's Publisher and the aggregator's application (create_app: MQTT link, ingest, SQLite)
connect to a mosquitto configured by floorwalker-broker.sh, each with its own account and the
store CA. What the aggregator stored is read back from its SQLite file.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from agent import contract as c
from agent.config import MqttSettings
from agent.errors import BrokerUnavailable
from agent.publisher import Publisher
from agent.sequence import Sequence
from agent.spool import Spool
from aggregator.app import create_app
from aggregator.appkeys import LINK
from aggregator.settings import Settings
from tests.conftest import CONFIG_DIR
from tests.deploy.conftest import ACCOUNTS

pytestmark = pytest.mark.deploy

STORE = "demo"  # store.id of firmware-config/store.toml


def tls_settings(store_broker, account: str, password: str | None = None) -> MqttSettings:
    return MqttSettings(host="localhost", port=store_broker.port, username=account,
                        password=ACCOUNTS[account][1] if password is None else password,
                        tls=True, ca_file=store_broker.ca_file)


def make_publisher(store_broker, tmp_path: Path, account: str, password: str | None = None) -> Publisher:
    return Publisher(agent_id=account, store_id=STORE, settings=tls_settings(store_broker, account, password),
                     spool=Spool(tmp_path / f"{account}.sqlite"),
                     sequence=Sequence(account, tmp_path / f"{account}.seq"),
                     client_id=f"e2e-{account}-{tmp_path.name[-8:]}")


def stored(db: Path) -> list[tuple[str, str, str]]:
    if not db.exists():
        return []
    conn = sqlite3.connect(db, timeout=5)
    try:
        return conn.execute("SELECT msg_id, agent, kind FROM messages ORDER BY msg_id").fetchall()
    except sqlite3.OperationalError:  # schema not created yet
        return []
    finally:
        conn.close()


async def wait_until(predicate, timeout_s: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met in {timeout_s} s")
        await asyncio.sleep(0.05)


def close_paho_sockpair(client: mqtt.Client) -> None:
    """paho 2.2's loop_start() opens a socket pair that loop_stop() leaves open until the client's
    __del__; when the client dies in a garbage cycle, the sockets may be finalised first and warn
    (ResourceWarning, an error under filterwarnings=error). Close it once the client is stopped."""
    client._reset_sockets(sockpair_only=True)


async def test_agent_reaches_the_aggregator_over_tls_and_cannot_speak_for_another(
        aiohttp_client, store_broker, tmp_path, sqlite_path) -> None:
    settings = replace(Settings(), config_dir=CONFIG_DIR, db_path=sqlite_path,
                       mqtt=tls_settings(store_broker, "aggregator"), client_id=f"e2e-agg-{tmp_path.name[-8:]}")
    client = await aiohttp_client(create_app(settings))
    link = client.app[LINK]
    await wait_until(lambda: link.connected)

    loop = asyncio.get_running_loop()
    pub = make_publisher(store_broker, tmp_path, "agent-1")
    await loop.run_in_executor(None, pub.start)
    try:
        assert pub.connected
        # forged first: a message claiming to be agent-2, on agent-2's topic (the aggregator knows agent-2)
        _, seq = pub.new_id()
        forged = c.Door("agent-2:1", "agent-2", time.time(), "door-main", "in")
        pub.publish_raw(seq, c.agent_topic(STORE, "agent-2", "door"), c.encode_agent(forged))
        ids = []
        for _ in range(3):
            msg_id, seq = pub.new_id()
            pub.publish(c.Door(msg_id, "agent-1", time.time(), "door-main", "in"), seq)
            ids.append(msg_id)
        await wait_until(lambda: {m for m, _, _ in stored(sqlite_path)} >= set(ids))
    finally:
        await loop.run_in_executor(None, pub.stop)
        close_paho_sockpair(pub.client)
        pub.spool.close()
    await client.close()  # the aggregator stops its MQTT link
    rows = stored(sqlite_path)
    assert {agent for _, agent, _ in rows} == {"agent-1"}
    assert sorted(m for m, _, k in rows if k == "door") == sorted(ids)
    assert link.received >= 3


def test_an_agent_with_a_wrong_password_is_told_why(store_broker, tmp_path) -> None:
    pub = make_publisher(store_broker, tmp_path, "agent-2", password="not-the-password")
    try:
        with pytest.raises(BrokerUnavailable, match=r"refused agent agent-2.*MQTT_USERNAME/MQTT_PASSWORD"):
            pub.start()
    finally:
        close_paho_sockpair(pub.client)
        pub.spool.close()


async def test_a_burst_over_tls_is_read_to_its_end_without_waiting_for_more_traffic(store_broker) -> None:
    """TLS keeps decrypted bytes the socket's poll cannot see (SSLSocket.pending()): the aggregator's
    link must read those too, or the tail of a burst waits for the next packet or keepalive (an hour here)."""
    from tests.aggregator.conftest import acking_link
    from tests.deploy.mqtt_tls import Session

    loop = asyncio.get_running_loop()
    settings = replace(tls_settings(store_broker, "aggregator"), keepalive_s=3600)
    # only the move topic: the agent's retained status (from the test before) is no part of the burst
    link, received = await acking_link(settings, "tls-burst-reader", [c.agent_topic(STORE, "agent-1", "move")])
    agent = Session(store_broker.port, **store_broker.creds("agent-1")).connect()
    try:
        topic = c.agent_topic(STORE, "agent-1", "move")
        for n in (1, 3, 40, 1500):
            received.clear()
            infos = [agent.client.publish(topic, b'{"n": %d}' % i, qos=1) for i in range(n)]
            await loop.run_in_executor(None, lambda infos=infos: [i.wait_for_publish(10) for i in infos])
            try:
                await wait_until(lambda n=n: len(received) == n, timeout_s=10)
            except TimeoutError:
                pytest.fail(f"{len(received)} of a burst of {n} arrived; link state {link.state()}")
            assert [i.payload for i in received] == [b'{"n": %d}' % i for i in range(n)]
    finally:
        agent.close()
        link.stop()


def _read_packet(sock) -> tuple[int, bytes]:  # type: ignore[no-untyped-def]
    """One MQTT packet from a blocking socket: (first byte, body); (0, b"") at end of stream."""
    first = sock.recv(1)
    if not first:
        return 0, b""
    length, shift = 0, 0
    while True:
        byte = sock.recv(1)[0]
        length |= (byte & 127) << shift
        shift += 7
        if not byte & 128:
            break
    body = b""
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        if not chunk:
            return 0, b""
        body += chunk
    return first[0], body


async def test_packets_sharing_one_tls_record_are_all_read(store_broker) -> None:
    """Other brokers (and mosquitto under load) put several packets in one TLS record: after the link has read
    the first, the rest wait decrypted inside the SSL object, where poll() cannot see them. A scripted TLS
    peer sends five PUBLISH packets in one write; all five must arrive without any further traffic."""
    import socket
    import ssl
    import threading

    from aggregator.mqtt_link import Incoming, MqttLink

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(store_broker.dir / "server.crt", store_broker.dir / "server.key")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    # MQTT 5, as the link speaks it: a property length (0) after the packet id
    publishes = b"".join(b"\x32" + bytes([2 + 8 + 2 + 1 + 1]) + b"\x00\x08fw/tls/x" + bytes([0, n + 1, 0]) + b"%d" % n
                         for n in range(5))
    acked: list[int] = []

    def peer() -> None:
        conn, _ = listener.accept()
        with context.wrap_socket(conn, server_side=True) as tls:
            _read_packet(tls)  # CONNECT
            tls.sendall(b"\x20\x03\x00\x00\x00")  # CONNACK, accepted, no properties
            _, subscribe = _read_packet(tls)
            tls.sendall(b"\x90\x04" + subscribe[:2] + b"\x00\x01")  # SUBACK, no properties, QoS 1 granted
            tls.sendall(publishes)  # one write of 80 bytes: one TLS record
            while True:
                command, body = _read_packet(tls)
                if command == 0 or command == 0xE0:  # closed, or DISCONNECT
                    return
                if command == 0x40:
                    acked.append(int.from_bytes(body[:2], "big"))

    thread = threading.Thread(target=peer, daemon=True)
    thread.start()
    received: list[Incoming] = []
    settings = MqttSettings(host="localhost", port=port, tls=True, ca_file=store_broker.ca_file, keepalive_s=3600)
    link = MqttLink(settings, "tls-record-reader", ["fw/tls/#"], on_batch=received.extend)
    try:
        link.start(asyncio.get_running_loop())
        await wait_until(lambda: len(received) == 5, timeout_s=10)
        assert [(i.topic, i.payload, i.qos) for i in received] == [("fw/tls/x", b"%d" % n, 1) for n in range(5)]
        link.ack([(i.mid, i.qos) for i in received])  # the link's delivery ids: PUBACKs carry the packet ids
        await wait_until(lambda: acked == [1, 2, 3, 4, 5])
    finally:
        link.stop()
        thread.join(5)
        listener.close()


async def test_a_tls_link_stops_cleanly(store_broker, caplog) -> None:  # type: ignore[no-untyped-def]
    """stop() half-closes and reads to the broker's end of stream. On TLS, SSLSocket.shutdown() drops
    the SSL object, so what comes after (the broker's close_notify) arrives as raw TLS records: read
    as MQTT, they were a "malformed packet" at every stop."""
    from tests.aggregator.conftest import acking_link

    caplog.set_level(logging.INFO, logger="aggregator.mqtt_link")
    settings = replace(tls_settings(store_broker, "aggregator"), keepalive_s=3600)
    topic = c.agent_topic(STORE, "agent-1", "move")
    link, _ = await acking_link(settings, "tls-stopper", [topic])
    try:
        assert link.connected and link.last_error == ""
    finally:
        link.stop()
    assert link.last_error == ""
    assert "mqtt-protocol-error" not in caplog.text
    assert "event=mqtt-connected" in caplog.text  # the link's log was captured
