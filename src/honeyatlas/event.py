"""The honeyatlas event: one frozen, typed record used by every stage of the pipeline.

What lives here: the `Event` and `Geo` structs, the event-kind, outcome and flag catalogues,
the schema version, field size limits and event ids. Nothing here does I/O or imports
another honeyatlas module; docs/events.md documents every field and kind, and
tests/test_event_docs.py fails when the two disagree.
"""

from __future__ import annotations

import enum
import hashlib
import random
import time
from datetime import datetime

import msgspec

SCHEMA_VERSION = 1


class Kind(enum.StrEnum):
    """What happened, whatever honeypot saw it."""

    CONNECTION = "connection"
    SCAN = "scan"
    LOGIN_ATTEMPT = "login_attempt"
    COMMAND = "command"
    FILE_DOWNLOAD = "file_download"
    FILE_UPLOAD = "file_upload"
    WEB_REQUEST = "web_request"
    EXPLOIT = "exploit"
    IDS_ALERT = "ids_alert"
    OTHER = "other"


KIND_DESCRIPTIONS: dict[Kind, str] = {
    Kind.CONNECTION: "A network connection or session opened, closed or described (client banner, key exchange, terminal size).",
    Kind.SCAN: "A probe without a session: port scan, SYN, OS fingerprinting, banner grab.",
    Kind.LOGIN_ATTEMPT: "An authentication attempt; `outcome` tells whether it succeeded.",
    Kind.COMMAND: "A command or input typed or sent by the attacker in a session.",
    Kind.FILE_DOWNLOAD: "The attacker made the honeypot fetch a file (wget, curl, tftp); `url` and hashes tell what.",
    Kind.FILE_UPLOAD: "The attacker pushed a file to the honeypot (scp, sftp, ftp put).",
    Kind.WEB_REQUEST: "An HTTP request to a web honeypot.",
    Kind.EXPLOIT: "An exploitation attempt recognised by the honeypot (a CVE, an injection pattern).",
    Kind.IDS_ALERT: "An alert raised by an IDS sensor (Suricata, Snort); `signature` and `severity` say which.",
    Kind.OTHER: "Anything else a sensor reports that is still attacker activity.",
}


class Outcome(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"


class Flag(enum.StrEnum):
    """Facts about an event that the map and the statistics must not hide."""

    LOOPBACK_SOURCE = "loopback_source"
    PRIVATE_SOURCE = "private_source"
    RESERVED_SOURCE = "reserved_source"
    DEMO = "demo"
    TRUNCATED = "truncated"


FLAG_DESCRIPTIONS: dict[Flag, str] = {
    Flag.LOOPBACK_SOURCE: "The source address is a loopback address (127.0.0.0/8, ::1): a lab or a local test.",
    Flag.PRIVATE_SOURCE: "The source address is private (RFC 1918, RFC 4193, CGNAT, link-local): an insider, a NAT artefact or a lab.",
    Flag.RESERVED_SOURCE: "The source address is reserved, multicast or unspecified; it cannot be located.",
    Flag.DEMO: "The event comes from the built-in simulated honeynet (`serve --demo`), not from a real sensor.",
    Flag.TRUNCATED: "At least one field was longer than its limit and was cut; `warnings` names the fields.",
}


class Precision(enum.StrEnum):
    """How exact a `Geo` position is."""

    NONE = "none"
    COUNTRY = "country"
    CITY = "city"
    SENSOR = "sensor"


# Upper bounds, in characters, for attacker-controlled text fields. Adapters cut longer
# values, add Flag.TRUNCATED and a warning naming the field.
FIELD_LIMITS: dict[str, int] = {
    "sensor": 64,
    "honeypot": 32,
    "action": 128,
    "transport": 16,
    "protocol": 32,
    "session": 128,
    "username": 256,
    "password": 256,
    "command": 4096,
    "url": 2048,
    "signature": 512,
    "user_agent": 512,
    "client_version": 256,
    "warning": 256,
}
RAW_LIMIT_BYTES = 8192
MAX_WARNINGS = 16


class Geo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Where an address or a sensor is: as much as the lookup tables know."""

    country: str | None = None  # ISO 3166-1 alpha-2
    city: str | None = None
    lat: float | None = None
    lon: float | None = None
    asn: int | None = None
    org: str | None = None
    precision: Precision = Precision.NONE


class Event(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One thing an attacker did, as one sensor saw it, in schema version 1."""

    id: str
    ts: datetime
    ingest_ts: datetime
    sensor: str
    honeypot: str
    kind: Kind
    action: str | None = None
    outcome: Outcome = Outcome.UNKNOWN
    src_ip: str | None = None
    src_port: int | None = None
    dst_ip: str | None = None
    dst_port: int | None = None
    transport: str | None = None
    protocol: str | None = None
    session: str | None = None
    username: str | None = None
    password: str | None = None
    command: str | None = None
    url: str | None = None
    sha256: str | None = None
    md5: str | None = None
    signature: str | None = None
    severity: int | None = None
    user_agent: str | None = None
    client_version: str | None = None
    src_geo: Geo | None = None
    dst_geo: Geo | None = None
    flags: tuple[Flag, ...] = ()
    warnings: tuple[str, ...] = ()
    raw: str | None = None
    v: int = SCHEMA_VERSION


EVENT_FIELDS: tuple[str, ...] = Event.__struct_fields__
GEO_FIELDS: tuple[str, ...] = Geo.__struct_fields__


def _uuid7_text(ms: int, rand: int) -> str:
    value = (ms & 0xFFFFFFFFFFFF) << 80 | (rand & ((1 << 80) - 1))
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def derived_event_id(ts: datetime, seed: bytes) -> str:
    """A UUIDv7-shaped id that is the same every time for the same event of the same batch:
    the event's own time in the first 48 bits, then bits of BLAKE2b(`seed`), where the seed
    names the batch (sensor, idempotency key, body digest), the record and the event's place
    in it. A batch sent again, however late and through whichever process, brings the same
    ids, and a store that keeps one row per id stores it once."""
    rand = int.from_bytes(hashlib.blake2b(seed, digest_size=10).digest(), "big")
    return _uuid7_text(int(ts.timestamp() * 1000), rand)


def new_event_id(ts_ms: int | None = None) -> str:
    """A UUIDv7-shaped id: sortable by creation time, unique without coordination.

    The 74 random bits come from `random.getrandbits` (seeded from the OS at start): ids need
    uniqueness, not secrecy, and one getrandom system call per event cost ~8% of ingest CPU.
    """
    ms = int(time.time() * 1000) if ts_ms is None else ts_ms
    return _uuid7_text(ms, random.getrandbits(80))
