"""The IoC feed: attacker addresses as CSV and JSON, and the parsers that read them back.

What lives here: `ioc_csv`, `ioc_json` and their inverses `parse_ioc_csv` and
`parse_ioc_json`; for every list of rows, parse(produce(rows)) == rows. The rows are
`AttackerSummary` values the store already chose as shareable (public addresses, no demo,
no lab); nothing here filters or reorders them.

CSV cells are written by the `csv` module (quoting, embedded commas, quotes and line
breaks) and text cells are defused against formula injection: a spreadsheet runs a cell
that starts with = + - @ tab, CR or LF as a formula, so such a cell is written with a
leading apostrophe, which spreadsheets show as text. Our text columns (ip, country, tags)
hold addresses, ISO country codes from the GeoIP table and catalogue names today, none of
which can start so; the guard is there because the GeoIP table is an operator's file and
the columns may grow, and because it costs nothing. A cell that itself starts with an
apostrophe gets one more, so the reader strips exactly one and the round trip stays exact.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime

import msgspec

from honeyatlas.profile import AttackerSummary
from honeyatlas.share._fields import iso_z, utc

IOC_CSV_HEADER: tuple[str, ...] = (
    "ip", "first_seen", "last_seen", "event_count", "sensor_count", "country", "asn", "tags",
)
TAG_SEPARATOR = ";"
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "'")


class IocFeed(msgspec.Struct, frozen=True, kw_only=True):
    """The JSON feed document."""

    generated_at: datetime
    count: int
    attackers: list[AttackerSummary]


def ioc_json(rows: list[AttackerSummary], generated_at: datetime) -> bytes:
    """The feed as one JSON document: {"generated_at", "count", "attackers": [...]}; timestamps in UTC with Z."""
    feed = IocFeed(generated_at=utc(generated_at), count=len(rows), attackers=[_in_utc(row) for row in rows])
    return msgspec.json.encode(feed)


def parse_ioc_json(data: bytes | str) -> list[AttackerSummary]:
    """The rows of a JSON feed; raises `msgspec.ValidationError` (a ValueError) on a malformed one."""
    return msgspec.json.decode(data, type=IocFeed).attackers


def ioc_csv(rows: list[AttackerSummary]) -> str:
    """The feed as CSV with the `IOC_CSV_HEADER` columns; tags joined with ";"; an absent country or ASN is empty.

    A tag that is empty or holds ";" cannot be told apart once joined: it raises ValueError
    rather than write a feed that reads back different (tags come from our catalogues, so
    this is a bug upstream, not attacker input).
    """
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(IOC_CSV_HEADER)
    for row in rows:
        for tag in row.tags:
            if not tag or TAG_SEPARATOR in tag:
                raise ValueError(f"tag {tag!r} of {row.ip} cannot be written to the CSV feed")
        writer.writerow((
            _defuse(row.ip), iso_z(row.first_seen), iso_z(row.last_seen), row.event_count, row.sensor_count,
            _defuse(row.country or ""), "" if row.asn is None else row.asn, _defuse(TAG_SEPARATOR.join(row.tags)),
        ))
    return out.getvalue()


def parse_ioc_csv(text: str) -> list[AttackerSummary]:
    """The rows of a CSV feed; raises ValueError naming the line when a row does not fit the header."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None or tuple(header) != IOC_CSV_HEADER:
        raise ValueError(f"not an IoC feed: header {header!r}, expected {','.join(IOC_CSV_HEADER)}")
    rows = []
    for cells in reader:
        if len(cells) != len(IOC_CSV_HEADER):
            raise ValueError(f"line {reader.line_num}: {len(cells)} cells, expected {len(IOC_CSV_HEADER)}")
        ip, first_seen, last_seen, event_count, sensor_count, country, asn, tags = cells
        try:
            rows.append(AttackerSummary(
                ip=_restore(ip), first_seen=_timestamp(first_seen), last_seen=_timestamp(last_seen),
                event_count=int(event_count), sensor_count=int(sensor_count), country=_restore(country) or None,
                asn=int(asn) if asn else None, tags=_restore(tags).split(TAG_SEPARATOR) if tags else [],
            ))
        except ValueError as exc:
            raise ValueError(f"line {reader.line_num}: {exc}") from None
    return rows


def _in_utc(row: AttackerSummary) -> AttackerSummary:
    return msgspec.structs.replace(row, first_seen=utc(row.first_seen), last_seen=utc(row.last_seen))


def _defuse(cell: str) -> str:
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


def _restore(cell: str) -> str:
    return cell[1:] if cell.startswith("'") else cell


def _timestamp(text: str) -> datetime:
    ts = datetime.fromisoformat(text)
    if ts.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone")
    return utc(ts)
