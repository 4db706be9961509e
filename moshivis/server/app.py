"""`moshivis serve`: the aiohttp application.

    GET  /            the web page (static, no build step)
    GET  /api/chat    WebSocket conversation (protocol.py, session.py)
    GET  /health      {"status": "ok", ...} while the step loop runs
    GET  /metrics     per-step latency percentiles, active sessions, real-time margin, counters

With a token configured, /api/chat and /metrics need it (`?token=` or `Authorization: Bearer ...`);
without one, nothing is checked, which is why the default bind is loopback.
"""

from __future__ import annotations

import hmac
import itertools
import logging
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from ..inference.bundle import Bundle
from ..inference.generator import SamplingConfig
from .config import ServerConfig
from .engine import BatchedEngine
from .session import Session, SessionError, parse_query

log = logging.getLogger("moshivis.server")
STATIC = Path(__file__).parent / "static"
ENGINE: web.AppKey[BatchedEngine] = web.AppKey("engine", BatchedEngine)
CONFIG: web.AppKey[ServerConfig] = web.AppKey("config", ServerConfig)
STATS: web.AppKey[dict] = web.AppKey("stats", dict)
IDS: web.AppKey[Any] = web.AppKey("ids", object)


def _authorised(request: web.Request, token: str | None) -> bool:
    if token is None:
        return True
    given = request.query.get("token")
    auth = request.headers.get("Authorization", "")
    if given is None and auth.startswith("Bearer "):
        given = auth[len("Bearer "):]
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


async def chat(request: web.Request) -> web.StreamResponse:
    app = request.app
    cfg, engine, stats = app[CONFIG], app[ENGINE], app[STATS]
    if not _authorised(request, cfg.token):
        stats["refused_token"] += 1
        raise web.HTTPUnauthorized(text="missing or wrong access token\n")
    sid = f"s{next(app[IDS])}"
    ws = web.WebSocketResponse(max_msg_size=cfg.max_message_bytes, heartbeat=30.0)
    await ws.prepare(request)
    stats["sessions"] += 1
    try:
        options = parse_query(request.query, engine.sampling)
    except SessionError as e:
        await ws.send_bytes(bytes([0x05]) + str(e).encode())
        await ws.close(code=1008, message=str(e).encode()[:120])
        stats["closed_bad"] += 1
        return ws
    peer = request.remote
    log.info("[%s] connected from %s", sid, peer)
    t0 = time.monotonic()
    session = Session(ws, engine, cfg, sid, options)
    reason = await session.run()
    if reason.startswith(("closed", "protocol")):
        stats["closed_bad"] += 1
    log.info("[%s] ended after %.1f s: %s (%s)", sid, time.monotonic() - t0, reason, session.counts)
    return ws


async def health(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    running = engine._task is not None and not engine._task.done()
    return web.json_response({"status": "ok" if running else "step loop stopped",
                              "active_sessions": engine.active_sessions}, status=200 if running else 503)


async def metrics(request: web.Request) -> web.Response:
    app = request.app
    if not _authorised(request, app[CONFIG].token):
        app[STATS]["refused_token"] += 1
        raise web.HTTPUnauthorized(text="missing or wrong access token\n")
    return web.json_response({**app[ENGINE].metrics(), **app[STATS]})


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")


def make_app(bundle: Bundle, cfg: ServerConfig | None = None, sampling: SamplingConfig | None = None) -> web.Application:
    cfg = cfg or ServerConfig()
    app = web.Application(client_max_size=cfg.max_message_bytes)
    app[CONFIG] = cfg
    app[STATS] = {"sessions": 0, "closed_bad": 0, "refused_token": 0}
    app[IDS] = itertools.count(1)

    async def start_engine(app: web.Application) -> Any:
        engine = BatchedEngine(bundle, cfg.max_sessions, sampling, cfg.step_wait_s, cfg.max_queued_frames)
        app[ENGINE] = engine
        engine.start()
        yield
        await engine.close()

    app.cleanup_ctx.append(start_engine)
    app.router.add_get("/", index)
    app.router.add_get("/api/chat", chat)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_static("/static/", STATIC)
    return app


def serve(bundle: Bundle, cfg: ServerConfig, sampling: SamplingConfig | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if cfg.host not in ("127.0.0.1", "localhost", "::1") and cfg.token is None:
        log.warning("listening on %s with no access token: anyone who can reach this port can use the model",
                    cfg.host)
    web.run_app(make_app(bundle, cfg, sampling), host=cfg.host, port=cfg.port)
