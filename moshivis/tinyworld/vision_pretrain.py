"""Pre-train the tiny world's image encoder: a small SigLIP tower trained with the SigLIP sigmoid loss on
easy-vqa images paired with captions made from their attributes.

The tower is the very `transformers.SiglipVisionModel` that MoshiVis uses (built through `ImageEncoder` and
a `VisionConfig`), so the saved state dict loads into `ImageEncoder.tower` as is. During pre-training a
small text encoder (word embeddings + 2 transformer layers, mean-pooled) and a linear head on the
mean-pooled tower output map both sides into one embedding space; both are kept next to the tower only
for evaluation. MoshiVis itself consumes the tower's `last_hidden_state` (all 64 tokens).

    python -m moshivis.tinyworld.vision_pretrain --out tinyworld/vision

writes `tower.safetensors` + `vision_config.json` (what MoshiVis loads), `contrastive_heads.safetensors`
(text encoder, image head, t, b), `report.json` and the model card `README.md`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from moshivis.config import VisionConfig
from moshivis.models.vision import ImageEncoder, preprocess_images
from moshivis.tinyworld.easy_vqa_captions import (
    COLOR,
    HORIZ,
    PAD,
    SHAPE,
    SIZE,
    VALUES,
    VERT,
    VOCAB,
    EasyVqaSet,
    caption_labels,
    load_easy_vqa,
    make_caption,
    tokenize,
)

DEFAULT_OUT = Path("tinyworld/vision")
TOWER_FILE = "tower.safetensors"
CONFIG_FILE = "vision_config.json"
HEADS_FILE = "contrastive_heads.safetensors"

# 64x64 easy-vqa images, 8x8 patches -> an 8x8 grid of 64 tokens. 826k tower parameters (3.3 MB fp32):
# 0.6-0.9 s per 128-image training step on one (shared) CPU thread: 500-750 steps (16-24 epochs) fit in
# the ~7.5 minutes of training that a 10-minute run leaves.
DEFAULT_VISION = VisionConfig(hidden_size=128, intermediate_size=512, num_layers=4, num_heads=4, patch_size=8,
                              image_size=64)


@dataclass
class TextConfig:
    """The throw-away text tower: word embeddings + pre-norm transformer layers, mean-pooled."""

    vocab: tuple[str, ...] = VOCAB
    dim: int = 128
    num_layers: int = 2
    num_heads: int = 4
    max_len: int = 16


# ------------------------------------------------------------------------------------------------ model


class TextEncoder(nn.Module):
    """Word ids [B, L] (PAD = 0 after the end) -> caption features [B, out_dim] (not normalised)."""

    def __init__(self, cfg: TextConfig, out_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(len(cfg.vocab), cfg.dim, padding_idx=PAD)
        self.pos = nn.Parameter(torch.randn(cfg.max_len, cfg.dim) * 0.02)
        layer = nn.TransformerEncoderLayer(cfg.dim, cfg.num_heads, 4 * cfg.dim, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        # Nested tensors are an inference fast path that changes numerics between train and eval: off.
        self.blocks = nn.TransformerEncoder(layer, cfg.num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, out_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        keep = tokens != PAD  # [B, L]
        x = self.tok(tokens) + self.pos[: tokens.shape[1]]
        x = self.norm(self.blocks(x, src_key_padding_mask=~keep))
        pooled = (x * keep[..., None]).sum(1) / keep.sum(1, keepdim=True).clamp(min=1)
        return self.head(pooled)


class SiglipPair(nn.Module):
    """Image tower + linear head, text encoder, and the sigmoid loss's temperature t and bias b.

    `encoder.tower` is the part that is kept; `encoder.proj`/`encoder.norm` (MoshiVis adapter parameters)
    are not used here and not saved.
    """

    def __init__(self, vision: VisionConfig, text: TextConfig, embed_dim: int = 128) -> None:
        super().__init__()
        self.vision_cfg = vision
        self.text_cfg = text
        self.encoder = ImageEncoder(vision, lm_dim=vision.hidden_size)
        self.image_head = nn.Linear(vision.hidden_size, embed_dim)
        self.text = TextEncoder(text, embed_dim)
        # SigLIP init: t' = log 10 (logits scaled by exp(t') = 10), b = -10, so the initial loss is not
        # swamped by the B^2 - B negatives.
        self.logit_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        self.logit_bias = nn.Parameter(torch.tensor(-10.0))

    def tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels [B, 3, 64, 64] in [-1, 1] -> tower last_hidden_state [B, 64, hidden]."""
        return self.encoder.encode_tower(pixels)

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tower tokens [B, N, hidden] -> unit image embeddings [B, E] (mean over tokens, linear head)."""
        return F.normalize(self.image_head(tokens.mean(1)), dim=-1)

    def embed_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.embed_tokens(self.tokens(pixels))

    def embed_texts(self, tokens: torch.Tensor) -> torch.Tensor:
        """Word ids [B, L] -> unit caption embeddings [B, E]."""
        return F.normalize(self.text(tokens), dim=-1)

    def logits(self, img: torch.Tensor, txt: torch.Tensor) -> torch.Tensor:
        return siglip_logits(img, txt, self.logit_scale, self.logit_bias)

    def head_state_dict(self) -> dict[str, torch.Tensor]:
        """Everything but the image encoder (text tower, image head, t, b): the evaluation-only part."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("encoder.")}


