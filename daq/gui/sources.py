"""Where a channel's data comes from: a simulated run in a worker thread, or a run file being followed.

Both deliver the engine's listener vocabulary ("block", "step_start", "step_end", "event", "spectrum")
through Qt signals of a :class:`ChannelSignals` object that lives in the GUI thread. Signals emitted
from the worker thread are queued by Qt and delivered in the GUI thread, so the worker never touches a
widget and the GUI thread never does file or instrument I/O.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from daq.core.clock import ScaledClock
from daq.core.errors import DaqError
from daq.core.records import Event, Record, RunEnd, Samples, Spectrum, StepEnd, StepStart
from daq.gui.plan import Plan
from daq.storage import layout as L
from daq.storage.lock import writer_alive
from daq.storage.reader import RunFile, open_run

ALARM_EVENTS = frozenset(
    {"short_circuit", "voltage_limit", "current_limit", "fault", "transducer_fault", "listener_error", "interlock"}
)


def _signal_of(record: Record) -> tuple[str, Any] | None:
    """A run record in the panels' vocabulary: (signal name, payload)."""
    match record:
        case Samples(columns):
            return "block", columns
        case StepStart() | StepEnd() | Event():
            kind = {StepStart: "step_start", StepEnd: "step_end", Event: "event"}[type(record)]
            return kind, dataclasses.asdict(record)
        case Spectrum(index, meta, points):
            return "spectrum", {"index": index, "meta": meta, "points": points}
        case RunEnd(result=result) if result is not None:
            return "run_end", dataclasses.asdict(result)
    return None


class ChannelSignals(QObject):
    """Data for one channel panel. Payloads are the engine's (SI units, numpy columns)."""

    started = Signal(object)  # RunInfo
    block = Signal(object)  # dict of numpy columns
    step_start = Signal(object)  # step row dict
    step_end = Signal(object)  # step row dict (with t_end, end_reason, Q)
    event = Signal(object)  # {t, kind, step, message, data}
    spectrum = Signal(object)  # {index, meta, points, fit}
    finished = Signal(object)  # {status, outcome, message, path}
    failed = Signal(str)  # could not start or could not read: one line for the operator


@dataclass
class RunInfo:
    """What a panel needs to know about the run it shows."""

    path: str
    protocol: str
    cell_id: str
    area: float  # m^2, working electrode
    three_electrode: bool
    plan: Plan
    live: bool  # True: this window runs it; False: read from a file
    speed: float | None = None  # clock speed of a simulated run (x real time)
    ccd: float | None = None  # A/m^2, the model's predicted critical current density
    status: str = L.RUNNING
    extra: dict[str, Any] = field(default_factory=dict)


