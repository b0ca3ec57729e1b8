"""Keithley 2450 SourceMeter as a two-terminal galvanostat over VISA (pyvisa + pyvisa-py, SCPI).

A source-measure unit is wired working -> counter, so the voltage it measures is the cell voltage:
E_we = E_cell = measured voltage (no reference electrode, no impedance). What the instrument can
enforce by itself is pushed into it:

- the voltage limit: a current source with ``:SOUR:CURR:VLIM`` clamps at |V| = VLIM on its own; the
  driver asks ``:SOUR:CURR:VLIM:TRIP?`` at every read and then switches the output off (FLAG_HW_LIMIT at
  the sample where it happened). VLIM is symmetric, so it is max(|v_min|, |v_max|); the asymmetric
  window is checked by the driver on every buffered sample, with the same flag and the same stop;
- a fixed source range (``:SOUR:CURR:RANG``) sized to the step's current;
- the output-off state is high impedance (``:OUTP:SMOD HIMP``): the output relay opens, so an
  "off" instrument does not hold the cell at 0 V (the 2450's NORMAL off state would).

Samples are buffered in the instrument (``:TRAC:MAKE``, a trigger model of delay + measure blocks,
``:TRAC:DATA? ... READ,SOUR,REL``), so the PC's timing does not set the data's: times are the
instrument's relative timestamps placed on the run clock at ``:INIT``.

Dead-man switch: the trigger model itself switches the output on (a source block) and, in its last
block, off again. It ends after the step's readings (a timed step ends in the instrument) or after
``deadman_s`` without a ``*TRG`` from the driver, whichever comes first. Every ``read`` sends ``*TRG``
(a branch-on-event block resets the dead-man counter), so while the engine polls the current flows;
when the process dies, hangs or loses the link, the instrument switches itself off within
``deadman_s``. The output is never switched on by ``:OUTP ON``: only a running model does that.

The 2450 has two command sets; in TSP mode every SCPI command goes unanswered, which looks like a
dead link, so ``connect`` asks ``*LANG?`` first and refuses anything but SCPI with a clear message.
Connecting never switches the output on; every error path switches it off (re-opening the link once
if the connection itself was lost) before the InstrumentError reaches the caller.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from daq.clock import Clock, RealClock
from daq.errors import InstrumentError
from drivers.potentiostat import Capabilities, InstrumentInfo, Potentiostat
from drivers.samples import FLAG_HW_LIMIT, FLAG_OVERLOAD, SampleBlock

KEITHLEY2450_CAPABILITIES = Capabilities(
    max_current=1.05,  # A, 1 A range (105 % overrange)
    current_resolution=5e-13,  # A, source resolution on the 10 nA range
    max_voltage=210.0,  # V (21 V above 105 mA)
    min_sample_period=5e-3,  # s, delay + a fast measurement in the trigger model
    galvanostatic=True,
    potentiostatic=True,  # holds the two-terminal cell voltage, not E_we vs a reference
    eis_galvanostatic=False,
    eis_potentiostatic=False,
    reference_electrode=False,
    hardware_voltage_limit=True,
)

_CURRENT_RANGES = (1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # A
_VOLTAGE_RANGES = (0.02, 0.2, 2.0, 20.0, 200.0)  # V
_OCV_VLIM = 20.0  # V, limit while sampling the open-circuit voltage at 0 A
_SLICE = 0.25  # s, longest single wait for a reply: Ctrl-C and interrupt() act between slices
_SAFE_TIMEOUT = 0.5  # s, per reply while making the output safe after a failure
_MIN_DEADMAN = 0.5  # s


def deadman_blocks(buffer: str, period: float, deadman_count: int, count: int) -> list[str]:
    """The trigger model of one measurement loop (2450 SCPI, TRIGger:BLOCk subsystem).

    Output on; then ``count`` times a delay and a reading; a ``*TRG`` seen since the last pass resets
    the dead-man counter, which otherwise ends the loop after ``deadman_count`` readings; the last block
    switches the output off.
    """
    return [
        ':TRIG:LOAD "Empty"',
        f':TRIG:BLOC:BUFF:CLE 1, "{buffer}"',
        ":TRIG:BLOC:SOUR:STAT 2, ON",
        f":TRIG:BLOC:DEL:CONS 3, {period!r}",
        f':TRIG:BLOC:MEAS 4, "{buffer}"',
        ":TRIG:BLOC:BRAN:EVEN 5, COMM, 8",
        f":TRIG:BLOC:BRAN:COUN 6, {deadman_count}, 9",
        ":TRIG:BLOC:BRAN:ALW 7, 10",
        ":TRIG:BLOC:BRAN:COUN:RES 8, 6",
        f":TRIG:BLOC:BRAN:COUN 9, {count}, 3",
        ":TRIG:BLOC:SOUR:STAT 10, OFF",
    ]


class _BadReply(Exception):
    """A reply that cannot be what the command returns."""


class _Interrupted(Exception):
    """A wait for a reply ended by ``interrupt()``."""


class Keithley2450(Potentiostat):
    """One Keithley 2450 reached at a VISA resource such as ``TCPIP::192.168.1.50::5025::SOCKET``."""

    BUFFER = "daqbuf"

    def __init__(
        self,
        resource: str,
        clock: Clock | None = None,
        *,
        timeout: float = 2.0,
        buffer_size: int = 100_000,
        chunk: int = 2000,
        name: str = "keithley2450",
        visa_library: str = "@py",
        deadman_s: float = 60.0,
        open_resource: Callable[[str, float], Any] | None = None,
    ):
        self.resource, self.clock, self.name = resource, clock or RealClock(), name
        if not (math.isfinite(deadman_s) and deadman_s >= _MIN_DEADMAN):
            raise InstrumentError(f"{name}: dead-man time {deadman_s!r} s must be at least {_MIN_DEADMAN:g} s")
        if not (math.isfinite(timeout) and timeout > 0):
            raise InstrumentError(f"{name}: timeout {timeout!r} s must be positive")
        self._deadman = float(deadman_s)
        self._open_resource = open_resource  # (resource, timeout) -> VISA-like session; None: pyvisa
        self._interrupt = threading.Event()
        self._out_of_step = False  # a reply may still be in the pipe (a wait was interrupted)
        self._expired: str | None = None  # the dead-man switch ended the output; reported at the next read
        self.timeout = float(timeout)  # s, every VISA operation
        self.buffer_size = int(buffer_size)  # readings in the instrument buffer (one trigger loop)
        self.chunk = int(chunk)  # readings per :TRAC:DATA? transfer
        self.visa_library = visa_library
        self.capabilities = KEITHLEY2450_CAPABILITIES
        self.info: InstrumentInfo | None = None
        self._rm = None
        self._inst = None
        self._lang: str | None = None
        self._function: str | None = None  # source function the instrument is set to
        self._output = False
        self._mode = "off"  # off | current | potential | ocv
        self._period = 1.0
        self._window: tuple[float, float] | None = None
        self._vlim = 0.0
        self._remaining: int | None = None  # readings still due in a timed step (None: until told)
        self._count = 0  # readings of the running loop
        self._fetched = 0  # of those, already read
        self._t_init = 0.0
        self._reached = False  # the present link has carried at least one reply
        self._last_query = ""
        self._last_timeout = self.timeout
        self._visa_timeout = -1  # ms, the VISA timeout last set on the session
        self._rolled = False  # the present read started the next loop

    @property
    def deadman_s(self) -> float:
        """Seconds after the last re-arm within which the instrument switches its output off by itself."""
        return self._deadman

    def interrupt(self) -> None:
        """Make a wait for a reply end now (thread-safe; e.g. from a signal handler). The call waiting
        raises InstrumentError after switching the output off."""
        self._interrupt.set()

    # --- interface ----------------------------------------------------------------------------
    def connect(self) -> InstrumentInfo:
        """Open the link, check identity and command set, leave the output off. Never switches it on."""
        self._drop_session()
        self._expired = None
        with self._failsafe("connect"):
            self._open()
            idn = self._query("*IDN?")
            info = self._parse_idn(idn)
            self._check_language()
            self._write(":ABOR")
            if self._int(self._query(":OUTP?"), ":OUTP?"):
                self._write(":OUTP OFF")
            self._output = False
            self._mode = "off"
            self._function = None
            self._write(":OUTP:SMOD HIMP")
            self._write("*CLS")
            self._write(":FORM:ASC:PREC 16")
            self._write(f':TRAC:MAKE "{self.BUFFER}", {self.buffer_size}')
            self._check_errors("connect", ignore=("exist",))  # the buffer may survive a reconnect
        self.info = info
        return info

    def probe(self) -> tuple[InstrumentInfo, bool]:
        """Identity and whether the output is on, changing nothing (no *CLS, no output change): listing a
        rig must not disturb a run another process may have going on this instrument. Closes the link."""
        self._drop_session()
        try:
            self._open()
            info = self._parse_idn(self._query("*IDN?"))
            self._check_language()
            return info, bool(self._int(self._query(":OUTP?"), ":OUTP?"))
        except InstrumentError:
            raise
        except _BadReply as exc:
            raise InstrumentError(f"{self.name}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - VISA and socket errors of every kind become one InstrumentError
            what = (
                f"no reply to {self._last_query!r} within {self.timeout:g} s"
                if _is_timeout(exc)
                else f"cannot reach {self.resource} ({_one_line(exc)})"
            )
            raise InstrumentError(f"{self.name}: {what}") from None
        finally:
            self._drop_session()

    def apply_current(
        self, current: float, v_min: float, v_max: float, sample_period: float, duration: float | None = None
    ) -> None:
        if not abs(current) <= self.capabilities.max_current:
            raise InstrumentError(
                f"{self.name}: current {current:g} A beyond the 2450's {self.capabilities.max_current:g} A"
            )
        if not v_min < v_max:
            raise InstrumentError(f"{self.name}: voltage window [{v_min:g}, {v_max:g}] V is empty")
        vlim = max(abs(v_min), abs(v_max))
        if not 0.02 <= vlim <= self.capabilities.max_voltage:
            raise InstrumentError(
                f"{self.name}: voltage limit {vlim:g} V outside 0.02-{self.capabilities.max_voltage:g} V"
            )
        self._start("current", current, vlim, sample_period, duration, (v_min, v_max))

    def apply_potential(
        self, potential: float, i_min: float, i_max: float, sample_period: float, duration: float | None = None
    ) -> None:
        """Hold the two-terminal cell voltage (no reference electrode) with a current limit."""
        if not abs(potential) <= self.capabilities.max_voltage:
            raise InstrumentError(f"{self.name}: potential {potential:g} V beyond the 2450's range")
        ilim = min(max(abs(i_min), abs(i_max)), self.capabilities.max_current)
        if not ilim > 0:
            raise InstrumentError(f"{self.name}: current limits [{i_min:g}, {i_max:g}] A allow no current")
        self._start("potential", potential, ilim, sample_period, duration, None)

    def open_circuit(self, sample_period: float | None = None) -> None:
        """Without a period: output off (relay open). With one: source 0 A and sample the voltage."""
        if self._inst is None:
            self._mode = "off"
            return
        if sample_period is None:
            with self._failsafe("open_circuit"):
                self._output_off()
            return
        self._start("ocv", 0.0, _OCV_VLIM, sample_period, None, None)

    def read(self) -> SampleBlock:
        """Samples since the last read; re-arms the dead-man switch."""
        if self._expired is not None:
            message, self._expired = self._expired, None
            raise InstrumentError(message)
        self._check_connected()
        if self._mode == "off":
            return SampleBlock.empty()
        with self._failsafe("read"):
            return self._read()

    def close(self) -> None:
        """Output off, then release the link. Safe to call more than once."""
        if self._inst is not None:
            try:
                self._write(":ABOR")
                self._write(":OUTP OFF")
                self._query(":OUTP?")  # the instrument has acted on the commands before the link closes
            except Exception:  # noqa: BLE001 - closing anyway; make the cell safe as best we can
                self._make_safe()
        self._mode = "off"
        self._output = False
        self._drop_session()

    # --- steps --------------------------------------------------------------------------------
    def _start(
        self,
        mode: str,
        level: float,
        limit: float,
        period: float,
        duration: float | None,
        window: tuple[float, float] | None,
    ) -> None:
        self._check_connected()
        self._check_period(period)
        if duration is not None and not duration > 0:
            raise InstrumentError(f"{self.name}: step duration {duration:g} s must be positive")
        total = None if duration is None else max(1, math.floor(duration / period + 1e-9))
        function = "VOLT" if mode == "potential" else "CURR"
        with self._failsafe(mode if mode != "ocv" else "open_circuit"):
            if self._output and self._function != function:
                self._write(":ABOR;:OUTP OFF")  # the source function cannot change with the output on
                self._output = False
            self._mode = "off"
            self._period, self._vlim, self._window, self._remaining = period, limit, window, total
            config = [*self._source_commands(function, level, limit), *self._loop_commands()]
            if self._output:
                # Already sourcing: stop the old model, set the new level and start the new model in one
                # message, so that no moment exists in which the output is on without a running model.
                self._write(";".join([":ABOR", *config, ":INIT"]))
                self._started()
            else:
                self._write(";".join(config))
                self._check_errors("configuration")  # nothing is switched on before the settings are accepted
                self._write(":INIT")  # the model's source block switches the output on
                self._started()
            self._output = True
            self._mode = mode

    def _check_period(self, period: float) -> None:
        if not period >= self.capabilities.min_sample_period:
            raise InstrumentError(
                f"{self.name}: sample period {period:g} s below {self.capabilities.min_sample_period:g} s"
            )
        if not self.clock.virtual and period > self._deadman / 2:
            raise InstrumentError(
                f"{self.name}: sample period {period:g} s too long for the dead-man time of {self._deadman:g} s "
                f"(at most half of it, {self._deadman / 2:g} s); raise the dead-man time or sample faster"
            )

    def _source_commands(self, function: str, level: float, limit: float) -> list[str]:
        sense = "CURR" if function == "VOLT" else "VOLT"
        cmds = [f":SOUR:FUNC {function}", f":OUTP:{function}:SMOD HIMP"]
        if function == "CURR":
            cmds += [
                f":SOUR:CURR:RANG {_range(abs(level), _CURRENT_RANGES):.6g}",
                f":SOUR:CURR {level!r}",
                f":SOUR:CURR:VLIM {limit!r}",
                ":SOUR:CURR:READ:BACK ON",
            ]
        else:
            cmds += [
                f":SOUR:VOLT:RANG {_range(abs(level), _VOLTAGE_RANGES):.6g}",
                f":SOUR:VOLT {level!r}",
                f":SOUR:VOLT:ILIM {limit!r}",
                ":SOUR:VOLT:READ:BACK ON",
            ]
        self._function = function
        return [*cmds, f':SENS:FUNC "{sense}"', f":SENS:{sense}:RANG:AUTO ON"]

    def _loop_commands(self) -> list[str]:
        """The next measurement loop: as many readings as the buffer holds or the step still needs."""
        self._count = self.buffer_size if self._remaining is None else min(self._remaining, self.buffer_size)
        if self.clock.virtual:
            # Virtual time stops with the process that moves it: nothing can run on unattended.
            deadman_count = self._count
        else:
            # A *TRG is seen at the next pass (within one period), then this many readings: <= deadman_s.
            deadman_count = max(1, math.floor(self._deadman / self._period + 1e-9) - 1)
        return deadman_blocks(self.BUFFER, self._period, deadman_count, self._count)

    def _started(self) -> None:
        self._t_init = self.clock.now()
        self._fetched = 0
        # A query completes the exchange: the loop has started before the caller lets time pass.
        self._check_errors("start of the measurement loop")

    def _read(self) -> SampleBlock:
        self._write("*TRG")  # re-arm the dead-man switch
        state = self._query(":TRIG:STAT?").split(";")[0].strip().upper()
        data = self._fetch()
        running = state in ("RUNNING", "WAITING")
        t_init = self._t_init
        if running and self._fetched * 2 >= self._count and self._more_after_loop():
            self._write(":ABOR")  # buffer half full: read the rest and start the next loop
            data = np.concatenate([data, self._fetch()])
            self._rollover()
        t = t_init + self._period + data[:, 2]
        if self._mode == "potential":
            current, voltage = data[:, 0], data[:, 1]
        else:
            voltage, current = data[:, 0], data[:, 1]
        flags = np.zeros(len(t), dtype=np.uint8)
        stop_at: int | None = None
        if self._mode == "current":
            stop_at = self._limit_index(voltage)
        elif self._mode == "potential" and len(t):
            if self._int(self._query(":SOUR:VOLT:ILIM:TRIP?"), ":SOUR:VOLT:ILIM:TRIP?"):
                flags[-1] |= FLAG_OVERLOAD
        if stop_at is not None:
            flags[stop_at] |= FLAG_HW_LIMIT
            t, voltage, current, flags = (x[: stop_at + 1] for x in (t, voltage, current, flags))
            self._output_off()
        elif not running and not self._rolled:
            self._loop_ended()
        self._rolled = False
        return SampleBlock(t, voltage.copy(), voltage.copy(), current, flags)

    def _fetch(self) -> np.ndarray:
        """Readings of the present loop not read yet, as rows (reading, source, relative time)."""
        n = self._int(self._query(f':TRAC:ACT? "{self.BUFFER}"'), ":TRAC:ACT?")
        if not self._fetched <= n <= self._count:
            raise _BadReply(
                f":TRAC:ACT? says {n} readings; {self._fetched} were already read from this "
                f"{self._count}-reading loop (buffer cleared or loop restarted from elsewhere?)"
            )
        parts = [np.zeros((0, 3))]
        while self._fetched < n:
            last = min(n, self._fetched + self.chunk)
            cmd = f':TRAC:DATA? {self._fetched + 1}, {last}, "{self.BUFFER}", READ, SOUR, REL'
            values = self._floats(self._query(cmd), cmd, 3 * (last - self._fetched))
            parts.append(values.reshape(-1, 3))
            self._fetched = last
        return np.concatenate(parts)

    def _more_after_loop(self) -> bool:
        return self._remaining is None or self._remaining > self._count

    def _rollover(self) -> None:
        """The model is aborted (output still on) and its readings read: start the next loop."""
        if self._remaining is not None:
            self._remaining -= self._fetched
        self._write(";".join([*self._loop_commands(), ":INIT"]))
        self._started()
        self._rolled = True

    def _loop_ended(self) -> None:
        """The model has stopped by itself; its last block switched the output off."""
        complete = self._fetched >= self._count
        if complete and not self._more_after_loop():
            self._output_off()  # the step's duration is over; confirm the instrument's own switch-off
            return
        self._output_off()
        self._expired = (
            f"{self.name}: the dead-man switch ended the output after {self._fetched} readings: not re-armed "
            f"within {self._deadman:g} s (the PC stopped polling the instrument); output switched off"
        )

    def _limit_index(self, voltage: np.ndarray) -> int | None:
        """Index of the sample at which the limit acted, or None."""
        lo, hi = self._window if self._window else (-np.inf, np.inf)
        out = np.flatnonzero((voltage < lo) | (voltage > hi))
        if out.size:
            return int(out[0])
        if self._int(self._query(":SOUR:CURR:VLIM:TRIP?"), ":SOUR:CURR:VLIM:TRIP?"):
            at = np.flatnonzero(np.abs(voltage) >= self._vlim * (1 - 1e-3))
            if at.size:
                return int(at[0])
            return len(voltage) - 1 if len(voltage) else None
        return None

    def _output_off(self) -> None:
        self._write(":ABOR")
        self._write(":OUTP OFF")
        self._output = False
        self._mode = "off"
        state = self._query(":OUTP?")  # confirms, and the instrument has acted before we return
        if state != "0":
            raise _BadReply(f"output still on after :OUTP OFF (':OUTP?' answered {state!r})")

    # --- VISA ---------------------------------------------------------------------------------
    def _open(self, timeout: float | None = None) -> None:
        """Open the link; ``timeout`` (s) bounds the connection attempt (default: ``self.timeout``)."""
        timeout = self.timeout if timeout is None else timeout
        self._reached = False
        self._out_of_step = False
        self._visa_timeout = -1
        try:
            if self._open_resource is not None:
                self._inst = self._open_resource(self.resource, timeout)
                return
            import pyvisa  # imported here so the module loads where only the simulators are used

            self._rm = pyvisa.ResourceManager(self.visa_library)
            self._inst = self._rm.open_resource(
                self.resource,
                open_timeout=int(timeout * 1000),
                timeout=int(_SLICE * 1000),
                read_termination="\n",
                write_termination="\n",
            )
        except Exception as exc:  # noqa: BLE001 - pyvisa raises many types for a bad address
            self._drop_session()
            what = "no answer" if _is_timeout(exc) else _one_line(exc)
            raise InstrumentError(f"{self.name}: cannot open {self.resource} within {timeout:g} s: {what}") from None

    def _drop_session(self) -> None:
        inst, rm = self._inst, self._rm
        self._inst = self._rm = None
        for obj in (inst, rm):
            if obj is not None:
                try:
                    obj.close()
                except Exception:  # noqa: BLE001 - releasing a broken link
                    pass

    def _write(self, cmd: str) -> None:
        if self._inst is None:
            raise InstrumentError(f"{self.name}: not connected")
        if self._out_of_step:
            self._drain(_SAFE_TIMEOUT)
        self._inst.write(cmd)

    def _query(self, cmd: str, timeout: float | None = None) -> str:
        """Write ``cmd`` and wait for its reply in slices of at most _SLICE s, up to ``timeout`` s in all."""
        self._write(cmd)
        self._last_query = cmd
        self._last_timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + self._last_timeout
        while True:
            self._set_visa_timeout(min(_SLICE, max(0.01, deadline - time.monotonic())))
            try:
                raw = self._inst.read_raw()  # type: ignore[union-attr]
                break
            except Exception as exc:
                if not _is_timeout(exc) or time.monotonic() >= deadline:
                    raise
                if self._interrupt.is_set():
                    self._out_of_step = True
                    raise _Interrupted(f"interrupted while waiting for the reply to {cmd!r}") from None
        self._reached = True
        try:
            return raw.decode("ascii").strip()
        except UnicodeDecodeError:
            raise _BadReply(f"unreadable reply {_clip(repr(raw))} to {cmd!r}") from None

    def _set_visa_timeout(self, seconds: float) -> None:
        ms = max(1, int(seconds * 1000))
        if ms != self._visa_timeout:
            self._inst.timeout = ms  # type: ignore[union-attr]
            self._visa_timeout = ms

    def _drain(self, limit: float) -> None:
        """Discard replies still in the pipe (a late answer to an abandoned query), for at most ``limit`` s.

        Replaces VISA ``clear()``: on a socket the peer has closed, pyvisa-py's clear never returns.
        """
        self._out_of_step = False
        deadline = time.monotonic() + limit
        self._set_visa_timeout(0.05)
        while time.monotonic() < deadline:
            try:
                self._inst.read_raw()  # type: ignore[union-attr]
            except Exception as exc:
                if _is_timeout(exc):
                    return
                raise

    def _check_connected(self) -> None:
        if self._inst is None:
            raise InstrumentError(f"{self.name}: not connected")

    def _check_language(self) -> None:
        try:
            lang = self._query("*LANG?").upper()
        except Exception as exc:
            if _is_timeout(exc):
                raise InstrumentError(
                    f"{self.name}: no answer to *LANG? within {self.timeout:g} s; check that "
                    "the 2450 uses the SCPI command set and newline termination"
                ) from None
            raise
        self._lang = lang
        if lang != "SCPI":
            raise InstrumentError(
                f"{self.name}: the 2450 uses the {lang} command set; this driver speaks SCPI. Select SCPI "
                "(MENU > System > Settings > Command Set, or send *LANG SCPI) and power-cycle the instrument"
            )

    def _check_errors(self, stage: str, ignore: tuple[str, ...] = ()) -> None:
        """Drain :SYST:ERR?; any entry (other than ``ignore``d ones) is an InstrumentError."""
        found = []
        for _ in range(32):
            reply = self._query(":SYST:ERR?")
            m = re.match(r'\s*([-+]?\d+)\s*,\s*"?([^";]*)', reply)
            if not m:
                raise _BadReply(f"unreadable reply {reply!r} to ':SYST:ERR?'")
            code, text = int(m[1]), m[2].strip()
            if code == 0:
                break
            if not any(word in text.lower() for word in ignore):
                found.append(f"{code} {text}")
        if found:
            raise InstrumentError(f"{self.name}: the instrument refused the {stage}: {'; '.join(found)}")

    def _parse_idn(self, idn: str) -> InstrumentInfo:
        fields = [f.strip() for f in idn.split(",")]
        if len(fields) < 4 or "KEITHLEY" not in fields[0].upper():
            raise _BadReply(f"unreadable reply {idn!r} to '*IDN?'; is this a Keithley 2450?")
        model = fields[1].upper().replace("MODEL", "").strip()
        if model != "2450":
            raise InstrumentError(
                f"{self.name}: {self.resource} is a Keithley {model}, not a 2450; this driver "
                "only knows the 2450's ranges"
            )
        return InstrumentInfo("Keithley", model, fields[2], fields[3], "drivers.keithley2450", self.resource)

    def _int(self, reply: str, cmd: str) -> int:
        try:
            return int(float(reply))
        except ValueError:
            raise _BadReply(f"unreadable reply {reply!r} to {cmd!r}") from None

    def _floats(self, reply: str, cmd: str, n: int) -> np.ndarray:
        try:
            values = np.array([float(x) for x in reply.split(",")])
        except ValueError:
            raise _BadReply(f"unreadable reply {_clip(reply)!r} to {cmd!r}") from None
        if len(values) != n or not np.all(np.isfinite(values)):
            raise _BadReply(f"reply {_clip(reply)!r} to {cmd!r} has {len(values)} values, expected {n}")
        return values

    # --- failure handling ---------------------------------------------------------------------
    @contextmanager
    def _failsafe(self, action: str) -> Iterator[None]:
        """Any failure inside: switch the output off, drop the link, raise one readable InstrumentError."""
        self._interrupt.clear()
        try:
            yield
        except InstrumentError as exc:
            safe = self._make_safe()
            raise InstrumentError(f"{exc}{safe}") from None
        except (_BadReply, _Interrupted) as exc:
            safe = self._make_safe()
            raise InstrumentError(f"{self.name}: {action}: {exc}{safe}") from None
        except Exception as exc:  # noqa: BLE001 - VISA and socket errors of every kind end here
            if _is_timeout(exc):
                what = f"no reply to {self._last_query!r} within {self._last_timeout:g} s"
            elif not self._reached:
                what = f"cannot reach {self.resource} ({_one_line(exc)})"
            else:
                what = f"link failure ({_one_line(exc)})"
            safe = self._make_safe()
            raise InstrumentError(f"{self.name}: {action}: {what}{safe}") from None
        except BaseException:
            self._out_of_step = True  # Ctrl-C mid-exchange: drain the pipe before the next command
            raise

    def _make_safe(self) -> str:
        """Output off by every means there is; returns a note for the error message.

        Off commands on the present link, confirmed by ``:OUTP?``; when that fails (link lost, silent
        instrument) once more over a fresh connection. Every wait here is short (_SAFE_TIMEOUT), so
        this ends within about 2 s + one connection attempt. The link is dropped afterwards: after a
        failure the reply stream may be out of step, and a reconnect starts clean.
        """
        self._mode = "off"
        self._interrupt.clear()
        if self._inst is None or not self._reached:
            self._drop_session()  # never talked to it: nothing of ours can be on
            return ""
        tsp = self._lang not in (None, "SCPI")
        off = "smu.source.output = smu.OFF" if tsp else ":ABOR;:OUTP OFF"
        note = ""
        for attempt in range(2):
            try:
                if attempt:
                    self._drop_session()
                    self._open(min(self.timeout, 2 * _SAFE_TIMEOUT))
                self._out_of_step = True  # discard a late reply still in the pipe first
                self._write(off)
                if tsp:
                    note = "; output-off command sent (TSP)"
                    break
                state = self._query(":OUTP?", timeout=min(self.timeout, _SAFE_TIMEOUT))
            except Exception as exc:  # noqa: BLE001 - try the next means
                note = f"; COULD NOT CONFIRM THE OUTPUT OFF ({_one_line(exc)}): check the instrument"
                continue
            if state == "0":
                note = "; output switched off" + (" over a new connection" if attempt else "")
                break
            note = "; OUTPUT STILL ON: check the instrument"
        self._output = False
        self._drop_session()
        return note


def _range(value: float, ranges: tuple[float, ...]) -> float:
    for r in ranges:
        if value <= r * 1.05:
            return r
    return ranges[-1]


def _is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, TimeoutError):
        return True
    try:
        from pyvisa import constants, errors
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, errors.VisaIOError) and exc.error_code == constants.StatusCode.error_timeout


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _clip(text: str, n: int = 80) -> str:
    return text if len(text) <= n else text[:n] + "..."
