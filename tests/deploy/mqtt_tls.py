"""A small paho session for the deploy tests: TLS, username/password, and the broker's verdict.

tests/mqtt_helpers.Collector speaks plain, anonymous MQTT; the store broker refuses both, so these
tests need a client that can present credentials and a CA, and that reports a refusal (CONNACK
failure, TLS error, connection closed) as a value instead of hanging.
"""

from __future__ import annotations

import gc
import ssl
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes


class Refused(Exception):
    """The broker (or the TLS layer) did not let this client in."""


class Session:
    """One MQTT connection to ``127.0.0.1:port``; ``connect()`` raises :class:`Refused` when refused."""

    def __init__(self, port: int, *, username: str | None = None, password: str | None = None,
                 ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None,
                 host: str = "localhost") -> None:
        self.host = host
        self.port = port
        self.messages: list[Received] = []
        self._cond = threading.Condition()
        self._connack = threading.Event()
        self._subscribed = threading.Event()
        self.reason: object = None
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"deploy-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv311)
        self.client.reconnect_delay_set(60, 120)  # a refusal must stay a refusal during the test
        if username is not None:
            self.client.username_pw_set(username, password)
        if ca_file:
            self.client.tls_set(ca_certs=ca_file, certfile=cert_file, keyfile=key_file,
                                cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a, **k: self._subscribed.set()
        self._started = False

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: object,
                    props: object = None) -> None:
        self.reason = reason
        self._connack.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object, reason: object,
                       props: object = None) -> None:
        if not self._connack.is_set():
            self.reason = reason
            self._connack.set()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(Received(msg.topic, msg.payload))
            self._cond.notify_all()

    def connect(self, timeout_s: float = 5.0) -> Session:
        error = ""
        # paho 2.2 does not close the socket when the TLS handshake fails (client.py
        # _ssl_wrap_socket); that leak is paho's, so its ResourceWarning is silenced here only.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            try:
                self.client.connect(self.host, self.port, keepalive=30)
            except (OSError, ssl.SSLError, ssl.CertificateError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            gc.collect()
        if error:
            self.close()
            raise Refused(error)
        self.client.loop_start()
        self._started = True
        if not self._connack.wait(timeout_s):
            self.close()
            raise Refused(f"no CONNACK in {timeout_s} s")
        if getattr(self.reason, "is_failure", True):
            reason = self.reason
            self.close()
            raise Refused(f"broker refused: {reason}")
        return self

    def subscribe(self, *topics: str) -> None:
        self._subscribed.clear()
        self.client.subscribe([(t, 1) for t in topics])
        if not self._subscribed.wait(5):
            raise TimeoutError("subscription not acknowledged in 5 s")

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish and wait for the broker's PUBACK (sent even when the ACL drops the message)."""
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(5)
        if not info.is_published():
            raise TimeoutError(f"no PUBACK for {topic} in 5 s")

    def wait_for(self, count: int, timeout_s: float = 5.0) -> list[Received]:
        return self.wait_until(lambda msgs: len(msgs) >= count, timeout_s, f"{count} messages")

    def wait_until(self, done: Callable[[list[Received]], bool], timeout_s: float = 5.0,
                   what: str = "the awaited message") -> list[Received]:
        """Block on the arrival of messages (no polling) until ``done(messages)`` holds."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not done(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{what} not received in {timeout_s} s (got {len(self.messages)} messages)")
                self._cond.wait(left)
            return list(self.messages)

    def close(self) -> None:
        if self._started:
            self.client.disconnect()
            self.client.loop_stop()
            self._started = False
        else:
            self.client.disconnect()
        # paho 2.2 leaves the socket pair loop_start() opened until __del__, which may run after the
        # sockets' own finalisers when the client dies in a garbage cycle: close everything now.
        self.client._reset_sockets()

    def __enter__(self) -> Session:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()