def _decode(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


# --- simulated runs ---------------------------------------------------------------------------------


class _OperatorClock(ScaledClock):
    """A ScaledClock that waits on the RunControl while the engine is paused.

    A paused engine on a real-time clock polls ``clock.sleep(1 s)``; at 10,000x that is a 0.1 ms spin.
    Here the wait is on the control's condition instead, which resume and abort wake at once.
    """

    def __init__(self, speed: float, control: Any):
        super().__init__(speed)
        self.control = control
        self.paused = False

    def sleep(self, seconds: float) -> None:
        if self.paused:
            self.control.wait(0.05)
        else:
            super().sleep(seconds)


def block_interval(speed: float) -> float:
    """Clock seconds per instrument read: about 20 reads per wall second whatever the speed (a read per
    clock second, the real-instrument rate, would be 10,000 reads per second at 10,000x)."""
    return max(1.0, 0.05 * speed)


class SimulatedRun:
    """A protocol on the simulated rig, run by the engine in a worker thread on a ScaledClock."""

    # More run subscribers for every simulated run (``daq gui --publish``: the lab publisher), made in the
    # worker thread from (protocol, cell, channel name); each is closed, if it can be, when the run ends.
    extra_subscribers: Callable[[Any, Any, str], list[Any]] | None = None

    def __init__(
        self,
        signals: ChannelSignals,
        protocol_path: str | Path,
        cell_path: str | Path | None,
        speed: float,
        out: str | Path | None = None,
        overrides: dict[str, Any] | None = None,
        name: str = "sim",
    ):
        from daq.engine.engine import RunControl

        if not speed > 0:
            raise ValueError("speed must be positive")
        self.signals = signals
        self.protocol_path, self.cell_path, self.speed = str(protocol_path), cell_path, float(speed)
        self.out, self.overrides, self.name = out, overrides or {}, name
        self.control = RunControl()
        self.clock: _OperatorClock | None = None
        self.result: Any = None
        self._thread = threading.Thread(target=self._run, name=f"engine-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def pause(self, when: str = "now") -> None:
        self.control.pause(when, "paused from the rig window")

    def resume(self) -> None:
        self.control.resume()

    def abort(self, reason: str = "aborted from the rig window") -> None:
        self.control.abort(reason)

    def _listen(self, record: Record) -> None:
        """Run subscriber (worker thread): forward to the GUI thread. Never raises."""
        try:
            signal = _signal_of(record)
            if signal is None:
                return
            kind, payload = signal
            if kind == "event" and self.clock is not None:
                if payload["kind"] == "paused":
                    self.clock.paused = True
                elif payload["kind"] == "resumed":
                    self.clock.paused = False
            if kind == "spectrum":
                payload = dict(payload, fit=_fit(payload["points"]))
            getattr(self.signals, kind).emit(payload)
        except Exception:  # noqa: BLE001 - the run matters more than its live view
            pass

    def _run(self) -> None:
        from daq.core.capabilities import honoured
        from daq.engine.runner import predictions, resolved, run_protocol
        from daq.models.cell import load_cell
        from daq.storage.naming import default_out
        from protocols import binding
        from protocols.loader import load_protocol
        from simulators.rig import simulated_rig

        try:
            protocol = load_protocol(self.protocol_path, self.overrides)
            cell_path = self.cell_path or protocol.cell_path
            if cell_path is None:
                raise DaqError("the protocol names no cell: choose a cell file")
            cell = load_cell(cell_path)
            self.clock = _OperatorClock(self.speed, self.control)
            _, pstat, transducer = simulated_rig(cell, self.clock)
            binding.check(protocol, cell, honoured(pstat))
            if self.out:
                out = Path(self.out)
            else:  # channels started in the same second must not share a file
                out = default_out(protocol.name, cell.cell_id)
                out = out.with_name(f"{out.stem}-{re.sub(r'[^A-Za-z0-9]+', '-', self.name).strip('-')}{out.suffix}")
            out.parent.mkdir(parents=True, exist_ok=True)
            info = RunInfo(
                str(out),
                protocol.name,
                cell.cell_id,
                cell.electrodes.working_area,
                cell.configuration == "three_electrode",
                Plan.from_resolved(resolved(protocol)),
                live=True,
                speed=self.speed,
                ccd=predictions(cell)["ccd"]["value"] * 10.0,
                extra={"configuration": cell.configuration},
            )
            self.signals.started.emit(info)
            make = SimulatedRun.extra_subscribers  # a plain function, not a method
            extra = make(protocol, cell, self.name) if make else []
            self.result = run_protocol(
                protocol,
                cell,
                pstat,
                self.clock,
                out,
                transducer=transducer,
                control=self.control,
                subscribers=[self._listen, *extra],
                block_interval=block_interval(self.speed),
                run_attrs={"rig": "simulator", "clock": "scaled"},
            )
            for subscriber in extra:
                getattr(subscriber, "close", lambda: None)()
            r = self.result
            self.signals.finished.emit({"status": r.status, "outcome": r.outcome, "message": r.message, "path": r.path})
        except DaqError as exc:
            _report(self.signals, str(exc))
        except Exception as exc:  # noqa: BLE001 - one line for the operator, never a dead thread silently
            _report(self.signals, f"{type(exc).__name__}: {exc}")


def _report(signals: ChannelSignals, message: str) -> None:
    """Tell the panel something failed; if the panel is gone (window closed) there is no one to tell."""
    try:
        signals.failed.emit(message)
    except RuntimeError:
        pass


def _fit(points: np.ndarray) -> dict[str, Any] | None:
    try:
        # Imported with the first spectrum (in the reading thread): the fitter's scipy costs about half
        # a second, which a run file without spectra should not wait for before its first picture.
        from daq.gui.spectra import fit_spectrum

        return fit_spectrum(points["frequency"], points["z_real"] + 1j * points["z_imag"])
    except Exception:  # noqa: BLE001 - no fit is better than no spectrum
        return None


# --- run files ------------------------------------------------------------------------------------


# Read errors of a file whose writer is changing it under the reader (leaving SWMR, recording the end).
_UNSETTLED = (OSError, KeyError, RuntimeError, ValueError)


class FileFollower:
    """Reads a run file in a worker thread: all of a finished run, or follows one being written.

    Every poll refreshes the SWMR datasets and reads only rows beyond what was already read (by index,
    in chunks), for samples, steps, events and spectra. The file is opened read-only; stopping the
    follower (closing the window) closes the reader and never touches the run or its writer.
    """

    MAX_FAILURES = 20  # unreadable polls in a row before the follower gives up and reports

    def __init__(
        self,
        signals: ChannelSignals,
        path: str | Path,
        poll_interval: float = 0.5,
        chunk: int = 262_144,
        open_timeout: float = 15.0,
        first_chunk: int = 16_384,
    ):
        self.signals, self.path = signals, Path(path)
        self.poll_interval, self.chunk, self.open_timeout = poll_interval, chunk, open_timeout
        self.first_chunk = min(first_chunk, chunk)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"follow-{self.path.name}", daemon=True)
        self.rows = 0
        self._tables = {"steps": 0, "events": 0, "spectra": 0}
        self._reader: RunFile | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _open(self) -> RunFile:
        """Open for reading; a run that has just been created may not be in SWMR mode yet: retry."""
        deadline = time.monotonic() + self.open_timeout
        while True:
            try:
                return open_run(self.path)
            except (DaqError, KeyError):
                if self._stop.is_set() or time.monotonic() > deadline:
                    raise
                self._stop.wait(0.2)

    def _run(self) -> None:
        try:
            self._reader = self._open()
            self.signals.started.emit(self._info(self._reader))
            self._follow()
            if not self._stop.is_set():
                self.signals.finished.emit(self._finish())
        except DaqError as exc:
            _report(self.signals, str(exc))
        except Exception as exc:  # noqa: BLE001 - one line for the operator
            _report(self.signals, f"{self.path}: {type(exc).__name__}: {exc}")
        finally:
            self._close_reader()

    def _follow(self) -> None:
        """Read what is appended until the writer has let go of the run and nothing new came."""
        failures = 0
        while not self._stop.is_set():
            run = self._reader
            try:
                status = run.status  # before reading: a writer that ended has flushed everything
                got = self._read_new(run)
                if not got:
                    self._stop.wait(self.poll_interval)
                    run.refresh()
                failures = 0
            except _UNSETTLED:
                # The writer is between leaving SWMR and recording its final status (or the file is
                # not readable for a moment): read again from a fresh handle, from the same rows.
                failures += 1
                if failures > self.MAX_FAILURES:
                    raise
                self._reopen()
                continue
            # The final status is written with the writer's lock still held: the run has ended only
            # once the lock is released, not when the status attribute first says so.
            if status != L.RUNNING and not got and not writer_alive(self.path):
                return

    def _finish(self) -> dict[str, str]:
        """Read anything left and the final status from a fresh handle (SWMR may hold stale attributes)."""
        failures = 0
        while True:
            self._reopen(wait=failures > 0)
            try:
                return self._final(self._reader)
            except _UNSETTLED:
                failures += 1
                if failures > self.MAX_FAILURES:
                    raise

    def _final(self, run: RunFile) -> dict[str, str]:
        self._read_new(run)
        attrs = run.attrs
        analysis = {k: _decode(v) for k, v in run.f["analysis"].attrs.items()} if "analysis" in run.f else {}
        message = analysis.get("message", "")
        return {"status": run.status, "outcome": attrs.get("outcome", ""), "message": message, "path": str(self.path)}

    def _reopen(self, wait: bool = True) -> None:
        """Close the reader and open a fresh one (after a poll interval, to let the writer move on)."""
        self._close_reader()
        if wait:
            self._stop.wait(self.poll_interval)
        self._reader = self._open()

    def _close_reader(self) -> None:
        run, self._reader = self._reader, None
        if run is not None:
            try:
                run.close()
            except Exception:  # noqa: BLE001 - closing a reader cannot hurt the run
                pass

    def _info(self, run: Any) -> RunInfo:
        attrs, cell = run.attrs, run.cell
        try:
            resolved = json.loads(_decode(run.f["protocol/resolved"][()]))
        except (KeyError, ValueError):
            resolved = {"steps": []}
        try:
            ccd = float(run.prediction("ccd")["value"]) * 10.0  # stored in mA/cm^2 -> A/m^2
        except (DaqError, KeyError, ValueError):
            ccd = None
        return RunInfo(
            str(self.path),
            str(attrs.get("protocol", "")),
            str(attrs.get("cell_id", "")),
            float(cell.get("electrodes.working_area", 1.0)),
            # an imported recording names no configuration: its potential is E_we as the instrument recorded it
            cell.get("configuration") in ("three_electrode", ""),
            Plan.from_resolved(resolved),
            live=False,
            ccd=ccd,
            status=run.status,
            extra={"configuration": cell.get("configuration", "")},
        )

    def _read_new(self, run: Any) -> bool:
        """Emit whatever was appended since the last read; True if there was anything.

        The stored columns are read straight from HDF5 (no table is built), and the first read is
        small, so a long run's first samples are drawn while the rest is still being read."""
        got = False
        ts = run.f["timeseries"]
        n = min(len(ds) for ds in ts.values())  # columns are flushed together; guard a torn read
        while not self._stop.is_set() and self.rows < n:
            stop = min(n, self.rows + (self.first_chunk if self.rows == 0 else self.chunk))
            self.signals.block.emit({name: ds[self.rows : stop] for name, ds in ts.items()})
            self.rows = stop
            got = True
        got |= self._read_steps(run) | self._read_events(run) | self._read_spectra(run)
        return got

    def _read_steps(self, run: Any) -> bool:
        ds = run.f["steps"]
        start = self._tables["steps"]
        if len(ds) <= start:
            return False
        rows = ds[start:]
        for row in rows:
            rec = {name: _decode(row[name]) for name in row.dtype.names}
            rec["index"] = int(rec["index"])
            self.signals.step_end.emit(rec)
        self._tables["steps"] = start + len(rows)
        return True

    def _read_events(self, run: Any) -> bool:
        ds = run.f["events"]
        start = self._tables["events"]
        if len(ds) <= start:
            return False
        rows = ds[start:]
        for row in rows:
            try:
                data = json.loads(_decode(row["data"]) or "{}")
            except ValueError:
                data = {}
            self.signals.event.emit(
                {
                    "t": float(row["t"]),
                    "kind": _decode(row["kind"]),
                    "step": int(row["step"]),
                    "message": _decode(row["message"]),
                    "data": data,
                }
            )
        self._tables["events"] = start + len(rows)
        return True

    def _read_spectra(self, run: Any) -> bool:
        spectra, points = run.f["eis/spectra"], run.f["eis/points"]
        start = self._tables["spectra"]
        if len(spectra) <= start:
            return False
        n_points = len(points)
        for row in spectra[start:]:
            first, n = int(row["first_point"]), int(row["n_points"])
            if first + n > n_points:  # its points are not visible yet: next poll
                break
            arr = points[first : first + n]
            meta = {name: _decode(row[name]) for name in row.dtype.names}
            self.signals.spectrum.emit({"index": int(row["index"]), "meta": meta, "points": arr, "fit": _fit(arr)})
            self._tables["spectra"] += 1
        return self._tables["spectra"] > start
