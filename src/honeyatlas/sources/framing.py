"""Framing shared by the sources: one line of bytes -> one RawRecord for the pipeline."""

from __future__ import annotations

import msgspec

from honeyatlas.pipeline import RawRecord

_decoder = msgspec.json.Decoder()


def decode_line(line: bytes, index: int, input_kind: str) -> RawRecord:
    """Decode one line as the format expects: "json", "text", or "auto" (JSON, else text).

    A "json" line that is not JSON becomes a record carrying the error, so it is rejected
    alone, by index, and kept in the dead-letter store.
    """
    if input_kind == "text":
        return RawRecord(index, line, line.decode("utf-8", "replace"))
    try:
        return RawRecord(index, line, _decoder.decode(line))
    except msgspec.DecodeError as exc:
        if input_kind == "auto":  # maybe a text format (CEF); the detector decides
            return RawRecord(index, line, line.decode("utf-8", "replace"))
        return RawRecord(index, line, error=f"invalid JSON: {exc}")
