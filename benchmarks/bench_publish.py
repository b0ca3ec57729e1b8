"""Publishing to the lab's broker: what it costs a rig PC, and how many messages one broker carries.

Load: 16 simulated channels in one process, each a real-time run (ScaledClock at 1x, one sample per
second, the simulated potentiostat and pressure transducer, the HDF5 writer with its transcript), for
``--seconds`` of wall time after a warm-up; once without publishing and once with a Publisher per
channel to a Mosquitto broker on loopback (started here on a free port). The process's CPU time (all
threads: engines, writers, publishers and paho's network threads) is measured over the same wall
window in both modes; the difference divided by 16 is the added CPU per channel. The broker's CPU
time and the messages a subscriber (another process) received are measured over the same window.

Throughput: one publisher handed 10,000 events as fast as it takes them (20,000 QoS 1 messages of about
200-400 bytes: each event and the retained status naming it), timed until a subscriber on the same
broker (in the same process) has received all of them.

    python benchmarks/bench_publish.py [--seconds 30] [--channels 16]
    python benchmarks/bench_publish.py --count mqtt://127.0.0.1:PORT/LAB   (the subscriber; start/stop on stdin)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daq.core.clock import ScaledClock
from daq.core.records import Event
from daq.engine.engine import RunControl
from daq.engine.publish import Publisher, PublishSettings, parse_url
from daq.engine.runner import run_protocol
from daq.models.cell import load_cell
from protocols.loader import load_protocol
from simulators.rig import simulated_rig

ROOT = Path(__file__).resolve().parents[1]
CELL = ROOT / "protocols/examples/cells/li6ps5cl_99.toml"
PROTOCOL = f"""
[protocol]
name = "Slow plating"
cell = "{CELL}"
[defaults]
sample_period = "1 s"
[[steps]]
kind = "galvanostatic"
label = "plate"
direction = "plate"
current_density = "0.1 mA/cm^2"
duration = "10 h"
"""
TARGET = 2.0  # % of one core per channel
WARMUP = 5.0  # s before measuring: runs started, files created, connections made

Row = tuple[str, str, str, str, str, bool | None]


def start_broker(conf: Path | None = None, options: str = "") -> tuple[subprocess.Popen, int]:
    """Mosquitto on a free loopback port; ``options``: lines of mosquitto.conf (written to ``conf``)."""
    exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if exe is None:
        raise RuntimeError("Mosquitto is not installed (apt-get install mosquitto)")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    if conf is None:
        command = [exe, "-p", str(port)]
    else:
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n{options}\n")
        command = [exe, "-c", str(conf)]
    proc = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("mosquitto did not start")


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of another process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_channels(n: int, seconds: float, tmp: Path, settings: PublishSettings | None, counter: Any = None) -> dict:
    """``n`` real-time runs in threads; CPU and wall time over ``seconds`` after the warm-up. ``counter``:
    the subscriber process, told when the window starts and ends; the broker's CPU is measured with it."""
    protocol_file = tmp / "slow.toml"
    protocol_file.write_text(PROTOCOL)
    controls, threads, publishers = [], [], []
    mode = "publish" if settings else "plain"
    for i in range(n):
        protocol, cell = load_protocol(protocol_file), load_cell(CELL)
        clock = ScaledClock(1.0)
        _, pstat, transducer = simulated_rig(cell, clock)
        control = RunControl()
        subscribers = []
        if settings is not None:
            context = {"cell": cell.cell_id, "protocol": protocol.name, "working_area": cell.electrodes.working_area}
            publishers.append(Publisher(settings, {**context, "rig": "bench", "channel": f"ch{i:02d}"}))
            subscribers.append(publishers[-1])
        kwargs = dict(transducer=transducer, control=control, subscribers=subscribers)
        args = (protocol, cell, pstat, clock, tmp / f"{mode}{i}.h5")
        threads.append(threading.Thread(target=run_protocol, args=args, kwargs=kwargs, daemon=True))
        controls.append(control)
    for t in threads:
        t.start()
    time.sleep(WARMUP)
    sent0 = sum(p.sent for p in publishers)
    broker0 = process_cpu(counter.broker_pid) if counter else 0.0
    if counter:
        counter.stdin.write("start\n")
        counter.stdin.flush()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    time.sleep(seconds)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    sent = sum(p.sent for p in publishers) - sent0
    if counter:
        counter.stdin.write("stop\n")
        counter.stdin.flush()
    broker = (process_cpu(counter.broker_pid) - broker0) if counter else 0.0
    for c in controls:
        c.abort("benchmark over")
    for t in threads:
        t.join(30)
    for p in publishers:
        p.close()
    return {
        "cpu": cpu,
        "wall": wall,
        "broker": broker,
        "sent": sent,
        "dropped": sum(p.dropped for p in publishers),
    }


def count(url: str) -> None:
    """The subscriber (its own process): messages received between a "start" and a "stop" line on stdin."""
    from daq.engine.labwatch import LabWatch

    watch = LabWatch(parse_url(url))
    sys.stdin.readline()
    n0, cpu0 = sum(sum(v.messages.values()) for v in watch.snapshot()), time.process_time()
    sys.stdin.readline()
    n1 = sum(sum(v.messages.values()) for v in watch.snapshot())
    print(f"received {n1 - n0} cpu {time.process_time() - cpu0:.3f} channels {len(watch.snapshot())}", flush=True)
    watch.close()