def siglip_logits(img: torch.Tensor, txt: torch.Tensor, logit_scale: torch.Tensor,
                  logit_bias: torch.Tensor) -> torch.Tensor:
    """img [B_i, E], txt [B_t, E] (unit norm) -> logits [B_i, B_t] = exp(t') * <x_i, y_j> + b."""
    return logit_scale.exp() * img @ txt.T + logit_bias


def siglip_loss(img: torch.Tensor, txt: torch.Tensor, logit_scale: torch.Tensor, logit_bias: torch.Tensor,
                labels: torch.Tensor | None = None) -> torch.Tensor:
    """The SigLIP pairwise sigmoid loss (Zhai et al. 2023, eq. 1), averaged over images:

        L = -1/|B| * sum_i sum_j log sigmoid(z_ij * (exp(t') * <x_i, y_j> + b))

    z_ij = `labels` [B_i, B_t] in {+1, -1, 0}; default 2 * I - 1 (only the diagonal pairs match), the
    paper's loss. Pairs labelled 0 are left out: easy-vqa has only 24 colour x shape combinations, so a
    batch holds many true off-diagonal pairs (+1) and pairs we cannot judge (an unknown colour, 0).
    """
    logits = siglip_logits(img, txt, logit_scale, logit_bias)
    if labels is None:
        labels = 2 * torch.eye(logits.shape[0], logits.shape[1], device=logits.device) - 1
    labels = labels.to(logits.dtype)
    return -(F.logsigmoid(labels * logits) * (labels != 0)).sum() / img.shape[0]


# ---------------------------------------------------------------------------------------------- training


