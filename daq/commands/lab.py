"""``daq lab mqtt://HOST[:PORT][/LAB]``: every channel of every rig PC, as one table in the terminal."""

from __future__ import annotations

import argparse
import time

from daq.core.errors import ConfigError
from daq.engine.publish import parse_url


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lab",
        help="show every channel publishing to the lab's MQTT broker",
        description="Print a table of the channels publishing to a broker: cell, protocol, step, progress, "
        "state and last event. Credentials: DAQ_MQTT_USERNAME, DAQ_MQTT_PASSWORD, DAQ_MQTT_CA_FILE.",
    )
    p.add_argument("broker", metavar="mqtt://HOST[:PORT][/LAB]", help="the lab's broker (lab 'lab' by default)")
    p.add_argument("--wait", type=float, default=2.0, help="seconds to listen before printing (default 2)")
    p.add_argument("--follow", action="store_true", help="print the table again every --wait seconds")
    p.set_defaults(func=cmd_lab)


COLUMNS = ("channel", "cell", "protocol", "step", "progress", "state", "event")


def table(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "no channel has published yet"
    shown = [
        {k: (r[k] if k != "state" or not r["alarm"] else f"{r['state']} !{r['alarm']}") for k in COLUMNS} for r in rows
    ]
    widths = {k: min(40, max(len(k), *(len(r[k]) for r in shown))) for k in COLUMNS}
    lines = ["  ".join(k.upper().ljust(widths[k]) for k in COLUMNS)]
    lines += ["  ".join(r[k][: widths[k]].ljust(widths[k]) for k in COLUMNS) for r in shown]
    return "\n".join(line.rstrip() for line in lines)


def cmd_lab(args: argparse.Namespace) -> int:
    from daq.engine.labwatch import LabWatch, row

    if not 0 < args.wait <= 3600:
        raise ConfigError("--wait", args.wait, "must be more than 0 and at most 3600 s")
    settings = parse_url(args.broker, "broker")
    watch = LabWatch(settings)
    try:
        while True:
            time.sleep(args.wait)
            if not watch.connected.is_set():
                raise ConfigError("broker", args.broker, f"not reachable (no connection within {args.wait:g} s)")
            print(table([row(v) for v in watch.snapshot()]), flush=True)
            if not args.follow:
                return 0
            print()
    finally:
        watch.close()
