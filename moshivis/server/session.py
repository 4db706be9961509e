"""One WebSocket conversation: image first, then audio both ways, typed questions, image switches.

Order: the first message must be an image (0x08); the session then takes a slot of the engine, encodes
the image, and sends the handshake (0x00). After it: audio (0x01 Ogg/Opus or 0x09 PCM), typed text
(0x02) and new images (0x08). Anything else, a message out of order, a limit exceeded, or undecodable
data closes THIS session with a 0x05 error message and a WebSocket close reason; the others go on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from aiohttp import WSMsgType, web

from ..inference.generator import SamplingConfig
from . import protocol as P
from .config import ServerConfig
from .engine import BatchedEngine, EngineBusy, Slot, StepOutput

log = logging.getLogger("moshivis.server")

# URL query -> (sampling field, type); the reference client's names first, then short aliases.
_QUERY_SAMPLING = {"text_temperature": ("text_temperature", float), "text_topk": ("text_top_k", int),
                   "audio_temperature": ("audio_temperature", float), "audio_topk": ("audio_top_k", int),
                   "text_top_k": ("text_top_k", int), "audio_top_k": ("audio_top_k", int)}


class SessionError(Exception):
    """Closes the session; the text goes to the client."""


@dataclass
class SessionOptions:
    sampling: SamplingConfig | None
    xa_start: int | None


def parse_query(query: Mapping[str, str], default: SamplingConfig) -> SessionOptions:
    """Sampling settings and xa_start from the URL query (unknown keys, such as the reference client's
    image_resolution or pad_mult, are ignored); a bad value raises SessionError naming the key."""
    values: dict[str, Any] = {}
    for key, (field_name, typ) in _QUERY_SAMPLING.items():
        if key in query:
            try:
                v = typ(query[key])
            except ValueError:
                raise SessionError(f"query {key}={query[key]!r} is not a {typ.__name__}") from None
            if (typ is float and not 0.0 <= v <= 5.0) or (typ is int and not 0 <= v <= 100_000):
                raise SessionError(f"query {key}={v} is out of range")
            values[field_name] = v
    xa = None
    if "xa_start" in query:
        try:
            xa = int(query["xa_start"])
        except ValueError:
            raise SessionError(f"query xa_start={query['xa_start']!r} is not an integer") from None
        if not 0 <= xa <= 100_000:
            raise SessionError(f"query xa_start={xa} is out of range")
    return SessionOptions(dataclasses.replace(default, **values) if values else None, xa)


class Session:
    def __init__(self, ws: web.WebSocketResponse, engine: BatchedEngine, cfg: ServerConfig, sid: str,
                 options: SessionOptions) -> None:
        self.ws, self.engine, self.cfg, self.sid, self.options = ws, engine, cfg, sid, options
        self.slot: Slot | None = None
        self.opus_in: Any = None
        self.opus_out: Any = None
        self.pcm_mode = False
        self.outbox: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=2000)
        self.started = time.monotonic()
        self.counts = {"in": 0, "out_audio": 0, "out_text": 0}

    # ----------------------------------------------------------------------------------- output
    def on_output(self, out: StepOutput) -> None:
        """Called by the engine loop after each step (event loop thread)."""
        if out.error:
            self._queue(P.error(out.error))
            self._queue(None)
            return
        if out.text:
            self._queue(P.colored_text(out.text.replace("▁", " "), out.gate))
            self.counts["out_text"] += 1
        if out.pcm is not None:
            if self.pcm_mode:
                self._queue(P.pcm((np.clip(out.pcm, -1, 1) * 32767).astype("<i2").tobytes()))
            else:
                data = self.opus_out.append_pcm(out.pcm)
                if data:
                    self._queue(P.audio(data))
            self.counts["out_audio"] += 1

    def _queue(self, msg: bytes | None) -> None:
        try:
            self.outbox.put_nowait(msg)
        except asyncio.QueueFull:  # a client that does not read: drop it rather than grow without bound
            self.outbox = asyncio.Queue(maxsize=1)
            self.outbox.put_nowait(None)

    async def _sender(self) -> None:
        while True:
            msg = await self.outbox.get()
            if msg is None or self.ws.closed:
                if not self.ws.closed:
                    await self.ws.close(message=b"server closed the session")
                return
            await self.ws.send_bytes(msg)

    # ----------------------------------------------------------------------------------- input
    async def _image(self, payload: bytes) -> None:
        from ..models.vision import decode_image_bytes, preprocess_images

        if len(payload) > self.cfg.max_image_bytes:
            raise SessionError(f"image of {len(payload)} bytes exceeds the limit of {self.cfg.max_image_bytes}")
        try:
            img = decode_image_bytes(payload, self.cfg.max_image_pixels, source="image message")
            pixels = preprocess_images(img, self.engine.model.cfg.vision.image_size)  # type: ignore[union-attr]
        except ValueError as e:
            raise SessionError(str(e)) from None
        assert self.slot is not None
        await self.engine.set_image(self.slot, pixels, self.options.xa_start)

    def _audio(self, msg: P.Message) -> None:
        assert self.slot is not None
        if msg.kind == P.PCM:
            self.pcm_mode = True
            pcm = np.frombuffer(msg.payload, dtype="<i2").astype(np.float32) / 32768.0
        else:
            try:
                pcm = self.opus_in.append_bytes(msg.payload)
            except Exception as e:  # sphn raises ValueError on a bad Ogg page
                raise SessionError(f"audio message is not Ogg/Opus: {e}") from None
        if len(pcm):
            try:
                self.engine.push_audio(self.slot, pcm)
            except OverflowError as e:
                raise SessionError(str(e)) from None

    def _text(self, payload: bytes) -> None:
        assert self.slot is not None
        text = payload.decode("utf-8").strip()
        if len(text) > self.cfg.max_text_chars:
            raise SessionError(f"typed question of {len(text)} characters exceeds {self.cfg.max_text_chars}")
        if text:
            self.engine.push_text(self.slot, text)

    async def _receive(self, timeout: float) -> P.Message | None:
        """The next protocol message, None when the client closed. SessionError on bad input."""
        remaining = self.cfg.max_session_s - (time.monotonic() - self.started)
        if remaining <= 0:
            raise SessionError(f"session time limit of {self.cfg.max_session_s:.0f} s reached")
        try:
            m = await self.ws.receive(timeout=min(timeout, remaining))
        except asyncio.TimeoutError:
            raise SessionError(f"no message for {min(timeout, remaining):.0f} s") from None
        if m.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
            return None
        if m.type == WSMsgType.ERROR:
            raise SessionError(f"WebSocket error: {self.ws.exception()}")
        if m.type == WSMsgType.TEXT:
            return P.parse_client_message(m.data)
        if m.type != WSMsgType.BINARY:
            raise SessionError(f"unexpected WebSocket frame type {m.type}")
        self.counts["in"] += 1
        return P.parse_client_message(m.data)

    # ----------------------------------------------------------------------------------- lifecycle
    async def run(self) -> str:
        """Serve the conversation; returns why it ended (logged by the caller)."""
        import sphn

        sender: asyncio.Task | None = None
        try:
            first = await self._receive(self.cfg.first_message_timeout_s)
            if first is None:
                return "client left before sending an image"
            if first.kind != P.IMAGE:
                raise SessionError(f"the first message must be an image (0x08), got {first.name}")
            try:
                self.slot = await self.engine.acquire(self.on_output)
            except EngineBusy as e:
                raise SessionError(f"busy: {e}; try again later") from None
            if self.options.sampling is not None:
                await self.engine.set_sampling(self.slot, self.options.sampling)
            sr = self.engine.codec.sample_rate
            self.opus_in, self.opus_out = sphn.OpusStreamReader(sr), sphn.OpusStreamWriter(sr)
            await self._image(first.payload)
            sender = asyncio.get_running_loop().create_task(self._sender())
            self._queue(P.handshake())
            self.slot.live = True  # stepped from now on: nothing reaches the client before the handshake
            log.info("[%s] image ready, slot %d, conversation starts", self.sid, self.slot.index)
            while True:
                msg = await self._receive(self.cfg.idle_timeout_s)
                if msg is None:
                    return "client closed"
                if sender.done():
                    return "connection lost while sending"
                if msg.kind == P.IMAGE:
                    await self._image(msg.payload)
                    log.info("[%s] image replaced", self.sid)
                elif msg.kind in (P.AUDIO, P.PCM):
                    self._audio(msg)
                elif msg.kind == P.TEXT:
                    self._text(msg.payload)
        except P.ProtocolError as e:
            await self._fail(str(e), sender)
            return f"protocol error: {e}"
        except SessionError as e:
            await self._fail(str(e), sender)
            return f"closed: {e}"
        except (ConnectionResetError, asyncio.CancelledError):
            return "connection reset"
        finally:
            if sender is not None and not sender.done():
                sender.cancel()
            if self.slot is not None:
                await self.engine.release(self.slot)

    async def _fail(self, reason: str, sender: asyncio.Task | None) -> None:
        if sender is not None and not sender.done():
            sender.cancel()
        if self.ws.closed:
            return
        try:
            await self.ws.send_bytes(P.error(reason))
            # A close reason is at most 123 bytes.
            await self.ws.close(code=1008, message=reason.encode("utf-8")[:120])
        except (ConnectionResetError, RuntimeError):
            pass
