"""The 2450's trigger model: numbered blocks run in order on the instrument's own clock.

Blocks emulated (2450/2461 reference manual, TRIGger subsystem): buffer clear, source output on/off,
constant delay, measure, branch always, branch on counter, branch on event (the ``COMMand`` event,
raised by ``*TRG``), counter reset, no-op; and the ``SimpleLoop`` template expressed in them.

The model runs by itself: ``run(now)`` executes every block whose time has come, so a running model
switches the output off at its last block even when nobody talks to the instrument any more. Control
flow never depends on measured values here, so readings are queued with their times and measured in
one go (the instrument flushes them before anything that changes the source).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from simulators.scpi_parse import ScpiError

MAX_BLOCKS = 255
EVENTS = {"COMM": "COMM", "COMMAND": "COMM", "DISP": "DISP", "DISPLAY": "DISP"}


class TriggerActions(Protocol):
    """What the blocks do to the instrument."""

    def clear_buffer(self, name: str) -> None: ...

    def switch_output(self, on: bool, t: float) -> None: ...

    def queue_reading(self, t: float, buffer: str) -> None: ...

    def flush_readings(self) -> None: ...


@dataclass(frozen=True)
class Block:
    kind: str  # BUFFER_CLEAR | SOURCE | DELAY | MEASURE | ALWAYS | COUNTER | EVENT | RESET | NOP
    args: tuple = ()


class TriggerModel:
    """Blocks, their execution state, the counters and the latched events."""

    def __init__(self) -> None:
        self.blocks: dict[int, Block] = {}
        self.running = False
        self.state = "EMPTY"
        self.pc = 0  # block to execute next
        self.last = 0  # block executed last
        self.t = 0.0  # the model's time: when the block at pc starts
        self.counters: dict[int, int] = {}
        self.latched: set[str] = set()

    # --- definition -----------------------------------------------------------------------------
    def load_empty(self) -> None:
        self._check_idle()
        self.blocks.clear()
        self.state = "EMPTY"

    def simple_loop(self, count: int, delay: float, buffer: str) -> None:
        """``SimpleLoop``: clear the buffer, then ``count`` times a delay and a measurement."""
        if count < 1 or delay < 0:
            raise ScpiError(-222, "Data out of range")
        self.load_empty()
        for n, block in enumerate(
            (
                Block("BUFFER_CLEAR", (buffer,)),
                Block("DELAY", (delay,)),
                Block("MEASURE", (buffer,)),
                Block("COUNTER", (count, 2)),
            ),
            start=1,
        ):
            self.define(n, block)

    def define(self, number: int, block: Block) -> None:
        self._check_idle()
        if not 1 <= number <= MAX_BLOCKS:
            raise ScpiError(-222, f"Block number {number} out of range")
        self.blocks[number] = block
        self.state = "BUILDING"

    def listing(self) -> str:
        return ";".join(f"{n}:{b.kind}:{','.join(str(a) for a in b.args)}" for n, b in sorted(self.blocks.items()))

    def _check_idle(self) -> None:
        if self.running:
            raise ScpiError(-221, "Settings conflict: trigger model running")

    # --- execution ------------------------------------------------------------------------------
    def start(self, now: float) -> None:
        if not self.blocks:
            raise ScpiError(-221, "Settings conflict: trigger model empty")
        self._check_idle()
        for n, b in self.blocks.items():
            for target in self._targets(b):
                if target not in self.blocks and target != 0:
                    raise ScpiError(-221, f"Settings conflict: block {n} branches to undefined block {target}")
        self.running, self.state = True, "RUNNING"
        self.pc, self.last, self.t = 1, 0, now
        self.counters.clear()
        self.latched.clear()

    def abort(self) -> None:
        if self.running:
            self.running, self.state = False, "ABORTED"

    def event(self, name: str) -> None:
        """A trigger event (``*TRG`` gives COMM); latched until a branch-on-event block sees it."""
        if self.running:
            self.latched.add(name)

    def status(self) -> str:
        return f"{self.state};{self.state};{self.last}"

    def run(self, now: float, actions: TriggerActions) -> None:
        """Execute every block due up to ``now``; stop at a delay that ends later, or at the end."""
        idle_steps = 0
        while self.running:
            block = self.blocks.get(self.pc)
            if block is None:  # past the last block: the model is done
                self.running, self.state = False, "IDLE"
                break
            if block.kind == "DELAY":
                if self.t + block.args[0] > now + 1e-9:
                    break
                self.t += block.args[0]
                idle_steps = 0 if block.args[0] > 0 else idle_steps
            idle_steps += 1
            if idle_steps > 100_000:
                self.running, self.state = False, "FAILED"  # a loop that never lets time pass
                break
            self.last = self.pc
            self.pc = self._execute(self.pc, block, actions)
        actions.flush_readings()

    def _execute(self, n: int, block: Block, actions: TriggerActions) -> int:
        kind, args = block.kind, block.args
        if kind == "BUFFER_CLEAR":
            actions.flush_readings()
            actions.clear_buffer(args[0])
        elif kind == "SOURCE":
            actions.flush_readings()
            actions.switch_output(args[0], self.t)
        elif kind == "MEASURE":
            actions.queue_reading(self.t, args[0])
        elif kind == "ALWAYS":
            return args[0]
        elif kind == "COUNTER":
            count = self.counters.get(n, 0) + 1
            if count < args[0]:
                self.counters[n] = count
                return args[1]
            self.counters[n] = 0  # falls through; an outer loop starts it afresh
        elif kind == "EVENT":
            if args[0] in self.latched:
                self.latched.discard(args[0])
                return args[1]
        elif kind == "RESET":
            self.counters[args[0]] = 0
        return n + 1

    @staticmethod
    def _targets(block: Block) -> list[int]:
        if block.kind == "ALWAYS":
            return [block.args[0]]
        if block.kind in ("COUNTER", "EVENT"):
            return [block.args[1]]
        return []
