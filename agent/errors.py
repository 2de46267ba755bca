"""Every error Floorwalker raises on purpose.

Each inherits the matching built-in too (gpiozero's habit), so callers that only know
``ValueError`` or ``OSError`` still catch them.
"""

from __future__ import annotations


class FloorwalkerError(Exception):
    """Base of every error Floorwalker raises on purpose."""


class ConfigError(FloorwalkerError, ValueError):
    """A configuration file is wrong. The message names the file, the field and what was expected."""

    def __init__(self, file: str, field: str, expected: str) -> None:
        self.file = str(file)
        self.field = field
        self.expected = expected
        super().__init__(f"{self.file}: {field}: {expected}")


class BadCalibration(ConfigError):
    """A calibration table cannot be turned into distances (RSSI must fall with distance)."""


class BrokerUnavailable(FloorwalkerError, ConnectionError):
    """The MQTT broker cannot be reached or refused us."""


class BadReading(FloorwalkerError, ValueError):
    """A positioning input (RSSI, distance, receiver) that cannot be used."""


# Exit codes (sysexits.h), so systemd and scripts can tell a bad file from a missing device.
EXIT_OK = 0
EXIT_USAGE = 2  # argparse's own
EXIT_NOINPUT = 66  # a serial port or input file that is not there
EXIT_SOFTWARE = 70
EXIT_UNAVAILABLE = 69  # broker unreachable, no GPIO on this machine
EXIT_NOPERM = 77  # broker refused our credentials
EXIT_CONFIG = 78  # a configuration file is wrong


class SerialPortUnavailable(FloorwalkerError, OSError):
    """A sniffer's serial port cannot be opened (unplugged, wrong path, no permission)."""


class NoGpio(FloorwalkerError, OSError):
    """This machine has no usable GPIO (not a Raspberry Pi, or no pin library installed)."""
