"""Reading raw values out of records, shared by the adapters: nested-or-dotted lookup,
readers that turn one raw value into an event field or drop it with a warning that names
where it came from, and small helpers several formats need (T-Pot's `type`, HTTP URLs).

What these return still goes through `make_event`, which cleans and bounds text; these only
decide whether a value is usable at all. Pure functions; no I/O, no state.
"""

from __future__ import annotations

import re
from typing import Any

from honeyatlas.adapters.fields import parse_hash, parse_ip, parse_port
from honeyatlas.event import Outcome

Notes = list[str]

SEVERITY_RANGE = range(1, 5)  # docs/events.md: 1 (highest) to 4
# IP protocol numbers and spellings that name a transport we already have a word for.
_TRANSPORT_ALIASES = {
    "1": "icmp", "6": "tcp", "17": "udp", "58": "icmp", "132": "sctp",
    "ipv6-icmp": "icmp", "icmpv6": "icmp", "icmp6": "icmp",
}
_MAX_SID_DIGITS = 10  # rule ids are 32-bit
_MAX_NAME = 64  # longer "names" are not protocol names; do not lowercase megabytes


def lookup(record: Any, path: str) -> Any:
    """The value at a dotted path, whether the record nests objects (`{"source": {"ip": …}}`),
    flattens keys (`{"source.ip": …}`) or mixes the two; a number steps into a list
    (`source.0`); None when absent."""
    return _lookup(record, path.split("."))


def _lookup(node: Any, parts: list[str]) -> Any:
    if not parts:
        return node
    if isinstance(node, list):
        head = parts[0]
        if head.isascii() and head.isdigit() and int(head) < len(node):
            return _lookup(node[int(head)], parts[1:])
        return None
    if not isinstance(node, dict):
        return None
    for cut in range(len(parts), 0, -1):  # the longest flattened key first
        child = node.get(".".join(parts[:cut]))
        if child is not None:
            found = _lookup(child, parts[cut:])
            if found is not None:
                return found
    return None


def text(value: Any, name: str, notes: Notes) -> Any:
    """A scalar for a text field (make_event cleans it); a container is dropped with a warning."""
    if isinstance(value, (dict, list)):
        notes.append(f"{name} is not text; dropped")
        return None
    return value


def address(value: Any, name: str, notes: Notes) -> str | None:
    parsed = parse_ip(value)
    if parsed is None and value is not None:
        notes.append(f"{name} is not an IP address; dropped")
    return parsed


def port(value: Any, name: str, notes: Notes) -> int | None:
    parsed = parse_port(value)
    if parsed is None and value is not None:
        notes.append(f"{name} is not a port number; dropped")
    return parsed


def digest(value: Any, name: str, length: int, notes: Notes) -> str | None:
    parsed = parse_hash(value, length)
    if parsed is None and value is not None:
        notes.append(f"{name} is not {length} hex digits; dropped")
    return parsed


def severity(value: Any, name: str, notes: Notes) -> int | None:
    """A severity 1 (highest) to 4 from an int or a numeric string; anything else is dropped."""
    level = parse_port(value)  # a small non-negative whole number, as int or text
    if level in SEVERITY_RANGE:
        return level
    if value is not None:
        notes.append(f"{name} is not a severity 1-4; dropped")
    return None


def signature(name: Any, sid: Any, field: str, notes: Notes) -> Any:
    """The rule's name, or "sid:<signature_id>" when the record gives only the rule's number."""
    name = text(name, field, notes)
    if name is not None:
        return name
    if isinstance(sid, str) and sid.isascii() and sid.isdigit() and len(sid) <= _MAX_SID_DIGITS:
        return f"sid:{int(sid)}"
    if isinstance(sid, int) and not isinstance(sid, bool) and 0 <= sid < 10**_MAX_SID_DIGITS:
        return f"sid:{sid}"
    return None


def transport(value: Any) -> str | None:
    """A lowercase transport name ("TCP" -> "tcp", 17 -> "udp", "IPV6-ICMP" -> "icmp")."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255:
        value = str(value)
    if not isinstance(value, str) or len(value) > _MAX_NAME:
        return None
    name = value.strip().lower()
    if name.isascii() and name.isdigit():
        name = name.lstrip("0") or "0"  # Suricata writes unnamed protocols as "047"
    return _TRANSPORT_ALIASES.get(name, name) or None


def lowercase_name(value: Any) -> str | None:
    """A protocol or product name, stripped and lowercased; None when not a short text."""
    if not isinstance(value, str) or len(value) > _MAX_NAME:
        return None
    return value.strip().lower() or None


def ids_outcome(action: Any) -> Outcome:
    """An IDS alert's outcome from its action: a blocked packet failed; an allowed one only
    passed the sensor, which says nothing about whether the attack worked."""
    return Outcome.FAILURE if action == "blocked" else Outcome.UNKNOWN


def first_present(*candidates: tuple[str, Any]) -> tuple[str, Any]:
    """The first (name, value) whose value is present; the name is quoted in warnings."""
    return next((pair for pair in candidates if pair[1] is not None), candidates[0])


def tpot_honeypot(record: dict[Any, Any], name: str) -> str | None:
    """`name` when T-Pot's `type` field says the record is that honeypot's, else None.

    A T-Pot sensor runs many honeypots under one registration; its logstash names each
    record's honeypot in `type` ("Dionaea", "Honeytrap", "ConPot"), and the event keeps it.
    """
    kind = record.get("type")
    return name if isinstance(kind, str) and kind.lower() == name else None


_HOST = re.compile(r"(?:[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?")


def http_url(path: Any, host: Any, notes: list[str]) -> Any:
    """"http://host/path" when the Host header names a host (as MHN builds it), else the path.

    The Host header is attacker text: one that is not a host name (with an optional port)
    is not glued to the path, and a warning says so.
    """
    if not isinstance(path, str) or not path.startswith("/") or host is None:
        return path
    if isinstance(host, str) and _HOST.fullmatch(host):
        return f"http://{host}{path}"
    notes.append("Host header is not a host name; url is the path alone")
    return path
