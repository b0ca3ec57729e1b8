"""A real Mosquitto broker on a free loopback port, for the lab tests (skipped when not installed)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


class Broker:
    """``mosquitto -p PORT`` (loopback only, no persistence); stop() and start() again on the same port."""

    def __init__(self) -> None:
        exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if shutil.which("/usr/sbin/mosquitto") else None)
        if exe is None:
            pytest.skip("Mosquitto is not installed (apt-get install mosquitto): the lab tests need a real broker")
        self.exe, self.port, self.process = exe, free_port(), None
        self.url = f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen([self.exe, "-p", str(self.port)], stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def broker():
    b = Broker()
    b.start()
    yield b
    b.stop()
