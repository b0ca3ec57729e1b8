"""``daq lab mqtt://HOST[:PORT][/LAB]``: every channel of every rig PC, as one table in the terminal.

Also the ``--publish`` option that ``daq run``, ``daq resume`` and ``daq gui`` share, and how its
settings are found: the option (an address, or a TOML file with a ``[publish]`` table), else the rig
file's ``[publish]`` table; credentials from that table or ``DAQ_MQTT_USERNAME``/``DAQ_MQTT_PASSWORD``.
"""

from __future__ import annotations

import argparse
import socket
import time
from pathlib import Path
from typing import Any

from daq.core.errors import ConfigError
from daq.core.records import Subscriber
from daq.core.tables import read_toml
from daq.engine.publish import Publisher, PublishSettings, parse_url, settings_from_table, with_environment


def add_publish_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--publish",
        metavar="mqtt://HOST[:PORT][/LAB[/RIG[/CHANNEL]]]",
        help="publish status, steps, progress, events and decimated data to the lab's MQTT broker "
        "(or a TOML file with a [publish] table); never affects the run",
    )


def publish_settings(args: argparse.Namespace) -> PublishSettings | None:
    value = getattr(args, "publish", None)
    if value:
        if "://" in value:
            return with_environment(parse_url(value))
        _, doc = read_toml(value, "publish settings")
        found = settings_from_table(doc, value)
        if found is None:
            raise ConfigError("--publish", value, "has no [publish] table")
        return with_environment(found)
    rig = getattr(args, "rig", None)
    if rig:
        path = str(rig).partition("#")[0]
        _, doc = read_toml(path, "rig")
        found = settings_from_table(doc, path)
        return with_environment(found) if found else None
    return None


def publisher_from(args: argparse.Namespace, protocol: Any, cell: Any) -> list[Subscriber]:
    """The run's publisher as a subscriber list (empty when nothing asks for publishing)."""
    settings = publish_settings(args)
    if settings is None:
        return []
    context: dict[str, Any] = {
        "cell": cell.cell_id,
        "protocol": protocol.name,
        "working_area": cell.electrodes.working_area,
        "host": socket.gethostname(),
    }
    rig = getattr(args, "rig", None)
    if rig:
        path, _, channel = str(rig).partition("#")
        _, doc = read_toml(path, "rig")
        context["rig"] = str(doc.get("rig", {}).get("name") or Path(path).stem).replace("/", "-")
        channels = list(doc.get("channels", {}))
        context["channel"] = channel or (channels[0] if len(channels) == 1 else cell.cell_id)
    return [Publisher(settings, context)]


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
