"""The helpers every sharing format uses: printable text, derived ids, UTC timestamps."""

from __future__ import annotations

import unicodedata
import uuid
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from honeyatlas.share._fields import derived_uuid, iso_z, printable


def unescape(shown: str) -> str:
    return shown.encode("raw_unicode_escape").decode("unicode_escape")


@given(st.text(alphabet=st.characters(codec=None)), st.integers(41, 300))
def test_printable_text_shows_no_control_character_and_stays_bounded(text: str, limit: int) -> None:
    shown = printable(text, limit)
    assert not [c for c in shown if unicodedata.category(c).startswith("C")]
    assert len(shown) <= limit
    if not shown.endswith("more characters)"):
        assert unescape(shown) == text  # nothing is lost, only made visible


def test_printable_cuts_long_text_and_never_half_an_escape() -> None:
    assert printable("x" * 10_240, 100) == "x" * 60 + "… (10180 more characters)"
    assert printable("\x00" * 20, 60) == "\\x00" * 5 + "… (15 more characters)"
    assert printable("a\\b\nc\u202ed", 100) == "a\\\\b\\x0ac\\u202ed"


def test_derived_ids_are_stable_and_parts_cannot_collide() -> None:
    # Consumers store these ids: the namespace and the encoding of the parts must never change.
    pinned = uuid.uuid5(uuid.UUID("056d0022-210a-4fad-a484-11ed7db626c8"), "1:a|1:b|")
    assert derived_uuid("a", "b") == derived_uuid("a", "b") == str(pinned) == "218aa0e5-2582-5e88-b6bc-b7712536b44b"
    assert derived_uuid("a|b", "c") != derived_uuid("a", "b|c")
    assert derived_uuid("ab") != derived_uuid("a", "b")


def test_timestamps_are_utc_with_z() -> None:
    assert iso_z(datetime(2024, 5, 1, 14, tzinfo=timezone(timedelta(hours=2)))) == "2024-05-01T12:00:00Z"
    assert iso_z(datetime(2024, 5, 1, 12, 0, 0, 5)) == "2024-05-01T12:00:00.000005Z"  # naive is UTC
    assert iso_z(datetime(2024, 5, 1, tzinfo=UTC)) == "2024-05-01T00:00:00Z"
