"""Instrument transcripts: every command and block of a run is recorded in /transcript."""

import json

import h5py
import numpy as np
import pytest

from daq.core.capabilities import Capabilities, EisRequest, InstrumentInfo, Potentiostat
from daq.core.clock import VirtualClock
from daq.core.errors import InstrumentError
from daq.core.samples import SampleBlock
from daq.storage.writer import RunWriter
from drivers.transcript import MemoryTranscript, TranscriptPotentiostat
from tests.conftest import EXAMPLES, run_sim

PROTOCOL = EXAMPLES / "ccd_single_plating.toml"
SHORT = {"current_density": "10 mA/cm^2"}


def _tables(path):
    with h5py.File(path, "r") as f:

        def table(name):
            data = f[name][()]
            return [
                {k: (v.decode() if isinstance(v, bytes) else v.item()) for k, v in zip(data.dtype.names, row)}
                for row in data
            ]

        return table("transcript/commands"), table("transcript/reads"), len(f["timeseries/t"]), len(f["eis/points"])


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    return run_sim(PROTOCOL, tmp_path_factory.mktemp("tx") / "short.h5", 99, SHORT)


def test_commands_are_recorded_with_arguments_and_run_time(short_run):
    commands, _, _, _ = _tables(short_run.path)
    methods = [c["method"] for c in commands]
    assert methods[0] == "connect"
    assert methods.count("apply_current") == 1 and "rewind" in methods and "impedance" in methods
    apply = next(c for c in commands if c["method"] == "apply_current")
    args = json.loads(apply["arguments"])
    area = np.pi * 0.5e-3**2
    assert args["current"] == pytest.approx(-100.0 * area)  # 10 mA/cm^2 plating
    assert (args["v_min"], args["v_max"], args["sample_period"]) == (-2.0, 2.0, 1.0)
    assert apply["t"] == 600.0  # after the 10 min rest, on the run clock
    assert all(c["outcome"] == "ok" and c["error"] == "" for c in commands)
    # the current goes off right after the short: the first command after the rewind
    after = methods[methods.index("rewind") + 1 :]
    assert after[0] == "open_circuit"
    assert commands[methods.index("rewind") + 1]["t"] == pytest.approx(short_run.short["t"] + 1.0)


def test_reads_cover_every_stored_sample_once_in_order(short_run):
    _, reads, n_samples, n_points = _tables(short_run.path)
    samples = [r for r in reads if r["kind"] == "samples"]
    firsts = np.array([r["first"] for r in samples])
    ns = np.array([r["n"] for r in samples])
    assert firsts[0] == 0 and np.all(firsts[1:] == firsts[:-1] + ns[:-1]) and ns.sum() == n_samples
    imp = [r for r in reads if r["kind"] == "impedance"]
    assert [(r["first"], r["n"]) for r in imp] == [(0, n_points)]
    with h5py.File(short_run.path, "r") as f:
        t = f["timeseries/t"][()]
    for r in samples:  # a block holds samples up to the time it was read
        if r["n"]:
            assert t[r["first"] + r["n"] - 1] <= r["t"] + 1e-9


def test_the_block_cut_at_the_short_counts_the_kept_samples(short_run):
    commands, reads, _, _ = _tables(short_run.path)
    rewind = next(c for c in commands if c["method"] == "rewind")
    cut = max((r for r in reads if r["seq"] < rewind["seq"]), key=lambda r: r["seq"])
    assert cut["n"] == json.loads(rewind["arguments"])["kept"] < 256
    assert cut["first"] + cut["n"] - 1 == short_run.short["sample"] + 1  # one 1 s poll after the trip


def test_seq_orders_both_tables_together(short_run):
    commands, reads, _, _ = _tables(short_run.path)
    seq = sorted([c["seq"] for c in commands] + [r["seq"] for r in reads])
    assert seq == list(range(len(seq)))


def test_transcript_can_be_left_out(tmp_path):
    res = run_sim(
        PROTOCOL,
        tmp_path / "r.h5",
        99,
        {"steps.1.duration": "10 s", "steps.2.capacity": "0.01 mAh/cm^2"},
        transcript=False,
    )
    with h5py.File(res.path, "r") as f:
        assert "transcript" not in f


class _Flaky(Potentiostat):
    """Refuses currents above 1 mA; yields two impedance points."""

    capabilities = Capabilities(1.0, 1e-9, 10.0, 1e-3, eis_galvanostatic=True, eis_max_frequency=1e6)

    def connect(self):
        return InstrumentInfo("test", "flaky", "0", "0", "tests", "none")

    def apply_current(self, current, v_min, v_max, sample_period, duration=None):
        if abs(current) > 1e-3:
            raise InstrumentError("current out of range")

    def apply_potential(self, potential, i_min, i_max, sample_period, duration=None):
        pass

    def open_circuit(self, sample_period=None):
        pass

    def read(self):
        return SampleBlock(np.arange(3.0), np.zeros(3), np.zeros(3), np.zeros(3))

    def impedance(self, request):
        from daq.core.samples import EisPoint

        for f in request.frequencies:
            yield EisPoint(f, 1.0, -1.0, 0.0, 0.0, 0.0)

    def close(self):
        pass

    def vendor_extra(self):
        return "forwarded"


def test_errors_stopped_sweeps_and_extras():
    sink, clock = MemoryTranscript(), VirtualClock()
    p = TranscriptPotentiostat(_Flaky(), sink, clock.now)
    p.connect()
    with pytest.raises(InstrumentError):
        p.apply_current(2e-3, -1.0, 1.0, 1.0)
    failed = sink.commands[-1]
    assert (failed["method"], failed["outcome"]) == ("apply_current", "error") and "out of range" in failed["error"]
    p.read()
    p.read()
    assert [r["first"] for r in sink.reads] == [0]  # the second read is held back until the next call
    for _point in p.impedance(EisRequest("galvanostatic", [1e3, 1e2, 1e1], 1e-6)):
        break  # the caller stops the sweep after one point
    assert sink.commands[-1]["outcome"] == "stopped"
    assert (sink.reads[-1]["kind"], sink.reads[-1]["n"]) == ("impedance", 1)
    assert [r["first"] for r in sink.reads if r["kind"] == "samples"] == [0, 3]
    assert p.vendor_extra() == "forwarded" and p.capabilities.eis_galvanostatic


def test_resumed_writer_continues_the_transcript(tmp_path):
    path = tmp_path / "r.h5"
    kw = dict(cell_attrs={}, cell_units={}, protocol_source="", protocol_path="", protocol_resolved={}, predictions={})
    w = RunWriter(path, transcript=True, **kw)
    w.add_command(0.0, "connect", {})
    w.add_read(1.0, "samples", 0, 0)
    w.close("interrupted")
    w = RunWriter.reopen(path)
    assert w.transcript
    w.add_command(2.0, "open_circuit", {"sample_period": None})
    w.close()
    commands, reads, _, _ = _tables(path)
    assert [c["seq"] for c in commands] == [0, 2] and [r["seq"] for r in reads] == [1]
