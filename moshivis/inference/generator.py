"""Streaming generation with the semantics of the `moshi` package's `LMGen`.

`step(user_codes [B, 8, 1])` feeds one 80 ms frame of the user's audio codes and returns the model's
tokens [B, 9, 1] (text + 8 audio codebooks), or None while the acoustic delay is not yet filled.
A small ring of the last `max_delay + 2` frames lines the streams up with their delays: the user's
codebook k enters at step t + delay_k, the model's own tokens re-enter one step after being sampled, and
the initial tokens stand in wherever a stream has no value yet.

Everything is per batch item: each item has its own clock, image, image start (`xa_start`) and can be
reset alone, so a server can run one batched step for many conversations.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Iterator

import torch

from ..models.lm import UNGENERATED_TOKEN
from ..models.moshivis import GateTrace, ImageContext, MoshiVis
from ..modules.transformer import TransformerState
from .sampling import sample_token


@dataclass
class SamplingConfig:
    """Temperature 0 = greedy. Defaults are Moshi's (the web client uses text 0.45, audio 0.7)."""

    text_temperature: float = 0.7
    text_top_k: int = 25
    audio_temperature: float = 0.8
    audio_top_k: int = 250
    # Greedy text only: WHEN to start talking. Moshi marks the start of speech with end-of-padding (EPAD).
    # Its timing is uncertain (a pause of 0.2-1 s), so the model spreads P(EPAD) over many frames and
    # argmax (PAD every frame) never starts. With `median_start`, while argmax says PAD the generator keeps
    # the model's survival prod(1 - P(EPAD)) since the last non-pad token and emits EPAD once it falls
    # to 1/2: the median of the model's own start-time distribution. Confident EPADs (P > 1/2, between
    # words) are what argmax picks anyway.
    median_start: bool = True


@dataclass
class Decoded:
    """What `Generator._decode` computes for one step (the part a CUDA graph replays)."""

    transformer_out: torch.Tensor  # [B, dim]
    text_logits: torch.Tensor  # [B, text_card]
    text_token: torch.Tensor  # [B]
    audio_logits: torch.Tensor  # [B, dep_q, audio_card]
    audio_tokens: torch.Tensor  # [B, dep_q] (before delays)
    gates: GateTrace  # per-layer gate values of this step ([B, 1, dim] each); empty without image


@dataclass
class StepTrace(Decoded):
    """What the last step computed (for parity tests, UIs and debugging): `Decoded` and the LM's input."""

    model_input: torch.Tensor  # [B, 17] tokens fed to the LM


@dataclass
class _State:
    cache: torch.Tensor  # [B, 17, max_delay + 2] token ring
    offsets: torch.Tensor  # [B] steps done per item
    lm: TransformerState
    depformer: TransformerState
    image_embeds: torch.Tensor | None  # [B, N, dim]
    image: ImageContext | None
    has_image: torch.Tensor  # [B] bool
    xa_start: torch.Tensor  # [B] first step at which the image is visible
    survival: torch.Tensor  # [B] prod(1 - P(EPAD)) over the current run of padding (updated in place)
    sampling: list[SamplingConfig | None] | None = None  # per item (None: the generator's)


