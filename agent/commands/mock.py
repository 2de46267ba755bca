"""``floorwalker-agent mock``: the real agent driven by simulated shoppers and sensors."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
import time
from pathlib import Path

from agent import contract
from agent.cliutil import int_at_least, number_between
from agent.config import load_device
from agent.mock.simulator import PtySniffer, Simulator
from agent.mock.world import DEFAULT_RANDOMIZED_SHARE, World
from agent.publisher import Publisher
from agent.runtime import AgentRuntime

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mock", help="run the agent with simulated shoppers instead of real sensors",
        description="Run the real agent (serial reader, presence, hashing, publishing) fed by a simulated store: "
                    "shoppers enter by the entrance, walk between zones, dwell and leave by the exit; their phones "
                    "probe through a pseudo-terminal; PIRs and door beams are driven on mock GPIO pins. Every mock "
                    "agent started with the same --seed simulates the same shoppers at the same time. Also plays "
                    "scenarios published on the store's scenario topic (the map's scenario tab). "
                    "The CHANGE-ME store secret is accepted here.")
    p.add_argument("--config", required=True, metavar="DEVICE",
                   help="device file, e.g. firmware-config/devices/agent-1.toml")
    p.add_argument("--seed", type=int, default=1, help="simulation seed; same seed, same shoppers (default 1)")
    p.add_argument("--shoppers", type=int_at_least(1), default=20,
                   help="shoppers in the store at a time, on average (default 20)")
    p.add_argument("--truth", type=Path, metavar="FILE",
                   help="write the truth every second (JSON lines): each shopper's and staff member's position "
                        "(ts, kind, shopper, device id, x, y, zone) and one kind=occupancy line with the people "
                        "in the store, per zone")
    p.add_argument("--randomized-share", type=number_between(0, 1), default=DEFAULT_RANDOMIZED_SHARE, metavar="F",
                   help="share of phones that randomise their MAC per scan or every few minutes, as modern phones "
                        f"do (default {DEFAULT_RANDOMIZED_SHARE})")
    p.add_argument("--staff", type=int_at_least(0), default=2, metavar="N",
                   help="staff members on the floor all day, each with a phone (default 2)")
    p.add_argument("--fixtures", type=int_at_least(0), default=2, metavar="N",
                   help="fixed devices that probe all the time, e.g. a printer, a till PC (default 2)")
    p.add_argument("--neighbours", type=number_between(0), default=4.0, metavar="N",
                   help="people in the shop next door at a time, on average, heard weakly through the wall "
                        "(default 4)")
    p.add_argument("--loyalty-share", type=number_between(0, 1), default=0.4, metavar="F",
                   help="share of shoppers who are loyalty customers from the customers file (default 0.4)")
    p.add_argument("--opens-at", type=number_between(0), default=None, metavar="EPOCH_S",
                   help="the simulated store opens at this time (epoch seconds): empty before, shoppers arrive from "
                        "then on, as in a real store, so a door count started then is right. Give every agent the "
                        "same value. Default: always open, busy from the first second")
    p.add_argument("--duration", type=number_between(0), default=0.0, metavar="S",
                   help="stop after S seconds (default: run until stopped)")
    p.set_defaults(func=run)


def _customer_ids(path: Path) -> list[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("event=customers-unreadable file=%s reason=%s action=no-loyalty-shoppers", path, exc)
        return []
    return [str(c["customer_id"]) for c in data if isinstance(c, dict) and "customer_id" in c]


def run(args: argparse.Namespace) -> int:
    from gpiozero.pins.mock import MockFactory

    device = load_device(args.config)
    world = World(device.store, seed=args.seed, shoppers=args.shoppers, randomized_share=args.randomized_share,
                  loyalty_share=args.loyalty_share, customers=_customer_ids(device.store.customers_file),
                  staff=args.staff, fixtures=args.fixtures, neighbours=args.neighbours, opens_ts=args.opens_at)
    factory = MockFactory()
    ptys = {s.id: PtySniffer() for s in device.sniffers}
    publisher = Publisher.for_device(device)
    runtime = AgentRuntime(device, publisher, pin_factory=factory, serial_ports={k: v.port for k, v in ptys.items()},
                           spool_stats=lambda: (publisher.spool.depth, publisher.spool.dropped))
    truth = open(args.truth, "w", encoding="utf-8") if args.truth else None
    sim = Simulator(device, world, sniffers=ptys, pin_factory=factory, truth=truth, noise_seed=args.seed,
                    announce=lambda mac, customer, ts: runtime.submit(("link_mac", mac, customer, ts)))

    def on_scenario(payload: bytes) -> None:
        scenario = contract.decode_scenario(payload)
        if isinstance(scenario, contract.Rejection):
            log.warning("event=scenario-rejected reason=%s detail=%s", scenario.reason, scenario.detail)
            return
        sim.scenarios.put(scenario)

    publisher.subscribe(contract.scenario_topic(device.store.id), on_scenario)
    stop = threading.Event()
    try:
        runtime.open()
        publisher.start(wait_s=3)
        sim.start()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        if args.duration > 0:
            threading.Timer(args.duration, stop.set).start()
        log.info("event=mock-started agent=%s seed=%d shoppers=%d in_store_now=%d", device.agent_id, args.seed,
                 args.shoppers, len(world.active(time.time())))
        runtime.run(stop)
        return 0
    finally:
        stop.set()
        sim.stop()
        runtime.close()
        publisher.stop()
        publisher.spool.close()
        for pty in ptys.values():
            pty.close()
        factory.close()
        if truth is not None:
            truth.close()
