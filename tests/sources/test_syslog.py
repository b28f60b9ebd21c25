"""syslog source end to end: a real server, a real listener on 127.0.0.1 port 0, real clients.

Every test sends real honeypot records (tests/data/samples) inside real syslog headers and
checks what the store holds through the HTTP API: each event stored once, attributed to the
right sensor, with the header's time for CEF. The reference for "what these records should
give" is the same records posted to the HTTP ingest route under another sensor.
"""

from __future__ import annotations

import logging
import logging.handlers
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from honeyatlas.enrichment.sensors import SensorSettings
from honeyatlas.errors import HoneyatlasError, PipelineFull
from honeyatlas.sources.syslog import SyslogLimits, SyslogListener, parse_listen, tls_server_context
from tests import waiting
from tests.conftest import SAMPLES, RunningServer, start_server

CEF_LINES = (SAMPLES / "cowrie-cef.txt").read_text().splitlines()
COWRIE_LINES = (SAMPLES / "cowrie.json").read_text().splitlines()
CANARY_LINES = (SAMPLES / "opencanary.jsonl").read_text().splitlines()
LOGIN_FAILED_CEF = next(line for line in CEF_LINES if "cowrie.login.failed" in line)
HEADER_TIME = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
LOOPBACK = ("127.0.0.1",)  # where the test senders are: the addresses their HOSTNAMEs are believed from
SIGNATURE = ("kind", "action", "outcome", "src_ip", "src_port", "dst_port", "username", "command", "url")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running, stop = start_server(tmp_path_factory.mktemp("syslog") / "data")
    try:
        yield running
    finally:
        stop()


@contextmanager
def listening(
    server: RunningServer,
    address: str,
    limits: SyslogLimits | None = None,
    ssl_context: ssl.SSLContext | None = None,
    pipeline: Any = None,
) -> Iterator[tuple[str, int]]:
    """A SyslogListener started in the server's own loop, beside its pipeline and store."""
    listener = SyslogListener(
        parse_listen(address), pipeline=pipeline or server.service.pipeline, registry=server.service.registry,
        metrics=server.service.metrics, limits=limits, ssl_context=ssl_context,
    )
    server.run(listener.start())
    try:
        yield listener.bound
    finally:
        server.run(listener.stop())


def rfc3164(host: str, body: str) -> bytes:
    return f"<134>{HEADER_TIME:%b} {HEADER_TIME.day:>2} {HEADER_TIME:%H:%M:%S} {host} cowrie[4242]: {body}".encode()


def rfc5424(host: str, body: str, seq: int = 0) -> bytes:
    header = f'<134>1 {HEADER_TIME:%Y-%m-%dT%H:%M:%S}.000Z {host} cowrie 4242 - [meta sequenceId="{seq}"] '
    return header.encode() + b"\xef\xbb\xbf" + body.encode()


def octet(message: bytes) -> bytes:
    return b"%d %s" % (len(message), message)


