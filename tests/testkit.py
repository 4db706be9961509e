"""Helpers shared by the tests: tiny "active" random models, random inputs, the golden fixture folder.
(A module of its own, not conftest.py: several conftest files exist and `conftest` is not a unique name.)"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import torch

os.environ.setdefault("NO_TORCH_COMPILE", "1")  # the `moshi` package compiles on import otherwise
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may come from a hub in tests

from moshivis.config import ModelConfig, tiny  # noqa: E402
from moshivis.models.loaders import build_model  # noqa: E402
from moshivis.models.moshivis import MoshiVis  # noqa: E402

# The workplace's shared copy when present (it may be newer), else the copy committed with the tests so
# that a clean clone in CI runs the parity tests instead of skipping them.
_SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "kyuteye_tiny"
FIXTURE_DIR = _SHARED if (_SHARED / "model.safetensors").exists() else Path(__file__).parent / "fixtures" / "kyuteye_tiny"


REPO = Path(__file__).resolve().parents[1]


def load_script(relpath: str) -> ModuleType:
    """A script of the repository (e.g. "scripts/compare_arms.py") imported as a module named after its file.
    It is registered in sys.modules first: dataclasses defined in a script look their module up there."""
    path = REPO / relpath
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def make_active(model: MoshiVis, seed: int = 0) -> MoshiVis:
    """Perturb a freshly initialised model so that norms are not identities and the image changes the
    outputs a lot (fresh gates are a constant 0.018): the same recipe as the golden fixture."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".alpha") and p.dim() == 3:
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif ".gates." in name and name.endswith("w2.weight"):
                p.copy_(1.8 + 0.8 * torch.randn(p.shape, generator=g))
            elif ".gates." in name and name.endswith("w1.weight"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g) / p.shape[1] ** 0.5)
            elif name.startswith("adapters.xa") and name.endswith("out_proj.weight"):
                p.mul_(8.0)
            elif ".gates." in name and name.endswith(".alpha"):  # scalar tanh gates
                p.fill_(0.7)
    return model.eval()


def tiny_model(cfg: ModelConfig | None = None, seed: int = 0) -> MoshiVis:
    torch.manual_seed(seed)
    return make_active(build_model(cfg or tiny()), seed)


def random_pixels(batch: int, size: int = 56, seed: int = 0) -> torch.Tensor:
    """[B, 3, size, size] in [-1, 1], like preprocessed images."""
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def random_codes(cfg: ModelConfig, batch: int, steps: int, seed: int = 0) -> torch.Tensor:
    """[B, 17, T] valid tokens: text < text_card, audio < audio_card."""
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, cfg.lm.audio_card, (batch, cfg.lm.num_streams, steps), generator=g)
    codes[:, 0] = torch.randint(0, cfg.lm.text_card, (batch, steps), generator=g)
    return codes


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b||: how far a tensor is from a reference."""
    return ((a - b).norm() / b.norm()).item()
