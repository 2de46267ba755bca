"""Agent throughput and memory: serial line -> published message, on one core.

``agent.lines_per_s``: raw sniffer lines (JSON and text forms mixed, 3,000 phones, bursts of
probes, ~3 % junk lines) through the agent's real pipeline — parse, HMAC, presence (smoothing,
enter/move/exit), contract encoding — and published by the real Publisher (paho, QoS 1) to a real
mosquitto, timed until the broker has acknowledged the last message. The process is pinned to one
CPU core, so paho's network thread shares the core with the pipeline. Simulated time advances 5 ms
per line (200 frames/s: a very busy sniffer), which sets how many lines become messages.

``agent.cpu_us_per_line``: CPU time per line in that publishing stage, the benchmark's process (all
its threads) plus mosquitto's. The machine is often shared, and lines/s then measures the load as
much as the code; CPU time hardly moves with the load, and 1,000,000 / it is what an idle core would
do. ``agent.pipeline_cpu_us_per_line`` is the same for the stage without publishing.

``agent.lines_per_s_spooled``: the same with the broker away, every message going to the disk spool.
``agent.rss_mb``: peak resident memory (VmHWM) of a real ``floorwalker-agent run`` process fed the
same lines, dealt over its sniffers' pseudo-terminals.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import os
import random
import re
import select
import struct
import subprocess
import sys
import tempfile
import termios
import time
import tty
from collections.abc import Iterator
from pathlib import Path

from agent.config import MqttSettings, load_device
from agent.publisher import Publisher
from agent.runtime import CountingSink, Pipeline
from agent.sequence import Sequence
from agent.spool import Spool
from aggregator.embedded_broker import free_port, start_mosquitto
from tests.benchmarks.bench_ingest import _cpu_of  # mosquitto's CPU, read the way the ingest benchmark reads it
from tests.benchmarks.figures import Figure

REPO = Path(__file__).resolve().parents[2]
DEVICE = REPO / "firmware-config" / "devices" / "agent-1.toml"
SIM_STEP_S = 0.005


def make_lines(n: int, devices: int = 3000, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    macs = [":".join(f"{rng.getrandbits(8):02x}" for _ in range(6)) for _ in range(devices)]
    dist = [rng.uniform(0.5, 25.0) for _ in range(devices)]
    lines: list[bytes] = []
    while len(lines) < n:
        i = rng.randrange(devices)
        dist[i] = max(0.3, dist[i] + rng.gauss(0, 0.5))
        for frame in range(3):  # a burst: one probe per scanned channel
            rssi = max(-100, min(-30, round(-41 - 30 * math.log10(dist[i]) + rng.gauss(0, 4))))
            if rng.random() < 0.03:
                lines.append(rng.choice([b"ets Jan  8 2013,rst cause:2", b'{"rssi": -6', b"\xff\xfe\x01"]))
            elif frame % 2:
                lines.append(f"RSSI: {rssi} Ch: {1 + 5 * frame} Peer MAC: {macs[i]} SSID: ".encode())
            else:
                lines.append(b'{"ts":%d,"ch":%d,"rssi":%d,"subtype":"ProbeReq","addr2":"%s","ssid":"Home"}'
                             % (len(lines), 1 + 5 * frame, rssi, macs[i].encode()))
    return lines[:n]


def feed(pipeline: Pipeline, lines: list[bytes], t0: float) -> None:
    line = pipeline.line
    for i, raw in enumerate(lines):
        ts = t0 + i * SIM_STEP_S
        line("s1", raw, ts)
        if i % 200 == 0:
            pipeline.tick(ts)


def pin_one_core() -> str:
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
        return "pinned to one core"
    except (AttributeError, OSError):
        return "not pinned (no sched_setaffinity)"


def run(args: argparse.Namespace) -> Iterator[Figure]:
    n = 30_000 if args.quick else 200_000
    lines = make_lines(n)
    device = load_device(DEVICE)
    affinity = pin_one_core()
    t0 = time.time()

    sink = CountingSink(device.agent_id)
    cpu = time.process_time()
    start = time.perf_counter()
    feed(Pipeline(device, sink), lines, t0)
    pure_s = time.perf_counter() - start
    cpu = time.process_time() - cpu
    ratio = sum(sink.counts.values()) / n
    yield Figure("agent.pipeline_lines_per_s", round(n / pure_s), "lines/s",
                 note=f"parse+hash+presence+encode, no publishing; {ratio:.1%} of lines became messages")
    yield Figure("agent.pipeline_cpu_us_per_line", round(cpu / n * 1e6, 1), "µs/line", note="CPU time of that stage")

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        broker = start_mosquitto(workdir=workdir / "broker", extra_conf=_root_conf())
        try:
            pub = _publisher(workdir, broker.port)
            pub.start()
            cpu, broker_pid = time.process_time(), broker.process.pid if broker.process else None
            broker_cpu = _cpu_of(broker_pid)
            start = time.perf_counter()
            feed(Pipeline(device, pub), lines, t0)
            pub.stop(flush_s=60.0)  # waits for the broker's PUBACK of every message
            total_s = time.perf_counter() - start
            cpu = time.process_time() - cpu
            broker_cpu = None if broker_cpu is None else (_cpu_of(broker_pid) or 0.0) - broker_cpu
            unacknowledged = pub.spool.depth  # stop() spools what the broker did not acknowledge in time
            pub.spool.close()
            left = f"; {unacknowledged:,} NOT acknowledged (left in the spool)" if unacknowledged else ""
            yield Figure("agent.lines_per_s", round(n / total_s), "lines/s", target=">= 20000",
                         note=f"to a real mosquitto, QoS 1, acknowledged; {pub.published:,} messages{left}; {affinity}")
            yield Figure("agent.cpu_us_per_line", round((cpu + (broker_cpu or 0.0)) / n * 1e6, 1), "µs/line",
                         note=f"CPU of that stage: agent {cpu / n * 1e6:.1f} (pipeline and paho's thread) + mosquitto "
                              + ("not measured" if broker_cpu is None else f"{broker_cpu / n * 1e6:.1f}"))
        finally:
            broker.stop()

        pub = _publisher(workdir, free_port(), name="spooled")
        pub.start(wait_s=0.2)
        start = time.perf_counter()
        feed(Pipeline(device, pub), lines, t0)
        spool_s = time.perf_counter() - start
        depth = pub.spool.depth
        pub.stop(flush_s=0)
        pub.spool.close()
        yield Figure("agent.lines_per_s_spooled", round(n / spool_s), "lines/s",
                     note=f"broker away: {depth:,} messages into the SQLite spool")

        yield Figure("agent.rss_mb", _rss_of_real_agent(workdir, lines[: min(n, 100_000)]), "MB", target="<= 60",
                     note="VmHWM of `floorwalker-agent run` (the demo agent, every sniffer on its own pseudo-terminal)")


def _unread(fd: int) -> int:
    """Bytes written to a pseudo-terminal that its reader (the agent) has not read yet."""
    return struct.unpack("i", fcntl.ioctl(fd, termios.TIOCINQ, b"\0\0\0\0"))[0]


def _root_conf() -> list[str]:
    """As root, mosquitto drops to its own user, which cannot write our private temporary directory."""
    return ["user root"] if os.geteuid() == 0 else []


def _publisher(workdir: Path, port: int, name: str = "bench") -> Publisher:
    return Publisher(agent_id=f"agent-{name}", store_id="demo", settings=MqttSettings(host="127.0.0.1", port=port),
                     spool=Spool(workdir / f"{name}.sqlite", max_messages=10_000_000),
                     sequence=Sequence(f"agent-{name}", workdir / f"{name}.seq"))


def _rss_of_real_agent(workdir: Path, lines: list[bytes]) -> float | None:
    """The demo agent as installed (all its sniffers, linking on), each sniffer on its own pseudo-terminal.

    The lines are dealt round-robin to the sniffers. Writes wait on the terminal with a timeout and
    the agent's liveness is checked between them: an agent that dies at start-up (a bad config, a
    port it cannot open) ends the stage with its stderr instead of blocking on a full terminal.
    """
    text = DEVICE.read_text()
    ports = sorted(set(re.findall(r'"(/dev/ttyUSB\d+)"', text)))
    ptys = [os.openpty() for _ in ports]
    for (_, slave), port in zip(ptys, ports, strict=True):
        tty.setraw(slave)
        text = text.replace(f'"{port}"', f'"{os.ttyname(slave)}"')
    text = text.replace('id = "agent-1"', 'id = "agent-rss"')
    text = text.replace('store = "../store.toml"', f'store = "{REPO / "firmware-config" / "store.toml"}"')
    text = text.replace('path = ""', f'path = "{workdir / "rss-spool.sqlite"}"')
    text = text.split("[[pirs]]")[0]  # no GPIO on a benchmark machine
    device = workdir / "devices" / "agent-rss.toml"
    device.parent.mkdir(parents=True, exist_ok=True)
    device.write_text(text)
    port = free_port()
    broker = start_mosquitto(port, workdir=workdir / "broker-rss", extra_conf=_root_conf())
    env = dict(os.environ, MQTT_HOST="127.0.0.1", MQTT_PORT=str(port), LOG_LEVEL="WARNING",
               FLOORWALKER_STORE_SECRET="benchmark-secret-0123456789")
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "--config", str(device)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        blobs = [memoryview(b"\n".join(lines[i::len(ptys)]) + b"\n") for i in range(len(ptys))]
        deadline = time.monotonic() + 300
        while any(blobs) and proc.poll() is None and time.monotonic() < deadline:
            for i, (master, _) in enumerate(ptys):
                if blobs[i] and select.select([], [master], [], 0.05)[1]:
                    blobs[i] = blobs[i][os.write(master, blobs[i][:4096]):]
        if proc.poll() is not None or any(blobs):
            print(json.dumps({"agent_rss": "the agent exited or stopped reading", "returncode": proc.poll()}),
                  file=sys.stderr)
            return None
        drained = time.monotonic() + 60  # the agent reads what the terminals still hold
        while any(_unread(slave) for _, slave in ptys) and proc.poll() is None and time.monotonic() < drained:
            time.sleep(0.05)
        status = Path(f"/proc/{proc.pid}/status").read_text()
        hwm_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
        return round(hwm_kb / 1024, 1)
    except (OSError, StopIteration):
        return None
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            err = proc.stderr.read().decode(errors="replace").strip()
            proc.stderr.close()
            if err:
                print(json.dumps({"agent_stderr_tail": err[-500:]}), file=sys.stderr)
        broker.stop()
        for master, slave in ptys:
            os.close(master)
            os.close(slave)
