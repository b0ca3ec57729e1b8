"""Run a protocol on a cell: check it, create the run file, connect, execute, close.

Every check that can refuse the run happens before the file is created and before the instrument is
connected, so bad input never leaves current flowing or a half-made file behind.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from daq.analysis import postrun
from daq.core import units as u
from daq.core.capabilities import Potentiostat, PressureSensor, ReportsToRun, honoured
from daq.core.clock import Clock
from daq.core.errors import ConfigError, DaqError, DataFileError, InstrumentError
from daq.core.records import ResumePoint, RunResult, Subscriber
from daq.engine import interlocks
from daq.engine.engine import Engine, RunControl, step_parameters
from daq.engine.stream import RecordStream
from daq.models import ccd, voids
from daq.models import cell as cellmod
from daq.models.cell import Cell, cell_from_text
from daq.storage import space
from daq.storage.layout import INTERRUPTED
from daq.storage.writer import RunWriter
from drivers import resilient
from drivers.retry import RetryPolicy
from drivers.transcript import TranscriptPotentiostat
from protocols import binding
from protocols.loader import protocol_from_text
from protocols.steps import Loop, Protocol, Step

CLOSE_AFTER_SIGNAL = 0.3  # s given to closing an instrument interrupted while connecting


def predictions(cell: Cell) -> dict[str, dict[str, Any]]:
    """Model predictions stored beside the results (user units, as the layout documents)."""
    pred = ccd.predict(cell.microstructure)
    limit = voids.void_free_limit(cell.stack_pressure, cell.simulation.interface_asr)
    return {
        "ccd": {
            "value": u.to_unit(pred.value, "mA/cm^2"),
            "unit": "mA/cm^2",
            "low": u.to_unit(pred.low, "mA/cm^2"),
            "high": u.to_unit(pred.high, "mA/cm^2"),
            "model": ccd.MODEL_NAME,
            "model_version": ccd.MODEL_VERSION,
            "warning": pred.warning,  # empty inside the calibrated range
            "inputs": {**dataclasses.asdict(cell.microstructure), **pred.inputs()},
            "input_units": {
                "pore_radius": "m",
                "pore_separation": "m",
                "crack_length": "m",
                "crack_width": "m",
                "creep_prefactor": "MPa^-m s^-1",
                "activation_energy": "J/mol",
                "fracture_toughness": "Pa m^0.5",
                "temperature": "K",
            },
        },
        "void_free_limit": {
            "value": u.to_unit(limit, "mA/cm^2"),
            "unit": "mA/cm^2",
            "model": voids.MODEL_NAME,
            "model_version": voids.MODEL_VERSION,
            "inputs": {"stack_pressure": cell.stack_pressure, "interface_asr": cell.simulation.interface_asr},
            "input_units": {"stack_pressure": "Pa", "interface_asr": "ohm m^2"},
        },
    }


def resolved(protocol: Protocol) -> dict[str, Any]:
    def tree(steps: tuple[Step, ...]) -> list[dict[str, Any]]:
        return [dict(step_parameters(s), **({"steps": tree(s.steps)} if isinstance(s, Loop) else {})) for s in steps]

    return {
        "name": protocol.name,
        "short_circuit": dataclasses.asdict(protocol.short_circuit),
        "steps": tree(protocol.steps),
    }


def run_protocol(
    protocol: Protocol,
    cell: Cell,
    potentiostat: Potentiostat,
    clock: Clock,
    out: str | Path,
    transducer: PressureSensor | None = None,
    control: RunControl | None = None,
    subscribers: Iterable[Subscriber] = (),
    block_samples: int = 256,
    block_interval: float | None = None,
    run_attrs: dict[str, Any] | None = None,
    overwrite: bool = False,
    flush_interval: float = 0.5,
    cell_source: str = "",
    cell_overrides: dict[str, Any] | None = None,
    transcript: bool = True,
    resilience: RetryPolicy | None = None,
) -> RunResult:
    """Run ``protocol`` on ``cell`` into a new run file ``out``. ``cell_source``/``cell_overrides``
    (the cell file's text and --set values) are stored so the run can be resumed exactly; ``transcript``
    keeps every instrument command and data block in /transcript, so the run can be replayed.

    The protocol is checked against the instrument's ranges once it has identified itself (connecting
    never applies current); a refused run leaves no file behind. ``resilience``: retry and reconnect the
    instruments on faults (drivers.resilient), recording every fault as an event."""
    if resilience is not None:
        potentiostat, transducer = resilient.wrap(potentiostat, transducer, clock, resilience)
    aux = ["pressure", "force"] if transducer is not None else []
    writer = _new_writer(
        protocol,
        cell,
        out,
        aux,
        _sizing(protocol, cell, potentiostat, out, aux, transcript, clock.virtual),
        run_attrs=run_attrs,
        overwrite=overwrite,
        flush_interval=flush_interval,
        cell_source=cell_source,
        cell_overrides=cell_overrides,
        transcript=transcript,
    )
    return execute(
        writer,
        protocol,
        cell,
        potentiostat,
        clock,
        transducer,
        dict(control=control, subscribers=subscribers, block_interval=block_interval, block_samples=block_samples),
    )


def _sizing(
    protocol: Protocol,
    cell: Cell,
    potentiostat: Potentiostat,
    out: str | Path,
    aux: list[str],
    transcript: bool,
    virtual: bool,
) -> dict[str, Any]:
    """The run file's sizing from the space check, which refuses a too-full disk."""
    try:
        return space.plan(protocol, out, aux, transcript, virtual=virtual)
    except ConfigError:
        # An absurd value (a current too small to control) also makes an absurd estimate: name the value.
        # Checked here against the instrument's nominal ranges only; connecting may widen them.
        binding.check(protocol, cell, honoured(potentiostat))
        raise


