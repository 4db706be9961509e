"""`moshivis serve` on a tiny bundle (random tiny model, toy codec): the Python protocol client, several
sessions at once, batched steps equal to solo ones, limits, tokens and bad input."""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest
import torch
from aiohttp.test_utils import TestServer
from PIL import Image

from testkit import tiny_model
from moshivis.data.tokenizer import train_tokenizer
from moshivis.inference.bundle import load_bundle, write_bundle_file
from moshivis.models.loaders import save_checkpoint
from moshivis.server.app import make_app
from moshivis.server.client import chat
from moshivis.server.config import ServerConfig
from moshivis.server.engine import BatchedEngine

SENTENCES = ["what colour is the shape", "the circle is blue", "is there a red square", "yes there is"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundle")
    save_checkpoint(tiny_model(), root / "model.safetensors")
    train_tokenizer(SENTENCES * 5, root / "tokenizer", vocab_size=50)
    write_bundle_file(root, "model.safetensors", "tokenizer.model", "py:toy_codec:SmallEnergyCodec")
    return load_bundle(root)


def png(color=(20, 40, 220), size=(80, 60)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def voice(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(24000 * seconds)) / 24000
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * rng.standard_normal(t.shape))).astype(np.float32)


async def serving(bundle, cfg: ServerConfig, fn):
    server = TestServer(make_app(bundle, cfg))
    await server.start_server()
    try:
        return await fn(server)
    finally:
        await server.close()


def url(server, path="/api/chat", **query) -> str:
    return str(server.make_url(path).with_query(query))


def test_python_client_converses_like_the_reference_client(bundle):
    """Image -> handshake -> Ogg/Opus both ways -> coloured text; PCM and typed questions too."""
    async def go(server):
        opus = await chat(url(server), png(), voice(1.0), tail_s=1.5, realtime=False)
        pcm = await chat(url(server), png(), voice(1.0), tail_s=1.5, realtime=False, pcm=True,
                         typed="what colour is the shape", new_image=png((200, 30, 30)))
        return opus, pcm
    opus, pcm = asyncio.run(serving(bundle, ServerConfig(port=0), go))
    for res in (opus, pcm):
        assert res.error is None and res.handshake_s is not None
        assert len(res.pieces) > 0 and all(0 <= g <= 10 for _, g in res.pieces)
        assert len(res.audio) > 24000  # Moshi's voice came back (>1 s)
    # Opus is lossy, PCM is not: both carry real audio
    assert float(np.abs(opus.audio).max()) > 0 and float(np.abs(pcm.audio).max()) > 0


def test_batched_step_equals_each_session_alone(bundle):
    """Two conversations in one batched step give exactly what each gives alone (greedy)."""
    frames = [voice(1.2, seed=s) for s in (1, 2)]

    async def converse(n_sessions: int, which: list[int]):
        engine = BatchedEngine(bundle, max_sessions=n_sessions, step_wait_s=10.0)
        engine.start()
        outs: dict[int, list] = {w: [] for w in which}
        slots = {}
        for w in which:
            slots[w] = await engine.acquire(lambda o, w=w: outs[w].append(o))
            await engine.set_image(slots[w], torch.zeros(1, 3, 56, 56) + 0.1 * w)
            slots[w].live = True
        for w in which:
            engine.push_audio(slots[w], frames[w])
        n = len(frames[0]) // engine.frame
        while min(s.steps for s in slots.values()) < n:
            await asyncio.sleep(0.01)
        await engine.close()
        return {w: ("".join(o.text for o in outs[w]), np.concatenate([o.pcm for o in outs[w]])) for w in which}

    alone = {w: asyncio.run(converse(2, [w]))[w] for w in (0, 1)}
    both = asyncio.run(converse(2, [0, 1]))
    for w in (0, 1):
        assert both[w][0] == alone[w][0]
        np.testing.assert_array_equal(both[w][1], alone[w][1])


def test_busy_token_and_loopback(bundle):
    assert ServerConfig().host == "127.0.0.1"

    async def go(server):
        import aiohttp

        async with aiohttp.ClientSession() as s:
            for q in ({}, {"token": "wrong"}):
                async with s.get(url(server, **q)) as r:
                    assert r.status == 401
            async with s.get(url(server, "/metrics")) as r:
                assert r.status == 401
            async with s.get(url(server, "/health")) as r:
                assert (await r.json())["status"] == "ok"
        # the one slot taken by a slow conversation, a second client is told the server is busy
        first = asyncio.create_task(chat(url(server, token="s3cret"), png(), voice(0.5), tail_s=2.0))
        await asyncio.sleep(0.5)
        second = await chat(url(server, token="s3cret"), png(), voice(0.2), tail_s=0.2, realtime=False)
        done = await first
        bearer = await chat(url(server), png(), voice(0.2), tail_s=0.3, realtime=False,
                            headers={"Authorization": "Bearer s3cret"})
        async with aiohttp.ClientSession() as s:
            async with s.get(url(server, "/metrics", token="s3cret")) as r:
                m = await r.json()
        return second, done, bearer, m
    second, done, bearer, m = asyncio.run(serving(bundle, ServerConfig(port=0, token="s3cret", max_sessions=1), go))
    assert second.error is not None and second.error.startswith("busy")
    assert done.error is None and done.pieces
    assert bearer.error is None and bearer.handshake_s is not None
    assert m["refused_token"] == 3 and m["max_sessions"] == 1 and m["step_ms"]["p50"] > 0


@pytest.mark.parametrize("first, reason", [
    (b"\x01OggS", "first message must be an image"),
    (b"\x08not an image at all", "image message"),
    (b"\x07\x00hi", "unknown message kind"),
])
def test_bad_first_messages_close_with_a_reason(bundle, first, reason):
    async def go(server):
        import aiohttp

        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(url(server)) as ws:
                await ws.send_bytes(first)
                msg = await ws.receive(timeout=10)
                assert msg.data[0] == 0x05
                closed = await ws.receive(timeout=10)
                return msg.data[1:].decode(), ws.close_code, closed
    text, code, _ = asyncio.run(serving(bundle, ServerConfig(port=0), go))
    assert reason in text and code == 1008


def test_decompression_bomb_and_bad_query_are_refused(bundle):
    bomb = png(size=(5000, 5000))  # 25 Mpx of one colour: a small file

    async def go(server):
        bad_image = await chat(url(server), bomb, voice(0.2), tail_s=0.1, realtime=False)
        bad_query = await chat(url(server, text_temperature="hot"), png(), voice(0.2), tail_s=0.1, realtime=False)
        return bad_image, bad_query
    bad_image, bad_query = asyncio.run(serving(bundle, ServerConfig(port=0, max_image_pixels=1_000_000), go))
    assert "exceeds the limit" in (bad_image.error or "")
    assert "text_temperature" in (bad_query.error or "")
