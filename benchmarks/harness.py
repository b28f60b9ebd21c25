"""Shared machinery: the server subprocess, /proc sampling, worker processes, figures.

The server is started exactly as an operator would start it (`python -m honeyatlas serve
--port 0`), with its sensor registered first by `python -m honeyatlas sensor add`. CPU and
memory come from /proc/<pid>/stat and /proc/<pid>/status, so every thread of the server
(event loop, DuckDB writer, DuckDB's own pool) is counted.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_URL_LINE = re.compile(r"serving (?:as \w+ )?on (http://\S+/)")
_TOKEN_LINE = re.compile(r"ingest token[^:]*:\s*(\S+)")
# The load generators all connect from 127.0.0.1 (1,000 WebSocket clients, 512 senders): a
# cap on connections per address would measure the cap, not the server. The slowloris
# benchmark runs with the defaults (env={}).
LOAD_FROM_ONE_ADDRESS = {"HONEYATLAS_SERVER_MAX_CONNECTIONS_PER_ADDRESS": "0"}


@dataclass
class Figure:
    """One measured number, with its naive baseline and target when it has them."""

    benchmark: str
    name: str
    value: float
    unit: str
    baseline: float | None = None
    target: str | None = None  # e.g. ">= 50000"; compared with `value`
    higher_is_better: bool = True
    notes: str = ""

    @property
    def ratio(self) -> float | None:
        """How many times better than the baseline (>1 means honeyatlas wins)."""
        if self.baseline is None or not self.baseline or not self.value:
            return None
        return self.value / self.baseline if self.higher_is_better else self.baseline / self.value

    @property
    def passed(self) -> bool | None:
        if self.target is None:
            return None
        op, _, number = self.target.partition(" ")
        limit = float(number)
        return {">=": self.value >= limit, "<": self.value < limit, "<=": self.value <= limit}[op]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "passed": self.passed}


def quantile(values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile; NaN for no values (the report shows it, nothing hides it)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


# --------------------------------------------------------------------------- /proc


def cpu_seconds(pid: int) -> float:
    """User + system CPU of every thread of `pid` so far."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        after_name = f.read().rsplit(b")", 1)[1].split()
    return (int(after_name[11]) + int(after_name[12])) / CLOCK_TICKS


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak resident set since start), in KiB."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0])
    return out


class CpuWindow:
    """CPU cores used by a process between `start()` and `stop()`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._t0 = self._c0 = 0.0
        self.cores = math.nan

    def start(self) -> None:
        self._t0, self._c0 = time.monotonic(), cpu_seconds(self.pid)

    def stop(self) -> float:
        elapsed = time.monotonic() - self._t0
        self.cores = (cpu_seconds(self.pid) - self._c0) / elapsed if elapsed > 0 else math.nan
        return self.cores


class RssSampler:
    """Samples VmRSS every `interval` seconds in a thread; `peak_mib` is the largest seen."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.peak_kib = max(self.peak_kib, memory_kib(self.pid)["VmRSS"])
            except (FileNotFoundError, ProcessLookupError):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mib(self) -> float:
        return self.peak_kib / 1024


# --------------------------------------------------------------------------- server


