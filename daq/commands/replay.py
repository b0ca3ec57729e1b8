"""``daq replay FILE [--protocol OTHER.toml] [--set name=value ...] [--out NEW.h5]``.

Runs a protocol's logic (the run's own stored protocol by default) against a recorded run file, ours
or imported, in accelerated time (simulators/replay.py) and writes a new run file that says it is a
replay and of which bytes. What is answered and what happens when the protocol leaves the recording:
docs/replay.md. Several FILEs (a study of one setting over many recordings) are replayed side by side in
worker processes (``--jobs N``, one per core by default) or on a Dask cluster (``--dask ADDRESS``) into
the folder ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daq.commands.inputs import parse_settings
from daq.core.capabilities import honoured
from daq.core.clock import VirtualClock
from daq.core.errors import ConfigError, DaqError, DataFileError
from daq.core.records import Record, RunResult, StepStart
from daq.models import cell as cellmod
from daq.models.ccd import Microstructure
from daq.models.cell import Cell, Electrodes, Electrolyte, cell_from_text
from protocols import binding
from protocols.loader import load_protocol, protocol_from_text
from protocols.steps import Protocol

if TYPE_CHECKING:  # imported where used: the parser (daq replay --help) needs no HDF5 or engine
    from daq.engine.replay import ReplayPotentiostat
    from daq.engine.replay_source import ReplaySource
    from daq.storage.writer import RunWriter

_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay",
        help="run a protocol's logic against a recorded run file",
        description="Replay a recorded run (ours or imported) through a protocol in accelerated "
        "time and write the outcome as a new run file.",
    )
    p.add_argument("file", nargs="+", metavar="FILE", help="recorded run file(s) (HDF5)")
    p.add_argument("--protocol", help="protocol file to replay (default: the run's own protocol)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a protocol field, e.g. short_circuit.collapse_fraction=0.8",
    )
    p.add_argument(
        "--out",
        help="run file to write (default: ./<file name>-replay.h5); with several FILEs, the folder for "
        "their <file name>-replay.h5 (default: .)",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.add_argument("--jobs", type=int, metavar="N", help="with several FILEs: replay N at once (default: one per core)")
    p.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="with several FILEs: replay on the Dask scheduler at ADDRESS (--out: a folder all its workers reach)",
    )
    p.set_defaults(func=cmd_replay)


def settings(items: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``--set`` items as for ``daq run``, plain decimal numbers as numbers (collapse_fraction=0.8)."""
    proto, cell = parse_settings(items)
    for d in (proto, cell):
        for key, value in d.items():
            if isinstance(value, str) and _NUMBER.fullmatch(value):
                d[key] = float(value)
    return proto, cell


def imported_cell(source: ReplaySource) -> Cell:
    """The little an imported recording says about its cell: the working-electrode area. E_we is taken
    vs the reference, as the vendors' software records it."""
    if not math.isfinite(source.area) or source.area <= 0:
        raise ConfigError(
            "electrodes.working_area",
            source.area,
            f"{source.path} states no working-electrode area; import it again with --area",
        )
    nan = math.nan
    return Cell(
        cell_id=str(source.cell_attrs.get("cell_id", source.path.stem)),
        configuration="three_electrode",
        electrolyte=Electrolyte("unknown", nan, nan, nan, nan, nan),
        electrodes=Electrodes(source.area, nan, None),
        microstructure=Microstructure(nan, nan, nan, nan),
        microstructure_source="",
        stack_pressure=nan,
        pressed_area=nan,
        temperature=nan,
        notes=str(source.cell_attrs.get("notes", "")),
    )


