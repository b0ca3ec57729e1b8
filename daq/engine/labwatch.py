"""Listen to a lab's broker: the latest status of every channel, its recent data and events.

The receiving side of daq.engine.publish, shared by ``daq lab`` (a table in the terminal) and
``daq gui --lab`` (a tile per channel). Memory is bounded: a few thousand data points and a hundred
events per channel. paho-mqtt is imported only here.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from daq.core.errors import ConfigError
from daq.engine.publish import PublishSettings, with_environment

MAX_POINTS = 5000  # data points kept per channel and column
MAX_EVENTS = 100


@dataclass
class ChannelView:
    """What the lab knows about one channel."""

    key: str  # "rig/channel"
    status: dict[str, Any] = field(default_factory=dict)
    progress: dict[str, Any] = field(default_factory=dict)
    events: deque = field(default_factory=lambda: deque(maxlen=MAX_EVENTS))
    data: dict[str, deque] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    messages: dict[str, int] = field(default_factory=dict)  # per topic

    def add_data(self, payload: dict[str, Any]) -> None:
        self.units.update(payload.get("units", {}))
        for name, values in payload.get("columns", {}).items():
            self.data.setdefault(name, deque(maxlen=MAX_POINTS)).extend(values)


class LabWatch:
    """Subscribes to ``<lab>/+/+/#`` and keeps a :class:`ChannelView` per rig and channel."""

    def __init__(self, settings: PublishSettings, client: Any = None):
        self.settings = with_environment(settings)
        self.lock = threading.Lock()
        self.channels: dict[str, ChannelView] = {}
        self.connected = threading.Event()
        self.bad_messages = 0
        self._client = client if client is not None else self._make_client()

    def _make_client(self) -> Any:
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise ConfigError("the lab view", None, "needs paho-mqtt: pip install 'sse-rig[lab]'") from None
        s = self.settings
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        if s.username:
            client.username_pw_set(s.username, s.password)
        if s.tls:
            client.tls_set(ca_certs=s.ca_file)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = lambda *_: self.connected.clear()
        client.on_message = lambda _c, _u, message: self.receive(message.topic, message.payload)
        client.connect_async(s.host, s.port, keepalive=30)
        client.loop_start()
        return client

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any = None) -> None:
        if not getattr(reason, "is_failure", False):
            client.subscribe(f"{self.settings.lab}/+/+/#", qos=1)
            self.connected.set()

    def receive(self, topic: str, payload: bytes) -> None:
        """One message (paho's thread): file it under its channel. Malformed ones are counted."""
        parts = topic.split("/")
        try:
            body = json.loads(payload)
            if len(parts) != 4 or not isinstance(body, dict):
                raise ValueError(topic)
        except ValueError:
            self.bad_messages += 1
            return
        key, kind = f"{parts[1]}/{parts[2]}", parts[3]
        with self.lock:
            view = self.channels.setdefault(key, ChannelView(key))
            view.messages[kind] = view.messages.get(kind, 0) + 1
            if kind == "status":
                view.status = body
            elif kind == "progress":
                view.progress = body
            elif kind == "events":
                view.events.append(body)
            elif kind == "data":
                view.add_data(body)

    def snapshot(self) -> list[ChannelView]:
        with self.lock:
            return [self.channels[k] for k in sorted(self.channels)]

    def close(self) -> None:
        try:
            self._client.disconnect()
            self._client.loop_stop()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass


def row(view: ChannelView) -> dict[str, str]:
    """One line of the lab table (terminal and tiles): texts, no units lost."""
    s = view.status
    step = s.get("step") or {}
    progress = view.progress.get("progress", s.get("progress"))
    event = s.get("last_event") or {}
    return {
        "channel": view.key,
        "cell": str(s.get("cell", "?")),
        "protocol": str(s.get("protocol", "?")),
        "step": f"{step.get('index', '')} {step.get('label') or step.get('kind', '')}".strip() or "-",
        "progress": f"{100 * progress:.0f} %" if isinstance(progress, (int, float)) else "-",
        "state": str(s.get("state", "?")),
        "alarm": str(s.get("alarm") or ""),
        "event": f"{event.get('kind', '')}: {event.get('message', '')}" if event else "-",
    }