def to_pixels(images: torch.Tensor, image_size: int) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> normalised pixels [B, 3, S, S] exactly as MoshiVis preprocesses images."""
    return preprocess_images(list(images), image_size)


def caption_batch(attrs: torch.Tensor, rng: random.Random, max_len: int = 16
                  ) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """One fresh random caption per image: (texts, word ids [B, L], labels [B, B] for `siglip_loss`)."""
    caps = [make_caption(a.tolist(), rng) for a in attrs]
    mentions = torch.tensor([c.mention for c in caps], dtype=torch.long)
    texts = [c.text for c in caps]
    return texts, tokenize(texts, max_len=max_len), caption_labels(attrs, mentions)


def train_contrastive(model: SiglipPair, data: EasyVqaSet, steps: int, batch_size: int, *, lr: float = 1e-3,
                      weight_decay: float = 0.05, warmup: int = 50, seed: int = 0, logit_lr_mult: float = 10.0,
                      time_budget_s: float | None = None, progress: bool = True) -> dict[str, Any]:
    """Train `model` in place with the sigmoid loss; returns {"losses": per step, "steps", "seconds", ...}.

    Batches walk shuffled epochs of `data`; every image gets a new random caption each time it is seen.
    LR: linear warm-up then cosine to 0 over the planned steps. With `time_budget_s`, the plan is set
    every 10 steps (from step 20) to what the measured speed allows, so the cosine ends at 0 on time.
    """
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    decay, no_decay, logit = [], [], []
    for name, p in model.named_parameters():
        if name.startswith(("encoder.proj", "encoder.norm")):
            p.requires_grad_(False)  # MoshiVis's adapter projection: not part of pre-training
            continue
        if name.startswith("logit_"):
            logit.append(p)
        # No weight decay on norms, biases and embeddings (as SigLIP / ViT practice).
        elif p.dim() < 2 or name.endswith(".pos") or ".tok." in name:
            no_decay.append(p)
        else:
            decay.append(p)
    # Adam moves a scalar by at most ~lr per step: at 1e-3, t' and b could drift by < 0.5 in our ~600
    # cosine-scheduled steps (SigLIP trains for ~100k), so they get `logit_lr_mult` x the learning rate.
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": no_decay, "weight_decay": 0.0},
                             {"params": logit, "weight_decay": 0.0, "lr": lr * logit_lr_mult}],
                            lr=lr, betas=(0.9, 0.98))
    plan = {"total": steps}
    warmup = min(warmup, max(1, steps // 10))

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        frac = (step - warmup) / max(1, plan["total"] - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    model.train()
    batch_size = min(batch_size, len(data))
    order = torch.randperm(len(data), generator=gen)
    cursor = 0
    losses: list[float] = []
    start = time.perf_counter()
    bar = tqdm(total=steps, desc="siglip pretrain", disable=not progress, dynamic_ncols=True)
    step = 0
    while step < plan["total"]:
        if cursor + batch_size > len(data):
            order, cursor = torch.randperm(len(data), generator=gen), 0
        idx = order[cursor: cursor + batch_size]
        cursor += batch_size
        pixels = to_pixels(data.images[idx], model.vision_cfg.image_size)
        _texts, tokens, labels = caption_batch(data.attrs[idx], rng, model.text_cfg.max_len)
        loss = siglip_loss(model.embed_images(pixels), model.embed_texts(tokens), model.logit_scale,
                           model.logit_bias, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        step += 1
        if time_budget_s is not None and step >= 20 and step % 10 == 0:
            # Re-plan from the mean speed so far (the machine is shared, so speed drifts): the cosine
            # then ends at 0 when the budget does, never more than `steps`.
            elapsed = time.perf_counter() - start
            plan["total"] = min(steps, max(step + 1, int(time_budget_s * step / elapsed)))
            bar.total = plan["total"]
            if elapsed > time_budget_s:
                break
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}", t=f"{model.logit_scale.exp().item():.1f}",
                        b=f"{model.logit_bias.item():.2f}")
    bar.close()
    model.eval()
    return {"losses": losses, "steps": step, "planned_steps": steps, "seconds": time.perf_counter() - start,
            "lr": lr, "logit_lr_mult": logit_lr_mult, "weight_decay": weight_decay, "warmup": warmup,
            "batch_size": batch_size}


# -------------------------------------------------------------------------------------------- evaluation


@torch.no_grad()
def encode(model: SiglipPair, data: EasyVqaSet, batch: int = 250) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (tower tokens [N, 64, hidden], unit image embeddings [N, E]) for every image of `data`."""
    model.eval()
    toks, embs = [], []
    for i in range(0, len(data), batch):
        t = model.tokens(to_pixels(data.images[i: i + batch], model.vision_cfg.image_size))
        toks.append(t)
        embs.append(model.embed_tokens(t))
    return torch.cat(toks), torch.cat(embs)


@torch.no_grad()
def zero_shot(model: SiglipPair, emb: torch.Tensor, labels: torch.Tensor, prompts: list[str]) -> dict[str, float]:
    """Classify each image as the prompt it is most similar to; labels [N] (-1 = unknown, skipped)."""
    known = labels >= 0
    txt = model.embed_texts(tokenize(prompts, max_len=model.text_cfg.max_len))
    pred = (emb[known] @ txt.T).argmax(-1)
    return {"accuracy": (pred == labels[known]).float().mean().item(), "chance": 1 / len(prompts),
            "n": int(known.sum())}


