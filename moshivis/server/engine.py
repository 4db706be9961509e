"""Many conversations on one model: a fixed number of slots, one batched streaming step for all of them.

Each slot is a row of one `Generator` (batch = `max_sessions`), with its own codec streams, image,
sampling settings and input queue. The step loop (`run`) waits until some slot has a frame of user audio,
gives the others up to `step_wait_s` to catch up (a real-time client sends a frame every 80 ms; a slower
one is fed silence instead of holding everyone back), then runs ONE forward for every slot in a worker
thread and hands each slot its text piece, gate strength and audio frame. A slot that is free steps on
silence and its output is dropped; on release it is reset (clock, caches, image, settings).

All model work (steps, image encoding) runs on one worker thread, so it is serialised without locks and
the event loop stays free for the sockets.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from ..data.tokenizer import TEXT_EPAD, TEXT_PAD
from ..inference.ask import typed_prompt
from ..inference.bundle import Bundle
from ..inference.cuda_graph import make_generator
from ..inference.generator import SamplingConfig

log = logging.getLogger("moshivis.server")


@dataclass
class StepOutput:
    """What one step gives a slot: a text piece (may be ""), its gate strength, and PCM (float32 [1920])."""

    text: str
    gate: float
    pcm: np.ndarray | None
    error: str | None = None  # this slot's codec failed: its session should close with this reason


@dataclass
class Slot:
    index: int
    on_output: Callable[[StepOutput], None] | None = None
    frames: collections.deque = field(default_factory=collections.deque)  # float32 [frame] each
    pending: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # less than a frame
    forced_text: collections.deque = field(default_factory=collections.deque)  # typed question tokens
    encoder: Any = None
    decoder: Any = None
    steps: int = 0
    underruns: int = 0  # steps fed silence because the client had not sent its frame in time
    active: bool = False  # taken by a session
    live: bool = False  # the conversation has started (handshake sent): only live slots are stepped


class EngineBusy(Exception):
    """Every slot is taken."""


class BatchedEngine:
    """See the module docstring. `start()` inside a running event loop, `close()` at shutdown."""

    def __init__(self, bundle: Bundle, max_sessions: int = 4, sampling: SamplingConfig | None = None,
                 step_wait_s: float = 0.08, max_queued_frames: int = 250, seed: int = 0,
                 codec_threads: int = min(2, os.cpu_count() or 1)) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be >= 1")
        self.bundle = bundle
        self.model, self.codec, self.tokenizer = bundle.model, bundle.codec, bundle.tokenizer
        self.frame = self.codec.frame_size
        self.K = self.model.cfg.lm.dep_q
        self.sampling = sampling or SamplingConfig(0.0, 0, 0.0, 0)
        self.gen = make_generator(self.model, self.sampling, seed=seed)
        self.gen.start(max_sessions)
        self.slots = [Slot(i) for i in range(max_sessions)]
        self.step_wait_s, self.max_queued_frames = step_wait_s, max_queued_frames
        self.silence = self.codec.silence_codes(1)[: self.K, 0]  # [K]
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="moshivis-model")
        self.codec_pool = ThreadPoolExecutor(codec_threads, thread_name_prefix="moshivis-codec")
        self.ready = asyncio.Event()
        self.step_ms: collections.deque = collections.deque(maxlen=2000)
        self.started = time.monotonic()
        self.total_steps = 0
        self._task: asyncio.Task | None = None
        self._closed = False

    # ----------------------------------------------------------------------------------- slots
    @property
    def active_sessions(self) -> int:
        return sum(s.active for s in self.slots)

    async def acquire(self, on_output: Callable[[StepOutput], None]) -> Slot:
        """A free slot, its generator row reset (free rows keep stepping on silence in the batch)."""
        for slot in self.slots:
            if not slot.active:
                slot.active, slot.on_output = True, on_output  # taken now: no other session gets it
                slot.encoder = self.codec.streaming_encoder(1)
                slot.decoder = self.codec.streaming_decoder(1)
                await self._reset(slot)
                return slot
        raise EngineBusy(f"all {len(self.slots)} conversation slots are in use")

    async def _reset(self, slot: Slot) -> None:
        mask = torch.zeros(len(self.slots), dtype=torch.bool)
        mask[slot.index] = True
        await self._on_model(self.gen.reset, mask)
        slot.steps = slot.underruns = 0

    async def release(self, slot: Slot) -> None:
        """Free the slot; its generator row is reset on the model thread (never during a step)."""
        if not slot.active:
            return
        slot.active, slot.live, slot.on_output = False, False, None
        slot.frames.clear()
        slot.forced_text.clear()
        slot.pending = np.zeros(0, np.float32)

        def close_streams() -> None:  # on the model thread: after any step still using them
            for stream in (slot.encoder, slot.decoder):
                if stream is not None:
                    stream.close()
            slot.encoder = slot.decoder = None
        await self._on_model(close_streams)
        await self._reset(slot)

    async def set_image(self, slot: Slot, pixels: torch.Tensor, xa_start: int | None = None) -> None:
        """Encode `pixels` [1, 3, H, W] and show the image to this slot (now, or again mid-conversation)."""
        @torch.no_grad()
        def work() -> None:
            embeds = self.model.encode_image(pixels.to(self.model.lm.device))
            items = torch.zeros(len(self.slots), dtype=torch.bool)
            items[slot.index] = True
            self.gen.set_image(embeds, items=items, xa_start=xa_start)
        await self._on_model(work)

    async def set_sampling(self, slot: Slot, sampling: SamplingConfig | None) -> None:
        await self._on_model(self.gen.set_sampling, slot.index, sampling)

    def push_audio(self, slot: Slot, pcm: np.ndarray) -> None:
        """User audio (float32, the codec's rate) -> whole frames queued for the step loop. A client that
        runs more than `max_queued_frames` ahead gets an error (it is not sending in real time)."""
        data = np.concatenate([slot.pending, np.asarray(pcm, np.float32).reshape(-1)])
        n = len(data) // self.frame
        for i in range(n):
            slot.frames.append(data[i * self.frame:(i + 1) * self.frame])
        slot.pending = data[n * self.frame:]
        if len(slot.frames) > self.max_queued_frames:
            raise OverflowError(f"{len(slot.frames)} audio frames queued (limit {self.max_queued_frames}): "
                                "send audio in real time")
        if n:
            self.ready.set()

    def push_text(self, slot: Slot, text: str) -> None:
        """A typed question: its tokens are forced on this slot's text stream, one per step, as in
        speechless training samples (padding before and after)."""
        slot.forced_text.extend(typed_prompt(self.tokenizer, text))
        self.ready.set()

    # ----------------------------------------------------------------------------------- stepping
    async def _on_model(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.worker, fn, *args)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run())

    async def close(self) -> None:
        self._closed = True
        self.ready.set()
        if self._task is not None:
            await self._task
        self.worker.shutdown(wait=True)
        self.codec_pool.shutdown(wait=True)

    def _has_input(self, slot: Slot) -> bool:
        return slot.live and (bool(slot.frames) or bool(slot.forced_text))

    async def run(self) -> None:
        while not self._closed:
            await self.ready.wait()
            self.ready.clear()
            if self._closed:
                break
            if not any(self._has_input(s) for s in self.slots):
                continue
            # Give the other active slots until the deadline to deliver their frame.
            deadline = time.monotonic() + self.step_wait_s
            while (time.monotonic() < deadline and not self._closed
                   and not all(self._has_input(s) for s in self.slots if s.live)):
                await asyncio.sleep(0.005)
            inputs = {}
            for s in self.slots:
                if not s.live:
                    continue
                frame = s.frames.popleft() if s.frames else None
                if frame is None and not s.forced_text:
                    s.underruns += 1
                forced = s.forced_text.popleft() if s.forced_text else None
                inputs[s.index] = (frame, forced)
            try:
                outputs = await self._on_model(self._step, inputs)
            except Exception as e:  # a model error: end the sessions in this step, keep serving
                log.exception("step failed")
                outputs = {i: StepOutput("", 0.0, None, f"model step failed: {type(e).__name__}: {e}")
                           for i in inputs}
            for index, out in outputs.items():
                slot = self.slots[index]
                if slot.live and slot.on_output is not None:
                    try:
                        slot.on_output(out)
                    except Exception:  # a session's bug must not stop the loop that serves everyone
                        log.exception("slot %d: output handler failed", index)
            if any(self._has_input(s) for s in self.slots):
                self.ready.set()

    @torch.no_grad()
    def _step(self, inputs: dict[int, tuple[np.ndarray | None, int | None]]) -> dict[int, StepOutput]:
        """One batched step (model thread). inputs: slot -> (frame or None = silence, forced text or None)."""
        t0 = time.perf_counter()
        B = len(self.slots)
        user = self.silence[None, :, None].repeat(B, 1, 1)  # [B, K, 1]
        force_text = torch.full((B,), -2, dtype=torch.long)
        failed: dict[int, str] = {}

        def encode(i: int) -> tuple[int, torch.Tensor | str]:
            try:
                frame = inputs[i][0]
                return i, self.slots[i].encoder.step(torch.from_numpy(frame).view(1, 1, -1))[0, : self.K, 0]
            except Exception as e:  # one session's bad audio must not stop the others
                return i, f"audio encoder: {type(e).__name__}: {e}"
        # Each session's codec stream is its own state: they run side by side on `codec_threads` threads
        # (Whisper and torch release the GIL), while the model step below is one batched call.
        for i, codes in self.codec_pool.map(encode, [i for i, (f, _) in inputs.items() if f is not None]):
            if isinstance(codes, str):
                failed[i] = codes
            else:
                user[i, :, 0] = codes
        for i, (_, forced) in inputs.items():
            if forced is not None:
                force_text[i] = forced
        out = self.gen.step(user, force_text=force_text)
        gate = self.gen.gate_weight()
        results: dict[int, StepOutput] = {}

        def decode(i: int) -> tuple[int, StepOutput]:
            assert out is not None
            tok = int(out[i, 0, 0])
            piece = self.tokenizer.piece(tok) if tok not in (TEXT_PAD, TEXT_EPAD) else ""
            codes = out[i:i + 1, 1:, :].clamp(min=0)  # [1, K, 1]
            try:
                pcm = self.slots[i].decoder.step(codes)[0, 0].numpy().astype(np.float32)
            except Exception as e:
                return i, StepOutput("", 0.0, None, f"audio decoder: {type(e).__name__}: {e}")
            return i, StepOutput(piece, float(gate[i]), pcm)
        todo = []
        for i in inputs:
            self.slots[i].steps += 1
            if i in failed:
                results[i] = StepOutput("", 0.0, None, failed[i])
            elif out is not None and int(out[i, 0, 0]) >= 0:  # else: still in the initial delay
                todo.append(i)
        results.update(dict(self.codec_pool.map(decode, todo)))
        self.step_ms.append((time.perf_counter() - t0) * 1000)
        self.total_steps += 1
        return results

    # ----------------------------------------------------------------------------------- metrics
    def metrics(self) -> dict[str, Any]:
        ms = np.array(self.step_ms) if self.step_ms else np.zeros(0)
        frame_ms = 1000 * self.frame / self.codec.sample_rate

        def pct(q: float) -> float | None:
            return round(float(np.percentile(ms, q)), 2) if len(ms) else None
        p50, p95 = pct(50), pct(95)
        return {"active_sessions": self.active_sessions, "max_sessions": len(self.slots),
                "steps": self.total_steps, "step_ms": {"p50": p50, "p90": pct(90), "p95": p95, "p99": pct(99),
                                                       "max": round(float(ms.max()), 2) if len(ms) else None},
                "frame_ms": frame_ms,
                # > 1: a step takes less than the 80 ms of audio it produces (p95, the pessimistic side)
                "real_time_margin": round(frame_ms / p95, 2) if p95 else None,
                "underruns": sum(s.underruns for s in self.slots),
                "uptime_s": round(time.monotonic() - self.started, 1)}