def throughput(port: int, events: int = 10_000) -> tuple[float, float, int, int]:
    """Messages per second from one publisher through the broker to one subscriber: each event is two
    messages (the event, and the channel's retained status with it as the last event)."""
    import paho.mqtt.client as mqtt

    messages = 2 * events
    got, last = [0], [0.0]

    def on_message(*_):
        got[0] += 1
        last[0] = time.perf_counter()

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    sub.on_message = on_message
    sub.on_connect = lambda c, *_: c.subscribe("tp/#", qos=1)
    sub.connect("127.0.0.1", port)
    sub.loop_start()
    settings = replace(parse_url(f"mqtt://127.0.0.1:{port}/tp"), queue_size=messages + 10, linger=60.0)
    pub = Publisher(settings, {"cell": "LPSCl-99-01", "protocol": "bench", "rig": "bench", "channel": "tp"})
    time.sleep(1.0)  # both connected and subscribed
    got[0] = 0
    cpu0, t0 = time.process_time(), time.perf_counter()
    for i in range(events):
        pub(Event(float(i), "note", 0, "throughput message from the lab publishing benchmark", {"i": i}))
    while got[0] < messages and time.perf_counter() - max(last[0], t0) < 3.0:  # until all came, or none for 3 s
        time.sleep(0.05)
    wall, cpu = last[0] - t0, time.process_time() - cpu0
    pub.close()
    sub.disconnect()
    sub.loop_stop()
    return wall, cpu, got[0], pub.dropped


def rows(seconds: float = 30.0, channels: int = 16) -> list[Row]:
    load0 = os.getloadavg()[0]
    broker, port = start_broker()
    url = f"mqtt://127.0.0.1:{port}/benchlab"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            plain = run_channels(channels, seconds, Path(tmp), None, None)
            counter = subprocess.Popen(
                [sys.executable, __file__, "--count", url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
            counter.broker_pid = broker.pid
            published = run_channels(channels, seconds, Path(tmp), parse_url(url), counter)
            heard = counter.communicate(timeout=60)[0].split()
            broker.kill()
            broker.wait(10)
            # a burst of 20,000 QoS 1 messages: without a limit on the messages queued for the subscriber
            # (Mosquitto's max_queued_messages, 1000 by default, drops what is above it)
            broker, port = start_broker(Path(tmp) / "burst.conf", "max_queued_messages 0")
            tp_wall, tp_cpu, tp_got, tp_dropped = throughput(port)
    finally:
        broker.kill()
        broker.wait(10)
    load1 = os.getloadavg()[0]
    received, sub_cpu = int(heard[1]), float(heard[3])
    added = 100 * (published["cpu"] - plain["cpu"]) / published["wall"] / channels
    base = 100 * plain["cpu"] / plain["wall"] / channels
    broker_share = 100 * published["broker"] / published["wall"] / channels
    rate = received / published["wall"]
    load = f"load average {load0:.1f}-{load1:.1f} on {os.cpu_count()} cores"
    return [
        (
            f"added CPU per channel while publishing, {channels} real-time channels at 1 sample/s on one broker, "
            f"{published['wall']:.0f} s window ({load})",
            f"{added:.2f} % of one core per channel ({published['cpu']:.2f} s CPU in {published['wall']:.1f} s wall)",
            f"same runs without publishing: {base:.2f} % per channel ({plain['cpu']:.2f} s CPU in "
            f"{plain['wall']:.1f} s wall)",
            f"+{added / base * 100:.0f} %" if base > 0 else "-",
            f"< {TARGET:g} % of one core per channel",
            added < TARGET,
        ),
        (
            f"messages through the broker, {channels} channels publishing ({load})",
            f"{rate:.1f} messages/s received by a subscriber ({received} in {published['wall']:.1f} s; "
            f"{published['sent']} sent, {published['dropped']} dropped); broker {broker_share:.2f} % of one core "
            f"per channel, subscriber {sub_cpu:.2f} s CPU",
            f"{channels} channels x 2 messages/s (progress + data at period 1 s)",
            f"{rate / (2 * channels):.2f}x",
            "every message delivered, none dropped",
            published["dropped"] == 0 and received >= 0.95 * 2 * channels * published["wall"],
        ),
        (
            "broker throughput, one publisher to one subscriber, 10,000 events = 20,000 QoS 1 messages at once "
            f"(broker: max_queued_messages 0; {load})",
            f"{tp_got / tp_wall:,.0f} messages/s ({tp_got} of 20,000 delivered in {tp_wall:.2f} s wall; "
            f"{tp_dropped} dropped by the publisher; publisher and subscriber process {tp_cpu:.2f} s CPU)",
            f"{channels} channels at 1 sample/s: {2 * channels} messages/s",
            f"{tp_got / tp_wall / (2 * channels):,.0f}x",
            "all 20,000 delivered",
            tp_got >= 20_000 and tp_dropped == 0,
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measured wall time per mode")
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--count", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.count:
        count(args.count)
        return 0
    print("| measurement | this product | reference | ratio | target | met? |\n|---|---|---|---|---|---|")
    for row in rows(args.seconds, args.channels):
        print("| " + " | ".join(row[:5]) + f" | {'yes' if row[5] else '**no**'} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