def zero_shot_color(model: SiglipPair, emb: torch.Tensor, data: EasyVqaSet) -> dict[str, float]:
    return zero_shot(model, emb, data.attrs[:, COLOR], [f"a {c} shape" for c in VALUES["color"]])


def zero_shot_shape(model: SiglipPair, emb: torch.Tensor, data: EasyVqaSet) -> dict[str, float]:
    return zero_shot(model, emb, data.attrs[:, SHAPE], [f"a {s}" for s in VALUES["shape"]])


@torch.no_grad()
def retrieval(model: SiglipPair, emb: torch.Tensor, data: EasyVqaSet, level: str = "full") -> dict[str, float]:
    """R@1 between test images and one caption per image.

    level "full": every known attribute ("a small red triangle in the bottom left corner");
    "object": colour and shape only ("a red triangle").
    Many images share a caption, so a hit is any retrieved item the caption is TRUE of (label +1), not
    only the paired index; chance = the mean fraction of gallery items that are true. Only images whose
    colour and shape are both known take part, so every pair can be judged.
    """
    keep = (data.attrs[:, [COLOR, SHAPE]] >= 0).all(-1)
    attrs, img = data.attrs[keep], emb[keep]
    rng = random.Random(0)
    if level == "object":
        attrs = attrs.clone()
        attrs[:, [SIZE, VERT, HORIZ]] = -1  # captions then name colour + shape only; truth is unchanged
    elif level != "full":
        raise ValueError(f"retrieval level must be 'full' or 'object', got {level!r}")
    caps = [make_caption(a.tolist(), rng, full=True) for a in attrs]
    txt = model.embed_texts(tokenize([c.text for c in caps], max_len=model.text_cfg.max_len))
    truth = caption_labels(attrs, torch.tensor([c.mention for c in caps])) == 1  # [N_img, N_txt]
    sim = img @ txt.T
    rows = torch.arange(len(caps))
    return {
        "image_to_text_r1": truth[rows, sim.argmax(1)].float().mean().item(),
        "text_to_image_r1": truth[sim.argmax(0), rows].float().mean().item(),
        "chance": truth.float().mean().item(),
        "exact_index_image_to_text_r1": (sim.argmax(1) == rows).float().mean().item(),
        "n": len(caps),
        "distinct_captions": len({c.text for c in caps}),
    }


def linear_probe(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
                 num_classes: int, l2: float = 1e-3, iters: int = 60) -> dict[str, float]:
    """Multinomial logistic regression on frozen features x [N, D] (standardised on train), L-BFGS.

    Rows with label -1 (unknown) are dropped. Returns test accuracy and the majority-class baseline.
    """
    tr, te = y_train >= 0, y_test >= 0
    xtr, ytr, xte, yte = x_train[tr].float(), y_train[tr], x_test[te].float(), y_test[te]
    mean, std = xtr.mean(0), xtr.std(0).clamp(min=1e-6)
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
    w = torch.zeros(xtr.shape[1], num_classes, requires_grad=True)
    bias = torch.zeros(num_classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, bias], lr=1.0, max_iter=iters, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(xtr @ w + bias, ytr) + l2 * w.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        acc = ((xte @ w + bias).argmax(-1) == yte).float().mean().item()
    majority = torch.bincount(ytr, minlength=num_classes).argmax()
    return {"accuracy": acc, "majority": (yte == majority).float().mean().item(), "n_test": int(te.sum())}


