"""The run publisher against a real Mosquitto broker: message content, retained status, bounded queue."""

from __future__ import annotations

import time

import numpy as np
import pytest

from daq.core.errors import ConfigError
from daq.core.records import Event, Outcome, RunEnd, RunStart, RunStatus, Samples, StepStart
from daq.engine.labwatch import LabWatch, row
from daq.engine.publish import Publisher, parse_url, settings_from_table, with_environment
from tests.daq.engine.broker import broker, free_port  # noqa: F401 - the fixture

CONTEXT = {"cell": "LPSCl-99-01", "protocol": "CCD", "working_area": 1e-4, "rig": "pc1", "channel": "A"}


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_addresses_name_lab_rig_channel_and_refuse_credentials():
    s = parse_url("mqtt://broker.lab:1884/glovebox/pc2/B")
    assert (s.host, s.port, s.lab, s.rig, s.channel, s.tls) == ("broker.lab", 1884, "glovebox", "pc2", "B", False)
    assert parse_url("mqtts://h").port == 8883 and parse_url("mqtts://h").tls
    with pytest.raises(ConfigError, match="no credentials in the address"):
        parse_url("mqtt://user:pw@h")
    with pytest.raises(ConfigError, match="mqtt://HOST"):
        parse_url("http://h")
    with pytest.raises(ConfigError, match="without / \\+ #"):
        parse_url("mqtt://h/lab/+/A")


def test_credentials_come_from_the_environment_and_never_show():
    s = with_environment(parse_url("mqtt://h"), {"DAQ_MQTT_USERNAME": "rig1", "DAQ_MQTT_PASSWORD": "s3cret"})
    assert (s.username, s.password) == ("rig1", "s3cret")
    assert "s3cret" not in repr(s)
    with pytest.raises(ConfigError, match="password"):
        settings_from_table({"publish": {"url": "mqtt://h", "password": "x"}}, "rig.toml")


def test_status_events_and_decimated_data_reach_a_subscriber(broker):  # noqa: F811
    settings = parse_url(broker.url)
    watch = LabWatch(settings)
    wait_for(watch.connected.is_set)
    pub = Publisher(settings, CONTEXT)
    pub(RunStart(0.0))
    pub(StepStart(0, "galvanostatic", "plate", 0, 0.0, {"capacity": 288.0, "duration": None}))
    t = np.arange(0.0, 1000.0)
    q = -1e-3 * t  # C: 1 mA for 1000 s; capacity 288 C/m^2 on 1 cm^2 = 0.0288 C
    pub(Samples({"t": t, "E_we": -0.1 + 0 * t, "I": -1e-3 + 0 * t, "Q": q, "step": 0 * t}))
    pub(Event(999.0, "short_circuit", 0, "short circuit: voltage collapsed"))
    pub(RunEnd(RunStatus.COMPLETED, Outcome.SHORT_CIRCUIT, {}))
    pub.close()
    assert pub.dropped == 0 and pub.sent >= 5
    # status, data and events travel on separate topics: wait until each has arrived
    wait_for(
        lambda: (
            watch.snapshot()
            and watch.snapshot()[0].status.get("state") == "short_circuit"
            and len(watch.snapshot()[0].data.get("t", ())) == 50
            and watch.snapshot()[0].events
        )
    )
    view = watch.snapshot()[0]
    r = row(view)
    assert (r["channel"], r["cell"], r["state"], r["alarm"]) == (
        "pc1/A",
        "LPSCl-99-01",
        "short_circuit",
        "short_circuit",
    )
    assert len(view.data["t"]) == 50 and view.data["t"][-1] == 999.0 and view.units["E_we"] == "V"
    assert view.progress["progress"] == 1.0  # 1 C >> 0.0288 C: the capacity is reached
    assert view.events[-1]["kind"] == "short_circuit"
    watch.close()
    late = LabWatch(settings)  # a view opened later still sees the last status: it is retained
    wait_for(lambda: late.snapshot() and late.snapshot()[0].status.get("state") == "short_circuit")
    late.close()


def test_an_unreachable_broker_costs_counted_messages_never_time():
    settings = parse_url(f"mqtt://127.0.0.1:{free_port()}")
    from dataclasses import replace

    pub = Publisher(replace(settings, queue_size=5, linger=0.1), CONTEXT)
    start = time.perf_counter()
    for i in range(100):
        pub(Event(float(i), "paused", 0, "x"))
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0  # 200 messages queued or dropped without waiting for the network
    assert pub.dropped == 200 - 5 and pub.sent == 0
    pub.close()
    assert pub.dropped == 200
