"""Publish a run to the lab's MQTT broker, so one view shows every channel of every rig PC.

A :class:`Publisher` is an optional run subscriber. It turns records into small JSON messages on
``<lab>/<rig>/<channel>/{status,step,progress,events,data}`` (docs/lab.md) and hands them to a sender
thread through a bounded queue: the run's thread never waits for the network. When the queue is full a
message is dropped and counted; the paho-mqtt client reconnects with backoff by itself, and the last
status (retained on the broker) is sent again after every reconnection. The broker's address and
credentials come from ``--publish``, a ``[publish]`` table of a rig file, or ``DAQ_MQTT_*`` environment
variables; none of it is ever written into a run file. paho-mqtt is imported only when publishing.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import queue
import re
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np

from daq.core.errors import ConfigError
from daq.core.records import Event, Record, RunEnd, RunStart, Samples, StepEnd, StepStart
from daq.core.tables import ConfigTable

TOPICS = ("status", "step", "progress", "events", "data")
DATA_UNITS = {"t": "s", "E_we": "V", "E_cell": "V", "I": "A", "Q": "C", "pressure": "Pa", "step": "1"}
ALARMS = {"short_circuit", "fault", "interlock", "instrument_lost", "voltage_limit", "current_limit"}
_SEGMENT = re.compile(r"^[^/+#\x00]{1,64}$")


@dataclass(frozen=True)
class PublishSettings:
    """Where and how to publish. ``password`` is kept out of ``repr`` so it never reaches a log."""

    host: str
    port: int = 1883
    lab: str = "lab"
    rig: str | None = None
    channel: str | None = None
    tls: bool = False
    ca_file: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    period: float = 1.0  # s of wall time between progress/data messages of one channel
    max_points: int = 50  # data points per data message (decimated)
    queue_size: int = 1000  # messages waiting for the network; more are dropped and counted
    linger: float = 2.0  # s the process waits at exit for queued messages


def parse_url(url: str, what: str = "--publish") -> PublishSettings:
    """``mqtt://HOST[:PORT][/LAB[/RIG[/CHANNEL]]]`` (``mqtts://`` for TLS, default port 8883)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ConfigError(what, url, "expected mqtt://HOST[:PORT][/LAB[/RIG[/CHANNEL]]] (or mqtts:// for TLS)")
    if parts.username or parts.password:
        raise ConfigError(what, "mqtt://...", "no credentials in the address: use DAQ_MQTT_USERNAME/DAQ_MQTT_PASSWORD")
    try:
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    except ValueError:
        raise ConfigError(what, url, "the port must be a number from 1 to 65535") from None
    names = [unquote(p) for p in parts.path.split("/") if p]
    if len(names) > 3:
        raise ConfigError(what, url, "at most /LAB/RIG/CHANNEL after the host")
    for name in names:
        check_segment(name, what)
    lab, rig, channel = (names + [None, None, None])[:3]
    return PublishSettings(parts.hostname, port, lab or "lab", rig, channel, tls=parts.scheme == "mqtts")


def check_segment(name: str, what: str) -> str:
    if not _SEGMENT.match(name):
        raise ConfigError(what, name, "a lab, rig or channel name must be 1-64 characters without / + #")
    return name


def with_environment(settings: PublishSettings, env: dict[str, str] | None = None) -> PublishSettings:
    """Credentials and TLS files from ``DAQ_MQTT_USERNAME``, ``DAQ_MQTT_PASSWORD``, ``DAQ_MQTT_CA_FILE``."""
    env = dict(os.environ) if env is None else env
    return replace(
        settings,
        username=settings.username or env.get("DAQ_MQTT_USERNAME") or None,
        password=settings.password or env.get("DAQ_MQTT_PASSWORD") or None,
        ca_file=settings.ca_file or env.get("DAQ_MQTT_CA_FILE") or None,
        tls=settings.tls or bool(env.get("DAQ_MQTT_CA_FILE")),
    )