def probes(tr_tokens: torch.Tensor, te_tokens: torch.Tensor, train: EasyVqaSet, test: EasyVqaSet
           ) -> dict[str, dict[str, float]]:
    """Linear probes: colour / shape / size from mean-pooled features; vertical and horizontal position
    (top/middle/bottom, left/center/right) from the flattened 8x8 token grid AND from the pooled feature,
    to show where the position information lives."""
    tr_pool, te_pool = tr_tokens.mean(1), te_tokens.mean(1)
    tr_grid, te_grid = tr_tokens.flatten(1), te_tokens.flatten(1)
    out: dict[str, dict[str, float]] = {}
    for name, col in (("color", COLOR), ("shape", SHAPE), ("size", SIZE)):
        out[f"{name}_from_pooled"] = linear_probe(tr_pool, train.attrs[:, col], te_pool, test.attrs[:, col],
                                                  len(VALUES[name]))
    for name, col in (("vert", VERT), ("horiz", HORIZ)):
        n = len(VALUES[name])
        # The grid has 8192 features for 4,000 images: a stronger L2 keeps the probe from memorising, and
        # 30 L-BFGS iterations (~8 s, memory-bound) reach the accuracy of 100 within 0.2 points.
        out[f"{name}_from_grid"] = linear_probe(tr_grid, train.attrs[:, col], te_grid, test.attrs[:, col], n,
                                                l2=1e-2, iters=30)
        out[f"{name}_from_pooled"] = linear_probe(tr_pool, train.attrs[:, col], te_pool, test.attrs[:, col], n)
    return out


def evaluate(model: SiglipPair, train: EasyVqaSet, test: EasyVqaSet, baseline: bool = True) -> dict[str, Any]:
    """All evaluation numbers on the test split (probes fit on the train split)."""
    tr_tokens, _ = encode(model, train)
    te_tokens, te_emb = encode(model, test)
    report: dict[str, Any] = {
        "zero_shot_color": zero_shot_color(model, te_emb, test),
        "zero_shot_shape": zero_shot_shape(model, te_emb, test),
        "retrieval": retrieval(model, te_emb, test, "full"),
        "retrieval_object": retrieval(model, te_emb, test, "object"),
        "probes": probes(tr_tokens, te_tokens, train, test),
    }
    if baseline:
        # The same probes on an untrained tower: what pre-training adds over random features.
        torch.manual_seed(0)
        rand = SiglipPair(model.vision_cfg, model.text_cfg, model.image_head.out_features)
        r_tr, _ = encode(rand, train)
        r_te, _ = encode(rand, test)
        report["probes_random_tower"] = probes(r_tr, r_te, train, test)
    return report


# ------------------------------------------------------------------------------------------- artefacts


