"""Token sampling: temperature + top-k, greedy (argmax) when the temperature is 0."""

from __future__ import annotations

import torch


def sample_token(logits: torch.Tensor, temperature: float, top_k: int,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """logits: [..., V] -> token ids [...] (long).

    Greedy when temperature <= 0 (first maximum on ties, as torch.argmax). Otherwise softmax of
    logits / temperature restricted to the top_k largest (top_k <= 0: no restriction), then one draw.
    """
    if temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    flat = probs.reshape(-1, probs.shape[-1])
    if 0 < top_k < flat.shape[-1]:
        top_p, top_i = flat.topk(top_k, dim=-1)
        pick = torch.multinomial(top_p, 1, generator=generator)
        tokens = top_i.gather(-1, pick)
    else:
        tokens = torch.multinomial(flat, 1, generator=generator)
    return tokens.view(probs.shape[:-1])