def _new_writer(
    protocol: Protocol,
    cell: Cell,
    out: str | Path,
    aux: list[str],
    sizing: dict[str, Any],
    *,
    run_attrs: dict[str, Any] | None,
    cell_overrides: dict[str, Any] | None,
    **options: Any,
) -> RunWriter:
    """A new run file holding everything needed to read, resume and replay the run."""
    return RunWriter(
        out,
        cell_attrs=cell.attrs(),
        cell_units=cellmod.ATTR_UNITS,
        protocol_source=protocol.source_text,
        protocol_path=protocol.source_path,
        protocol_resolved=resolved(protocol),
        predictions=predictions(cell),
        run_attrs={"protocol": protocol.name, "cell_id": cell.cell_id, **(run_attrs or {})},
        aux_columns=aux,
        protocol_overrides=dict(protocol.overrides),
        cell_overrides=cell_overrides,
        **options,
        **sizing,
    )


def rebuild(path: str | Path) -> tuple[Protocol, Cell, ResumePoint, str]:
    """Protocol, cell and resume point of a stored run, rebuilt from the texts the file keeps."""
    from daq.storage.reader import open_run  # pandas only when a stored run is read (quick ``daq run``)

    with open_run(path) as run:
        status = run.status
        if run.attrs.get("imported_from"):  # an instrument's own recording: no protocol of ours to continue
            raise DataFileError(
                f"{path}: imported from {run.attrs['imported_from']}, a recording of another program; "
                "only runs recorded by this rig can be resumed"
            )
        if status != INTERRUPTED:
            raise DataFileError(f"{path}: status is '{status}'; only interrupted runs can be resumed")
        if not run.cell_source:
            raise DataFileError(f"{path}: the file does not keep its cell file text; it cannot be resumed")
        protocol = protocol_from_text(run.protocol_source, str(path), run.protocol_overrides)
        cell = cell_from_text(run.cell_source, run.cell_overrides, f"{path}:/cell/source")
        return protocol, cell, run.resume_point(), run.attrs.get("rig", "")


def resume_protocol(
    path: str | Path,
    potentiostat: Potentiostat,
    clock: Clock,
    transducer: PressureSensor | None = None,
    **engine_options: Any,
) -> RunResult:
    """Continue an interrupted run in the same file, from where it stopped."""
    protocol, cell, point, _ = rebuild(path)
    binding.check(protocol, cell, honoured(potentiostat))
    writer = RunWriter.reopen(path)
    writer.add_event(point.t_last, "resumed_run", point.steps_done, "run file reopened to resume", {})
    return execute(writer, protocol, cell, potentiostat, clock, transducer, dict(engine_options, resume=point))


