"""Tell the operator: a run stopped, a cell shorted, an interlock held the cell, an instrument failed.

Nobody watches an overnight run, so the software has to reach someone. A notification goes out through
a command hook (any program: a pager gateway, a chat webhook script, ``logger``), run with a bounded
timeout, with the details in ``DAQ_*`` environment variables and as JSON on its stdin, and/or by e-mail
through the lab's SMTP server (STARTTLS and login optional). Settings come from a TOML ``[notify]``
table (docs/reliability.md).

A :class:`Notifier` subscribes to a run's records. On the wall clock deliveries run in a background thread so
a slow mail server never stalls acquisition (in accelerated, virtual-time runs they run in line, so
their outcome lands in the record deterministically). Nothing a notifier does can stop a run: every
failed or successful delivery is recorded as a run event (``notify_failed`` / ``notified``) when the
engine next reports, and failures after the run has closed its file are returned by
:meth:`Notifier.close`.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import math
import os
import queue
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from daq.core import units as u
from daq.core.capabilities import RunHandle
from daq.core.errors import ConfigError
from daq.core.records import Event, EventKind, Record, RunEnd
from daq.core.tables import ConfigTable, read_toml, suggest

# What can be notified. "instrument": an instrument fault that was ridden out (off by default: noisy).
CATEGORIES = ("stop", "short_circuit", "interlock", "fault", "refused", "instrument")
DEFAULT_ON = ("stop", "short_circuit", "interlock", "fault", "refused")
_EVENT_CATEGORY = {
    "short_circuit": "short_circuit",
    "interlock": "interlock",
    "fault": "fault",
    "instrument_lost": "fault",
    "transducer_fault": "instrument",
    "instrument_reconnected": "instrument",
}
_NEVER_THROTTLED = ("stop", "short_circuit", "refused", "fault")

Reporter = Callable[[str, str, dict[str, Any]], None]


@dataclass(frozen=True)
class CommandHook:
    argv: tuple[str, ...]
    timeout: float = 10.0  # s


@dataclass(frozen=True)
class EmailSettings:
    host: str
    sender: str
    to: tuple[str, ...]
    port: int = 25
    starttls: bool = False
    ssl: bool = False  # SMTP over TLS from the first byte (port 465)
    username: str | None = None
    password_env: str | None = None  # name of the environment variable holding the password
    password: str | None = None  # discouraged: prefer password_env
    ca_file: str | None = None  # CA bundle for the server's certificate (a lab's own CA)
    timeout: float = 10.0  # s
    subject_prefix: str = "[daq]"


@dataclass(frozen=True)
class NotifyConfig:
    on: tuple[str, ...] = DEFAULT_ON
    command: CommandHook | None = None
    email: EmailSettings | None = None
    repeat_after: float = 300.0  # s: interlocks and instrument notices of one kind at most this often
    source: str = ""


@dataclass
class Notice:
    category: str
    subject: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> str:
        return json.dumps(
            {"category": self.category, "subject": self.subject, "message": self.message, **self.details}, default=str
        )


# --- settings -------------------------------------------------------------------------------------
_EMAIL_FIELDS = (
    "host",
    "port",
    "from",
    "to",
    "starttls",
    "ssl",
    "username",
    "password_env",
    "password",
    "ca_file",
    "timeout",
    "subject_prefix",
    "allow_plaintext_auth",
)
MAX_DELIVERY_TIME = 3600.0  # s, the longest a hook or a mail server may take


def _seconds(t: ConfigTable, key: str, default: float) -> float:
    return t.quantity(key, u.TIME, default, hi=MAX_DELIVERY_TIME, unit="s")  # type: ignore[return-value]


def _email(et: ConfigTable) -> EmailSettings:
    et.unknown(_EMAIL_FIELDS, show_value=False)
    port = et.data.get("port", 465 if et.data.get("ssl") is True else 25)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigError("notify.email.port", port, "must be a port number 1-65535")
    starttls, use_ssl = et.flag("starttls", False), et.flag("ssl", False)
    if starttls and use_ssl:
        raise ConfigError("notify.email.starttls", True, "choose starttls or ssl, not both")
    password_env = et.text("password_env", required=False, nonempty=True)
    username = et.text("username", required=False, nonempty=True)
    password = et.text("password", required=False, nonempty=True)
    if (password_env or password) and not username:
        raise ConfigError("notify.email.username", None, "missing; a password needs a user name")
    if username and not (starttls or use_ssl) and not et.flag("allow_plaintext_auth", False):
        raise ConfigError(
            "notify.email.username",
            username,
            "logging in without starttls = true or ssl = true would send the password unencrypted; "
            "encrypt the link, or set allow_plaintext_auth = true if the server is trusted",
        )
    et.flag("allow_plaintext_auth", False)
    return EmailSettings(
        host=et.text("host", nonempty=True),
        sender=et.text("from", nonempty=True),
        to=et.strings("to", required=True) or (),
        port=port,
        starttls=starttls,
        ssl=use_ssl,
        username=username,
        password_env=password_env,
        password=password,
        ca_file=et.text("ca_file", required=False, nonempty=True),
        timeout=_seconds(et, "timeout", 10.0),
        subject_prefix=et.text("subject_prefix", "[daq]"),
    )


def notify_from_dict(doc: Any, source: str = "<notify>") -> NotifyConfig:
    try:
        root = ConfigTable(doc, "")
        root.unknown(("notify",), show_value=False)
        if "notify" not in root.data:
            raise ConfigError("notify", None, "missing [notify] table")
        t = root.sub("notify")
        t.unknown(("on", "command", "email", "repeat_after"), show_value=False)
        on = t.strings("on") or DEFAULT_ON
        for c in on:
            if c not in CATEGORIES:
                raise ConfigError(
                    "notify.on", c, f"unknown{suggest(c, CATEGORIES)}; choose from {', '.join(CATEGORIES)}"
                )
        command = None
        if "command" in t.data:
            raw = t.data["command"]
            ct = ConfigTable({"argv": raw} if isinstance(raw, list) else raw, "notify.command")
            ct.unknown(("argv", "timeout"), show_value=False)
            command = CommandHook(ct.strings("argv", required=True) or (), _seconds(ct, "timeout", 10.0))
        email = _email(t.sub("email")) if "email" in t.data else None
        if command is None and email is None:
            raise ConfigError("notify", None, "give a [notify.command] and/or a [notify.email] table")
        return NotifyConfig(tuple(on), command, email, _seconds(t, "repeat_after", 300.0), source)
    except ConfigError as exc:
        raise exc.located(source) from None


def load_notify(path: str | Path) -> NotifyConfig:
    _, doc = read_toml(path, "notify")
    return notify_from_dict(doc, str(path))


# --- delivery -------------------------------------------------------------------------------------
def run_command(hook: CommandHook, notice: Notice) -> None:
    """Run the hook; raises RuntimeError (with the reason) unless it exits 0 within its timeout."""
    env = dict(os.environ)
    d = notice.details
    env.update(
        {
            "DAQ_NOTIFY_CATEGORY": notice.category,
            "DAQ_NOTIFY_SUBJECT": notice.subject,
            "DAQ_NOTIFY_MESSAGE": notice.message,
            "DAQ_RUN_FILE": str(d.get("run_file", "")),
            "DAQ_CELL_ID": str(d.get("cell_id", "")),
            "DAQ_PROTOCOL": str(d.get("protocol", "")),
            "DAQ_HOST": str(d.get("host", "")),
            "DAQ_EVENT_KIND": str(d.get("event_kind", "")),
            "DAQ_EVENT_TIME": str(d.get("t", "")),
            "DAQ_RUN_OUTCOME": str(d.get("outcome", "")),
        }
    )
    try:
        proc = subprocess.run(
            list(hook.argv),
            input=notice.as_json(),
            text=True,
            env=env,
            capture_output=True,
            timeout=hook.timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"command {hook.argv[0]!r} did not finish within {hook.timeout:g} s (killed)") from None
    except OSError as exc:
        raise RuntimeError(f"command {hook.argv[0]!r} could not be started: {exc.strerror or exc}") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-1:] or [""]
        raise RuntimeError(f"command {hook.argv[0]!r} exited with {proc.returncode}: {tail[0][:200]}")


def send_email(settings: EmailSettings, notice: Notice) -> None:
    """Send one message; raises (smtplib/OSError/RuntimeError) when the server does not take it."""
    msg = EmailMessage()
    msg["Subject"] = f"{settings.subject_prefix} {notice.subject}".strip()
    msg["From"] = settings.sender
    msg["To"] = ", ".join(settings.to)
    body = [notice.message, ""] + [f"{k}: {v}" for k, v in notice.details.items() if k != "event_data"]
    msg.set_content("\n".join(body))
    context = ssl.create_default_context(cafile=settings.ca_file) if (settings.ssl or settings.starttls) else None
    password = settings.password
    if settings.password_env:
        password = os.environ.get(settings.password_env)
        if password is None:
            raise RuntimeError(f"environment variable {settings.password_env} (the SMTP password) is not set")
    cls = smtplib.SMTP_SSL if settings.ssl else smtplib.SMTP
    kwargs: dict[str, Any] = {"timeout": settings.timeout}
    if settings.ssl:
        kwargs["context"] = context
    with cls(settings.host, settings.port, **kwargs) as smtp:
        if settings.starttls:
            smtp.starttls(context=context)
        if settings.username:
            smtp.login(settings.username, password or "")
        smtp.send_message(msg)


def _fmt_t(t: Any) -> str:
    try:
        t = float(t)
    except (TypeError, ValueError):
        return "?"
    return f"{t:.0f} s" if t < 3600 or not math.isfinite(t) else f"{t / 3600:.2f} h"


class Notifier:
    """Run subscriber that notifies the operator; see the module docstring."""

    def __init__(self, config: NotifyConfig, context: dict[str, Any] | None = None, reporter: Reporter | None = None):
        self.config = config
        self.context = {"host": socket.gethostname(), **(context or {})}
        self.reporter = reporter
        self.failures: list[str] = []
        self.sent: list[tuple[str, str]] = []  # (category, channel)
        self._queue: queue.Queue[Notice | None] = queue.Queue()
        self._results: queue.Queue[tuple[str, str, str | None]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._busy = False
        self._at_exit = False
        self.synchronous = False  # deliver in the engine's thread (virtual-time runs)
        self._warned: set[str] = set()  # failures already printed as warnings

    # --- engine side ----------------------------------------------------------------------------
    def bind_run(self, engine: RunHandle) -> None:
        """Take the run's identity and record delivery results as its events."""
        self.context.update({"run_file": engine.path, "cell_id": engine.cell.cell_id, "protocol": engine.protocol.name})
        self.reporter = engine.report
        self.synchronous = bool(getattr(engine.clock, "virtual", False))

    def __call__(self, record: Record) -> None:
        """Subscriber entry point; never raises."""
        if self._busy:
            return
        self._busy = True
        try:
            self._drain()
            notice = self.notice_for(record)
            if notice is not None and self._admit(notice):
                if self.synchronous:
                    for channel, error in self.deliver(notice):
                        self._results.put((notice.category, channel, error))
                    self._drain()
                else:
                    self.submit(notice)
        except Exception as exc:  # noqa: BLE001 - a notifier never stops a run
            self.failures.append(f"notifier error: {type(exc).__name__}: {exc}")
        finally:
            self._busy = False

    def notice_for(self, record: Record) -> Notice | None:
        """The notice a record deserves, if its category is switched on."""
        ctx = self.context
        who = f"{ctx.get('cell_id') or 'cell'}"
        if isinstance(record, Event):
            payload = dataclasses.asdict(record)
            ev_kind = str(payload.get("kind", ""))
            category = _EVENT_CATEGORY.get(ev_kind)
            data = payload.get("data") or {}
            if ev_kind == "interlock" and data.get("interlock") == "instrument_recovery":
                category = "instrument"
            if category is None or category not in self.config.on:
                return None
            title = {
                "short_circuit": "SHORT CIRCUIT",
                "interlock": "interlock holds the cell",
                "fault": "FAULT",
                "instrument": "instrument fault",
            }[category]
            return Notice(
                category,
                f"{who}: {title} at {_fmt_t(payload.get('t'))}",
                str(payload.get("message", "")),
                {**ctx, "event_kind": ev_kind, "t": payload.get("t"), "step": payload.get("step"), "event_data": data},
            )
        if isinstance(record, RunEnd) and record.result is not None and "stop" in self.config.on:
            payload = dataclasses.asdict(record.result)
            outcome = str(payload.get("outcome", ""))
            status = str(payload.get("status", ""))
            title = "run completed" if outcome == "completed" else f"run stopped: {outcome.replace('_', ' ')}"
            return Notice(
                "stop",
                f"{who}: {title}",
                str(payload.get("message", "")),
                {
                    **ctx,
                    "run_file": payload.get("path", ctx.get("run_file", "")),
                    "outcome": outcome,
                    "status": status,
                    "t": payload.get("duration"),
                    "event_kind": "run_end",
                },
            )
        return None

    def reset_throttling(self) -> None:
        """Forget when each kind of notice was last sent: the next one of every kind goes out."""
        self._last.clear()

    def _admit(self, notice: Notice) -> bool:
        """Interlock and instrument notices of one kind at most once per ``repeat_after`` (wall time)."""
        if notice.category in _NEVER_THROTTLED:
            return True
        now = time.monotonic()
        key = notice.category
        if now - self._last.get(key, -math.inf) < self.config.repeat_after:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        self._last[key] = now
        skipped = self._suppressed.pop(key, 0)
        if skipped:
            notice.message += f" ({skipped} similar notice(s) suppressed since the last one)"
        return True

    def submit(self, notice: Notice) -> None:
        """Queue a notice for delivery in the background."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._work, name="daq-notify", daemon=True)
            self._thread.start()
            if not self._at_exit:  # a process that ends right after its run still delivers the last notice
                atexit.register(self._finish)
                self._at_exit = True
        self._queue.put(notice)

    def _work(self) -> None:
        while True:
            notice = self._queue.get()
            try:
                if notice is None:
                    return
                for channel, error in self.deliver(notice):
                    self._results.put((notice.category, channel, error))
            finally:
                self._queue.task_done()

    def deliver(self, notice: Notice) -> list[tuple[str, str | None]]:
        """Send through every configured channel now; (channel, error or None) for each."""
        out: list[tuple[str, str | None]] = []
        if self.config.command is not None:
            try:
                run_command(self.config.command, notice)
                out.append(("command", None))
            except Exception as exc:  # noqa: BLE001 - a failed notice is reported, never raised into the run
                out.append(("command", str(exc)))
        if self.config.email is not None:
            try:
                send_email(self.config.email, notice)
                out.append(("email", None))
            except Exception as exc:  # noqa: BLE001 - a failed notice is reported, never raised into the run
                out.append(("email", f"{type(exc).__name__}: {exc}"))
        return out

    def _drain(self) -> None:
        """Record finished deliveries as run events (in the engine's thread)."""
        while True:
            try:
                category, channel, error = self._results.get_nowait()
            except queue.Empty:
                return
            if error is None:
                self.sent.append((category, channel))
                self._record(
                    "notified",
                    f"operator notified by {channel} ({category})",
                    {"category": category, "channel": channel},
                )
            else:
                text = f"notification by {channel} failed ({category}): {error}; the run goes on"
                data = {"category": category, "channel": channel, "error": error}
                self._warn(text)  # always on stderr: nobody may read the run file soon
                if not self._record(EventKind.NOTIFY_FAILED, text, data):
                    self.failures.append(text)  # not in the run's record: close() hands it to the caller

    def _warn(self, text: str) -> None:
        self._warned.add(text)
        try:
            print(f"daq: warning: {text}", file=sys.stderr, flush=True)
        except (OSError, ValueError):  # stderr closed: the failure is still returned by close()
            pass

    def _record(self, kind: str, message: str, data: dict[str, Any]) -> bool:
        if self.reporter is None:
            return False
        try:
            self.reporter(kind, message, data)
            return True
        except Exception:  # noqa: BLE001 - the run file may already be closed; close() returns failures
            return False

    def close(self, timeout: float = 30.0) -> list[str]:
        """Wait (bounded) for queued notices; returns the delivery failures that are not in a run's record."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)
            if self._thread.is_alive():
                self.failures.append(f"notifications still being sent after {timeout:g} s; given up waiting")
        self._reporter_off()
        self._drain()
        failures, self.failures = self.failures, []
        return failures

    def _reporter_off(self) -> None:
        self.reporter = None

    def _finish(self) -> None:
        for line in self.close():
            if line not in self._warned:
                self._warn(line)


def cli_notifier(path: str | None) -> Notifier | None:
    """The notifier for ``--notify FILE``: settings checked now (ConfigError before anything runs);
    deliveries still queued when the process ends are waited for and failures printed as warnings."""
    return Notifier(load_notify(path)) if path else None
