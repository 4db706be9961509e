"""Streaming generation replayed from CUDA graphs: the same steps as `Generator`, without launch overhead.

At batch 1 a step of the 7B model is thousands of small kernels (32 temporal layers, then 8 depformer
steps of 6 layers, each with its sampling), and on a GPU their launches, not the arithmetic, set the
time: 113 ms per step eager on an H100 against an 80 ms frame. A CUDA graph records the launches of one
step once and replays them as a single launch.

What is replayed is `Generator._decode` (temporal transformer, text token, depformer and its tokens),
which reads nothing back from the device and, with static KV caches (`KVCache.static`), has the same
shapes at every step. The token ring around it (`_feed_user`, `_commit`) stays eager: a few small ops and
the one read-back the caller needs anyway (the output frame).

One graph is captured per situation that changes the recorded work, lazily:
- with or without an image visible (without one, the step is exactly Moshi's: no cross-attention);
- the sampling settings (greedy or temperature / top-k), uniform over the batch. Items with different
  settings (`set_sampling`) run eagerly, as does anything not on a CUDA device.
The first step of each situation runs eagerly on a side stream (CUDA's warm-up before capture); the
graph is captured at the second and replayed from then on. `start()` drops every graph (new state
tensors); `set_image()` drops the image graphs when it had to allocate a new image context.

Tensors in `last` (`StepTrace`) are the graph's own output buffers: the next step overwrites them. Clone
what you keep.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Hashable

import torch

from ..models.moshivis import ImageContext, MoshiVis
from .generator import Decoded, Generator, SamplingConfig


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    model_input: torch.Tensor  # [B, 17] static input buffers, copied into before each replay
    image_mask: torch.Tensor  # [B] bool
    force_text: torch.Tensor  # [B] (-2 = sample)
    force_audio: torch.Tensor  # [B, dep_q]
    out: Decoded  # static output buffers


class GraphGenerator(Generator):
    """`Generator` whose per-step LM work is replayed from CUDA graphs (see the module docstring).

    Same arguments and results as `Generator(static_cache=True)`; the model must be on a CUDA device.
    """

    def __init__(self, model: MoshiVis, sampling: SamplingConfig | None = None, xa_start: int | None = None,
                 seed: int | None = None, gate_layers: int = 10) -> None:
        super().__init__(model, sampling, xa_start, seed, gate_layers, static_cache=True)
        if self.lm.device.type != "cuda":
            raise ValueError(f"GraphGenerator needs the model on a CUDA device, not {self.lm.device}")
        self._graphs: dict[Hashable, _Captured] = {}
        self._warm: set[Hashable] = set()
        self.captures = 0  # graphs captured so far (for tests and logs)

    def start(self, batch_size: int = 1) -> None:
        super().start(batch_size)
        self._graphs.clear()
        self._warm.clear()

    def set_image(self, image_embeds: torch.Tensor | None, items: torch.Tensor | None = None,
                  xa_start: int | None = None) -> None:
        before = self.state.image
        super().set_image(image_embeds, items, xa_start)
        if self.state.image is not before:  # a new K/V allocation: graphs holding the old one are stale
            for key in [k for k in self._graphs if k[0]]:
                del self._graphs[key]
            self._warm = {k for k in self._warm if not k[0]}

    def _key(self, image: ImageContext | None) -> Hashable | None:
        """What decides the recorded work, or None when this step must run eagerly."""
        configs = {dataclasses.astuple(sp) for sp in self._item_sampling()}
        if len(configs) != 1:
            return None
        return (image is not None, *configs.pop())

    def _decode(self, model_input: torch.Tensor, image: ImageContext | None, image_mask: torch.Tensor,
                force_text: torch.Tensor | None, force_audio: torch.Tensor | None) -> Decoded:
        key = self._key(image)
        if key is None:
            return super()._decode(model_input, image, image_mask, force_text, force_audio)
        cap = self._graphs.get(key)
        if cap is None and key not in self._warm:
            # CUDA's rule: run the work once on a side stream before capturing it (lazy kernel and
            # workspace set-up). This step's result is a real one; the graph comes next step.
            side = torch.cuda.Stream(device=model_input.device)
            side.wait_stream(torch.cuda.current_stream(model_input.device))
            with torch.cuda.stream(side):
                out = super()._decode(model_input, image, image_mask, force_text, force_audio)
            torch.cuda.current_stream(model_input.device).wait_stream(side)
            self._warm.add(key)
            return out
        if cap is None:
            cap = self._capture(model_input, image, image_mask)
            self._graphs[key] = cap
        self._fill(cap, model_input, image_mask, force_text, force_audio)
        cap.graph.replay()
        return cap.out

    def _fill(self, cap: _Captured, model_input: torch.Tensor, image_mask: torch.Tensor,
              force_text: torch.Tensor | None, force_audio: torch.Tensor | None) -> None:
        cap.model_input.copy_(model_input)
        cap.image_mask.copy_(image_mask)
        if force_text is None:
            cap.force_text.fill_(-2)
        else:
            cap.force_text.copy_(force_text)
        if force_audio is None:
            cap.force_audio.fill_(-2)
        else:
            cap.force_audio.copy_(force_audio)

    def _capture(self, model_input: torch.Tensor, image: ImageContext | None, image_mask: torch.Tensor) -> _Captured:
        """Record `_decode` on static buffers. Recording runs no kernel, so the state is not advanced."""
        B, dep_q = self.batch_size, self.lm.cfg.dep_q
        bufs = (torch.empty_like(model_input), torch.empty_like(image_mask),
                torch.full((B,), -2, dtype=torch.long, device=model_input.device),
                torch.full((B, dep_q), -2, dtype=torch.long, device=model_input.device))
        graph = torch.cuda.CUDAGraph()
        if self.generator is not None:
            # A seeded generator's Philox offset must advance on every replay, not only at capture.
            graph.register_generator_state(self.generator)
        torch.cuda.synchronize(model_input.device)
        # thread_local: a server steps the model in a worker thread while codec threads keep using CUDA
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            out = super()._decode(bufs[0], image, bufs[1], bufs[2], bufs[3])
        self.captures += 1
        return _Captured(graph, *bufs, out)


def make_generator(model: MoshiVis, sampling: SamplingConfig | None = None, xa_start: int | None = None,
                   seed: int | None = None, cuda_graph: bool | None = None) -> Generator:
    """The generator for `model`: `GraphGenerator` on a CUDA device, else `Generator`.

    cuda_graph: None = decide by the model's device; False = always eager; True = graphs (a CPU model
    raises). Both give the same tokens (`tests/inference/test_static_and_graphs.py`)."""
    use = model.lm.device.type == "cuda" if cuda_graph is None else cuda_graph
    if use:
        return GraphGenerator(model, sampling, xa_start, seed)
    return Generator(model, sampling, xa_start, seed)
