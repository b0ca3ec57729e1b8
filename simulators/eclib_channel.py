"""One emulated BioLogic channel running its technique chain by itself, on a SimulatedCell.

The channel runs what was loaded (CP, CPLIMIT, CA, CALIMIT, OCV, GEIS, PEIS) from BL_StartChannel on, with
no PC involvement: every technique ends on its own duration or limit tests and the channel then stops with
the cell disconnected. Data are buffered as rows of 32-bit words in the layout of the channel's board family
(simulators.eclib_structs), floats encoded in the channel's float format.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from simulators import eclib_structs as S
from simulators.cell import SimulatedCell

# V, E_we of the simulated Li|Li cell at open circuit (no current, no overpotential). A channel at rest
# measures it, so a PEIS "vs initial" potential that follows a rest is set around it, not around the
# last potential under current.
REST_POTENTIAL = 0.0


@dataclass
class Technique:
    tech_id: int
    file: str
    params: dict[str, dict[int, object]]  # label -> {index: value}

    def get(self, label: str, index: int = 0, default: object = None) -> object:
        values = self.params.get(label)
        if not values:
            return default
        if index in values:
            return values[index]
        return values[max(values)] if index > max(values) else default


@dataclass
class Chunk:
    tech_index: int
    tech_id: int
    process: int
    loop: int
    start_time: float  # s of experiment time at the technique start
    rows: deque = field(default_factory=deque)  # np.ndarray rows of uint32 words


@dataclass
class Channel:
    number: int
    cell: SimulatedCell | None
    board: int
    firmware: int = S.FIRM_NONE
    chain: list[Technique] = field(default_factory=list)
    state: int = S.STATE_STOP
    clock0: float = 0.0  # clock time of BL_StartChannel (experiment time 0)
    t_cell: float = 0.0  # clock time up to which the cell has been advanced
    tech_index: int = 0
    tech_start: float = 0.0  # experiment time the current technique started
    phase: dict = field(default_factory=dict)  # per-technique progress
    chunks: deque = field(default_factory=deque)
    output: float | None = None  # A through the cell, None = disconnected
    off_since: float | None = 0.0  # clock time the output last went off (None while on)
    last_ewe: float = 0.0
    last_ece: float = 0.0
    reported_board: int | None = None  # a board type that reads back wrong (fault)

    def switch_off(self, t_clock: float) -> None:
        """Disconnect the cell (the technique goes on, e.g. OCV)."""
        if self.output is not None or self.off_since is None:
            self.off_since = t_clock
        self.output = None

    def halt(self, t_clock: float) -> None:
        """The channel stops: cell disconnected."""
        self.switch_off(t_clock)
        self.state = S.STATE_STOP

    def switch_on(self, current: float) -> None:
        self.output, self.off_since = current, None


class ChannelRunner:
    """Runs channels' technique chains up to a clock time; ``encode`` turns floats into data words."""

    def __init__(self, time_base: float, encode: Callable[[np.ndarray], np.ndarray]):
        self.time_base, self.encode = time_base, encode

    # --- technique chain ------------------------------------------------------------------------------
    def start(self, channel: Channel, now: float) -> None:
        channel.state, channel.clock0, channel.t_cell = S.STATE_RUN, now, now
        channel.chunks.clear()
        self.begin(channel, 0, 0.0)

    def begin(self, channel: Channel, index: int, tau: float) -> None:
        """Start technique ``index`` of the chain at experiment time ``tau`` (or stop at the chain's end)."""
        if index >= len(channel.chain):
            channel.halt(channel.clock0 + tau)
            return
        channel.tech_index, channel.tech_start = index, tau
        tech = channel.chain[index]
        channel.phase = {"step": 0, "cycle": 0, "k": 0, "step_start": tau, "freq": 0, "dc_done": False}
        channel.chunks.append(Chunk(index, tech.tech_id, 0, 0, tau))
        if tech.tech_id in (S.TECH_CP, S.TECH_CPLIMIT):
            channel.switch_on(float(tech.get("Current_step", 0, 0.0)))
        elif tech.tech_id in (S.TECH_CA, S.TECH_CALIMIT):
            channel.switch_on(self._ca_current(channel, tech, 0))
        elif tech.tech_id == S.TECH_GEIS:
            channel.switch_on(float(tech.get("Initial_Current_step", 0, 0.0)))
        elif tech.tech_id == S.TECH_PEIS:
            e = float(tech.get("Initial_Voltage_step", 0, 0.0))
            if tech.get("vs_initial", 0, False):
                e += channel.last_ewe if channel.output is None else 0.0
            channel.phase["e_set"] = e
            channel.switch_on(channel.cell.current_for_potential(e))
        else:
            channel.switch_off(channel.clock0 + tau)

    def advance(self, channel: Channel, now: float) -> None:
        """Run the channel's technique chain from where it was up to clock time ``now``."""
        if channel.cell is None:
            return
        guard = 0
        while channel.state == S.STATE_RUN and guard < 100_000:
            guard += 1
            tech = channel.chain[channel.tech_index]
            tau_now = now - channel.clock0
            if tech.tech_id in (S.TECH_CP, S.TECH_CPLIMIT, S.TECH_CA, S.TECH_CALIMIT):
                progressed = self._run_step(channel, tech, tau_now)
            elif tech.tech_id in (S.TECH_GEIS, S.TECH_PEIS):
                progressed = self._run_eis(channel, tech, tau_now)
            else:
                progressed = self._run_ocv(channel, tech, tau_now)
            if not progressed:
                break
        if channel.state != S.STATE_RUN:
            self.advance_output(channel, now)  # output is None: the cell rests

    def stop(self, channel: Channel, now: float) -> None:
        self.advance(channel, now)
        if channel.state == S.STATE_RUN:
            self.advance_output(channel, now)
        channel.halt(now)

    # --- helpers --------------------------------------------------------------------------------------
    def _chunk(self, channel: Channel, process: int) -> Chunk:
        tech = channel.chain[channel.tech_index]
        last = channel.chunks[-1] if channel.chunks else None
        if last is None or last.tech_index != channel.tech_index or last.process != process:
            last = Chunk(channel.tech_index, tech.tech_id, process, channel.phase["cycle"], channel.tech_start)
            channel.chunks.append(last)
        return last

    def _ticks(self, channel: Channel, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ticks = np.round((tau - channel.tech_start) / self.time_base).astype(np.uint64)
        return (ticks >> np.uint64(32)).astype(np.uint32), (ticks & np.uint64(0xFFFFFFFF)).astype(np.uint32)

    def advance_output(self, channel: Channel, t_to: float) -> None:
        """Let the present output act on the cell from t_cell to clock time t_to, without recording."""
        dt = t_to - channel.t_cell
        if dt <= 0 or channel.cell is None:
            return
        if channel.output is None:
            channel.cell.rest(dt)
            channel.last_ewe, channel.last_ece = REST_POTENTIAL, 0.0
        else:
            resp = channel.cell.advance(np.array([channel.output]), np.array([dt]))
            channel.last_ewe = float(resp.E_we[-1])
            channel.last_ece = float(resp.E_we[-1] - resp.E_cell[-1])
        channel.t_cell = t_to

    def _ca_current(self, channel: Channel, tech: Technique, step: int) -> float:
        """The current that holds E_we at the step's potential, within the fixed range's full scale."""
        e = float(tech.get("Voltage_step", step, 0.0))
        current = channel.cell.current_for_potential(e)
        full_scale = S.I_RANGES.get(int(tech.get("I_Range", 0, S.I_RANGE_AUTO)), math.inf)
        return float(np.clip(current, -full_scale, full_scale))

    @staticmethod
    def _tests(tech: Technique, step: int) -> list[tuple[int, float]] | None:
        if tech.tech_id not in (S.TECH_CPLIMIT, S.TECH_CALIMIT):
            return None
        return [
            (int(tech.get(f"Test{i}_Config", step, 0)), float(tech.get(f"Test{i}_Value", step, 0.0))) for i in (1, 2, 3)
        ]

    def _record_block(
        self, channel: Channel, tau: np.ndarray, current: float, tests: list[tuple[int, float]] | None = None
    ) -> tuple[int | None, np.ndarray]:
        """Pass ``current`` with samples at experiment times ``tau``; returns (tripping index, E_we), cut at
        the first sample where an active limit test fires (bits: 0 active, 2-4 sign 0 '<' 1 '>', 5-6 variable
        0 Ewe 3 I)."""
        t_clock = channel.clock0 + tau
        currents = np.full(len(tau), current)
        before = channel.cell.snapshot()
        resp = channel.cell.advance(currents, np.diff(t_clock, prepend=channel.t_cell))
        trip = None
        if tests:
            hit = np.zeros(len(tau), dtype=bool)
            for config, value in tests:
                if config & 1:
                    below = ((config >> 2) & 0b111) == 0
                    x = currents if (config >> 5) & 0b11 == 3 else resp.E_we
                    hit |= x < value if below else x > value
            idx = np.flatnonzero(hit)
            if idx.size:
                trip = int(idx[0])
                channel.cell.restore(before)
                t_clock, currents = t_clock[: trip + 1], currents[: trip + 1]
                resp = channel.cell.advance(currents, np.diff(t_clock, prepend=channel.t_cell))
        channel.t_cell = float(t_clock[-1])
        channel.last_ewe = float(resp.E_we[-1])
        channel.last_ece = float(resp.E_we[-1] - resp.E_cell[-1])
        return trip, resp.E_we

    # --- techniques -----------------------------------------------------------------------------------
    def _run_step(self, channel: Channel, tech: Technique, tau_now: float) -> bool:
        """CP/CPLIMIT (current set) and CA/CALIMIT (potential set, current found per recorded block)."""
        ph = channel.phase
        step = ph["step"]
        n_steps = int(tech.get("Step_number", 0, 0)) + 1
        potentiostatic = tech.tech_id in (S.TECH_CA, S.TECH_CALIMIT)
        if potentiostatic:
            current = self._ca_current(channel, tech, step)
        else:
            current = float(tech.get("Current_step", step, 0.0))
            if tech.get("vs_initial", step, False) and step > 0:
                current += float(tech.get("Current_step", step - 1, 0.0))
        channel.switch_on(current)
        duration = float(tech.get("Duration_step", step, 0.0))
        dt = max(float(tech.get("Record_every_dT", 0, 1.0)), 1e-4)
        step_end = ph["step_start"] + duration
        t_last = min(tau_now, step_end)
        k_hi = int(math.floor((t_last - ph["step_start"]) / dt + 1e-9))
        if k_hi >= ph["k"]:
            ks = np.arange(ph["k"], k_hi + 1)
            tau = ph["step_start"] + ks * dt
            trip, e_we = self._record_block(channel, tau, current, self._tests(tech, step))
            if trip is not None:
                tau, e_we = tau[: trip + 1], e_we[: trip + 1]
            hi, lo = self._ticks(channel, tau)
            floats = self.encode(np.concatenate([e_we, np.full(len(tau), current)])).reshape(2, -1)
            cycle = np.full(len(tau), ph["cycle"], dtype=np.uint32)
            self._chunk(channel, 0).rows.extend(np.column_stack([hi, lo, floats[0], floats[1], cycle]))
            ph["k"] = int(ks[len(tau) - 1]) + 1
            if trip is not None:
                exit_cond = int(tech.get("Exit_Cond", step, 0))
                t_trip = float(tau[-1])
                if exit_cond == 2:
                    channel.halt(channel.clock0 + t_trip)
                    return False
                if exit_cond == 1:
                    self.begin(channel, channel.tech_index + 1, t_trip)
                    return True
                return self._next_step(channel, tech, n_steps, t_trip)
        if tau_now >= step_end - 1e-9:
            self.advance_output(channel, channel.clock0 + step_end)
            return self._next_step(channel, tech, n_steps, step_end)
        return False

    def _next_step(self, channel: Channel, tech: Technique, n_steps: int, tau: float) -> bool:
        ph = channel.phase
        ph["step"] += 1
        ph["k"], ph["step_start"] = 0, tau
        if ph["step"] >= n_steps:
            ph["cycle"] += 1
            ph["step"] = 0
            if ph["cycle"] > int(tech.get("N_Cycles", 0, 0)):
                self.begin(channel, channel.tech_index + 1, tau)
        return True

    @staticmethod
    def _eis_frequencies(tech: Technique) -> np.ndarray:
        fi, ff = float(tech.get("Initial_frequency")), float(tech.get("Final_frequency"))
        n = max(int(tech.get("Frequency_number", 0, 1)), 1)
        if n == 1:
            return np.array([fi])
        if tech.get("sweep", 0, False):  # linear spacing
            return np.linspace(fi, ff, n)
        return np.logspace(math.log10(fi), math.log10(ff), n)

    def _run_eis_dc(self, channel: Channel, tech: Technique, tau_now: float) -> bool:
        """The DC period before the sweep (Duration_step); True once it is over."""
        ph = channel.phase
        dc = channel.output or 0.0
        duration = float(tech.get("Duration_step", 0, 0.0))
        dt = max(float(tech.get("Record_every_dT", 0, 1.0)), 1e-4)
        end = channel.tech_start + duration
        t_last = min(tau_now, end)
        k_hi = int(math.floor((t_last - channel.tech_start) / dt + 1e-9)) if duration > 0 else -1
        if k_hi >= ph["k"]:
            ks = np.arange(ph["k"], k_hi + 1)
            tau = channel.tech_start + ks * dt
            _, e_we = self._record_block(channel, tau, dc)
            hi, lo = self._ticks(channel, tau)
            floats = self.encode(np.concatenate([e_we, np.full(len(tau), dc)])).reshape(2, -1)
            self._chunk(channel, 0).rows.extend(np.column_stack([hi, lo, floats[0], floats[1]]))
            ph["k"] = k_hi + 1
        if tau_now < end - 1e-9:
            return False
        self.advance_output(channel, channel.clock0 + end)
        ph["dc_done"], ph["f_start"] = True, end
        return True

    def _run_eis(self, channel: Channel, tech: Technique, tau_now: float) -> bool:
        ph = channel.phase
        if not ph["dc_done"] and not self._run_eis_dc(channel, tech, tau_now):
            return False
        freqs = self._eis_frequencies(tech)
        wait = float(tech.get("Wait_for_steady", 0, 1.0))
        n_avg = max(int(tech.get("Average_N_times", 0, 1)), 1)
        i_f = ph["freq"]
        if i_f >= len(freqs):
            self.begin(channel, channel.tech_index + 1, ph["f_start"])
            return True
        f = float(freqs[i_f])
        point_end = ph["f_start"] + max((wait + n_avg + 1) / f, 0.2)
        if tau_now < point_end:
            return False
        self.advance_output(channel, channel.clock0 + point_end)
        dc = channel.output or 0.0
        z = complex(channel.cell.impedance(np.array([f]), dc)[0])
        rng = channel.cell.rng
        z *= 1 + rng.normal(0, 0.002) + 1j * rng.normal(0, 0.002)
        if tech.tech_id == S.TECH_GEIS:
            i_ac = abs(float(tech.get("Amplitude_Current")))
            e_ac = abs(z) * i_ac
        else:
            e_ac = abs(float(tech.get("Amplitude_Voltage")))
            i_ac = e_ac / max(abs(z), 1e-12)
        values = {
            "freq": f,
            "abs_Ewe": e_ac,
            "abs_I": i_ac,
            "Phase_Zwe": math.degrees(math.atan2(z.imag, z.real)),
            "Ewe": channel.last_ewe,
            "I": dc,
            "Ece": channel.last_ece,
            "t": point_end - channel.tech_start,
            "Irange": float(tech.get("I_Range", 0, S.I_RANGE_AUTO)),
        }
        layout = S.EIS_ROWS[channel.board]
        words = self.encode(np.array([values.get(name, 0.0) for name in layout]))
        words[[k for k, name in enumerate(layout) if name in S.INTEGER_WORDS]] = 0
        self._chunk(channel, 1).rows.append(words)
        ph["freq"], ph["f_start"] = i_f + 1, point_end
        return True

    def _run_ocv(self, channel: Channel, tech: Technique, tau_now: float) -> bool:
        ph = channel.phase
        channel.switch_off(channel.clock0 + channel.tech_start)
        duration = float(tech.get("Rest_time_T", 0, 0.0))
        dt = max(float(tech.get("Record_every_dT", 0, 1.0)), 1e-4)
        end = channel.tech_start + duration
        t_last = min(tau_now, end)
        k_hi = int(math.floor((t_last - channel.tech_start) / dt + 1e-9))
        if k_hi >= ph["k"]:
            ks = np.arange(ph["k"], k_hi + 1)
            tau = channel.tech_start + ks * dt
            channel.cell.rest(float(channel.clock0 + tau[-1] - channel.t_cell))
            channel.t_cell = float(channel.clock0 + tau[-1])
            channel.last_ewe, channel.last_ece = REST_POTENTIAL, 0.0  # what the channel measures now
            noise = channel.cell.spec.simulation.noise_voltage
            ewe = np.zeros(len(tau)) + channel.cell.rng.normal(0, noise, len(tau))
            hi, lo = self._ticks(channel, tau)
            cols = [hi, lo, self.encode(ewe)]
            if "Ece" in S.OCV_ROWS[channel.board]:
                cols.append(self.encode(np.zeros(len(tau))))
            self._chunk(channel, 0).rows.extend(np.column_stack(cols))
            ph["k"] = k_hi + 1
        if tau_now >= end - 1e-9:
            self.begin(channel, channel.tech_index + 1, end)
            return True
        return False
