"""honeyatlas benchmark suite: a real server in a subprocess, load from separate processes.

Run `python -m benchmarks.run` (see docs/performance.md). Nothing here is imported by the
honeyatlas package; the suite reaches the server only through its command line, HTTP and
WebSocket, except the in-process micro benchmarks (decode, insert, adapters) that call the
same functions the server runs.
"""
