"""daq serve: a Tiled server on loopback; a Tiled client reads a run's timeseries equal to the file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from daq.storage.reader import open_run
from tests.daq.engine.broker import free_port, wait_port

tiled_client = pytest.importorskip("tiled.client", reason="Tiled is not installed (pip install 'sse-rig[lab]')")
ROOT = Path(__file__).resolve().parents[3]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def test_a_tiled_client_reads_a_run_equal_to_the_file_and_needs_the_key(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "daq.cli", "run", "--sim", "--out", str(tmp_path / "r1.h5")], env=ENV, check=True
    )
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "daq.cli", "serve", str(tmp_path), "--port", str(port), "--api-key", "labkey12345"],
        env=ENV,
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_port(port, 60)
        from tiled.queries import Key

        client = tiled_client.from_uri(f"http://127.0.0.1:{port}", api_key="labkey12345")
        found = client.search(Key("cell") == "LPSCl-99-01").search(Key("outcome") == "completed")
        assert list(found) == ["r1"]
        assert list(client.search(Key("outcome") == "short_circuit")) == []
        served = found["r1"]["timeseries"]
        with open_run(tmp_path / "r1.h5") as run:
            ts = run.timeseries()
            for column in ("t", "E_we", "I", "Q"):
                assert np.array_equal(served[column].read(), ts[column].to_numpy())
        assert served["E_we"].metadata["unit"] == "V"
        with pytest.raises(Exception, match="401|nauthori|credentials|key"):
            tiled_client.from_uri(f"http://127.0.0.1:{port}", api_key="wrongkey999")
    finally:
        server.terminate()
        server.wait(10)
