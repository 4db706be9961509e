"""One forward of a training micro-batch, as a module (so DDP/FSDP wrap it like any model)."""

from __future__ import annotations

import torch
from torch import nn

from ..models.moshivis import GateTrace, MoshiVis
from .loss import LossResult, LossWeights, moshi_loss


class TrainStep(nn.Module):
    """codes [B, 17, T], loss_mask [B, 17, T], tower features [B, N, hidden] or None, present [B],
    optional inputs [B, 17, T] the transformer reads in place of codes -> (loss pieces, gate means
    [B, T, L] or None)."""

    def __init__(self, model: MoshiVis, weights: LossWeights) -> None:
        super().__init__()
        self.model = model
        self.weights = weights

    def forward(self, codes: torch.Tensor, loss_mask: torch.Tensor, features: torch.Tensor | None,
                present: torch.Tensor, inputs: torch.Tensor | None = None
                ) -> tuple[LossResult, torch.Tensor | None]:
        image, trace = None, None
        if features is not None and self.model.vision is not None and self.model.adapters is not None:
            embeds = self.model.vision.project(features)
            image = self.model.image_context(embeds)
            trace = GateTrace(channel_means=True)  # detached means: logged, not trained
        out = self.model(codes, image=image, image_mask=present if image is not None else None, gates=trace,
                         inputs=inputs)
        means = trace.means() if trace is not None else None
        res = moshi_loss(out, codes, loss_mask, self.weights)
        if image is None:
            # No image in this micro-batch: the adapters are not reached, and in adapters mode the loss would
            # have no graph at all. Every rank must back-propagate the same parameters (DDP's all-reduce
            # waits for each one; a rank that skipped would hang the others), so the trainable parameters
            # the forward did not use join the graph with weight zero: their gradient is exactly 0.
            unused = [p for _, p in self.model.adapter_parameters() if p.requires_grad]
            if unused:
                res.text_sum = res.text_sum + 0.0 * torch.stack([p.sum() for p in unused]).sum()
        return res, means
