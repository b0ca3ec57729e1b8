"""The emulated 2450's SCPI commands: a dispatch table from canonical header to a small handler.

Each handler takes the instrument, the canonical header and the argument list, and returns the reply
(queries) or None; a refusal raises ScpiError, which the instrument puts in its error queue.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from simulators.keithley_trigger import EVENTS, Block
from simulators.scpi_parse import ScpiError, boolean, canonical, integer, need, number, unquote

if TYPE_CHECKING:
    from simulators.keithley_model import Keithley2450Emulator

MAX_BUFFER = 250_000  # readings a 2450 buffer can hold (standard reading format)
MAX_CURRENT = 1.05  # A
MAX_VOLTAGE = 210.0  # V

Handler = Callable[["Keithley2450Emulator", str, list[str]], "str | None"]
COMMANDS: dict[str, Handler] = {}


def command(*keys: str) -> Callable[[Handler], Handler]:
    """Register a handler for canonical headers (the dispatch table)."""

    def register(fn: Handler) -> Handler:
        for key in keys:
            COMMANDS[key] = fn
        return fn

    return register


# --- common and system commands -------------------------------------------------------------------
@command("*IDN?")
def _idn(inst: Keithley2450Emulator, key: str, args: list[str]) -> str:
    return inst.idn


@command("*LANG?")
def _lang_query(inst: Keithley2450Emulator, key: str, args: list[str]) -> str:
    return inst.lang


@command("*LANG")
def _lang(inst: Keithley2450Emulator, key: str, args: list[str]) -> None:
    need(args, 1)
    lang = args[0].upper()
    if lang not in ("SCPI", "TSP", "SCPI2400"):
        raise ScpiError(-224, "Illegal parameter value")
    inst.lang_after_reboot = lang  # effective after a power cycle


@command("*RST")
def _rst(inst: Keithley2450Emulator, key: str, args: list[str]) -> None:
    inst.reset()


@command("*CLS")
def _cls(inst: Keithley2450Emulator, key: str, args: list[str]) -> None:
    inst.errors.clear()


@command("*OPC?")
def _opc(inst: Keithley2450Emulator, key: str, args: list[str]) -> str:
    return "1"


@command("*TRG")
def _trg(inst: Keithley2450Emulator, key: str, args: list[str]) -> None:
    inst.trigger.event("COMM")


@command("SYST:ERR?")
def _error(inst: Keithley2450Emulator, key: str, args: list[str]) -> str:
    if not inst.errors:
        return '0,"No error;0;0"'
    code, msg = inst.errors.popleft()
    return f'{code},"{msg};1;0"'


@command("SYST:ERR:COUN?")
def _error_count(inst: Keithley2450Emulator, key: str, args: list[str]) -> str:
    return str(len(inst.errors))


@command("FORM:ASC:PREC")
def _precision(inst: Keithley2450Emulator, key: str, args: list[str]) -> None:
    need(args, 1)
    value = integer(args[0])
    if not 0 <= value <= 16:
        raise ScpiError(-222, "Data out of range")
    inst.precision = value


# --- output ---------------------------------------------------------------------------------------
@command("OUTP")
def _output(inst: Keithley2450Emulator, key: str, args: list[str]) -> None:
    need(args, 1)
    now = inst.clock.now()
    if not inst.trigger.running:
        inst.carry(now)
    inst.set_output(boolean(args[0]), now)


@command("OUTP?")
def _output_query(inst: Keithley2450Emulator, key: str, args: list[str]) -> str:
    return "1" if inst.output else "0"


@command("OUTP:SMOD", "OUTP:CURR:SMOD", "OUTP:VOLT:SMOD")
def _off_mode(inst: Keithley2450Emulator, key: str, args: list[str]) -> None:
    need(args, 1)
    mode = args[0].upper()[:4]
    if mode not in ("NORM", "HIMP", "ZERO", "GUAR"):
        raise ScpiError(-224, "Illegal parameter value")
    for f in ["CURR", "VOLT"] if key == "OUTP:SMOD" else [key.split(":")[1]]:
        inst.off_mode[f] = mode


@command("OUTP:SMOD?", "OUTP:CURR:SMOD?", "OUTP:VOLT:SMOD?")
def _off_mode_query(inst: Keithley2450Emulator, key: str, args: list[str]) -> str:
    return inst.off_mode[inst.source_function if key == "OUTP:SMOD?" else key.split(":")[1]]


# --- source and sense -----------------------------------------------------------------------------
@command("SOUR:FUNC")
def _source_function(inst: Keithley2450Emulator, key: str, args: list[str]) -> None:
    need(args, 1)
    f = canonical(args[0]) if args[0] else ""
    if f not in ("CURR", "VOLT"):
        raise ScpiError(-224, "Illegal parameter value")
    if inst.output and f != inst.source_function:
        raise ScpiError(5074, "Output must be off to change the source function")
    inst.source_function = f


@command("SOUR:FUNC?")
def _source_function_query(inst: Keithley2450Emulator, key: str, args: list[str]) -> str:
    return inst.source_function


@command("SOUR:CURR?", "SOUR:VOLT?")
def _level_query(inst: Keithley2450Emulator, key: str, args: list[str]) -> str:
    return inst.fmt(inst.source_level[key[5:9]])


@command("SOUR:CURR", "SOUR:VOLT")
def _level(inst: Keithley2450Emulator, key: str, args: list[str]) -> None:
    need(args, 1)
    f = key[5:9]
    value = number(args[0])
    if abs(value) > (MAX_CURRENT if f == "CURR" else MAX_VOLTAGE):
        raise ScpiError(-222, "Data out of range")
    inst.source_level[f] = value
    inst.clamped = False


@command("SOUR:CURR:RANG", "SOUR:VOLT:RANG", "SOUR:CURR:RANG:AUTO", "SOUR:VOLT:RANG:AUTO")
def _source_range(inst: Keithley2450Emulator, key: str, args: list[str]) -> None:
    need(args, 1)
    if key.endswith("AUTO"):
        boolean(args[0])
    else:
        inst.source_range[key[5:9]] = number(args[0])


@command("SOUR:CURR:RANG?", "SOUR:VOLT:RANG?")
def _source_range_query(inst: Keithley2450Emulator, key: str, args: list[str]) -> str:
    return inst.fmt(inst.source_range[key[5:9]])


@command("SOUR:CURR:VLIM", "SOUR:VOLT:ILIM")
def _limit(inst: Keithley2450Emulator, key: str, args: list[str]) -> None:
    need(args, 1)
    f = key[5:9]
    value = number(args[0])
    lo, hi = (0.02, MAX_VOLTAGE) if f == "CURR" else (1e-9, MAX_CURRENT)
    if not lo <= value <= hi:
        raise ScpiError(-222, "Data out of range")
    inst.limit[f] = value


@command("SOUR:CURR:VLIM?", "SOUR:VOLT:ILIM?")
def _limit_query(inst: Keithley2450Emulator, key: str, args: list[str]) -> str:
    return inst.fmt(inst.limit[key[5:9]])


@command("SOUR:CURR:VLIM:TRIP?", "SOUR:VOLT:ILIM:TRIP?")
def _limit_tripped(inst: Keithley2450Emulator, key: str, args: list[str]) -> str:
    return "1" if (inst.clamped and inst.source_function == key[5:9] and inst.output) else "0"


@command("SOUR:CURR:READ:BACK", "SOUR:VOLT:READ:BACK")
def _readback(inst: Keithley2450Emulator, key: str, args: list[str]) -> None:
    need(args, 1)
    boolean(args[0])


@command("SENS:FUNC")
def _sense_function(inst: Keithley2450Emulator, key: str, args: list[str]) -> None:
    need(args, 1)
    f = canonical(unquote(args[0]))
    if f not in ("CURR", "VOLT"):
        raise ScpiError(-224, "Illegal parameter value")
    inst.sense_function = f


@command("SENS:FUNC?")
def _sense_function_query(inst: Keithley2450Emulator, key: str, args: list[str]) -> str:
    return f'"{inst.sense_function}:DC"'


@command(*(f"SENS:{f}:{s}" for f in ("CURR", "VOLT") for s in ("RANG", "RANG:AUTO", "NPLC")))
def _sense_setting(inst: Keithley2450Emulator, key: str, args: list[str]) -> None:
    need(args, 1)


# --- reading buffers ------------------------------------------------------------------------------
@command("TRAC:MAKE")
def _make_buffer(inst: Keithley2450Emulator, key: str, args: list[str]) -> None:
    need(args, 2)
    name, size = unquote(args[0]).upper(), integer(args[1])
    if name in inst.buffers:
        raise ScpiError(1114, "Buffer name already exists")
    if not 10 <= size <= MAX_BUFFER:
        raise ScpiError(-222, "Data out of range")
    inst.buffers[name], inst.capacity[name] = [], size


@command("TRAC:DEL")
def _delete_buffer(inst: Keithley2450Emulator, key: str, args: list[str]) -> None:
    need(args, 1)
    name = inst.buffer(args[0])
    if name.startswith("DEFBUFFER"):
        raise ScpiError(-224, "Default buffers cannot be deleted")
    del inst.buffers[name], inst.capacity[name]


@command("TRAC:CLE")
def _clear_buffer(inst: Keithley2450Emulator, key: str, args: list[str]) -> None:
    inst.clear_buffer(inst.buffer(args[0] if args else None))


@command("TRAC:ACT?")
def _buffer_count(inst: Keithley2450Emulator, key: str, args: list[str]) -> str:
    return str(len(inst.buffers[inst.buffer(args[0] if args else None)]))


@command("TRAC:POIN?")
def _buffer_size(inst: Keithley2450Emulator, key: str, args: list[str]) -> str:
    return str(inst.capacity[inst.buffer(args[0] if args else None)])


@command("TRAC:DATA?")
def _buffer_data(inst: Keithley2450Emulator, key: str, args: list[str]) -> str:
    need(args, 2)
    start, end = integer(args[0]), integer(args[1])
    store = inst.buffers[inst.buffer(args[2] if len(args) > 2 else None)]
    if not 1 <= start <= end <= len(store):
        raise ScpiError(-222, "Data out of range")
    elements = [canonical(e) for e in args[3:]] or ["READ"]
    column = {"READ": 0, "SOUR": 1, "REL": 2}
    if any(e not in column for e in elements):
        raise ScpiError(-224, "Illegal buffer element")
    return ",".join(inst.fmt(row[column[e]]) for row in store[start - 1 : end] for e in elements)


# --- trigger model --------------------------------------------------------------------------------
@command("TRIG:LOAD")
def _load(inst: Keithley2450Emulator, key: str, args: list[str]) -> None:
    need(args, 1)
    template = unquote(args[0]).upper()
    if template == "EMPTY":
        inst.trigger.load_empty()
    elif template == "SIMPLELOOP":
        count = integer(args[1]) if len(args) > 1 else 1
        delay = number(args[2]) if len(args) > 2 else 0.0
        inst.trigger.simple_loop(count, delay, inst.buffer(args[3] if len(args) > 3 else None))
    else:
        raise ScpiError(-224, f"Trigger model {template} not emulated")


def _block_number(args: list[str], n: int) -> int:
    need(args, n)
    return integer(args[0])


@command("TRIG:BLOC:BUFF:CLE")
def _block_clear(inst: Keithley2450Emulator, key: str, args: list[str]) -> None:
    n = _block_number(args, 1)
    inst.trigger.define(n, Block("BUFFER_CLEAR", (inst.buffer(args[1] if len(args) > 1 else None),)))


@command("TRIG:BLOC:SOUR:STAT")
def _block_source(inst: Keithley2450Emulator, key: str, args: list[str]) -> None:
    inst.trigger.define(_block_number(args, 2), Block("SOURCE", (boolean(args[1]),)))


@command("TRIG:BLOC:DEL:CONS")
def _block_delay(inst: Keithley2450Emulator, key: str, args: list[str]) -> None:
    n, delay = _block_number(args, 2), number(args[1])
    if not 0 <= delay <= 10_000:
        raise ScpiError(-222, "Data out of range")
    inst.trigger.define(n, Block("DELAY", (delay,)))


@command("TRIG:BLOC:MEAS")
def _block_measure(inst: Keithley2450Emulator, key: str, args: list[str]) -> None:
    n = _block_number(args, 1)
    if len(args) > 2 and integer(args[2]) != 1:
        raise ScpiError(-224, "Emulator: measure blocks make one reading each")
    inst.trigger.define(n, Block("MEASURE", (inst.buffer(args[1] if len(args) > 1 else None),)))


@command("TRIG:BLOC:BRAN:ALW")
def _block_always(inst: Keithley2450Emulator, key: str, args: list[str]) -> None:
    inst.trigger.define(_block_number(args, 2), Block("ALWAYS", (integer(args[1]),)))


@command("TRIG:BLOC:BRAN:COUN")
def _block_counter(inst: Keithley2450Emulator, key: str, args: list[str]) -> None:
    n, count, to = _block_number(args, 3), integer(args[1]), integer(args[2])
    if count < 1:
        raise ScpiError(-222, "Data out of range")
    inst.trigger.define(n, Block("COUNTER", (count, to)))


@command("TRIG:BLOC:BRAN:EVEN")
def _block_event(inst: Keithley2450Emulator, key: str, args: list[str]) -> None:
    n, event = _block_number(args, 3), EVENTS.get(args[1].strip().upper())
    if event is None:
        raise ScpiError(-224, f"Emulator: event {args[1]} not emulated")
    inst.trigger.define(n, Block("EVENT", (event, integer(args[2]))))


@command("TRIG:BLOC:BRAN:COUN:RES")
def _block_reset(inst: Keithley2450Emulator, key: str, args: list[str]) -> None:
    inst.trigger.define(_block_number(args, 2), Block("RESET", (integer(args[1]),)))


@command("TRIG:BLOC:NOP")
def _block_nop(inst: Keithley2450Emulator, key: str, args: list[str]) -> None:
    inst.trigger.define(_block_number(args, 1), Block("NOP"))


@command("TRIG:BLOC:LIST?")
def _block_list(inst: Keithley2450Emulator, key: str, args: list[str]) -> str:
    return inst.trigger.listing()


@command("TRIG:BLOC:BRAN:COUN:COUN?")
def _counter_value(inst: Keithley2450Emulator, key: str, args: list[str]) -> str:
    return str(inst.trigger.counters.get(_block_number(args, 1), 0))


@command("INIT")
def _initiate(inst: Keithley2450Emulator, key: str, args: list[str]) -> None:
    inst.trigger.start(inst.clock.now())
    inst.advance()


@command("ABOR")
def _abort(inst: Keithley2450Emulator, key: str, args: list[str]) -> None:
    inst.trigger.abort()


@command("TRIG:STAT?")
def _trigger_state(inst: Keithley2450Emulator, key: str, args: list[str]) -> str:
    return inst.trigger.status()