class Generator:
    """Streaming MoshiVis generator. Use as `with gen.streaming(batch_size): gen.step(...)`."""

    def __init__(self, model: MoshiVis, sampling: SamplingConfig | None = None, xa_start: int | None = None,
                 seed: int | None = None, gate_layers: int = 10, static_cache: bool = False) -> None:
        """static_cache: attention reads every KV slot at every step (fixed shapes, `KVCache.static`), as
        CUDA graph replay needs; the default reads only the slots written so far."""
        self.model = model
        self.static_cache = static_cache
        self.lm = model.lm
        self.sampling = sampling or SamplingConfig()
        cfg_xa = model.cfg.adapters.xa_start if model.cfg.adapters is not None else 0
        self.xa_start = cfg_xa if xa_start is None else xa_start
        self.delays = torch.tensor(self.lm.cfg.delays, dtype=torch.long, device=self.lm.device)
        self.max_delay = self.lm.cfg.max_delay
        self.gate_layers = gate_layers  # the UI gate weight averages the last `gate_layers` layers
        self.generator: torch.Generator | None = None
        if seed is not None:
            self.generator = torch.Generator(device=self.lm.device).manual_seed(seed)
        self._state: _State | None = None
        self.last: StepTrace | None = None

    # ------------------------------------------------------------------------------------------ session
    @contextlib.contextmanager
    def streaming(self, batch_size: int = 1) -> Iterator["Generator"]:
        self.start(batch_size)
        try:
            yield self
        finally:
            self._state = None

    def start(self, batch_size: int = 1) -> None:
        """Allocate the streaming state of `batch_size` conversations (all empty, no image)."""
        dev = self.lm.device
        state = _State(
            cache=torch.full((batch_size, self.lm.cfg.num_streams, self.max_delay + 2), UNGENERATED_TOKEN,
                             dtype=torch.long, device=dev),
            offsets=torch.zeros(batch_size, dtype=torch.long, device=dev),
            lm=self.lm.new_state(batch_size),
            depformer=self.lm.new_depformer_cache(batch_size),
            image_embeds=None, image=None,
            has_image=torch.zeros(batch_size, dtype=torch.bool, device=dev),
            xa_start=torch.full((batch_size,), self.xa_start, dtype=torch.long, device=dev),
            survival=torch.ones(batch_size, device=dev),
        )
        state.lm.set_static(self.static_cache)
        state.depformer.set_static(self.static_cache)
        self._state = state

    @property
    def state(self) -> _State:
        if self._state is None:
            raise RuntimeError("call step() inside `with generator.streaming(batch_size):`")
        return self._state

    @property
    def batch_size(self) -> int:
        return self.state.offsets.shape[0]

    def reset(self, mask: torch.Tensor) -> None:
        """Restart the conversations where mask [B] is True (clock, caches, image all cleared)."""
        s = self.state
        mask = mask.to(s.offsets.device)
        s.cache[mask] = UNGENERATED_TOKEN
        s.offsets[mask] = 0
        s.lm.reset(mask)
        s.has_image[mask] = False
        s.xa_start[mask] = self.xa_start
        s.survival.masked_fill_(mask, 1.0)
        if s.sampling is not None:
            for b in mask.nonzero().flatten().tolist():
                s.sampling[b] = None

    def set_sampling(self, item: int, sampling: SamplingConfig | None) -> None:
        """Sampling settings of one conversation (None: back to the generator's own), e.g. a server
        session's URL query. Items with equal settings are still sampled in one call."""
        s = self.state
        if s.sampling is None:
            s.sampling = [None] * self.batch_size
        s.sampling[item] = sampling

    def _sample(self, logits: torch.Tensor, stream: str) -> torch.Tensor:
        """logits [B, V] -> [B], each item with its own temperature / top-k ("text" or "audio")."""
        def params(sp: SamplingConfig) -> tuple[float, int]:
            return ((sp.text_temperature, sp.text_top_k) if stream == "text" else
                    (sp.audio_temperature, sp.audio_top_k))
        groups: dict[tuple[float, int], list[int]] = {}
        for b, sp in enumerate(self._item_sampling()):
            groups.setdefault(params(sp), []).append(b)
        if len(groups) == 1:  # one setting for all: one call, no index tensor (nothing copied to the device)
            return sample_token(logits, *next(iter(groups)), self.generator)
        out = torch.empty(logits.shape[0], dtype=torch.long, device=logits.device)
        for (temp, top_k), rows in groups.items():
            idx = torch.tensor(rows, device=logits.device)
            out[idx] = sample_token(logits[idx], temp, top_k, self.generator)
        return out

    def _item_sampling(self) -> list[SamplingConfig]:
        """Each conversation's sampling settings: its own (`set_sampling`) or the generator's."""
        per_item = self.state.sampling or [None] * self.batch_size
        return [sp or self.sampling for sp in per_item]

    def _median_rule(self) -> list[bool]:
        """Per item: does `SamplingConfig.median_start` apply (greedy text with median_start on)?"""
        return [sp.median_start and sp.text_temperature <= 0 for sp in self._item_sampling()]

    def _median_start(self, logits: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
        """`SamplingConfig.median_start` for the items decoding text greedily; token [B] -> token [B].
        `state.survival` is updated in place and nothing reads the device back, so a CUDA graph can hold it."""
        s = self.state
        flags = self._median_rule()
        if not any(flags):
            return token
        pad, epad = self.lm.cfg.text_padding_id, self.lm.cfg.end_of_text_padding_id
        p_epad = logits.softmax(-1)[:, epad]
        waiting = token == pad
        if not all(flags):
            waiting = waiting & torch.tensor(flags, device=token.device)
        s.survival.copy_(torch.where(waiting, s.survival * (1 - p_epad), torch.ones_like(s.survival)))
        start = waiting & (s.survival <= 0.5)
        s.survival.masked_fill_(start, 1.0)
        return torch.where(start, torch.full_like(token, epad), token)

    # ------------------------------------------------------------------------------------------ image
    @torch.no_grad()  # K/V copied into the running state: with autograd on, each copy would chain a graph
    def set_image(self, image_embeds: torch.Tensor | None, items: torch.Tensor | None = None,
                  xa_start: int | None = None) -> None:
        """Show an image (or none) to some conversations, now or mid-conversation.

        image_embeds: [b, N, dim] projected image tokens (`model.encode_image`), one row per selected
        item, or None to remove the image. items: [B] bool (default: all). Only the K/V of the selected
        items are recomputed. xa_start: steps (from the conversation's start) before the image counts.
        """
        s = self.state
        B = self.batch_size
        sel = torch.ones(B, dtype=torch.bool, device=s.offsets.device) if items is None else items.to(s.offsets.device)
        idx = sel.nonzero().flatten()
        if xa_start is not None:
            s.xa_start[sel] = xa_start
        if image_embeds is None:
            s.has_image[sel] = False
            return
        if image_embeds.shape[0] != idx.numel():
            raise ValueError(f"image_embeds has {image_embeds.shape[0]} rows for {idx.numel()} selected items")
        image_embeds = image_embeds.to(self.lm.dtype)
        new = self.model.image_context(image_embeds)
        if s.image is None or s.image_embeds is None or s.image_embeds.shape[1:] != image_embeds.shape[1:]:
            full = torch.zeros(B, *image_embeds.shape[1:], dtype=image_embeds.dtype, device=image_embeds.device)
            full[idx] = image_embeds
            s.image_embeds = full
            s.image = self.model.image_context(full)
            s.has_image[sel] = True
            return
        s.image_embeds[idx] = image_embeds
        done: set[int] = set()  # a shared cross-attention yields one K/V object for every layer
        for old_kv, new_kv in zip(s.image.kvs, new.kvs):
            if id(old_kv) in done:
                continue
            done.add(id(old_kv))
            old_kv.keys[idx] = new_kv.keys
            old_kv.values[idx] = new_kv.values
        s.has_image[sel] = True

    # ------------------------------------------------------------------------------------------ step
    @torch.no_grad()
    def step(self, user_codes: torch.Tensor, force_text: torch.Tensor | None = None,
             force_audio: torch.Tensor | None = None) -> torch.Tensor | None:
        """user_codes: [B, 8, 1] (extra codebooks are ignored; -1 = no audio) -> [B, 9, 1] or None.

        Output j (returned by step j + max_delay) is text_j, audio cb0_j and the delayed acoustic codebooks
        of the same frame. Items still in their initial delay get UNGENERATED_TOKEN (-2) rows.
        force_text: [B] token to use instead of the sampled one where >= -1 (-2 = sample); force_audio:
        [B, 8] likewise for Moshi's codebooks. Forcing is how a typed prompt enters the text stream (as in
        speechless training samples) and how Moshi's audio is switched off (-1) in text-only mode.
        """
        s = self.state
        model_input = self._feed_user(user_codes)
        image_mask = s.has_image & (s.offsets >= s.xa_start)
        image = s.image if bool(image_mask.any()) else None
        d = self._decode(model_input, image, image_mask, force_text, force_audio)
        return self._commit(model_input, d)

    def _feed_user(self, user_codes: torch.Tensor) -> torch.Tensor:
        """Write the user's frame into the token ring; returns this step's LM input [B, 17]."""
        s = self.state
        cfg = self.lm.cfg
        B = self.batch_size
        n_user = cfg.n_q - cfg.dep_q
        if user_codes.dim() != 3 or user_codes.shape[0] != B or user_codes.shape[2] != 1 \
                or user_codes.shape[1] < n_user:
            raise ValueError(f"user_codes must be [{B}, {n_user}, 1], got {list(user_codes.shape)}")
        user_codes = user_codes[:, :n_user, 0].to(s.cache.device)
        CT = s.cache.shape[2]
        user_delays = self.delays[cfg.dep_q + 1:]
        write = (s.offsets[:, None] + user_delays[None, :]) % CT  # [B, 8]
        s.cache[:, cfg.dep_q + 1:].scatter_(2, write[..., None], user_codes[..., None])

        pos = (s.offsets % CT)[:, None, None].expand(B, cfg.num_streams, 1)
        model_input = s.cache.gather(2, pos)[..., 0]  # [B, 17]
        is_init = s.offsets[:, None] <= self.delays[None, :]
        model_input = torch.where(is_init, self.lm.initial_tokens(B)[..., 0], model_input)
        if (model_input == UNGENERATED_TOKEN).any():
            raise RuntimeError("internal error: an ungenerated token reached the model")
        return model_input

    def _decode(self, model_input: torch.Tensor, image: ImageContext | None, image_mask: torch.Tensor,
                force_text: torch.Tensor | None, force_audio: torch.Tensor | None) -> Decoded:
        """The LM's work of one step: temporal transformer, text token, then the depformer's 8 codebooks.

        model_input [B, 17]; image_mask [B]. Reads nothing back from the device and keeps every shape
        fixed (with `static_cache`), so `GraphGenerator` can capture it in a CUDA graph."""
        s = self.state
        cfg = self.lm.cfg
        trace = GateTrace()
        fusions = self.model.fusions(image, image_mask, trace.record)
        transformer_out, text_logits = self.lm.forward_temporal(model_input[:, :, None], s.lm, fusions)
        text_token = self._sample(text_logits[:, 0].float(), "text")
        text_token = self._median_start(text_logits[:, 0].float(), text_token)
        if force_text is not None:
            force_text = force_text.to(text_token.device)
            forced = force_text >= -1
            text_token = torch.where(forced, force_text, text_token)
            s.survival.masked_fill_(forced, 1.0)

        s.depformer.clear()  # the depformer restarts every frame
        prev = text_token
        audio_tokens, audio_logits = [], []
        for c in range(cfg.dep_q):
            logits = self.lm.depformer_step(c, transformer_out, prev, s.depformer)
            prev = self._sample(logits.float(), "audio")
            if force_audio is not None:
                forced = force_audio[:, c].to(prev.device)
                prev = torch.where(forced >= -1, forced, prev)
            audio_logits.append(logits)
            audio_tokens.append(prev)
        return Decoded(transformer_out[:, 0], text_logits[:, 0], text_token, torch.stack(audio_logits, dim=1),
                       torch.stack(audio_tokens, dim=1), trace)

    def _commit(self, model_input: torch.Tensor, d: Decoded) -> torch.Tensor | None:
        """Advance the clocks, write Moshi's new tokens into the ring, and return the delayed-aligned
        output frame [B, 9, 1] (None while every item is still in its initial delay)."""
        s = self.state
        cfg = self.lm.cfg
        B = self.batch_size
        CT = s.cache.shape[2]
        s.offsets += 1
        write_pos = (s.offsets % CT)[:, None, None]
        s.cache[:, :1].scatter_(2, write_pos, d.text_token[:, None, None])
        s.cache[:, 1:cfg.dep_q + 1].scatter_(2, write_pos.expand(B, cfg.dep_q, 1), d.audio_tokens[..., None])
        self.last = StepTrace(**{f.name: getattr(d, f.name) for f in dataclasses.fields(d)}, model_input=model_input)

        if bool((s.offsets <= self.max_delay).all()):
            return None
        gen_delays = self.delays[:cfg.dep_q + 1]
        index = (s.offsets[:, None] - self.max_delay + gen_delays[None, :]) % CT  # [B, 9]
        out = s.cache[:, :cfg.dep_q + 1].gather(2, index[..., None])
        out[s.offsets <= self.max_delay] = UNGENERATED_TOKEN
        return out

    # ------------------------------------------------------------------------------------------ gates
    def gate_means(self) -> torch.Tensor | None:
        """[B, L] mean gate per adapted layer at the last step (None without an image)."""
        if self.last is None:
            return None
        m = self.last.gates.means()
        return None if m is None else m[:, -1]

    def gate_weight(self) -> torch.Tensor:
        """[B] the UI's gate strength of the last step: mean over the last `gate_layers` layers (0 with no
        image), as the reference server colours text."""
        m = self.gate_means()
        if m is None:
            return torch.zeros(self.batch_size)
        return m[:, -min(self.gate_layers, m.shape[1]):].mean(-1)
