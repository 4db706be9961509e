"""Protocol messages: parsing of client messages, building of server messages."""

from __future__ import annotations

import pytest

from moshivis.server import protocol as P


@pytest.mark.parametrize("data, message", [
    (b"", "empty message"),
    ("hello", "text WebSocket frames"),
    (b"\x03abc", "unknown message kind 0x03"),
    (b"\x08", "no image bytes"),
    (b"\x09abc", "even count"),
    (b"\x02\xff\xfe", "not UTF-8"),
])
def test_bad_client_messages_are_named(data, message):
    with pytest.raises(P.ProtocolError, match=message):
        P.parse_client_message(data)


def test_good_client_messages():
    assert P.parse_client_message(b"\x08PNG").name == "image"
    m = P.parse_client_message(bytearray(b"\x09\x00\x01"))
    assert m.kind == P.PCM and m.payload == b"\x00\x01"
    assert P.parse_client_message(b"\x02what colour?").payload.decode() == "what colour?"


def test_server_messages():
    assert P.handshake()[0] == 0x00
    assert P.colored_text(" blue", 0.37) == b"\x07\x04 blue"
    assert P.colored_text("x", 7.0)[1] == 10 and P.colored_text("x", -1)[1] == 0
    assert P.error("busy") == b"\x05busy"
