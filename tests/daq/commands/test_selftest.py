"""daq selftest on the emulated lab: every channel passes; an injected instrument fault fails, named."""

from __future__ import annotations

from pathlib import Path

import h5py
import pytest

from daq.cli import main

pytestmark = pytest.mark.timeout(240)

RIG = "protocols/examples/rigs/emulated_lab.toml"
CELLS = Path("protocols/examples/cells").resolve()


@pytest.mark.parametrize("channel", ["smu", "ifc", "sp300", "vmp3e", "dummy"])
def test_every_emulated_channel_passes(channel, tmp_path, capsys):
    out = tmp_path / f"{channel}.h5"
    assert main(["selftest", f"{RIG}#{channel}", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "PASSED: every check" in text and "FAIL" not in text
    with h5py.File(out) as f:
        assert f.attrs["outcome"] == "passed"
        verdicts = [row["message"].decode() for row in f["events"][:]]
        assert any(v.startswith("current 1 mA: pass") for v in verdicts)
        assert len(f["timeseries/t"]) > 10


def test_injected_current_gain_fault_fails_naming_the_checks(tmp_path, capsys):
    text = open(RIG).read().replace('model = "SP-300"', 'model = "SP-300"\nfault = "current_gain=1.05"')
    rig = tmp_path / "faulty.toml"
    rig.write_text(text.replace("../cells/", str(CELLS) + "/"))
    out = tmp_path / "faulty.h5"
    assert main(["selftest", f"{rig}#sp300", "--out", str(out)]) == 1
    text = capsys.readouterr().out
    failed = text.split("FAILED: ", 1)[1].splitlines()[0].split(", ")
    assert "current 1 mA" in failed and "impedance spectrum" in failed
    assert "voltage limit" not in failed
    with h5py.File(out) as f:
        assert f.attrs["outcome"] == "failed"


def test_channel_without_dummy_is_refused_in_one_line(tmp_path, capsys):
    text = open(RIG).read().replace('dummy_cell = "randles"\ntransducer', "transducer", 1)
    rig = tmp_path / "nodummy.toml"
    rig.write_text(text.replace("../cells/", str(CELLS) + "/"))
    assert main(["selftest", f"{rig}#smu", "--out", str(tmp_path / "x.h5")]) == 2
    assert "channels.smu.dummy_cell" in capsys.readouterr().err
