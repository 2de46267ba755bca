"""``floorwalker-agent``: the edge agent's command line."""

from __future__ import annotations

from collections.abc import Sequence

from agent.cliutil import build_parser, run_main

# Each module registers one subcommand; later work adds its module here.
COMMAND_MODULES: tuple[str, ...] = (
    "agent.commands.check",
    "agent.commands.locate",
    "agent.commands.run",
    "agent.commands.mock",
    "agent.commands.replay",
    "agent.commands.calibrate",
)

DESCRIPTION = """\
Floorwalker edge agent: reads Wi-Fi probe sniffers (serial) and motion/door sensors (GPIO),
hashes MAC addresses at the edge, and publishes enter/move/exit over MQTT.

Every command takes --config, a device file such as firmware-config/devices/agent-1.toml."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser("floorwalker-agent", DESCRIPTION, COMMAND_MODULES)
    return run_main("floorwalker-agent", parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