def events(server: RunningServer, sensor: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{server.url}api/v1/events", params={"sensor": sensor, "limit": 1000})
    assert response.status_code == 200, response.text
    return response.json()["events"]


def wait_until(check: Callable[[], bool], timeout: float = 15) -> None:
    waiting.wait_until(check, timeout=timeout)


def counter(server: RunningServer, name: str, **labels: str) -> float:
    return server.service.metrics.total(name, **labels)


def refused(server: RunningServer, reason: str) -> float:
    return counter(server, "honeyatlas_requests_refused_total", source="syslog", reason=reason)


def signatures(found: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(tuple(str(e.get(k)) for k in SIGNATURE) for e in found)


_reference: dict[str, list[tuple[Any, ...]]] = {}


def reference(server: RunningServer, name: str, lines: list[str]) -> list[tuple[Any, ...]]:
    """What the HTTP route stores for these records, under a sensor of its own (computed once)."""
    if name not in _reference:
        sensor = f"reference-{name}"
        token = server.add_sensor(sensor, syslog_from=LOOPBACK)
        response = httpx.post(f"{server.url}api/v1/ingest/auto", content="\n".join(lines).encode(),
                              headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        _reference[name] = signatures(events(server, sensor))
        assert _reference[name]
    return _reference[name]


def assert_stored_once(server: RunningServer, sensor: str, expected: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    wait_until(lambda: len(events(server, sensor)) >= len(expected))
    time.sleep(0.3)  # anything late would be a duplicate
    found = events(server, sensor)
    assert len({e["id"] for e in found}) == len(found)
    assert signatures(found) == expected
    assert {e["sensor"] for e in found} == {sensor}
    return found


def assert_header_time(found: list[dict[str, Any]]) -> None:
    assert {datetime.fromisoformat(e["ts"]) for e in found} == {HEADER_TIME}


def send_tcp(bound: tuple[str, int], data: bytes) -> None:
    with socket.create_connection(bound, timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(1) == b""  # the server closes after reading to the end


def send_udp(bound: tuple[str, int], messages: list[bytes]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for message in messages:
            sock.sendto(message, bound)
            time.sleep(0.0005)  # loopback drops bursts beyond the socket buffer: UDP is best-effort


def closed_by_server(sock: socket.socket, timeout: float = 5) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


# --- CEF from cowrie, each header, each transport, each framing --------------------------------


def test_cowrie_cef_over_udp_in_rfc3164_and_rfc5424(server: RunningServer) -> None:
    expected = reference(server, "cef", CEF_LINES)
    server.add_sensor("cef-udp-3164", syslog_from=LOOPBACK)
    server.add_sensor("cef-udp-5424", syslog_from=LOOPBACK)
    with listening(server, "udp:127.0.0.1:0") as bound:
        send_udp(bound, [rfc3164("cef-udp-3164", line) for line in CEF_LINES])
        send_udp(bound, [rfc5424("cef-udp-5424", line, seq) for seq, line in enumerate(CEF_LINES)])
        for sensor in ("cef-udp-3164", "cef-udp-5424"):
            assert_header_time(assert_stored_once(server, sensor, expected))


def test_cowrie_cef_over_tcp_with_both_framings_in_one_stream(server: RunningServer) -> None:
    expected = reference(server, "cef", CEF_LINES)
    server.add_sensor("cef-tcp-3164", syslog_from=LOOPBACK)
    server.add_sensor("cef-tcp-5424", syslog_from=LOOPBACK)
    stream = b""
    for seq, line in enumerate(CEF_LINES):  # framing alternates message by message
        stream += octet(rfc5424("cef-tcp-5424", line, seq)) if seq % 2 else rfc3164("cef-tcp-3164", line) + b"\n"
        stream += rfc3164("cef-tcp-3164", line) + b"\n" if seq % 2 else octet(rfc5424("cef-tcp-5424", line, seq))
    with listening(server, "tcp:127.0.0.1:0") as bound:
        send_tcp(bound, stream)
        for sensor in ("cef-tcp-3164", "cef-tcp-5424"):
            assert_header_time(assert_stored_once(server, sensor, expected))


# --- JSON lines from cowrie and OpenCanary ------------------------------------------------------


def test_json_lines_over_tcp_and_udp(server: RunningServer) -> None:
    cowrie, canary = reference(server, "cowrie", COWRIE_LINES), reference(server, "canary", CANARY_LINES)
    for name in ("json-tcp-cowrie", "json-tcp-canary", "json-udp-cowrie", "json-udp-canary"):
        server.add_sensor(name, syslog_from=LOOPBACK)
    ignored_before = counter(server, "honeyatlas_records_ignored_total", source="syslog")
    with listening(server, "tcp:127.0.0.1:0") as tcp, listening(server, "udp:127.0.0.1:0") as udp:
        send_tcp(tcp, b"".join(octet(rfc5424("json-tcp-cowrie", line)) for line in COWRIE_LINES)
                 + b"".join(rfc3164("json-tcp-canary", line) + b"\n" for line in CANARY_LINES))
        send_udp(udp, [rfc3164("json-udp-cowrie", line) for line in COWRIE_LINES]
                 + [rfc5424("json-udp-canary", line) for line in CANARY_LINES])
        for sensor, expected in (("json-tcp-cowrie", cowrie), ("json-tcp-canary", canary),
                                 ("json-udp-cowrie", cowrie), ("json-udp-canary", canary)):
            found = assert_stored_once(server, sensor, expected)
            # JSON records keep their own time, not the header's
            assert HEADER_TIME not in {datetime.fromisoformat(e["ts"]) for e in found}
    # OpenCanary's own start-up messages are ignored and counted, as over HTTP
    assert counter(server, "honeyatlas_records_ignored_total", source="syslog") > ignored_before


# --- Python's logging.handlers.SysLogHandler as a real client -----------------------------------


def log_through(handler: logging.Handler, lines: list[str]) -> None:
    logger = logging.getLogger(f"honeyatlas-test-syslog-{id(handler)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        for line in lines:
            logger.info(line)
            time.sleep(0.0005)
    finally:
        logger.removeHandler(handler)
        handler.close()


@pytest.mark.parametrize("socktype", [socket.SOCK_DGRAM, socket.SOCK_STREAM], ids=["udp", "tcp"])
def test_python_syslog_handler_with_a_listener_sensor(server: RunningServer, socktype: int) -> None:
    """OpenCanary's documented syslog setup: SysLogHandler, no header, NUL-terminated JSON."""
    expected = reference(server, "canary", CANARY_LINES)
    transport = "udp" if socktype == socket.SOCK_DGRAM else "tcp"
    sensor = f"pyhandler-{transport}"
    server.add_sensor(sensor, honeypot="opencanary", syslog_from=LOOPBACK)
    with listening(server, f"{transport}:127.0.0.1:0?sensor={sensor}") as bound:
        handler = logging.handlers.SysLogHandler(address=bound, socktype=socktype)
        handler.ident = "opencanaryd: "
        log_through(handler, CANARY_LINES)
        assert_stored_once(server, sensor, expected)


@pytest.mark.parametrize("socktype", [socket.SOCK_DGRAM, socket.SOCK_STREAM], ids=["udp", "tcp"])
def test_python_syslog_handler_attributed_by_hostname(server: RunningServer, socktype: int) -> None:
    expected = reference(server, "cef", CEF_LINES)
    sensor = f"pyhandler-host-{'udp' if socktype == socket.SOCK_DGRAM else 'tcp'}"
    server.add_sensor(sensor, syslog_from=LOOPBACK)
    transport = "udp" if socktype == socket.SOCK_DGRAM else "tcp"
    with listening(server, f"{transport}:127.0.0.1:0") as bound:
        handler = logging.handlers.SysLogHandler(address=bound, socktype=socktype)
        formatter = logging.Formatter(f"%(asctime)s {sensor} cowrie: %(message)s", datefmt="%b %d %H:%M:%S")
        formatter.converter = time.gmtime  # the server reads header times as UTC (ingest.sensor_timezone)
        handler.setFormatter(formatter)
        before = datetime.now(UTC).replace(microsecond=0)
        log_through(handler, CEF_LINES)
        found = assert_stored_once(server, sensor, expected)
        assert all(before <= datetime.fromisoformat(e["ts"]) <= datetime.now(UTC) for e in found)


# --- TLS (RFC 5425: octet counting inside TLS) --------------------------------------------------


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


def test_tls_listener(server: RunningServer, tmp_path: Path) -> None:
    expected = reference(server, "cef", CEF_LINES)
    server.add_sensor("cef-tls", syslog_from=LOOPBACK)
    cert, key = self_signed(tmp_path)
    client = ssl.create_default_context(cafile=str(cert))
    with listening(server, "tls:127.0.0.1:0", ssl_context=tls_server_context(str(cert), str(key))) as bound:
        with socket.create_connection(bound, timeout=10) as raw, client.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"".join(octet(rfc5424("cef-tls", line, seq)) for seq, line in enumerate(CEF_LINES)))
            assert_header_time(assert_stored_once(server, "cef-tls", expected))
        # a client that does not speak TLS is refused by the handshake; the listener keeps serving
        with socket.create_connection(bound, timeout=10) as plain:
            plain.sendall(octet(rfc5424("cef-tls", CEF_LINES[0])))
            assert closed_by_server(plain)
        assert len(events(server, "cef-tls")) == len(expected)


# --- attribution -------------------------------------------------------------------------------------


def test_unknown_and_revoked_senders_are_refused_and_counted(server: RunningServer) -> None:
    server.add_sensor("known-01", syslog_from=LOOPBACK)
    server.add_sensor("revoked-01", syslog_from=LOOPBACK)
    server.service.registry.revoke("revoked-01")
    before = refused(server, "unknown_sensor")
    rejected_before = counter(server, "honeyatlas_records_rejected_total", source="syslog")
    with listening(server, "udp:127.0.0.1:0") as bound:
        send_udp(bound, [rfc3164("nobody-here", LOGIN_FAILED_CEF), rfc3164("revoked-01", LOGIN_FAILED_CEF),
                         f"<13>{LOGIN_FAILED_CEF}".encode(),  # no HOSTNAME at all
                         rfc3164("known-01", LOGIN_FAILED_CEF)])
        wait_until(lambda: len(events(server, "known-01")) == 1)
        wait_until(lambda: refused(server, "unknown_sensor") == before + 3)
    assert events(server, "revoked-01") == []
    # refused, not dead-lettered: anyone who can reach the port could fill the store otherwise
    assert counter(server, "honeyatlas_records_rejected_total", source="syslog") == rejected_before


def test_a_hostname_is_believed_only_from_the_sensors_own_addresses(server: RunningServer) -> None:
    """Anyone who reaches the port can type a HOSTNAME: a sensor named in one is credited only
    when the message comes from an address it may send syslog from."""
    server.add_sensor("elsewhere-01", syslog_from=("192.0.2.0/24",))  # not where the sender is
    server.add_sensor("unset-01")  # no syslog addresses at all
    server.add_sensor("here-01", syslog_from=("127.0.0.0/8",))
    before = refused(server, "address_not_allowed")
    with listening(server, "udp:127.0.0.1:0") as bound:
        send_udp(bound, [rfc3164("elsewhere-01", LOGIN_FAILED_CEF), rfc3164("unset-01", LOGIN_FAILED_CEF),
                         rfc3164("here-01", LOGIN_FAILED_CEF)])
        wait_until(lambda: len(events(server, "here-01")) == 1)
        wait_until(lambda: refused(server, "address_not_allowed") == before + 2)
    assert events(server, "elsewhere-01") == [] and events(server, "unset-01") == []
    server.service.registry.configure("unset-01", SensorSettings(syslog_sources=("127.0.0.1",)))
    with listening(server, "tcp:127.0.0.1:0") as bound:  # allowed now (the registry answers at once)
        send_tcp(bound, rfc3164("unset-01", LOGIN_FAILED_CEF) + b"\n")
        wait_until(lambda: len(events(server, "unset-01")) == 1)


def test_a_json_listener_dead_letters_a_body_that_is_not_json(server: RunningServer) -> None:
    server.add_sensor("badjson-01", syslog_from=LOOPBACK)
    with listening(server, "tcp:127.0.0.1:0?format=cowrie&sensor=badjson-01") as bound:
        send_tcp(bound, rfc3164("anything", "this is not json") + b"\n" + rfc3164("anything", COWRIE_LINES[3]) + b"\n")
        wait_until(lambda: len(events(server, "badjson-01")) == 1)
    letters = httpx.get(f"{server.url}api/v1/rejected", params={"limit": 1000}).json()["rejected"]
    mine = [d for d in letters if d["sensor"] == "badjson-01"]
    assert len(mine) == 1 and mine[0]["source"] == "syslog" and mine[0]["format"] == "cowrie"
    assert mine[0]["reason"].startswith("invalid JSON")


def test_listener_configuration_errors(server: RunningServer) -> None:
    service = server.service
    parts = {"pipeline": service.pipeline, "registry": service.registry, "metrics": service.metrics}
    with pytest.raises(HoneyatlasError, match="unknown format 'nope'"):
        SyslogListener(parse_listen("udp:127.0.0.1:0?format=nope"), **parts)
    with pytest.raises(HoneyatlasError, match="TLS context"):
        SyslogListener(parse_listen("tls:127.0.0.1:0"), **parts)
    listener = SyslogListener(parse_listen("tcp:127.0.0.1:0?sensor=not-registered"), **parts)
    with pytest.raises(HoneyatlasError, match="no active sensor named 'not-registered'"):
        server.run(listener.start())


# --- hostile input and limits --------------------------------------------------------------------------


SMALL = SyslogLimits(max_message_bytes=1024)


@pytest.mark.parametrize(
    ("sensor", "stream", "reason"),
    [
        ("octet-count-oversize", b"5000 " + b"x" * 100, "oversize"),
        ("bad-octet-count", b"12x <13>hello\n", "bad_octet_count"),
        ("line-oversize", b"<13>" + b"a" * 2000, "oversize"),
        ("truncated", b"80 <13>cut short", "truncated"),
    ],
)
def test_framing_errors_close_that_connection_only(server: RunningServer, sensor: str, stream: bytes, reason: str) -> None:
    server.add_sensor(sensor, syslog_from=LOOPBACK)
    valid = octet(rfc3164(sensor, LOGIN_FAILED_CEF))
    before = refused(server, reason)
    with listening(server, "tcp:127.0.0.1:0", limits=SMALL) as bound:
        with socket.create_connection(bound, timeout=10) as good:
            good.sendall(valid)  # a healthy connection open across the hostile one
            with socket.create_connection(bound, timeout=10) as bad:
                bad.sendall(valid + stream)  # what came before the error is still delivered
                if reason == "truncated":
                    bad.shutdown(socket.SHUT_WR)
                assert closed_by_server(bad)
            wait_until(lambda: refused(server, reason) == before + 1)
            good.sendall(valid)
        send_tcp(bound, valid)  # and new connections are served
        wait_until(lambda: len(events(server, sensor)) == 4)


def test_binary_garbage_is_dead_lettered_and_the_listener_keeps_serving(server: RunningServer) -> None:
    server.add_sensor("garbage-01", syslog_from=LOOPBACK)
    garbage = bytes(range(256)) * 8
    rejected = lambda: counter(server, "honeyatlas_records_rejected_total", source="syslog")  # noqa: E731
    before = rejected()
    with listening(server, "tcp:127.0.0.1:0?sensor=garbage-01", limits=SMALL) as tcp, \
            listening(server, "udp:127.0.0.1:0?sensor=garbage-01", limits=SMALL) as udp:
        with socket.create_connection(tcp, timeout=10) as sock:
            sock.sendall(garbage)
            closed_by_server(sock, timeout=0.5)  # framed as junk messages or closed: the listener carries on
        oversize = refused(server, "oversize")
        send_udp(udp, [garbage[:900], garbage[1000:1900], b"\xff" * 2000])
        # the third datagram is over the 1024-byte limit too: wait for both kinds of count, so
        # the next check cannot race with it
        wait_until(lambda: rejected() > before and refused(server, "oversize") == oversize + 1)
        send_udp(udp, [b"\x00" * 2000])
        wait_until(lambda: refused(server, "oversize") == oversize + 2)
        send_tcp(tcp, rfc3164("x", LOGIN_FAILED_CEF) + b"\n")
        send_udp(udp, [rfc3164("x", LOGIN_FAILED_CEF)])
        wait_until(lambda: len(events(server, "garbage-01")) == 2)


def test_max_connections(server: RunningServer) -> None:
    server.add_sensor("conn-01", syslog_from=LOOPBACK)
    message = octet(rfc3164("conn-01", LOGIN_FAILED_CEF))
    before = refused(server, "too_many_connections")
    with listening(server, "tcp:127.0.0.1:0", limits=SyslogLimits(max_connections=2)) as bound:
        first = socket.create_connection(bound, timeout=10)
        second = socket.create_connection(bound, timeout=10)
        for sock in (first, second):
            sock.sendall(message)
        wait_until(lambda: len(events(server, "conn-01")) == 2)
        with socket.create_connection(bound, timeout=10) as third:
            assert closed_by_server(third)
        assert refused(server, "too_many_connections") == before + 1
        first.close()

        def a_slot_is_free() -> bool:
            with socket.create_connection(bound, timeout=10) as sock:
                sock.sendall(message)
                sock.shutdown(socket.SHUT_WR)
                return closed_by_server(sock) and len(events(server, "conn-01")) == 3

        wait_until(a_slot_is_free)
        second.close()


def test_idle_connections_are_closed(server: RunningServer) -> None:
    with listening(server, "tcp:127.0.0.1:0", limits=SyslogLimits(idle_timeout_seconds=0.3)) as bound, \
            socket.create_connection(bound, timeout=10) as sock:
        started = time.monotonic()
        assert closed_by_server(sock)
        assert 0.2 < time.monotonic() - started < 5


def test_stop_delivers_what_was_read(server: RunningServer) -> None:
    server.add_sensor("stop-01", syslog_from=LOOPBACK)
    linger = SyslogLimits(batch_linger_seconds=30)  # the batch would wait far longer than the test
    with listening(server, "tcp:127.0.0.1:0", limits=linger) as bound:
        sock = socket.create_connection(bound, timeout=10)
        sock.sendall(b"".join(octet(rfc3164("stop-01", LOGIN_FAILED_CEF)) for _ in range(3)))
        time.sleep(0.3)
        assert events(server, "stop-01") == []
    assert len(events(server, "stop-01")) == 3
    assert closed_by_server(sock)
    sock.close()


# --- a full pipeline: TCP pushes back, UDP drops and counts ---------------------------------------------


class GatedPipeline:
    """The real pipeline with admission refused while the gate is shut. A double on purpose:
    the real store drains far too fast to stay full for as long as a test needs."""

    def __init__(self, server: RunningServer) -> None:
        self._pipeline = server.service.pipeline
        self.open = threading.Event()
        self.refusals = 0

    def formats(self) -> list[str]:
        return self._pipeline.formats()

    def input_kind(self, fmt: str) -> str:
        return self._pipeline.input_kind(fmt)

    def admit(self, source: str, record_count: int) -> None:
        if not self.open.is_set():
            self.refusals += 1
            raise PipelineFull(1)
        self._pipeline.admit(source, record_count)

    async def ingest(self, **kwargs: Any) -> Any:
        return await self._pipeline.ingest(**kwargs)


def test_tcp_backpressure_blocks_the_sender_and_loses_nothing(server: RunningServer) -> None:
    server.add_sensor("bp-tcp", syslog_from=LOOPBACK)
    gate = GatedPipeline(server)
    login_failed = next(line for line in COWRIE_LINES if '"cowrie.login.failed"' in line)  # JSON: the fast adapter
    message = octet(rfc3164("bp-tcp", login_failed))
    accepted = lambda: counter(server, "honeyatlas_events_accepted_total", source="syslog", sensor="bp-tcp")  # noqa: E731
    with listening(server, "tcp:127.0.0.1:0", pipeline=gate) as bound:
        sock = socket.create_connection(bound, timeout=10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        sock.setblocking(False)
        sent, pending, stalled_since = 0, b"", None
        while stalled_since is None or time.monotonic() - stalled_since < 0.5:
            if not pending:
                pending, sent = message, sent + 1
            try:
                pending = pending[sock.send(pending) :]
                stalled_since = None
            except BlockingIOError:  # the server stopped reading: kernel buffers are full
                stalled_since = stalled_since or time.monotonic()
                time.sleep(0.05)
            assert sent * len(message) < 64 * 2**20, "the server kept reading while the pipeline was full"
        assert gate.refusals > 0 and accepted() == 0
        gate.open.set()
        sock.setblocking(True)
        sock.sendall(pending)
        sock.shutdown(socket.SHUT_WR)
        wait_until(lambda: accepted() == sent, timeout=60)
        assert closed_by_server(sock)
        sock.close()
    time.sleep(0.2)
    assert accepted() == sent


def test_udp_drops_and_counts_when_the_pipeline_is_full(server: RunningServer) -> None:
    server.add_sensor("bp-udp", syslog_from=LOOPBACK)
    gate = GatedPipeline(server)
    dropped = lambda: counter(server, "honeyatlas_records_dropped_total", source="syslog", reason="pipeline_full")  # noqa: E731
    before = dropped()
    with listening(server, "udp:127.0.0.1:0", pipeline=gate) as bound:
        send_udp(bound, [rfc3164("bp-udp", LOGIN_FAILED_CEF)] * 20)
        wait_until(lambda: dropped() == before + 20)
        assert events(server, "bp-udp") == []
        gate.open.set()
        send_udp(bound, [rfc3164("bp-udp", LOGIN_FAILED_CEF)])
        wait_until(lambda: len(events(server, "bp-udp")) == 1)