def settings_from_table(doc: dict[str, Any], source: str) -> PublishSettings | None:
    """The ``[publish]`` table of a rig file: ``url``, ``username``, ``password_env``, ``ca_file``,
    ``period``. A password itself is refused: it belongs in an environment variable."""
    if "publish" not in doc:
        return None
    t = ConfigTable(doc["publish"], "publish")
    t.unknown({"url", "username", "password_env", "ca_file", "tls", "period"}, show_value=False)
    settings = parse_url(t.text("url", nonempty=True), f"{source}: publish.url")
    password = None
    env_name = t.text("password_env", required=False, nonempty=True)
    if env_name:
        password = os.environ.get(env_name)
        if password is None:
            raise ConfigError(f"{source}: publish.password_env", env_name, "no such environment variable is set")
    period = t.number("period", settings.period, lo=0.05, hi=3600.0)
    return replace(
        settings,
        username=t.text("username", required=False, nonempty=True),
        password=password,
        ca_file=t.text("ca_file", required=False, nonempty=True),
        tls=t.flag("tls", settings.tls),
        period=float(period if period is not None else settings.period),
    )


def _json(value: Any) -> Any:
    """JSON-able copy: numpy scalars as Python numbers, non-finite floats as None."""
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


class Publisher:
    """A run subscriber publishing one channel. Calls never block and never raise to the run."""

    def __init__(self, settings: PublishSettings, context: dict[str, Any], client: Any = None):
        self.settings = settings
        self.context = _json(context)  # cell, protocol, working_area (m^2), rig, channel
        rig = settings.rig or str(context.get("rig") or socket.gethostname())
        channel = settings.channel or str(context.get("channel") or "sim")
        self.base = f"{settings.lab}/{check_segment(rig, 'rig')}/{check_segment(channel, 'channel')}"
        self.dropped = 0
        self.sent = 0
        self._queue: queue.Queue[tuple[str, bytes, int, bool]] = queue.Queue(settings.queue_size)
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._last: Any = None  # the last message handed to the client (its delivery can be awaited)
        self._status: dict[str, Any] = {**self.context, "state": "starting", "rig": rig, "channel": channel}
        self._resend_status = False
        self._step: dict[str, Any] = {}
        self._points: list[dict[str, list[float]]] = []
        self._last_flush = 0.0
        self._client = client if client is not None else self._make_client()
        self._sender = threading.Thread(target=self._send_loop, name=f"publish {self.base}", daemon=True)
        self._sender.start()
        atexit.register(self.close)

    # --- the run's side: records to messages ---------------------------------------------------
    def __call__(self, record: Record) -> None:
        try:
            self._record(record)
        except Exception:  # noqa: BLE001 - publishing must never affect the run
            self.dropped += 1

    def _record(self, record: Record) -> None:
        if isinstance(record, Samples):
            self._samples(record)
        elif isinstance(record, StepStart):
            self._step = {"index": record.index, "kind": record.kind, "label": record.label, "cycle": record.cycle}
            self._step_limits = (record.t_start, record.parameters)
            self._put("step", {**self._step, "t_start": record.t_start, "parameters": record.parameters}, qos=1)
            self._set_status(step=self._step, progress=0.0)
        elif isinstance(record, StepEnd):
            self._flush()
            self._put("step", {**self._step, "t_end": record.t_end, "Q": record.Q, "end_reason": record.end_reason})
            if record.end_reason in ("capacity_reached", "time_reached", "completed"):
                self._status["progress"] = 1.0
        elif isinstance(record, Event):
            self._event(record)
        elif isinstance(record, RunStart):
            self._set_status(state="running", t=record.t0)
        elif isinstance(record, RunEnd):
            self._flush()
            self._set_status(state=str(record.outcome), status=str(record.status), finished=True)

    def _event(self, record: Event) -> None:
        event = {"t": record.t, "kind": str(record.kind), "step": record.step, "message": record.message}
        self._put("events", {**event, "data": record.data}, qos=1)
        state = {"paused": "paused", "resumed": "running", "interlock": "interlock", "interlock_cleared": "running"}
        changes: dict[str, Any] = {"last_event": event}
        if event["kind"] in state:
            changes["state"] = state[event["kind"]]
        if event["kind"] in ALARMS:
            changes["alarm"] = event["kind"]
        self._set_status(**changes)

    def _samples(self, record: Samples) -> None:
        cols = record.columns
        if not len(record):
            return
        keep = {k: np.asarray(cols[k], dtype=float) for k in DATA_UNITS if k in cols}
        idx = np.linspace(0, len(record) - 1, min(len(record), self.settings.max_points)).astype(int)
        self._points.append({k: v[idx].tolist() for k, v in keep.items()})  # first and last kept
        now = time.monotonic()
        if now - self._last_flush >= self.settings.period:
            self._flush()
            self._last_flush = now
            t = float(keep["t"][-1])
            self._put("progress", {**self._step, "t": t, "progress": self._progress(t, float(keep["Q"][-1]))})
            self._status.update(t=t, progress=self._progress(t, float(keep["Q"][-1])))

    def _progress(self, t: float, q: float) -> float | None:
        """Fraction of the current step done: by time, by capacity, whichever is further."""
        t_start, parameters = getattr(self, "_step_limits", (0.0, {}))
        fractions = []
        if parameters.get("duration"):
            fractions.append((t - t_start) / parameters["duration"])
        area = self.context.get("working_area")
        if parameters.get("capacity") and area:
            fractions.append(abs(q) / (parameters["capacity"] * area))
        return round(min(1.0, max(fractions)), 4) if fractions else None

    def _flush(self) -> None:
        if not self._points:
            return
        points, self._points = self._points, []
        data = {k: [x for p in points for x in p.get(k, [])] for k in points[-1]}
        n = len(data["t"])
        if n > self.settings.max_points:  # decimate to at most max_points per message
            idx = np.linspace(0, n - 1, self.settings.max_points).astype(int)
            data = {k: [v[i] for i in idx] for k, v in data.items()}
        self._put("data", {"columns": data, "units": {k: DATA_UNITS[k] for k in data}})

    def _set_status(self, **changes: Any) -> None:
        self._status.update(changes)
        self._put("status", self._status, qos=1, retain=True)

    def _put(self, topic: str, payload: dict[str, Any], qos: int = 0, retain: bool = False) -> None:
        body = json.dumps(_json({**payload, "time": time.time()}), separators=(",", ":")).encode()
        try:
            self._queue.put_nowait((f"{self.base}/{topic}", body, qos, retain))
        except queue.Full:
            self.dropped += 1

    # --- the sender's side ----------------------------------------------------------------------
    def _make_client(self) -> Any:
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise ConfigError("--publish", None, "needs paho-mqtt: pip install 'sse-rig[lab]'") from None
        s = self.settings
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"daq-{self.base}-{os.getpid()}")
        if s.username:
            client.username_pw_set(s.username, s.password)
        if s.tls:
            client.tls_set(ca_certs=s.ca_file)
        lost = {**self._status, "state": "lost", "time": None}
        client.will_set(f"{self.base}/status", json.dumps(_json(lost)), qos=1, retain=True)
        client.max_queued_messages_set(s.queue_size)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = lambda *_: self._connected.clear()
        client.connect_async(s.host, s.port, keepalive=30)
        client.loop_start()  # paho's network thread: connects, and reconnects with backoff
        return client

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any = None) -> None:
        if not getattr(reason, "is_failure", False):
            self._resend_status = True  # the broker may have lost its retained messages
            self._connected.set()

    def _send_loop(self) -> None:
        while not (self._stop.is_set() and self._queue.empty()):
            if not self._connected.wait(0.2):
                if self._stop.is_set():
                    return
                continue
            if self._resend_status:
                self._resend_status = False
                self._publish((f"{self.base}/status", json.dumps(_json(self._status)).encode(), 1, True))
            try:
                message = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            self._publish(message)

    def _publish(self, message: tuple[str, bytes, int, bool]) -> None:
        topic, body, qos, retain = message
        try:
            info = self._client.publish(topic, body, qos=qos, retain=retain)
            ok = info.rc == 0
        except Exception:  # noqa: BLE001 - a network fault costs a message, never the run
            ok = False
        if ok:
            self._last = info
            self.sent += 1
        else:
            self.dropped += 1

    def close(self, timeout: float | None = None) -> None:
        """Send what is queued (at most ``linger`` s), then disconnect. Safe to call twice."""
        if self._stop.is_set():
            return
        deadline = time.monotonic() + (self.settings.linger if timeout is None else timeout)
        while not self._queue.empty() and self._connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.02)
        self._stop.set()
        self._sender.join(max(0.0, deadline - time.monotonic()) + 0.5)
        self.dropped += self._queue.qsize()
        try:
            if self._last is not None:  # handed to the client is not yet written: let it reach the socket
                self._last.wait_for_publish(max(0.1, deadline - time.monotonic()))
            self._client.disconnect()
            self._client.loop_stop()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass
