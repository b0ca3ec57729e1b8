"""Keithley 2450 SourceMeter as a two-terminal galvanostat over VISA (pyvisa + pyvisa-py, SCPI).

A source-measure unit is wired working -> counter, so the voltage it measures is the cell voltage:
E_we = E_cell = measured voltage (no reference electrode, no impedance). What the instrument can
enforce by itself is pushed into it:

- the voltage limit: a current source with ``:SOUR:CURR:VLIM`` clamps at |V| = VLIM on its own; the
  driver asks ``:SOUR:CURR:VLIM:TRIP?`` at every read and then switches the output off (FLAG_HW_LIMIT at
  the sample where it happened). VLIM is symmetric, so it is max(|v_min|, |v_max|); the asymmetric
  window is checked by the driver on every buffered sample, with the same flag and the same stop;
- a fixed source range sized to the step's current; the output-off state high impedance
  (``:OUTP:SMOD HIMP``: the relay opens; the NORMAL off state would hold the cell at 0 V).

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from daq.core.capabilities import InstrumentInfo, Potentiostat, check_setpoint
from daq.core.clock import Clock, RealClock
from daq.core.errors import InstrumentError
from daq.core.samples import FLAG_HW_LIMIT, FLAG_OVERLOAD, SampleBlock
from drivers.keithley2450_scpi import (
    KEITHLEY2450_CAPABILITIES,
    deadman_blocks,
    parse_error,
    parse_idn,
    source_commands,
    to_floats,
    to_int,
)
from drivers.scpi_link import BadReply, Interrupted, ScpiLink, is_timeout, one_line

_OCV_VLIM = 20.0  # V, limit while sampling the open-circuit voltage at 0 A
_SAFE_TIMEOUT = 0.5  # s, per reply while making the output safe after a failure
_MIN_DEADMAN = 0.5  # s


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
        # open_resource: (resource, timeout) -> a VISA-like session, for wire-level tests; None: pyvisa
        self._link = ScpiLink(name, resource, timeout, visa_library, open_resource)
        self._expired: str | None = None  # the dead-man switch ended the output; reported at the next read
        self.buffer_size = int(buffer_size)  # readings in the instrument buffer (one trigger loop)
        self.chunk = int(chunk)  # readings per :TRAC:DATA? transfer
        self.capabilities = KEITHLEY2450_CAPABILITIES
        self.info: InstrumentInfo | None = None
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
        self._rolled = False  # the present read started the next loop

    @property
    def timeout(self) -> float:
        """Seconds to wait for any one reply (and for the connection)."""
        return self._link.timeout

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        self._link.timeout = float(seconds)

    @property
    def deadman_s(self) -> float:
        """Seconds after the last re-arm within which the instrument switches its output off by itself."""
        return self._deadman

    def interrupt(self) -> None:
        """Make a wait for a reply end now (thread-safe; e.g. from a signal handler). The call waiting
        raises InstrumentError after switching the output off."""
        self._link.interrupt()

    # --- interface ----------------------------------------------------------------------------
    def connect(self) -> InstrumentInfo:
        """Open the link, check identity and command set, leave the output off. Never switches it on."""
        self._link.close()
        self._expired = None
        with self._failsafe("connect"):
            self._link.open()
            idn = self._link.query("*IDN?")
            info = parse_idn(self.name, self.resource, idn)
            self._check_language()
            self._link.write(":ABOR")
            if to_int(self._link.query(":OUTP?"), ":OUTP?"):
                self._link.write(":OUTP OFF")
            self._output = False
            self._mode = "off"
            self._function = None
            self._link.write(":OUTP:SMOD HIMP")
            self._link.write("*CLS")
            self._link.write(":FORM:ASC:PREC 16")
            self._link.write(f':TRAC:MAKE "{self.BUFFER}", {self.buffer_size}')
            self._check_errors("connect", ignore=("exist",))  # the buffer may survive a reconnect
        self.info = info
        return info

    def probe(self) -> tuple[InstrumentInfo, bool]:
        """Identity and whether the output is on, changing nothing (no *CLS, no output change): listing a
        rig must not disturb a run another process may have going on this instrument. Closes the link."""
        self._link.close()
        try:
            self._link.open()
            info = parse_idn(self.name, self.resource, self._link.query("*IDN?"))
            self._check_language()
            return info, bool(to_int(self._link.query(":OUTP?"), ":OUTP?"))
        except InstrumentError:
            raise
        except BadReply as exc:
            raise InstrumentError(f"{self.name}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - VISA and socket errors of every kind become one InstrumentError
            what = (
                f"no reply to {self._link.last_query!r} within {self.timeout:g} s"
                if is_timeout(exc)
                else f"cannot reach {self.resource} ({one_line(exc)})"
            )
            raise InstrumentError(f"{self.name}: {what}") from None
        finally:
            self._link.close()

    def apply_current(
        self, current: float, v_min: float, v_max: float, sample_period: float, duration: float | None = None
    ) -> None:
        check_setpoint(self.name, self.capabilities, current=current, v_limits=(v_min, v_max), holder="2450")
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
        check_setpoint(self.name, self.capabilities, potential=potential, holder="2450")
        ilim = min(max(abs(i_min), abs(i_max)), self.capabilities.max_current)
        if not ilim > 0:
            raise InstrumentError(f"{self.name}: current limits [{i_min:g}, {i_max:g}] A allow no current")
        self._start("potential", potential, ilim, sample_period, duration, None)

    def open_circuit(self, sample_period: float | None = None) -> None:
        """Without a period: output off (relay open). With one: source 0 A and sample the voltage."""
        if not self._link.connected:
            self._mode = "off"
            return
        if sample_period is None:
            with self._failsafe("open_circuit"):
                self._output_off()
            return
        self._start("ocv", 0.0, _OCV_VLIM, sample_period, None, None)

    def read(self) -> SampleBlock:
        """Samples since the last read; re-arms the dead-man switch (``*TRG``)."""
        if self._expired is not None:  # samples made before the switch-off were handed over first
            message, self._expired = self._expired, None
            raise InstrumentError(message)
        self._check_connected()
        if self._mode == "off":
            return SampleBlock.empty()
        with self._failsafe("read"):
            block = self._read()
        if self._expired is not None and not len(block):
            return self.read()  # nothing to hand over first: report the dead-man switch now
        return block

    def close(self) -> None:
        """Output off, then release the link. Safe to call more than once."""
        if self._link.connected:
            try:
                self._link.write(":ABOR")
                self._link.write(":OUTP OFF")
                self._link.query(":OUTP?")  # the instrument has acted on the commands before the link closes
            except Exception:  # noqa: BLE001 - closing anyway; make the cell safe as best we can
                self._make_safe()
        self._mode = "off"
        self._output = False
        self._link.close()

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
        check_setpoint(self.name, self.capabilities, duration=duration, holder="2450")
        total = None if duration is None else max(1, math.floor(duration / period + 1e-9))
        function = "VOLT" if mode == "potential" else "CURR"
        with self._failsafe(mode if mode != "ocv" else "open_circuit"):
            if self._output and self._function != function:
                self._link.write(":ABOR;:OUTP OFF")  # the source function cannot change with the output on
                self._output = False
            self._mode = "off"
            self._period, self._vlim, self._window, self._remaining = period, limit, window, total
            config = [*source_commands(function, level, limit), *self._loop_commands()]
            self._function = function
            if self._output:
                # Already sourcing: stop the old model, set the new level and start the new model in one
                # message, so that no moment exists in which the output is on without a running model.
                self._link.write(";".join([":ABOR", *config, ":INIT"]))
                self._started()
            else:
                self._link.write(";".join(config))
                self._check_errors("configuration")  # nothing is switched on before the settings are accepted
                self._link.write(":INIT")  # the model's source block switches the output on
                self._started()
            self._output = True
            self._mode = mode

    def _check_period(self, period: float) -> None:
        if not period >= self.capabilities.min_sample_period:
            raise InstrumentError(
                f"{self.name}: sample period {period:g} s below {self.capabilities.min_sample_period:g} s"
            )
        if not self.clock.virtual and period > self._deadman_clock() / 2:
            raise InstrumentError(
                f"{self.name}: sample period {period:g} s too long for the dead-man time of {self._deadman:g} s "
                f"(at most half of it, {self._deadman_clock() / 2:g} s); raise the dead-man time or sample faster"
            )

    def _deadman_clock(self) -> float:
        """The dead-man time (wall seconds) in run-clock seconds: a scaled clock runs ``speed`` x faster."""
        return self._deadman * float(getattr(self.clock, "speed", 1.0))

    def _loop_commands(self) -> list[str]:
        """The next measurement loop: as many readings as the buffer holds or the step still needs."""
        self._count = self.buffer_size if self._remaining is None else min(self._remaining, self.buffer_size)
        if self.clock.virtual:
            # Virtual time stops with the process that moves it: nothing can run on unattended.
            deadman_count = self._count
        else:
            # A *TRG is seen at the next pass (within one period), then this many readings: <= deadman_s.
            deadman_count = max(1, math.floor(self._deadman_clock() / self._period + 1e-9) - 1)
        return deadman_blocks(self.BUFFER, self._period, deadman_count, self._count)

    def _started(self) -> None:
        self._t_init = self.clock.now()
        self._fetched = 0
        # A query completes the exchange: the loop has started before the caller lets time pass.
        self._check_errors("start of the measurement loop")

    def _read(self) -> SampleBlock:
        self._link.write("*TRG")  # re-arm the dead-man switch
        state = self._link.query(":TRIG:STAT?").split(";")[0].strip().upper()
        data = self._fetch()
        running = state in ("RUNNING", "WAITING")
        t_init = self._t_init
        if running and self._fetched * 2 >= self._count and self._more_after_loop():
            self._link.write(":ABOR")  # buffer half full: read the rest and start the next loop
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
            if to_int(self._link.query(":SOUR:VOLT:ILIM:TRIP?"), ":SOUR:VOLT:ILIM:TRIP?"):
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
        n = to_int(self._link.query(f':TRAC:ACT? "{self.BUFFER}"'), ":TRAC:ACT?")
        if not self._fetched <= n <= self._count:
            raise BadReply(
                f":TRAC:ACT? says {n} readings; {self._fetched} were already read from this "
                f"{self._count}-reading loop (buffer cleared or loop restarted from elsewhere?)"
            )
        parts = [np.zeros((0, 3))]
        while self._fetched < n:
            last = min(n, self._fetched + self.chunk)
            cmd = f':TRAC:DATA? {self._fetched + 1}, {last}, "{self.BUFFER}", READ, SOUR, REL'
            values = to_floats(self._link.query(cmd), cmd, 3 * (last - self._fetched))
            parts.append(values.reshape(-1, 3))
            self._fetched = last
        return np.concatenate(parts)

    def _more_after_loop(self) -> bool:
        return self._remaining is None or self._remaining > self._count

    def _rollover(self) -> None:
        """The model is aborted (output still on) and its readings read: start the next loop."""
        if self._remaining is not None:
            self._remaining -= self._fetched
        self._link.write(";".join([*self._loop_commands(), ":INIT"]))
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
        if to_int(self._link.query(":SOUR:CURR:VLIM:TRIP?"), ":SOUR:CURR:VLIM:TRIP?"):
            at = np.flatnonzero(np.abs(voltage) >= self._vlim * (1 - 1e-3))
            if at.size:
                return int(at[0])
            return len(voltage) - 1 if len(voltage) else None
        return None

    def _output_off(self) -> None:
        self._link.write(":ABOR")
        self._link.write(":OUTP OFF")
        self._output = False
        self._mode = "off"
        state = self._link.query(":OUTP?")  # confirms, and the instrument has acted before we return
        if state != "0":
            raise BadReply(f"output still on after :OUTP OFF (':OUTP?' answered {state!r})")

    def _check_connected(self) -> None:
        if not self._link.connected:
            raise InstrumentError(f"{self.name}: not connected")

    def _check_language(self) -> None:
        try:
            lang = self._link.query("*LANG?").upper()
        except Exception as exc:
            if is_timeout(exc):
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
            reply = self._link.query(":SYST:ERR?")
            code, text = parse_error(reply)
            if code == 0:
                break
            if not any(word in text.lower() for word in ignore):
                found.append(f"{code} {text}")
        if found:
            raise InstrumentError(f"{self.name}: the instrument refused the {stage}: {'; '.join(found)}")

    # --- failure handling ---------------------------------------------------------------------
    @contextmanager
    def _failsafe(self, action: str) -> Iterator[None]:
        """Any failure inside: switch the output off, drop the link, raise one readable InstrumentError."""
        self._link.clear_interrupt()
        try:
            yield
        except InstrumentError as exc:
            safe = self._make_safe()
            raise InstrumentError(f"{exc}{safe}") from None
        except (BadReply, Interrupted) as exc:
            safe = self._make_safe()
            raise InstrumentError(f"{self.name}: {action}: {exc}{safe}") from None
        except Exception as exc:  # noqa: BLE001 - VISA and socket errors of every kind end here
            if is_timeout(exc):
                what = f"no reply to {self._link.last_query!r} within {self._link.last_timeout:g} s"
            elif not self._link.reached:
                what = f"cannot reach {self.resource} ({one_line(exc)})"
            else:
                what = f"link failure ({one_line(exc)})"
            safe = self._make_safe()
            raise InstrumentError(f"{self.name}: {action}: {what}{safe}") from None
        except BaseException:
            self._link.out_of_step = True  # Ctrl-C mid-exchange: drain the pipe before the next command
            raise

    def _make_safe(self) -> str:
        """Output off by every means there is; returns a note for the error message.

        Off commands on the present link, confirmed by ``:OUTP?``; when that fails (link lost, silent
        instrument) once more over a fresh connection. Every wait here is short (_SAFE_TIMEOUT), so
        this ends within about 2 s + one connection attempt. The link is dropped afterwards: after a
        failure the reply stream may be out of step, and a reconnect starts clean.
        """
        self._mode = "off"
        self._link.clear_interrupt()
        if not self._link.connected or not self._link.reached:
            self._link.close()  # never talked to it: nothing of ours can be on
            return ""
        tsp = self._lang not in (None, "SCPI")
        off = "smu.source.output = smu.OFF" if tsp else ":ABOR;:OUTP OFF"
        note = ""
        for attempt in range(2):
            try:
                if attempt:
                    self._link.close()
                    self._link.open(min(self.timeout, 2 * _SAFE_TIMEOUT))
                self._link.out_of_step = True  # discard a late reply still in the pipe first
                self._link.write(off)
                if tsp:
                    note = "; output-off command sent (TSP)"
                    break
                state = self._link.query(":OUTP?", timeout=min(self.timeout, _SAFE_TIMEOUT))
            except Exception as exc:  # noqa: BLE001 - try the next means
                note = f"; COULD NOT CONFIRM THE OUTPUT OFF ({one_line(exc)}): check the instrument"
                continue
            if state == "0":
                note = "; output switched off" + (" over a new connection" if attempt else "")
                break
            note = "; OUTPUT STILL ON: check the instrument"
        self._output = False
        self._link.close()
        return note
