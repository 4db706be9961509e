"""The WebSocket protocol of `/api/chat` (REFERENCE.md section 4): binary messages, first byte = kind.

Reference kinds (the public MoshiVis client speaks these):
    0x00 handshake        server -> client, once the image is encoded and its K/V are ready
    0x01 audio            both ways: Ogg/Opus pages, 24 kHz mono
    0x02 text             server -> client plain text piece (moshi); client -> server: a TYPED question (ours)
    0x05 error            server -> client: UTF-8 reason, sent right before the server closes the session
    0x07 coloured text    server -> client: one gate byte (0..10) + UTF-8 text piece
    0x08 image            client -> server: raw image file bytes (first message; again later = switch image)

Our extension, for clients without an Opus encoder (Chromium's MediaRecorder cannot write Ogg):
    0x09 pcm              both ways: little-endian int16 mono samples at 24 kHz; a session that sends
                          pcm gets pcm back (otherwise Opus)
"""

from __future__ import annotations

from dataclasses import dataclass

HANDSHAKE = 0x00
AUDIO = 0x01
TEXT = 0x02
ERROR = 0x05
COLORED_TEXT = 0x07
IMAGE = 0x08
PCM = 0x09

CLIENT_KINDS = {AUDIO: "audio", TEXT: "text", IMAGE: "image", PCM: "pcm"}
SERVER_KINDS = {HANDSHAKE: "handshake", AUDIO: "audio", TEXT: "text", ERROR: "error", COLORED_TEXT: "colored_text",
                PCM: "pcm"}


class ProtocolError(ValueError):
    """A message that breaks the protocol; its text is sent to the client as the close reason."""


@dataclass
class Message:
    kind: int
    payload: bytes

    @property
    def name(self) -> str:
        return CLIENT_KINDS.get(self.kind, f"0x{self.kind:02x}")


def parse_client_message(data: bytes | bytearray | memoryview | str) -> Message:
    """A client message -> Message. ProtocolError for text frames, empty messages, unknown kinds, odd-length
    PCM, empty images and text that is not UTF-8."""
    if isinstance(data, str):
        raise ProtocolError("text WebSocket frames are not part of the protocol: send binary messages")
    raw = bytes(data)
    if not raw:
        raise ProtocolError("empty message (the first byte is the message kind)")
    kind, payload = raw[0], raw[1:]
    if kind not in CLIENT_KINDS:
        raise ProtocolError(f"unknown message kind 0x{kind:02x} (client kinds: "
                            + ", ".join(f"0x{k:02x} {v}" for k, v in CLIENT_KINDS.items()) + ")")
    if kind == IMAGE and not payload:
        raise ProtocolError("image message (0x08) with no image bytes")
    if kind == PCM and len(payload) % 2:
        raise ProtocolError(f"pcm message (0x09) of {len(payload)} bytes: int16 samples need an even count")
    if kind == TEXT:
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ProtocolError(f"text message (0x02) is not UTF-8: {e}") from None
    return Message(kind, payload)


def handshake() -> bytes:
    # The reference server sends version and model bytes after the kind; the client only checks the kind.
    return bytes([HANDSHAKE, 0, 0])


def colored_text(piece: str, gate: float) -> bytes:
    """0x07 + gate strength 0..10 (rounded, clipped) + UTF-8 piece."""
    level = max(0, min(10, int(round(10 * float(gate)))))
    return bytes([COLORED_TEXT, level]) + piece.encode("utf-8")


def error(reason: str) -> bytes:
    return bytes([ERROR]) + reason.encode("utf-8")


def audio(ogg: bytes) -> bytes:
    return bytes([AUDIO]) + ogg


def pcm(samples_int16_le: bytes) -> bytes:
    return bytes([PCM]) + samples_int16_le
