"""Fuzzing the HTTP API with schemathesis: every operation of the served OpenAPI document,
with valid and invalid inputs, against a real server, with credentials.

`fuzz(url, credentials, cases=N)` drives it (tests/test_fuzz.py runs a few hundred cases
in the normal suite); `python -m benchmarks.run --only fuzz` (`fuzz_benchmark`), or
`python -m benchmarks.fuzz URL --cases 100000` against a server already running, is the
long run, whose count and result are in docs/reliability.md.

What a case must show: no 5xx (a server error, or a crash that closes the connection), and
every refusal (4xx) says why in its body (`detail`, Litestar's errors and the store's, or
`error`, the ingest route's). The ingest route declares no body in the document (it reads
NDJSON or a JSON array of raw records of any format), so its bodies are drawn here: bytes,
text, and JSON records made of the fields honeypots send.

Credentials: a `Credentials` maps path prefixes to headers, the longest matching prefix
winning; a sensor token for the ingest routes and a read token for the rest today. A new
audience or kind of credential is one more `add(prefix, headers)` where the credentials are
built (the `fuzz_credentials` fixture in tests/test_fuzz.py, `_credentials` here).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core import NotSet

FIELDS = ["eventid", "timestamp", "src_ip", "src_port", "dst_ip", "dst_port", "session", "username", "password",
          "input", "url", "shasum", "message", "type", "dest_port", "sensor", "protocol", "uuid", "ts"]
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=True),
    st.text(max_size=40),
    st.sampled_from(["cowrie.login.failed", "cowrie.session.connect", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z",
                     "203.0.113.5", "::1", "2001:db8::1", "999.1.1.1", "", "\x00", "1e309"]),
)
_RECORD = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), _SCALARS | st.lists(_SCALARS, max_size=3),
                          max_size=10)
BODIES = st.one_of(
    st.binary(max_size=512),
    st.text(max_size=512).map(str.encode),
    st.lists(_RECORD, max_size=5).map(lambda records: "\n".join(json.dumps(r) for r in records).encode()),
    st.lists(_RECORD, max_size=5).map(lambda records: json.dumps(records).encode()),
)


class Credentials:
    """Headers for each request, by the longest path prefix that matches its path."""

    def __init__(self) -> None:
        self._by_prefix: dict[str, dict[str, str]] = {}

    def add(self, prefix: str, headers: dict[str, str]) -> Credentials:
        self._by_prefix[prefix] = dict(headers)
        return self

    def headers_for(self, path: str) -> dict[str, str]:
        matching = [prefix for prefix in self._by_prefix if path.startswith(prefix)]
        return dict(self._by_prefix[max(matching, key=len)]) if matching else {}


@dataclass
class FuzzReport:
    cases: int = 0
    seconds: float = 0.0
    operations: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)  # the first few, each enough to reproduce
    failure_count: int = 0
    per_operation: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"cases": self.cases, "seconds": round(self.seconds, 1), "operations": self.operations,
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "failure_count": self.failure_count, "failures": self.failures,
                "cases_per_operation": dict(self.per_operation)}


def reason_of(response: requests.Response) -> str:
    """The reason a refusal gives in its body, or '' when it gives none."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    reason = body.get("detail") or body.get("error")
    return reason.strip() if isinstance(reason, str) else ""


def _problem(response: requests.Response | None, error: str | None) -> str | None:
    if error is not None:
        return error
    assert response is not None
    if response.status_code >= 500:
        return f"server error {response.status_code}: {response.text[:300]}"
    if response.status_code >= 400 and not reason_of(response):
        return f"refusal {response.status_code} without a reason: {response.text[:300]}"
    return None


