"""Run the benchmark suite: `python -m benchmarks.run [--smoke] [--only NAME ...] [--out FILE]`.

Prints one table (figure, baseline, ratio, target, pass) and writes every figure, the
machine, the date and the commit as JSON. `--smoke` runs every benchmark at tiny sizes in
well under a minute and checks only that each produced finite numbers (CI uses it so the
suite cannot rot); its figures say nothing about performance.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import correlation, crash, fuzz, live_server, offline, read_flood, roles, slowloris, stages, views
from benchmarks.harness import REPO, Context, Figure, git_commit, machine
from benchmarks.records import save_json

BENCHMARKS: dict[str, Callable[[Context], list[Figure]]] = {
    # ingest runs before overload: overload reports its offered load against ingest's capacity.
    "decode": offline.decode,
    "insert": offline.insert,
    "adapters": offline.adapters,
    "stages": stages.stages,
    "ingest": live_server.ingest,
    "latency": live_server.latency,
    "fanout": live_server.fanout,
    "overload": live_server.overload,
    "queries": offline.queries,
    "views": views.views,  # filtered views (issue 13): 10M events over 30 days, 24 h and 30-day windows
    "correlation": correlation.correlation,
    "roles": roles.roles,  # needs PostgreSQL's binaries and nats-server (as `make test` does)
    "read_flood": read_flood.read_flood,  # ingest under expensive reads, with and without read slots
    "fuzz": fuzz.fuzz_benchmark,  # schemathesis, 100,000 cases (about an hour; smoke: 30)
    "slowloris": slowloris.slowloris,  # 1,000+ trickling connections from 127.0.1.x (Linux loopback)
    "crash": crash.crash,  # SIGKILLs the server under 8 clients; the PostgreSQL run needs its binaries
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds; no performance meaning")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), metavar="NAME",
                        help=f"run only these ({', '.join(BENCHMARKS)})")
    parser.add_argument("--out", type=Path, help="JSON results (default benchmarks/results/<UTC date>.json)")
    parser.add_argument("--query-rows", type=int, nargs="+",
                        help="store sizes for the query benchmark (default 10000000; smoke 100000); "
                             "add 100000000 for the 100M figure (minutes to fill, ~15 GiB of disk)")
    parser.add_argument("--profile", type=Path, metavar="FILE",
                        help="record the server under the ingest benchmark with py-spy (raw collapsed stacks)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch data directories")
    return parser.parse_args(argv)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def table(figures: list[Figure]) -> str:
    rows = [("benchmark", "figure", "value", "unit", "baseline", "ratio", "target", "pass")]
    for f in figures:
        ratio = f.ratio
        rows.append((f.benchmark, f.name, _fmt(f.value), f.unit, _fmt(f.baseline),
                     "-" if ratio is None else f"{ratio:.2f}x", f.target or "-",
                     {True: "PASS", False: "FAIL", None: "-"}[f.passed]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = args.only or list(BENCHMARKS)
    started = datetime.now(UTC)
    out = args.out or REPO / "benchmarks" / "results" / f"{started:%Y-%m-%d}{'-smoke' if args.smoke else ''}.json"
    workdir = Path(tempfile.mkdtemp(prefix="honeyatlas-bench-"))
    ctx = Context(smoke=args.smoke, workdir=workdir,
                  query_rows=args.query_rows or ([100_000] if args.smoke else [10_000_000]), profile=args.profile)
    report: dict[str, object] = {
        "date": started.isoformat(timespec="seconds"),
        "commit": git_commit(),
        "command": " ".join(["python -m benchmarks.run", *(argv if argv is not None else sys.argv[1:])]),
        "smoke": args.smoke,
        "server_entry": ctx.server_entry,
        "machine": machine(),
        "benchmarks": {},
    }
    results: dict[str, dict[str, object]] = report["benchmarks"]  # type: ignore[assignment]
    figures: list[Figure] = []
    failed = []
    try:
        for name in names:
            print(f"== {name}", file=sys.stderr, flush=True)
            began = time.monotonic()
            try:
                produced = BENCHMARKS[name](ctx)
                error = None
            except Exception as exc:  # one broken benchmark must not hide the others' figures
                import traceback

                produced, error = [], f"{type(exc).__name__}: {exc}"
                traceback.print_exc()
                failed.append(name)
            figures += produced
            results[name] = {
                "seconds": round(time.monotonic() - began, 1),
                "error": error,
                "figures": [f.as_dict() for f in produced],
            }
            if args.smoke and not error and not all(math.isfinite(f.value) for f in produced):
                failed.append(name)
                results[name]["error"] = "a figure is not finite"
        report["details"] = ctx.extra
        if args.profile is not None and args.profile.exists():
            report["ingest_profile_top_own_time"] = live_server.top_own_time(args.profile)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    report["load_average_at_end"] = list(__import__("os").getloadavg())
    save_json(out, report)
    print(table(figures))
    if "ingest_profile_top_own_time" in report:
        print("\ningest profile, own time (py-spy, all threads):")
        for fn, share in report["ingest_profile_top_own_time"]:  # type: ignore[union-attr]
            print(f"  {share:6.1%}  {fn}")
    print(f"\nresults: {out}" + (f"\nfailed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
