"""Server settings: where it listens, who may connect, how much it accepts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"  # loopback unless told otherwise
    port: int = 8998
    token: str | None = None  # when set: `?token=` or `Authorization: Bearer` must carry it
    max_sessions: int = 4  # conversations at once (slots of the batched step)
    max_message_bytes: int = 8 << 20  # one WebSocket message
    max_image_bytes: int = 6 << 20  # encoded image file
    max_image_pixels: int = 40_000_000  # decoded width x height (decompression bombs)
    first_message_timeout_s: float = 20.0  # the image must come this soon after connecting
    idle_timeout_s: float = 60.0  # no message from the client for this long closes the session
    max_session_s: float = 1800.0  # total conversation length
    step_wait_s: float = 0.08  # how long a step waits for a slow session's frame before feeding it silence
    max_queued_frames: int = 250  # user audio buffered ahead of the model (20 s)
    max_text_chars: int = 500  # typed question length
