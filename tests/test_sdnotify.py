"""sd_notify reaches a real unix datagram socket, and is a no-op outside systemd."""

from __future__ import annotations

import socket

from agent import sdnotify


def test_notify_sends_to_socket(tmp_path, monkeypatch) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert sdnotify.notify("READY=1")
        assert server.recv(64) == b"READY=1"


def test_no_socket_is_a_no_op(monkeypatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.notify("WATCHDOG=1") is False


def test_watchdog_interval(monkeypatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert sdnotify.watchdog_interval_s() == 15.0
    monkeypatch.delenv("WATCHDOG_USEC")
    assert sdnotify.watchdog_interval_s() is None