def fuzz(url: str, credentials: Credentials, *, cases: int, rounds_seed: int = 0,
         max_seconds: float | None = None, timeout_seconds: float = 30.0,
         progress: Callable[[FuzzReport], None] | None = None) -> FuzzReport:
    """Run about `cases` cases (at least that many unless `max_seconds` ends it first) over
    every operation of the document at `url` + api/v1/openapi.json, positive and negative
    inputs alternating, in rounds of fresh seeds. `progress(report)` is called after each
    operation's batch of cases (a long run leaves an honest count even if it is stopped)."""
    base = url.rstrip("/")
    schema = schemathesis.openapi.from_url(base + "/api/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    report = FuzzReport(operations=len(operations))
    session = requests.Session()
    # The document cannot list the ingest formats (adapters are plugins); health names them,
    # so ingest cases mostly reach an adapter instead of a 404.
    formats = session.get(base + "/api/v1/health", timeout=timeout_seconds).json().get("formats") or ["cowrie"]
    began = time.monotonic()
    # Examples per operation and mode in one round; long runs go round after round with fresh seeds.
    per_round = max(1, min(200, cases // (2 * max(1, len(operations)))))
    round_number = 0

    def out_of_time() -> bool:
        return max_seconds is not None and time.monotonic() - began > max_seconds

    while report.cases < cases and not out_of_time():
        before = report.cases
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                if report.cases >= cases or out_of_time():
                    break
                _run_operation(operation, mode, per_round, rounds_seed * 1_000_003 + round_number, base,
                               credentials, session, report, timeout_seconds, out_of_time, formats)
                round_number += 1
                if progress is not None:
                    report.seconds = time.monotonic() - began
                    progress(report)
        if report.cases == before:  # nothing left to draw
            break
    report.seconds = time.monotonic() - began
    return report


def _run_operation(operation: Any, mode: GenerationMode, examples: int, run_seed: int, base: str,
                   credentials: Credentials, session: requests.Session, report: FuzzReport, timeout: float,
                   out_of_time: Any, formats: list[str]) -> None:
    label = f"{operation.method.upper()} {operation.path}"
    is_ingest = operation.path.startswith("/api/v1/ingest/")

    @seed(run_seed)
    @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode), body=BODIES if is_ingest else st.none(),
           fmt=st.sampled_from(formats) | st.text(max_size=12) if is_ingest else st.none())
    def one(case: Any, body: bytes | None, fmt: str | None) -> None:
        if out_of_time():
            return
        if fmt and "/" not in fmt and fmt not in (".", ".."):
            case.path_parameters = {**(case.path_parameters or {}), "fmt": fmt}
        headers = credentials.headers_for(case.formatted_path)
        extra: dict[str, Any] = {}
        if body is not None:
            extra["data"] = body
            headers.setdefault("Content-Type", "application/x-ndjson")
        response = error = None
        try:
            response = case.call(base_url=base, session=session, headers=headers, timeout=timeout, **extra)
        except requests.RequestException as exc:  # a crash, a reset or a hang: never an answer
            error = f"no answer ({type(exc).__name__}: {exc})"
        report.cases += 1
        report.per_operation[label] += 1
        if response is not None:
            report.statuses[response.status_code] += 1
        problem = _problem(response, error)
        if problem is not None:
            report.failure_count += 1
            if len(report.failures) < 20:
                report.failures.append(f"{label} [{mode.value}] {_reproduce(case, body)} -> {problem}")

    with contextlib.suppress(Unsatisfiable):  # no invalid input exists (an operation without parameters)
        one()


def _reproduce(case: Any, body: bytes | None) -> str:
    parts = [case.formatted_path]
    if case.query:
        parts.append(f"query={case.query!r}")
    if case.headers:
        parts.append(f"headers={case.headers!r}")
    if body is not None:
        parts.append(f"body={body[:200]!r}")
    elif not isinstance(case.body, NotSet):
        parts.append(f"body={case.body!r:.200}")
    return " ".join(parts)


def fuzz_benchmark(ctx: Any) -> list[Any]:
    """The long run as a benchmark (`python -m benchmarks.run --only fuzz`): a fresh server
    (`serve`, DuckDB), a sensor and a read token made by the CLI, 100,000 cases."""
    from benchmarks.harness import Figure, ServerProcess, add_sensor, read_token

    cases = ctx.size(100_000, 30)
    data_dir = ctx.workdir / "fuzz"
    sensor_token = add_sensor(data_dir, "fuzz-1")
    credentials = Credentials().add("/", {"Authorization": f"Bearer {read_token(data_dir)}"})
    credentials.add("/api/v1/ingest/", {"Authorization": f"Bearer {sensor_token}"})
    server = ServerProcess(data_dir).start()
    try:
        report = fuzz(server.url, credentials, cases=cases)
        alive = server.alive()
    finally:
        server.stop()
    ctx.extra["fuzz"] = report.as_dict()
    note = f"{report.operations} operations, statuses {dict(sorted(report.statuses.items()))}"
    return [
        Figure("fuzz", "cases run", report.cases, "cases", target=f">= {cases}", notes=note),
        Figure("fuzz", "cases failing (5xx, no answer, refusal without a reason)", report.failure_count, "cases",
               higher_is_better=False, target="<= 0", notes="; ".join(report.failures[:3])),
        Figure("fuzz", "server alive after the run", float(alive), "bool", target=">= 1"),
        Figure("fuzz", "cases per second", report.cases / report.seconds if report.seconds else 0.0, "cases/s",
               notes="schemathesis generation and the server on the same machine"),
    ]


def main(argv: list[str] | None = None) -> int:
    """Fuzz a running server: `python -m benchmarks.fuzz URL --read-token T --sensor-token S --cases N`."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--read-token")
    parser.add_argument("--sensor-token")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", type=Path, help="write the report here as JSON, after every batch of cases")
    args = parser.parse_args(argv)
    credentials = Credentials()
    if args.read_token:
        credentials.add("/", {"Authorization": f"Bearer {args.read_token}"})
    if args.sensor_token:
        credentials.add("/api/v1/ingest/", {"Authorization": f"Bearer {args.sensor_token}"})
    def save(report: FuzzReport) -> None:
        if args.report is not None:
            args.report.write_text(json.dumps({**report.as_dict(), "url": args.url, "seed": args.seed}, indent=1))

    report = fuzz(args.url, credentials, cases=args.cases, rounds_seed=args.seed, progress=save)
    save(report)
    print(json.dumps(report.as_dict(), indent=1))
    return 1 if report.failure_count else 0


if __name__ == "__main__":
    raise SystemExit(main())