def load_replay_inputs(
    source: ReplaySource, protocol_path: str | None, overrides: dict[str, Any], cell_overrides: dict[str, Any]
) -> tuple[Protocol, Cell, dict[str, Any]]:
    """The protocol to replay and the recorded cell."""
    if protocol_path is not None:
        protocol = load_protocol(protocol_path, overrides)
    elif source.protocol_source:
        protocol = protocol_from_text(
            source.protocol_source, f"{source.path}:/protocol/source", {**source.protocol_overrides, **overrides}
        )
    else:
        raise ConfigError(
            "--protocol",
            None,
            f"{source.path} was imported from vendor software and keeps no "
            "protocol of ours; give --protocol FILE matching its technique",
        )
    if source.cell_source:
        merged = {**source.cell_overrides, **cell_overrides}
        cell = cell_from_text(source.cell_source, merged, f"{source.path}:/cell/source")
        stored = {
            "cell_attrs": cell.attrs(),
            "cell_units": cellmod.ATTR_UNITS,
            "cell_source": source.cell_source,
            "cell_overrides": merged,
        }
    else:
        if cell_overrides:
            raise ConfigError(
                f"--set cell.{next(iter(cell_overrides))}", None, "the recording keeps no cell file to change"
            )
        cell = imported_cell(source)
        stored = {
            "cell_attrs": {k: v for k, v in source.cell_attrs.items() if k != "overrides"},
            "cell_units": source.cell_units,
            "cell_source": "",
            "cell_overrides": {},
        }
    return protocol, cell, stored


def replay(
    source_path: str | Path,
    out: str | Path,
    protocol_path: str | None = None,
    overrides: dict[str, Any] | None = None,
    cell_overrides: dict[str, Any] | None = None,
    overwrite: bool = False,
    block_samples: int = 256,
) -> tuple[RunResult, ReplayPotentiostat]:
    """Replay ``source_path`` through a protocol into a new run file ``out``; returns the engine's result
    and the replay instrument (its ``divergence`` and ``events``)."""
    import h5py

    from daq.engine.replay import ReplayPotentiostat, ReplayTransducer
    from daq.engine.replay_source import ReplaySource
    from daq.engine.runner import execute, resolved
    from daq.storage.writer import RunWriter

    source = ReplaySource(source_path)
    if Path(out).resolve() == source.path.resolve():
        raise ConfigError("--out", str(out), "is the recording being replayed; choose another file")
    protocol, cell, stored = load_replay_inputs(source, protocol_path, overrides or {}, cell_overrides or {})
    clock = VirtualClock()
    events = _ReplayEvents()
    pstat = ReplayPotentiostat(source, clock, on_event=events.record)
    binding.check(protocol, cell, honoured(pstat))
    events.writer = RunWriter(
        out,
        cell_attrs=stored["cell_attrs"],
        cell_units=stored["cell_units"],
        protocol_source=protocol.source_text,
        protocol_path=protocol.source_path,
        protocol_resolved=resolved(protocol),
        predictions=source.predictions,
        run_attrs=_replay_attrs(protocol, cell, source),
        aux_columns=list(source.aux),
        overwrite=overwrite,
        cell_source=stored["cell_source"],
        protocol_overrides=dict(protocol.overrides),
        cell_overrides=stored["cell_overrides"],
        transcript=True,
    )
    transducer = ReplayTransducer(pstat) if "pressure" in source.aux else None  # the engine runs as it did
    result = execute(
        events.writer,
        protocol,
        cell,
        pstat,
        clock,
        transducer,
        dict(subscribers=[events.track], block_samples=block_samples),
    )
    d = pstat.divergence
    with h5py.File(result.path, "a") as f:
        f.attrs["replay_divergence"] = json.dumps(
            {"t": d.t, "source_row": d.sample, "message": d.message} if d is not None else {}
        )
        f.attrs["replay_ended"] = pstat.ended
    return result, pstat


class _ReplayEvents:
    """Stores what the replay instrument reports (divergence, end of the recording) as events of the new
    run, on the step the engine is in."""

    def __init__(self) -> None:
        self.step = -1
        self.writer: RunWriter | None = None

    def track(self, record: Record) -> None:
        if isinstance(record, StepStart):
            self.step = record.index

    def record(self, t: float, kind: str, message: str, data: dict[str, Any]) -> None:
        if self.writer is not None and not self.writer.closed:
            self.writer.add_event(t, kind, self.step, message, data)


