"""One stream of records per run, fanned out to its subscribers.

Storage subscribes as *required*: if it fails, the failure reaches the engine, which switches the
cell off and ends the run as a fault. Everything else (live views, notifiers, progress output) is
*optional*: a subscriber that raises is dropped and the run goes on, with an event saying so.
"""

from __future__ import annotations

from collections.abc import Iterable

from daq.core.records import Record, Subscriber


class RecordStream:
    def __init__(self, required: Iterable[Subscriber] = (), optional: Iterable[Subscriber] = ()):
        self.required = list(required)
        self.optional = list(optional)

    def subscribe(self, subscriber: Subscriber, required: bool = False) -> None:
        (self.required if required else self.optional).append(subscriber)

    def emit(self, record: Record) -> list[tuple[Subscriber, Exception]]:
        """Deliver ``record``; returns the optional subscribers dropped for raising, with the error."""
        for subscriber in self.required:
            subscriber(record)
        dropped = []
        for subscriber in list(self.optional):
            try:
                subscriber(record)
            except Exception as exc:  # noqa: BLE001 - a broken live view or notifier must not stop the run
                self.optional.remove(subscriber)
                dropped.append((subscriber, exc))
        return dropped
