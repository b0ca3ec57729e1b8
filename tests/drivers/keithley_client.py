"""A run process in miniature, for kill tests: the real driver sourcing through pyvisa-py and polling.

``python -m tests.drivers.keithley_client RESOURCE DEADMAN PERIOD [TIMEOUT]`` connects, starts a
galvanostatic step, prints ``sourcing`` and then reads every 0.2 s until it is killed.
"""

from __future__ import annotations

import signal
import sys
import time

from daq.core.clock import RealClock
from drivers.keithley2450 import Keithley2450


def main(argv: list[str]) -> None:
    # Ctrl-C as a person's terminal delivers it, whatever the parent ignored (a shell's background job
    # starts with SIGINT ignored, and ignored signals stay ignored across exec).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    resource, deadman, period = argv[0], float(argv[1]), float(argv[2])
    timeout = float(argv[3]) if len(argv) > 3 else 2.0
    k = Keithley2450(resource, RealClock(), timeout=timeout, deadman_s=deadman)
    print("connecting", flush=True)
    k.connect()
    print("connected", flush=True)
    k.apply_current(-50e-6, -2.0, 2.0, period)
    print("sourcing", flush=True)
    while True:
        k.read()
        time.sleep(0.2)


if __name__ == "__main__":
    main(sys.argv[1:])
