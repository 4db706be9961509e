"""The Python client waits for a server that runs behind the microphone instead of hanging up on it."""

from __future__ import annotations

import asyncio

import numpy as np
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer

from moshivis.server import protocol as P
from moshivis.server.client import CHUNK, chat


def lagging_app(lag_s: float) -> web.Application:
    """A stand-in server: handshake, then one 80 ms PCM frame back per PCM frame received, `lag_s` late."""

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        pending: list[asyncio.Task] = []

        async def answer(i: int) -> None:
            await asyncio.sleep(lag_s)
            if not ws.closed:
                await ws.send_bytes(bytes([P.PCM]) + np.full(CHUNK, 1000 + i, "<i2").tobytes())

        async for m in ws:
            if m.type != WSMsgType.BINARY:
                continue
            if m.data[0] == P.IMAGE:
                await ws.send_bytes(bytes([P.HANDSHAKE]))
            elif m.data[0] == P.PCM:
                pending.append(asyncio.create_task(answer(len(pending))))
        for t in pending:
            t.cancel()
        return ws

    app = web.Application()
    app.router.add_get("/api/chat", handler)
    return app


def run(lag_s: float, drain_s: float) -> int:
    async def go() -> int:
        server = TestServer(lagging_app(lag_s))
        await server.start_server()
        try:
            res = await chat(str(server.make_url("/api/chat")), b"img", np.zeros(8 * CHUNK, np.float32),
                             tail_s=0.0, realtime=False, pcm=True, drain_s=drain_s)
            return len(res.audio) // CHUNK
        finally:
            await server.close()

    return asyncio.run(go())


def test_client_waits_for_a_lagging_server():
    # 8 frames sent; the server answers each 2.5 s late. Without draining, the client hangs up after its
    # 1 s grace and gets nothing; with it, it gets every frame.
    assert run(lag_s=2.5, drain_s=0.0) == 0
    assert run(lag_s=2.5, drain_s=10.0) == 8