def _honeyatlas(*args: str, timeout: float = 60) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "honeyatlas", *args], capture_output=True, text=True, timeout=timeout, cwd=REPO
    )
    if done.returncode != 0:
        raise RuntimeError(f"honeyatlas {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def add_sensor(data_dir: Path, name: str, honeypot: str = "cowrie", config_file: Path | None = None) -> str:
    """Register a sensor through the CLI and return its ingest token (in the registry of
    `config_file` when given: PostgreSQL for a cluster)."""
    where = ["--config", str(config_file)] if config_file is not None else []
    out = _honeyatlas("sensor", "add", name, "--honeypot", honeypot, "--location", "50.11,8.68",
                      "--data-dir", str(data_dir), *where)
    match = _TOKEN_LINE.search(out)
    if match is None:
        raise RuntimeError(f"no token in the output of `sensor add`: {out!r}")
    return match.group(1)


_READ_TOKEN_LINE = re.compile(r"token \(shown once[^:]*:\s*(\S+)")


def read_token(data_dir: Path, *, config_file: Path | None = None, name: str | None = None) -> str:
    """A new admin read token of the store in `data_dir` (or `config_file`'s), made through
    `honeyatlas token add` as an operator would: every query route, /metrics and the live
    stream need a reader."""
    where = ["--config", str(config_file)] if config_file is not None else ["--data-dir", str(data_dir)]
    out = _honeyatlas("token", "add", name or f"bench-{time.time_ns()}", "--role", "admin", *where)
    match = _READ_TOKEN_LINE.search(out)
    if match is None:
        raise RuntimeError(f"no token in the output of `token add`: {out!r}")
    return match.group(1)


@dataclass
class ServerProcess:
    """`python -m honeyatlas serve --port 0 --data-dir DIR` as a child process; `port` and
    `args` (e.g. `--role ingest --reuse-port`) for the cluster roles."""

    data_dir: Path
    config_file: Path | None = None
    entry: str = "honeyatlas"
    port: int = 0
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=lambda: dict(LOAD_FROM_ONE_ADDRESS))  # added to the environment
    process: subprocess.Popen[bytes] | None = None
    url: str = ""
    log_path: Path = field(init=False)
    _reader: str = ""

    def __post_init__(self) -> None:
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.server.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def host_port(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("http://").rstrip("/").rsplit(":", 1)
        return host, int(port)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "api/v1/live"

    @property
    def auth(self) -> dict[str, str]:
        """The Authorization header of a read token of this server's store (made once)."""
        if not self._reader:
            self._reader = read_token(self.data_dir, config_file=self.config_file)
        return {"Authorization": f"Bearer {self._reader}"}

    def start(self, timeout: float = 90) -> ServerProcess:
        return self.launch().wait_ready(timeout)

    def launch(self) -> ServerProcess:
        """Start the process without waiting for it (several start together: see wait_ready)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", self.entry, "serve", "--host", "127.0.0.1", "--port", str(self.port),
                   "--data-dir", str(self.data_dir), *self.args]
        if self.config_file is not None:
            command += ["--config", str(self.config_file)]
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                        env={**os.environ, **self.env})
        log.close()
        return self

    def wait_ready(self, timeout: float = 90) -> ServerProcess:
        """Wait for the "serving on URL" line; stop the process and raise if it does not come."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = _URL_LINE.search(self.log_path.read_text(errors="replace"))
            if match:
                self.url = match.group(1)
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not start; its log:\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 30) -> int | None:
        """SIGINT (the server's clean shutdown), SIGKILL after `timeout`; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- workers


class WorkerGroup:
    """Worker processes that get ready, start together at one monotonic instant, and report.

    CLOCK_MONOTONIC is system-wide on Linux, so an instant taken in one process is
    comparable with one taken in another: senders put their scheduled send time in the
    records, receivers subtract it from their receive time.
    """

    def __init__(self) -> None:
        self._ctx = multiprocessing.get_context("spawn")
        self._results = self._ctx.Queue()
        self._go = self._ctx.Event()
        self._start_at = self._ctx.Value("d", 0.0)
        self._processes: list[Any] = []

    def spawn(self, target: Callable[..., None], specs: Iterable[dict[str, Any]]) -> None:
        for spec in specs:
            process = self._ctx.Process(target=_worker_entry, args=(target, spec, self._results, self._go,
                                                                   self._start_at), daemon=True)
            process.start()
            self._processes.append(process)

    def wait_ready(self, count: int, timeout: float = 120) -> None:
        for _ in range(count):
            kind, payload = self._results.get(timeout=timeout)
            if kind == "error":
                raise RuntimeError(f"a worker failed while getting ready:\n{payload}")

    def go(self, delay: float = 0.3) -> float:
        """Release every worker; they start at the returned monotonic instant."""
        start_at = time.monotonic() + delay
        self._start_at.value = start_at
        self._go.set()
        return start_at

    def results(self, count: int, timeout: float) -> list[dict[str, Any]]:
        out = []
        for _ in range(count):
            kind, payload = self._results.get(timeout=timeout)
            if kind == "error":
                raise RuntimeError(f"a worker failed:\n{payload}")
            out.append(payload)
        for process in self._processes:
            process.join(10)
        return out

    def terminate(self) -> None:
        for process in self._processes:
            if process.is_alive():
                process.terminate()
                process.join(5)


def _worker_entry(target: Callable[..., Any], spec: dict[str, Any], results: Any, go: Any, start_at: Any) -> None:
    import traceback

    def ready() -> float:
        results.put(("ready", None))
        go.wait()
        return float(start_at.value)

    try:
        results.put(("result", target(spec, ready)))
    except BaseException:
        results.put(("error", traceback.format_exc()))


def process_cpu_seconds() -> float:
    """CPU of the calling process (all threads), for the client-side figures."""
    times = os.times()
    return times.user + times.system


# --------------------------------------------------------------------------- machine


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_kib = int(line.split()[1])
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "ram_gib": round(ram_kib / 1048576, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": list(os.getloadavg()),
    }


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=REPO).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except OSError:
        return "unknown"


# --------------------------------------------------------------------------- run context


@dataclass
class Context:
    """What every benchmark gets: sizes for this run, a scratch directory, earlier results."""

    smoke: bool
    workdir: Path
    query_rows: list[int]
    profile: Path | None = None  # write a py-spy profile of the ingest benchmark here
    server_entry: str = "honeyatlas"
    capacity_events_per_second: float | None = None  # set by the ingest benchmark
    extra: dict[str, Any] = field(default_factory=dict)  # per-benchmark details for the JSON

    def size(self, full: Any, smoke: Any) -> Any:
        return smoke if self.smoke else full

    def log(self, message: str) -> None:
        print(f"  [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    def server(self, name: str, sensor: str = "bench") -> tuple[ServerProcess, str]:
        """A fresh data directory with one registered sensor, and the server on it (started)."""
        data_dir = self.workdir / name
        token = add_sensor(data_dir, sensor)
        return ServerProcess(data_dir, entry=self.server_entry).start(), token
