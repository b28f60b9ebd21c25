"""hpfeeds wire framing: message types, encode, and an incremental decoder. Pure, no I/O.

Every message is `uint32 BE total_length (header included) ‖ uint8 opcode ‖ body`, where
`strpack8(s) = uint8 len ‖ utf-8 s` (docs: /work/shared/formats.md §1.1, the reference is
hpfeeds/hpfeeds:hpfeeds/protocol.py). The decoder checks a frame's header as soon as its five
bytes arrive, so an oversize length is refused before any of its body is buffered, and it
raises nothing but `ProtocolError` whatever bytes it is fed. Connection logic (who may send
what, when) lives in `sources/hpfeeds.py` and `sources/hpfeeds_subscriber.py`, not here.
"""

from __future__ import annotations

import hashlib
import struct

import msgspec

from honeyatlas.errors import HoneyatlasError

OP_ERROR = 0
OP_INFO = 1
OP_AUTH = 2
OP_PUBLISH = 3
OP_SUBSCRIBE = 4
OP_UNSUBSCRIBE = 5

HEADER_BYTES = 5
MAXBUF = 1024**2  # the largest body the reference broker accepts
AUTH_FRAME_MAX = HEADER_BYTES + 256 + 20  # INFO and AUTH: strpack8 (<= 256 bytes) + 20-byte value
DIGEST_BYTES = 20  # SHA-1
_HEADER = struct.Struct("!IB")


class ProtocolError(HoneyatlasError):
    """The bytes on the wire are not a valid hpfeeds stream; the connection must be closed."""


class Error(msgspec.Struct, frozen=True):
    text: str


class Info(msgspec.Struct, frozen=True):
    name: str
    nonce: bytes


class Auth(msgspec.Struct, frozen=True):
    ident: str
    digest: bytes  # SHA1(nonce ‖ secret); any length is accepted here, the endpoint compares it


class Publish(msgspec.Struct, frozen=True):
    ident: str
    channel: str
    payload: bytes


class Subscribe(msgspec.Struct, frozen=True):
    ident: str
    channel: str


class Unsubscribe(msgspec.Struct, frozen=True):
    ident: str
    channel: str


Message = Error | Info | Auth | Publish | Subscribe | Unsubscribe


def auth_digest(nonce: bytes, secret: str) -> bytes:
    """What a client proves it knows the secret with: SHA1(nonce ‖ secret_utf8)."""
    return hashlib.sha1(nonce + secret.encode("utf-8")).digest()  # SHA-1 is the protocol's, not our choice


def max_frame_bytes(opcode: int, max_body_bytes: int = MAXBUF) -> int:
    """The largest total length (header included) allowed for `opcode`."""
    if opcode in (OP_INFO, OP_AUTH):
        return AUTH_FRAME_MAX
    if OP_ERROR <= opcode <= OP_UNSUBSCRIBE:
        return HEADER_BYTES + max_body_bytes
    raise ProtocolError(f"unknown opcode {opcode}")


def _pack8(text: str, what: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > 255:
        raise ProtocolError(f"{what} is {len(raw)} bytes of UTF-8; hpfeeds allows at most 255")
    return bytes((len(raw),)) + raw


def _frame(opcode: int, body: bytes) -> bytes:
    if HEADER_BYTES + len(body) > max_frame_bytes(opcode):
        raise ProtocolError(f"message of {HEADER_BYTES + len(body)} bytes exceeds the limit for opcode {opcode}")
    return _HEADER.pack(HEADER_BYTES + len(body), opcode) + body


def encode(message: Message) -> bytes:
    """One message as wire bytes."""
    if isinstance(message, Publish):
        return _frame(
            OP_PUBLISH, _pack8(message.ident, "ident") + _pack8(message.channel, "channel") + message.payload
        )
    if isinstance(message, Auth):
        return _frame(OP_AUTH, _pack8(message.ident, "ident") + message.digest)
    if isinstance(message, Info):
        return _frame(OP_INFO, _pack8(message.name, "broker name") + message.nonce)
    if isinstance(message, Subscribe):
        return _frame(OP_SUBSCRIBE, _pack8(message.ident, "ident") + message.channel.encode("utf-8"))
    if isinstance(message, Unsubscribe):
        return _frame(OP_UNSUBSCRIBE, _pack8(message.ident, "ident") + message.channel.encode("utf-8"))
    if isinstance(message, Error):
        return _frame(OP_ERROR, message.text.encode("utf-8"))
    raise ProtocolError(f"not an hpfeeds message: {type(message).__name__}")


def _unpack8(body: bytes, offset: int, what: str) -> tuple[str, int]:
    if offset >= len(body):
        raise ProtocolError(f"message ends before its {what}")
    end = offset + 1 + body[offset]
    if end > len(body):
        raise ProtocolError(f"{what} length {body[offset]} runs past the end of the message")
    try:
        return body[offset + 1 : end].decode("utf-8"), end
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"{what} is not UTF-8") from exc


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"{what} is not UTF-8") from exc


