"""The ``--publish`` option that ``daq run``, ``daq resume`` and ``daq gui`` share, and how its settings
are found: the option (an address, or a TOML file with a ``[publish]`` table), else the rig file's
``[publish]`` table; credentials from that table or ``DAQ_MQTT_USERNAME``/``DAQ_MQTT_PASSWORD``.
"""

from __future__ import annotations

import argparse
import socket
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
