"""hpfeeds framing: byte-exact against the reference package and the captured transcript,
round trips under any chunking, and nothing but ProtocolError on hostile bytes."""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path

import pytest
from hpfeeds import protocol as reference
from hypothesis import given, settings
from hypothesis import strategies as st

from honeyatlas.sources.hpfeeds_protocol import (
    AUTH_FRAME_MAX,
    MAXBUF,
    Auth,
    Decoder,
    Error,
    Info,
    Message,
    ProtocolError,
    Publish,
    Subscribe,
    Unsubscribe,
    auth_digest,
    decode_body,
    encode,
)

TRANSCRIPT = Path("/work/shared/samples/hpfeeds-wire-transcript.txt")
SAMPLES = Path(__file__).parents[1] / "data" / "samples"


def decode_all(data: bytes, chunk: int | None = None) -> list[Message]:
    decoder = Decoder()
    out: list[Message] = []
    step = chunk or len(data) or 1
    for start in range(0, len(data), step):
        decoder.feed(data[start : start + step])
        while (message := decoder.next()) is not None:
            out.append(message)
    return out


def test_encoding_matches_the_reference_package_byte_for_byte() -> None:
    nonce, payload = b"\xc7\x6a\x64\xd9", (SAMPLES / "cowrie-sessions.jsonl").read_bytes().splitlines()[0]
    assert encode(Info("labbroker", nonce)) == reference.msginfo("labbroker", nonce)
    assert encode(Auth("map", auth_digest(nonce, "s3cret"))) == reference.msgauth(nonce, "map", "s3cret")
    assert encode(Publish("map", "cowrie.sessions", payload)) == reference.msgpublish("map", "cowrie.sessions", payload)
    assert encode(Subscribe("map", "cowrie.sessions")) == reference.msgsubscribe("map", "cowrie.sessions")
    assert encode(Unsubscribe("map", "a.b")) == reference.msgunsubscribe("map", "a.b")
    assert encode(Error("Authentication failed for map")) == reference.msgerror("Authentication failed for map")


def test_the_captured_transcript_decodes() -> None:
    frames = []
    for line in TRANSCRIPT.read_text().splitlines():
        hexes = [w for w in line.split(":", 1)[1].split() if all(c in "0123456789abcdef" for c in w) and len(w) >= 10]
        frames.append(bytes.fromhex(hexes[0]))
    messages = decode_all(b"".join(frames), chunk=3)
    assert messages == [
        Info("labbroker", bytes.fromhex("c76a64d9")),
        Auth("map", bytes.fromhex("30b5e9b5ae586563042ef037083086c8196d917f")),
        Subscribe("map", "cowrie.sessions"),
        Subscribe("map", "test.chan"),
        Publish("map", "test.chan", b'{"event": "ping"}'),
        Error("Authentication failed for map"),
    ]


def test_limits_are_checked_from_the_header_alone() -> None:
    decoder = Decoder()
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        decoder.feed(struct.pack("!IB", 5 + MAXBUF + 1, 3))  # no body sent at all
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        Decoder().feed(struct.pack("!IB", AUTH_FRAME_MAX + 1, 2))
    with pytest.raises(ProtocolError, match="unknown opcode 9"):
        Decoder().feed(struct.pack("!IB", 10, 9))
    with pytest.raises(ProtocolError, match="shorter than the 5-byte header"):
        Decoder().feed(struct.pack("!IB", 4, 3))
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        Decoder().feed(struct.pack("!IB", 0xFFFFFFFF, 3))  # the reference reads it as -1
    assert decode_all(struct.pack("!IB", AUTH_FRAME_MAX, 2) + bytes([255]) + b"i" * 255 + b"d" * 20) == [
        Auth("i" * 255, b"d" * 20)
    ]
    small = Decoder(max_body_bytes=100)
    with pytest.raises(ProtocolError):
        small.feed(encode(Publish("a", "b", b"x" * 100)))


def test_malformed_bodies() -> None:
    with pytest.raises(ProtocolError, match="runs past the end"):
        decode_body(3, bytes([10]) + b"abc")
    with pytest.raises(ProtocolError, match="ends before its channel"):
        decode_body(3, bytes([1]) + b"a")
    with pytest.raises(ProtocolError, match="not UTF-8"):
        decode_body(2, bytes([2]) + b"\xff\xfe" + b"d" * 20)
    with pytest.raises(ProtocolError, match="255"):
        encode(Publish("x" * 256, "c", b""))


def test_a_frame_waits_for_its_body_and_keeps_what_follows() -> None:
    frame = encode(Publish("cowrie-01", "cowrie.sessions", b'{"session": "a"}'))
    decoder = Decoder()
    decoder.feed(frame[:-1])
    assert decoder.next() is None
    decoder.feed(frame[-1:] + frame[:7])
    assert decoder.next() == Publish("cowrie-01", "cowrie.sessions", b'{"session": "a"}')
    assert decoder.next() is None and decoder.buffered_bytes == 7


names = st.text(max_size=60).filter(lambda s: len(s.encode()) <= 255)
messages = st.one_of(
    st.builds(Error, st.text(max_size=200)),
    st.builds(Info, names, st.binary(min_size=4, max_size=4)),
    st.builds(Auth, names, st.binary(min_size=20, max_size=20)),
    st.builds(Publish, names, names, st.binary(max_size=2000)),
    st.builds(Subscribe, names, st.text(max_size=100)),
    st.builds(Unsubscribe, names, st.text(max_size=100)),
)


@given(st.lists(messages, max_size=20), st.integers(min_value=1, max_value=64))
def test_round_trip_under_any_chunking(sent: list[Message], chunk: int) -> None:
    wire = b"".join(encode(m) for m in sent)
    assert decode_all(wire, chunk) == sent
    assert b"".join(reference.msghdr(op, body) for op, body in _reference_frames(wire)) == wire


def _reference_frames(wire: bytes) -> list[tuple[int, bytes]]:
    unpacker = reference.Unpacker()
    unpacker.feed(wire)
    return list(unpacker)


@settings(max_examples=500)
@given(st.binary(max_size=600), st.integers(min_value=1, max_value=50))
def test_hostile_bytes_raise_only_protocol_error(data: bytes, chunk: int) -> None:
    with contextlib.suppress(ProtocolError):
        decode_all(data, chunk)


@settings(max_examples=300)
@given(st.sampled_from([1, 2, 3, 4, 5]), st.binary(max_size=300))
def test_hostile_bodies_of_known_opcodes_raise_only_protocol_error(opcode: int, body: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_body(opcode, body)


def test_a_frame_cut_short_at_the_end_of_the_stream_is_a_protocol_error() -> None:
    """Issue 14, truncated frames: the bytes of a frame whose stream ended are not dropped
    unseen; `close()` says how much of the frame arrived."""
    frame = encode(Publish("ident", "chan", b"x" * 100))
    decoder = Decoder()
    decoder.feed(frame[:40])
    assert decoder.next() is None
    with pytest.raises(ProtocolError, match=f"stream ended inside a frame \\(40 of {len(frame)} bytes\\)"):
        decoder.close()
    decoder.close()  # nothing left: a clean end
    cut_in_header = Decoder()
    cut_in_header.feed(frame[:3])
    with pytest.raises(ProtocolError, match=r"\(3 bytes\)"):
        cut_in_header.close()
    whole = Decoder()
    whole.feed(frame)
    assert whole.next() == Publish("ident", "chan", b"x" * 100)
    whole.close()
