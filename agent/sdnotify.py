"""systemd notification (``sd_notify``) without a dependency: READY, WATCHDOG, STOPPING, STATUS.

Under systemd with ``Type=notify`` and ``WatchdogSec=``, the service must say READY=1 once
started and WATCHDOG=1 more often than the watchdog interval, or systemd restarts it. Outside
systemd (``NOTIFY_SOCKET`` unset) every call is a no-op, so the same code runs in tests.
"""

from __future__ import annotations

import os
import socket


def notify(state: str) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``) to systemd; False when not under systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
        return True
    except OSError:
        return False


def watchdog_interval_s() -> float | None:
    """Half the watchdog period systemd gave us (how often to ping), or None without a watchdog."""
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec or not usec.isdigit():
        return None
    return int(usec) / 2_000_000