def save_artefacts(model: SiglipPair, out_dir: Path) -> dict[str, int]:
    """Write the tower (+ its VisionConfig JSON) and the evaluation-only heads; returns file sizes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg_json = json.dumps(dataclasses.asdict(model.vision_cfg), indent=2, sort_keys=True)
    tower = {k: v.detach().contiguous() for k, v in model.encoder.tower.state_dict().items()}
    save_file(tower, str(out_dir / TOWER_FILE), metadata={"vision_config": cfg_json})
    (out_dir / CONFIG_FILE).write_text(cfg_json + "\n")
    text_json = json.dumps(dataclasses.asdict(model.text_cfg))
    heads = {k: v.detach().contiguous() for k, v in model.head_state_dict().items()}
    save_file(heads, str(out_dir / HEADS_FILE),
              metadata={"text_config": text_json, "embed_dim": str(model.image_head.out_features)})
    return {name: (out_dir / name).stat().st_size for name in (TOWER_FILE, CONFIG_FILE, HEADS_FILE)}


def read_vision_config(out_dir: Path) -> VisionConfig:
    return VisionConfig(**json.loads((Path(out_dir) / CONFIG_FILE).read_text()))


def load_pretrained_encoder(out_dir: Path = DEFAULT_OUT, lm_dim: int | None = None) -> ImageEncoder:
    """An `ImageEncoder` whose tower holds the pre-trained weights (loaded strictly); `proj`/`norm` stay
    freshly initialised for MoshiVis training. lm_dim None: the tower width."""
    cfg = read_vision_config(out_dir)
    enc = ImageEncoder(cfg, lm_dim=lm_dim or cfg.hidden_size)
    enc.tower.load_state_dict(load_file(str(Path(out_dir) / TOWER_FILE)), strict=True)
    return enc.eval()


def load_pair(out_dir: Path = DEFAULT_OUT) -> SiglipPair:
    """The whole contrastive model (tower + text encoder + heads) for evaluation."""
    out_dir = Path(out_dir)
    from safetensors import safe_open

    with safe_open(str(out_dir / HEADS_FILE), "pt") as f:
        meta = f.metadata()
    text = json.loads(meta["text_config"])
    text_cfg = TextConfig(**{**text, "vocab": tuple(text["vocab"])})
    model = SiglipPair(read_vision_config(out_dir), text_cfg, int(meta["embed_dim"]))
    model.encoder.tower.load_state_dict(load_file(str(out_dir / TOWER_FILE)), strict=True)
    missing, unexpected = model.load_state_dict(load_file(str(out_dir / HEADS_FILE)), strict=False)
    if unexpected or any(not k.startswith("encoder.") for k in missing):
        raise ValueError(f"{out_dir / HEADS_FILE}: missing {missing}, unexpected {unexpected}")
    return model.eval()


# ----------------------------------------------------------------------------------------------- driver


# Wall time kept for evaluation + saving out of `minutes_budget` (~70 s measured on a busy 2-core machine).
EVAL_RESERVE_S = 120.0


def pretrain_vision(out_dir: Path | str = DEFAULT_OUT, steps: int = 2000, batch_size: int = 128, seed: int = 0,
                    minutes_budget: float = 10.0, *, vision: VisionConfig = DEFAULT_VISION, lr: float = 1e-3,
                    threads: int = 1, progress: bool = True, evaluate_model: bool = True,
                    log: Callable[[str], None] = print) -> dict[str, Any]:
    """Load easy-vqa, pre-train, evaluate, save the artefacts and the model card; returns the report.
    evaluate_model=False (smoke builds): only train and save the tower, no evaluation or model card.

    `minutes_budget` is for the whole run: the training loop gets what is left after loading and
    `EVAL_RESERVE_S`, and `steps` is only an upper bound on it.
    """
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    train, test = load_easy_vqa("train"), load_easy_vqa("test")
    t_load = time.perf_counter() - t0
    log(f"loaded {len(train)} train / {len(test)} test images in {t_load:.1f}s")
    model = SiglipPair(vision, TextConfig())
    reserve = EVAL_RESERVE_S if evaluate_model else 0.0
    train_budget = minutes_budget * 60 - (time.perf_counter() - t0) - reserve
    if train_budget <= 0:
        raise ValueError(f"minutes_budget {minutes_budget} leaves no time to train (evaluation needs "
                         f"~{EVAL_RESERVE_S:.0f} s)")
    hist = train_contrastive(model, train, steps, batch_size, lr=lr, seed=seed, time_budget_s=train_budget,
                             progress=progress)
    if not evaluate_model:
        sizes = save_artefacts(model, out_dir)
        return {"files": sizes, "train": {k: v for k, v in hist.items() if k != "losses"}}
    t1 = time.perf_counter()
    results = evaluate(model, train, test)
    t_eval = time.perf_counter() - t1
    sizes = save_artefacts(model, out_dir)
    losses = hist.pop("losses")
    report = {
        "vision_config": dataclasses.asdict(vision),
        "text_config": {k: v for k, v in dataclasses.asdict(model.text_cfg).items() if k != "vocab"},
        "vocab_size": len(model.text_cfg.vocab),
        "tower_parameters": sum(p.numel() for p in model.encoder.tower.parameters()),
        "text_parameters": sum(p.numel() for p in model.text.parameters()),
        "train": {**hist, "seed": seed, "threads": threads, "minutes_budget": minutes_budget,
                  "train_budget_s": train_budget,
                  "images": len(train), "loss_first_10": sum(losses[:10]) / len(losses[:10]),
                  "loss_last_50": sum(losses[-50:]) / len(losses[-50:]),
                  "t": model.logit_scale.exp().item(), "b": model.logit_bias.item()},
        "seconds": {"load": t_load, "train": hist["seconds"], "eval": t_eval,
                    "total": time.perf_counter() - t0},
        "results": results,
        "files": sizes,
        "command": (f"python -m moshivis.tinyworld.vision_pretrain --out {out_dir} --steps {steps} "
                    f"--batch-size {batch_size} --seed {seed} --minutes {minutes_budget} --threads {threads}"),
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "README.md").write_text(model_card(report))
    log(f"zero-shot colour {results['zero_shot_color']['accuracy']:.3f}, "
        f"shape {results['zero_shot_shape']['accuracy']:.3f}; artefacts in {out_dir}")
    return report


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def model_card(r: dict[str, Any]) -> str:
    """The README.md of the artefact folder, from a `pretrain_vision` report."""
    v, tr, res, s = r["vision_config"], r["train"], r["results"], r["seconds"]
    zc, zs, ret, obj = res["zero_shot_color"], res["zero_shot_shape"], res["retrieval"], res["retrieval_object"]
    pr, prr = res["probes"], res.get("probes_random_tower", {})
    grid = v["image_size"] // v["patch_size"]
    lines = [
        "# tinyworld vision tower: a small SigLIP pre-trained on easy-vqa",
        "",
        "The image encoder of the tiny world's embedded MoshiVis: a `transformers.SiglipVisionModel` built "
        "through `moshivis.models.vision.ImageEncoder` from the `VisionConfig` in `vision_config.json`, "
        "pre-trained with the SigLIP pairwise sigmoid loss. MoshiVis uses the tower's `last_hidden_state` "
        f"({grid}x{grid} = {grid * grid} tokens of width {v['hidden_size']}).",
        "",
        "## Files",
        "",
        "| file | what | bytes |",
        "|---|---|---|",
        f"| `{TOWER_FILE}` | state dict of `ImageEncoder.tower` (float32) | {r['files'][TOWER_FILE]:,} |",
        f"| `{CONFIG_FILE}` | the `VisionConfig` | {r['files'][CONFIG_FILE]:,} |",
        f"| `{HEADS_FILE}` | text encoder, image head, t, b: evaluation only, not used by MoshiVis | "
        f"{r['files'][HEADS_FILE]:,} |",
        "| `report.json` | every number below, and the loss summary | |",
        "",
        "```python",
        "from moshivis.tinyworld.vision_pretrain import load_pretrained_encoder",
        "enc = load_pretrained_encoder('tinyworld/vision', lm_dim=...)  # tower loaded strictly; proj/norm fresh",
        "```",
        "",
        "## Config",
        "",
        f"- tower: hidden {v['hidden_size']}, MLP {v['intermediate_size']}, {v['num_layers']} layers, "
        f"{v['num_heads']} heads, patch {v['patch_size']}, image {v['image_size']}x{v['image_size']}, "
        f"{r['tower_parameters']:,} parameters",
        f"- image embedding: mean of the tower tokens -> Linear({v['hidden_size']} -> "
        f"{r['text_config']['dim']}) -> L2 norm",
        f"- text encoder: {r['vocab_size']}-word vocabulary, dim {r['text_config']['dim']}, "
        f"{r['text_config']['num_layers']} pre-norm transformer layers, mean-pooled, linear head "
        f"({r['text_parameters']:,} parameters)",
        "- loss: -1/|B| sum_ij log sigmoid(z_ij (exp(t') x_i.y_j + b)), t' = log 10 and b = -10 at init; "
        "z_ij = +1 when caption j is true of image i (not only the diagonal: easy-vqa has 24 colour x shape "
        "combinations), -1 when false, pair left out when undecidable (attribute unknown)",
        "",
        "## Data",
        "",
        f"- easy-vqa train split, {tr['images']:,} 64x64 images, held in memory as uint8; preprocessing is "
        "MoshiVis's own (`preprocess_images`: /255, (x - 0.5) / 0.5)",
        "- attributes: colour and shape from each image's QA answers (some images have no question telling "
        "them: those captions leave them out), position (top/middle/bottom, left/center/right) and size "
        "(shape area < 4% small, > 12% large) from the pixels",
        "- a fresh caption per image each time it is seen: random attribute subset, 13 templates "
        "(\"a small red triangle at the top left\", \"there is a blue shape\", \"the circle is green\")",
        "",
        "## Training",
        "",
        f"- {tr['steps']} steps (at most {tr['planned_steps']}; the time budget decides) x batch {tr['batch_size']}"
        f" = {tr['steps'] * tr['batch_size'] / tr['images']:.1f} epochs; AdamW lr {tr['lr']}, weight decay "
        f"{tr['weight_decay']}, t' and b at {tr['logit_lr_mult']:g}x that lr, warm-up {tr['warmup']} then cosine; "
        f"grad clip 1; seed {tr['seed']}",
        f"- {tr['threads']} CPU thread(s) of a shared 2-core machine, budget {tr['minutes_budget']:g} min: "
        f"training {s['train'] / 60:.1f} min, data loading {s['load']:.0f} s, evaluation {s['eval']:.0f} s, "
        f"total {s['total'] / 60:.1f} min",
        f"- loss {tr['loss_first_10']:.3f} (first 10 steps) -> {tr['loss_last_50']:.3f} (last 50); "
        f"final t = exp(t') = {tr['t']:.1f}, b = {tr['b']:.2f}",
        "",
        "## Results (easy-vqa test split, 1,000 images)",
        "",
        "| evaluation | result | chance / baseline | n |",
        "|---|---|---|---|",
        f"| zero-shot colour (8 prompts \"a {{colour}} shape\") | {_pct(zc['accuracy'])} | {_pct(zc['chance'])} | "
        f"{zc['n']} |",
        f"| zero-shot shape (3 prompts \"a {{shape}}\") | {_pct(zs['accuracy'])} | {_pct(zs['chance'])} | "
        f"{zs['n']} |",
        f"| retrieval image -> text R@1, object captions (\"a red triangle\") | "
        f"{_pct(obj['image_to_text_r1'])} | {_pct(obj['chance'])} | {obj['n']} |",
        f"| retrieval text -> image R@1, object captions | {_pct(obj['text_to_image_r1'])} | "
        f"{_pct(obj['chance'])} | {obj['n']} |",
        f"| retrieval image -> text R@1, full captions (\"a small red triangle in the top left corner\") | "
        f"{_pct(ret['image_to_text_r1'])} | {_pct(ret['chance'])} | {ret['n']} |",
        f"| retrieval text -> image R@1, full captions | {_pct(ret['text_to_image_r1'])} | "
        f"{_pct(ret['chance'])} | {ret['n']} |",
        "",
        "Retrieval: one caption per test image (images of known colour and shape), gallery = all of them; "
        "a hit is a retrieved item the caption is TRUE of, since many images share a caption (the "
        f"{ret['n']} full captions have {ret['distinct_captions']} distinct strings; exact-index R@1 is "
        f"{_pct(ret['exact_index_image_to_text_r1'])}). Chance = the mean fraction of true pairs. Full "
        "captions also need size and position from the one mean-pooled vector, which keeps little of "
        "position (see the pooled position probes below), hence the gap to object captions.",
        "",
        "Linear probes on frozen features (logistic regression fit on the 4,000 train images):",
        "",
        "| probe | features | pre-trained tower | random tower | majority class |",
        "|---|---|---|---|---|",
    ]
    for key, res_ in pr.items():
        name, feats = key.split("_from_")
        rand = _pct(prr[key]["accuracy"]) if key in prr else "-"
        feat_name = f"{grid}x{grid} token grid (flattened)" if feats == "grid" else "mean-pooled tokens"
        lines.append(f"| {name} | {feat_name} | {_pct(res_['accuracy'])} | {rand} | {_pct(res_['majority'])} |")
    lines += [
        "",
        "Position is read from the token grid (top/middle/bottom and left/center/right): the per-token "
        "outputs that MoshiVis cross-attends to keep where the shape is, even though the contrastive "
        "objective only sees their mean.",
        "",
        "## Rebuild",
        "",
        "```bash",
        f".venv/bin/{r['command']}",
        "```",
        "",
        "The number of steps follows the wall clock (the budget), so a rebuild on another machine trains "
        f"for a different length; `--steps {tr['steps']} --minutes 600` fixes it at this run's length "
        "(the LR schedule then differs slightly: this run re-planned its cosine as it went).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--steps", type=int, default=2000, help="upper bound; the time budget usually decides")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--minutes", type=float, default=10.0, help="time budget of the whole run (train + eval)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--lr", type=float, default=1e-3)
    a = p.parse_args(argv)
    pretrain_vision(a.out, a.steps, a.batch_size, a.seed, a.minutes, lr=a.lr, threads=a.threads)


if __name__ == "__main__":
    main()
