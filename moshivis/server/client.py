"""A Python client of `/api/chat` that does what the reference web client does: send the image, wait for
the handshake, stream the microphone (here: a waveform) as Ogg/Opus in 80 ms chunks, and collect Moshi's
coloured text and Opus audio. Used by the tests, the load benchmark, and `moshivis chat-file`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import protocol as P

SAMPLE_RATE = 24_000
CHUNK = 1920  # 80 ms


@dataclass
class ChatResult:
    pieces: list[tuple[str, int]] = field(default_factory=list)  # (text, gate 0..10)
    audio: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # Moshi's voice, 24 kHz
    handshake_s: float | None = None  # connect -> handshake
    error: str | None = None  # a 0x05 message from the server
    close_code: int | None = None
    first_text_s: float | None = None  # end of the question -> first text piece

    @property
    def text(self) -> str:
        return "".join(p for p, _ in self.pieces).strip()


async def chat(url: str, image: bytes, audio: np.ndarray, *, tail_s: float = 4.0, realtime: bool = True,
               pcm: bool = False, typed: str | None = None, new_image: bytes | None = None,
               timeout: float = 60.0, headers: dict[str, str] | None = None, drain_s: float = 10.0) -> ChatResult:
    """One conversation. audio: the user's question, float32 at 24 kHz, followed by `tail_s` of silence
    while Moshi answers. realtime: send one chunk per 80 ms (as a microphone would); else as fast as the
    server takes it. pcm: use the 0x09 PCM extension instead of Opus. typed: a question sent as text
    (0x02) right after the handshake. new_image: sent half way through the audio (switch images).
    drain_s: after the last chunk, wait up to this long for Moshi's audio to cover what was sent (the server
    answers one frame per frame, but a loaded server runs behind the microphone), then hang up."""
    import aiohttp
    import sphn

    res = ChatResult()
    writer, reader = sphn.OpusStreamWriter(SAMPLE_RATE), sphn.OpusStreamReader(SAMPLE_RATE)
    received: list[np.ndarray] = []
    silence = np.zeros(int(tail_s * SAMPLE_RATE), np.float32)
    stream = np.concatenate([np.asarray(audio, np.float32).reshape(-1), silence])
    n_chunks = len(stream) // CHUNK
    question_end = len(audio) / SAMPLE_RATE
    t0 = time.monotonic()
    t_question_end: list[float] = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, headers=headers or {}, max_msg_size=16 << 20) as ws:
            await ws.send_bytes(bytes([P.IMAGE]) + image)

            async def receive() -> None:
                async for m in ws:
                    if m.type != aiohttp.WSMsgType.BINARY or not m.data:
                        continue
                    kind, payload = m.data[0], m.data[1:]
                    if kind == P.HANDSHAKE:
                        res.handshake_s = time.monotonic() - t0
                    elif kind == P.COLORED_TEXT and payload:
                        if res.first_text_s is None and t_question_end:
                            res.first_text_s = time.monotonic() - t_question_end[0]
                        res.pieces.append((payload[1:].decode("utf-8", "replace"), payload[0]))
                    elif kind == P.TEXT:
                        res.pieces.append((payload.decode("utf-8", "replace"), 0))
                    elif kind == P.AUDIO:
                        received.append(reader.append_bytes(payload))
                    elif kind == P.PCM:
                        received.append(np.frombuffer(payload, "<i2").astype(np.float32) / 32768.0)
                    elif kind == P.ERROR:
                        res.error = payload.decode("utf-8", "replace")

            recv_task = asyncio.create_task(receive())
            deadline = time.monotonic() + timeout
            while res.handshake_s is None and not recv_task.done():
                if time.monotonic() > deadline:
                    raise TimeoutError("no handshake from the server")
                await asyncio.sleep(0.01)
            if res.handshake_s is not None:
                if typed is not None:
                    await ws.send_bytes(bytes([P.TEXT]) + typed.encode("utf-8"))
                start = time.monotonic()
                for i in range(n_chunks):
                    if recv_task.done():
                        break
                    chunk = stream[i * CHUNK:(i + 1) * CHUNK]
                    if pcm:
                        await ws.send_bytes(P.pcm((np.clip(chunk, -1, 1) * 32767).astype("<i2").tobytes()))
                    else:
                        data = writer.append_pcm(chunk)
                        if data:
                            await ws.send_bytes(P.audio(data))
                    if new_image is not None and i == n_chunks // 2:
                        await ws.send_bytes(bytes([P.IMAGE]) + new_image)
                    if not t_question_end and (i + 1) * CHUNK >= question_end * SAMPLE_RATE:
                        t_question_end.append(time.monotonic())
                    if realtime:
                        await asyncio.sleep(max(0.0, start + (i + 1) * CHUNK / SAMPLE_RATE - time.monotonic()))
                    else:
                        await asyncio.sleep(0)
                # A busy server runs behind: wait (bounded) until its answer covers what was sent, less the
                # codec's and Opus's few frames of delay, so that lag is not mistaken for a short answer.
                sent = n_chunks * CHUNK
                drain_end = time.monotonic() + drain_s
                while (sum(len(r) for r in received) < sent - 3 * CHUNK and not recv_task.done()
                       and time.monotonic() < drain_end):
                    await asyncio.sleep(0.02)
                # Let the last frames come back, then hang up.
                await asyncio.sleep(0.5 if realtime else 1.0)
            await ws.close()
            try:
                await asyncio.wait_for(recv_task, 5)
            except asyncio.TimeoutError:
                recv_task.cancel()
            res.close_code = ws.close_code
    if received:
        res.audio = np.concatenate(received).astype(np.float32)
    return res


def run_chat(*args: Any, **kwargs: Any) -> ChatResult:
    return asyncio.run(chat(*args, **kwargs))