def _replay_attrs(protocol: Protocol, cell: Cell, source: ReplaySource) -> dict[str, Any]:
    """Run attributes saying the new file is a replay, and of which recording (path, start, checksum)."""
    return {
        "protocol": protocol.name,
        "cell_id": cell.cell_id,
        "rig": "replay",
        "clock": "virtual",
        "run_kind": "replay",
        "replay_of": str(source.path.resolve()),
        "replay_source_start_time": source.start_time,
        "replay_source_sha256": source.checksum,
        "replay_source_outcome": str(source.attrs.get("outcome", "")),
        "replay_source_protocol": str(source.attrs.get("protocol", "")),
        "replay_source_answered_from": "transcript" if source.has_transcript else "steps",
    }


@dataclass(frozen=True)
class ReplayJob:
    """One replay of a study: picklable, so a worker process can run it."""

    source: str
    out: str
    protocol: str | None
    overrides: dict[str, Any]
    cell_overrides: dict[str, Any]
    overwrite: bool


def replay_report(job: ReplayJob) -> tuple[list[str], int]:
    """Replay one file; the lines to print and the exit code (0, or 1 if the replay did not answer)."""
    result, pstat = replay(job.source, job.out, job.protocol, job.overrides, job.cell_overrides, job.overwrite)
    source = pstat.source
    stop = f", short at {result.short['t']:.6g} s (sample {result.short['sample']})" if result.short else ""
    lines = [
        f"replayed {source.path.name} (recorded {source.start_time or 'at an unknown time'}, outcome "
        f"{source.attrs.get('outcome', '?')}, sha256 {source.checksum[:12]}): {result.outcome}{stop}; "
        f"{result.samples} samples over {result.duration:.6g} s -> {result.path}"
    ]
    if pstat.divergence is not None:
        lines.append(f"  diverged at {pstat.divergence.t:.6g} s: {pstat.divergence.message}")
    elif pstat.ended:
        lines.append(f"  {pstat.ended}")
    # A replay that ran out of recording has still answered the question; other failures have not.
    return lines, 0 if result.status != "failed" or pstat.ended else 1


def study_report(job: ReplayJob) -> tuple[list[str], int]:
    """``replay_report`` for one file of several: a file that cannot be replayed is one line (code 2)
    and the other files are still replayed."""
    try:
        return replay_report(job)
    except DaqError as exc:
        return [f"{job.source}: not replayed: {exc}"], 2


def cmd_replay(args: argparse.Namespace) -> int:
    overrides, cell_overrides = settings(args.set)
    if len(args.file) == 1:
        out = Path(args.out) if args.out else Path.cwd() / f"{Path(args.file[0]).stem}-replay.h5"
        lines, code = replay_report(
            ReplayJob(args.file[0], str(out), args.protocol, overrides, cell_overrides, args.force)
        )
        print("\n".join(lines))
        return code
    from daq.engine.parallel import check_jobs, default_jobs, run_parallel

    jobs = check_jobs(args.jobs) if args.jobs is not None else default_jobs()
    folder = Path(args.out) if args.out else Path.cwd()
    if folder.exists() and not folder.is_dir():
        raise ConfigError("--out", args.out, "with several FILEs, give a folder for their replays")
    for f in args.file:
        if not Path(f).is_file():
            raise DataFileError(f"{f!r}: no such run file")
    outs = [folder / f"{Path(f).stem}-replay.h5" for f in args.file]
    if len(set(outs)) < len(outs):
        raise ConfigError("FILE", None, "two recordings have the same file name; their replays would collide")
    folder.mkdir(parents=True, exist_ok=True)
    study = [
        ReplayJob(f, str(o), args.protocol, overrides, cell_overrides, args.force) for f, o in zip(args.file, outs)
    ]
    reports = run_parallel(
        study_report,
        study,
        jobs=jobs,
        dask=args.dask,
        on_done=lambda _, report: print("\n".join(report[0]), flush=True),
    )
    failed = sum(code == 2 for _, code in reports)
    if failed:
        raise DaqError(f"{failed} of {len(reports)} recordings could not be replayed (the reasons are above)")
    return max(code for _, code in reports)