def decode_body(opcode: int, body: bytes) -> Message:
    """One message from its opcode and body (the bytes after the 5-byte header)."""
    if opcode == OP_PUBLISH:
        ident, offset = _unpack8(body, 0, "ident")
        channel, offset = _unpack8(body, offset, "channel")
        return Publish(ident, channel, body[offset:])
    if opcode == OP_AUTH:
        ident, offset = _unpack8(body, 0, "ident")
        return Auth(ident, body[offset:])
    if opcode == OP_INFO:
        name, offset = _unpack8(body, 0, "broker name")
        return Info(name, body[offset:])
    if opcode in (OP_SUBSCRIBE, OP_UNSUBSCRIBE):
        ident, offset = _unpack8(body, 0, "ident")
        channel = _text(body[offset:], "channel")
        return Subscribe(ident, channel) if opcode == OP_SUBSCRIBE else Unsubscribe(ident, channel)
    if opcode == OP_ERROR:
        return Error(body.decode("utf-8", "replace"))  # shown to a person only
    raise ProtocolError(f"unknown opcode {opcode}")


class Decoder:
    """Turns a byte stream into messages, one frame at a time.

    `feed()` bytes as they arrive, then take messages with `next()` until it returns None.
    The buffer holds at most one incomplete frame (whose header has already been checked)
    plus what was fed since the last `next()`; feed again only after `next()` returned None
    to keep it so.
    """

    def __init__(self, max_body_bytes: int = MAXBUF) -> None:
        self._max_body = max_body_bytes
        self._buffer = bytearray()
        self._head: tuple[int, int] | None = None  # (total length, opcode) of the frame at the front

    @property
    def buffered_bytes(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        self._buffer += data
        self._check_head()

    def next(self) -> Message | None:
        """The next complete message, or None when more bytes are needed."""
        head = self._check_head()
        if head is None or len(self._buffer) < head[0]:
            return None
        length, opcode = head
        body = bytes(self._buffer[HEADER_BYTES:length])
        del self._buffer[:length]
        self._head = None
        return decode_body(opcode, body)

    def close(self) -> None:
        """The stream ended: a frame cut short (bytes left that make no whole message) is a
        `ProtocolError`, so that the caller counts it like any other broken frame instead of
        dropping it unseen. Call after `next()` returned None."""
        if self._buffer:
            wanted = f" of {self._head[0]}" if self._head is not None else ""
            problem = f"stream ended inside a frame ({len(self._buffer)}{wanted} bytes)"
            self._buffer.clear()
            self._head = None
            raise ProtocolError(problem)

    def _check_head(self) -> tuple[int, int] | None:
        if self._head is None and len(self._buffer) >= HEADER_BYTES:
            length, opcode = _HEADER.unpack_from(self._buffer)
            limit = max_frame_bytes(opcode, self._max_body)  # raises on an unknown opcode
            if length < HEADER_BYTES:
                raise ProtocolError(f"frame length {length} is shorter than the 5-byte header")
            if length > limit:
                raise ProtocolError(f"frame of {length} bytes exceeds the limit of {limit} for opcode {opcode}")
            self._head = (length, opcode)
        return self._head