def execute(
    writer: RunWriter,
    protocol: Protocol,
    cell: Cell,
    potentiostat: Potentiostat,
    clock: Clock,
    transducer: PressureSensor | None,
    engine_options: dict[str, Any],
) -> RunResult:
    """Connect, check the protocol against the instrument, run the engine into ``writer``, close."""
    resume = engine_options.get("resume")
    if writer.transcript:  # log every command and block to /transcript, on the run clock
        origin = clock.now() - (resume.t_last if resume else 0.0)
        potentiostat = TranscriptPotentiostat(potentiostat, writer, lambda: clock.now() - origin)
    try:
        _connect(writer, protocol, cell, potentiostat, transducer)
    except BaseException as exc:
        _abandon_start(writer, potentiostat, exc, resumed=bool(resume))
        if isinstance(exc, DaqError) or not isinstance(exc, Exception):
            raise
        raise InstrumentError(f"could not start the run: {exc}") from exc
    control = engine_options.get("control")
    if control is not None:  # from here on a stop signal is the engine's to handle: it records the abort
        control.running = True
    engine = _engine(writer, protocol, cell, potentiostat, clock, transducer, engine_options)
    try:
        result = engine.run()
    finally:
        closing = _close_all(potentiostat, transducer)
    if closing:  # the engine already switched the cell off; the operator still hears about it
        result.message += f" ({closing})"
    try:
        postrun.analyse(result.path)
    except Exception as exc:  # noqa: BLE001 - analysis never costs the recorded run
        result.message += f" (post-run analysis failed: {type(exc).__name__}: {exc})"
    return result


def _connect(
    writer: RunWriter, protocol: Protocol, cell: Cell, potentiostat: Potentiostat, transducer: PressureSensor | None
) -> None:
    """Connect the instruments (never applying current), check the protocol again, record who they are."""
    info = potentiostat.connect()
    binding.check(protocol, cell, honoured(potentiostat))  # drivers may refine ranges on connect
    writer.add_instrument("potentiostat", dataclasses.asdict(info))
    if transducer is not None:
        writer.add_instrument(
            "transducer",
            {
                **dataclasses.asdict(transducer.connect()),
                "pressed_area": transducer.pressed_area,
                "pressed_area_unit": "m^2",
                **{f"calibration.{k}": v for k, v in dataclasses.asdict(transducer.calibration).items()},
            },
        )


def _abandon_start(writer: RunWriter, potentiostat: Potentiostat, exc: BaseException, resumed: bool) -> None:
    """A run that could not start: close the instrument, then drop the new file (refused before anything
    ran) or mark it failed; a resumed run that could not start stays resumable."""
    try:
        if isinstance(exc, Exception):
            potentiostat.close()
        else:  # a stop signal while connecting: the output was never switched on; do not wait long
            _close_within(potentiostat, CLOSE_AFTER_SIGNAL)
    finally:
        if isinstance(exc, ConfigError) and not resumed:
            writer.discard()  # refused before anything ran: no half-made file
        else:  # a resumed run that could not start stays resumable
            writer.close(
                "interrupted" if resumed else "failed",
                "fault",
                {"message": f"could not start the run: {exc}"},
            )


def _engine(
    writer: RunWriter,
    protocol: Protocol,
    cell: Cell,
    potentiostat: Potentiostat,
    clock: Clock,
    transducer: PressureSensor | None,
    engine_options: dict[str, Any],
) -> Engine:
    """The engine, writing to ``writer`` (required) and the optional subscribers through one stream; the
    parts that report to a run report to it."""
    subscribers = list(engine_options.pop("subscribers", ()))
    stream = RecordStream(required=[writer], optional=subscribers)
    engine = Engine(
        protocol,
        cell,
        potentiostat,
        clock,
        stream,
        str(writer.path),
        transducer,
        interlocks=interlocks.build(protocol.interlocks),
        **engine_options,
    )
    if isinstance(potentiostat, TranscriptPotentiostat):
        potentiostat.now = lambda: clock.now() - engine.t0  # the engine's run time from its start on
    for part in (potentiostat, transducer, *subscribers):  # fault-tolerant instruments and notifiers
        if isinstance(part, ReportsToRun):  # their reports (retries, reconnections, failed notices) become events
            part.bind_run(engine)
    return engine


def _close_within(part: Potentiostat, seconds: float) -> None:
    """Close in a worker and wait at most ``seconds``: a half-open link must not hold up a stop."""
    worker = threading.Thread(target=_close_all, args=(part, None), daemon=True)
    worker.start()
    worker.join(seconds)


def _close_all(potentiostat: Potentiostat, transducer: PressureSensor | None) -> str:
    """Close the instruments; a failure is reported in words, never raised over the run's result."""
    problems = []
    for name, part in (("potentiostat", potentiostat), ("transducer", transducer)):
        if part is None:
            continue
        try:
            part.close()
        except Exception as exc:  # noqa: BLE001 - closing goes on for every part; failures are reported together
            problems.append(f"closing the {name} failed: {exc}")
    return "; ".join(problems)
