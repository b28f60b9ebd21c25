"""The IoC feed: CSV and JSON read back to the rows they were made from, whatever those hold."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from honeyatlas.profile import AttackerSummary
from honeyatlas.share import IOC_CSV_HEADER, ioc_csv, ioc_json, parse_ioc_csv, parse_ioc_json
from tests.share.values import EXPORTED_AT, HOSTILE, T0, attackers

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")

offsets = st.builds(timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23)))
instants = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=offsets)
texts = st.text(min_size=1)  # the empty string and None are one value in CSV (an empty cell)
rows = st.builds(
    AttackerSummary,
    ip=st.one_of(st.ip_addresses().map(str), texts),
    first_seen=instants,
    last_seen=instants,
    event_count=st.integers(0, 2**53),
    sensor_count=st.integers(0, 2**31),
    country=st.none() | texts,
    asn=st.none() | st.integers(0, 2**32 - 1),
    tags=st.lists(texts.filter(lambda tag: ";" not in tag), max_size=6),
)


def hostile_rows() -> list[AttackerSummary]:
    """Every hostile string in every text column a row has, next to the realistic rows."""
    return [*attackers(), *(
        AttackerSummary(ip=text, first_seen=T0, last_seen=T0, event_count=1, sensor_count=1, country=text,
                        asn=None, tags=[text.replace(";", ",") or "x", "'quoted", "-1", "@sum"])
        for text in (*HOSTILE, "'", "'=1+1", "=cmd|' /C calc'!A0", "\t=1", "\r=1", "-2+3", '"', ",", "\x00"))]


def test_the_csv_has_the_documented_header_and_one_line_per_row() -> None:
    text = ioc_csv(attackers())
    lines = text.split("\r\n")
    assert lines[0] == ",".join(IOC_CSV_HEADER) == "ip,first_seen,last_seen,event_count,sensor_count,country,asn,tags"
    assert lines[1] == "45.155.205.233,2024-05-01T12:00:00.123456Z,2024-05-01T15:00:00.123456Z,1204,4,NL,49870," \
        "malware_dropper;brute_forcer;campaign;epidemic"
    assert lines[2].startswith("2a01:4f8:c17:1b2c::5,")
    assert lines[3].endswith(",35,2,,,scanner")
    assert lines[4:] == [""]


def test_csv_and_json_round_trip_realistic_and_hostile_rows() -> None:
    given_rows = hostile_rows()
    assert parse_ioc_csv(ioc_csv(given_rows)) == given_rows
    assert parse_ioc_json(ioc_json(given_rows, EXPORTED_AT)) == given_rows


@settings(max_examples=300)
@given(st.lists(rows, max_size=8))
def test_csv_round_trips_any_rows(given_rows: list[AttackerSummary]) -> None:
    assert parse_ioc_csv(ioc_csv(given_rows)) == given_rows


@settings(max_examples=300)
@given(st.lists(rows.map(lambda row: msgspec.structs.replace(row, tags=[*row.tags, ";", ""])), max_size=8))
def test_json_round_trips_any_rows(given_rows: list[AttackerSummary]) -> None:
    assert parse_ioc_json(ioc_json(given_rows, EXPORTED_AT)) == given_rows


def test_no_csv_cell_can_start_a_spreadsheet_formula() -> None:
    cells = [cell for line in csv.reader(io.StringIO(ioc_csv(hostile_rows()), newline="")) for cell in line]
    assert not [cell for cell in cells if cell.startswith(FORMULA_STARTS)]
    assert "'=HYPERLINK(\"http://evil.example/\")" in cells
    assert "''=1+1" in cells  # an apostrophe of its own is kept: the reader strips exactly one


def test_a_row_cannot_break_out_of_its_line_or_cell() -> None:
    text = ioc_csv(hostile_rows())
    parsed = list(csv.reader(io.StringIO(text, newline="")))
    assert len(parsed) == 1 + len(hostile_rows())
    assert {len(cells) for cells in parsed} == {len(IOC_CSV_HEADER)}


def test_timestamps_are_utc_with_z_whatever_zone_they_came_in() -> None:
    paris = timezone(timedelta(hours=2))
    row = AttackerSummary(ip="203.0.113.7", first_seen=datetime(2024, 5, 1, 14, tzinfo=paris),
                          last_seen=datetime(2024, 5, 1, 14, 0, 1, tzinfo=paris), event_count=2, sensor_count=1,
                          country=None, asn=None, tags=[])
    assert "2024-05-01T12:00:00Z,2024-05-01T12:00:01Z" in ioc_csv([row])
    document = json.loads(ioc_json([row], EXPORTED_AT))
    assert document["generated_at"] == "2024-05-31T12:00:00.123456Z"
    assert document["count"] == 1
    assert document["attackers"][0]["first_seen"] == "2024-05-01T12:00:00Z"
    assert document["attackers"][0]["country"] is None
    assert parse_ioc_csv(ioc_csv([row]))[0].first_seen.tzinfo == UTC


def test_a_tag_that_would_not_read_back_is_refused() -> None:
    for tag in ("a;b", ""):
        row = msgspec.structs.replace(attackers()[0], tags=[tag])
        with pytest.raises(ValueError, match="cannot be written"):
            ioc_csv([row])


def test_foreign_or_damaged_feeds_are_refused_with_the_line() -> None:
    with pytest.raises(ValueError, match="header"):
        parse_ioc_csv("address,when\r\n1.2.3.4,now\r\n")
    with pytest.raises(ValueError, match="header"):
        parse_ioc_csv("")
    good = ioc_csv(attackers()[:1])
    with pytest.raises(ValueError, match="line 2"):
        parse_ioc_csv(good.replace(",1204,", ",many,"))
    with pytest.raises(ValueError, match="line 2"):
        parse_ioc_csv(good.replace("Z,", ","))  # a time without a zone is not UTC, it is unknown
    with pytest.raises(ValueError, match="line 3: 2 cells"):
        parse_ioc_csv(good + "1.2.3.4,x\r\n")
    with pytest.raises(msgspec.ValidationError):
        parse_ioc_json(b'{"generated_at": "2024-01-01T00:00:00Z", "count": 1, "attackers": [{"ip": 1}]}')


def test_same_rows_give_the_same_bytes() -> None:
    assert ioc_csv(attackers()) == ioc_csv(attackers())
    assert ioc_json(attackers(), EXPORTED_AT) == ioc_json(attackers(), EXPORTED_AT)
