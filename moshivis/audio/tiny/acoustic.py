"""Codebooks 1-7: residual VQ of stacked log-mel frames, and its training.

A codec frame's 8 log-mel frames (80 bands each) are stacked into one 640-dim vector, centred by the
training mean, projected on the top `pca_dim` principal axes (PCA: the findings measured the same WER at
128 dims as at 640, with 5x faster k-means and 5x smaller codebooks), then quantised by greedy RVQ.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .kmeans import rvq_decode, rvq_encode, train_rvq


@dataclass
class AcousticQuantizer:
    """mean [D] (D = 640), basis [D, P] orthonormal columns, books [S, K, P]; beam: RVQ search width."""

    mean: torch.Tensor
    basis: torch.Tensor
    books: torch.Tensor
    beam: int = 1

    @property
    def stages(self) -> int:
        return self.books.shape[0]

    @property
    def k(self) -> int:
        return self.books.shape[1]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """stacked log-mel [N, D] -> codes [N, S] long (float64 arithmetic: same code whatever N)."""
        y = (x.to(torch.float64) - self.mean.to(torch.float64)) @ self.basis.to(torch.float64)
        return rvq_encode(y, self.books, self.beam)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [N, S'] (S' <= S: the first S' stages) -> stacked log-mel [N, D] float64 (exact enough
        to be the same whatever N: the vocoder amplifies differences)."""
        books = self.books[: codes.shape[1]].to(torch.float64)
        return rvq_decode(codes, books) @ self.basis.to(torch.float64).T + self.mean.to(torch.float64)


def pca_basis(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x [N, D] -> (mean [D], basis [D, dim]): the top principal axes (dim >= D: the identity)."""
    mean = x.mean(0)
    d = x.shape[1]
    if dim <= 0 or dim >= d:
        return mean, torch.eye(d)
    xc = (x - mean).to(torch.float64)
    cov = xc.T @ xc / max(1, x.shape[0] - 1)
    _, vecs = torch.linalg.eigh(cov)  # ascending eigenvalues
    return mean, vecs[:, -dim:].flip(1).to(torch.float32).contiguous()


def train_acoustic(x: torch.Tensor, k: int, stages: int, pca_dim: int, iters: int = 20, seed: int = 0,
                   deadline: float | None = None) -> AcousticQuantizer:
    """x [N, 640] stacked log-mel training vectors -> a trained quantizer (k-means stops at `deadline`)."""
    mean, basis = pca_basis(x, pca_dim)
    y = (x - mean) @ basis
    books = train_rvq(y.contiguous(), k, stages, iters, seed, deadline)
    return AcousticQuantizer(mean, basis, books)


def quantizer_mse(q: AcousticQuantizer, x: torch.Tensor, stages: int | None = None) -> float:
    """Mean squared log-mel error per dimension of the reconstruction with the first `stages` stages."""
    codes = q.encode(x)[:, : (stages or q.stages)]
    return float((q.decode(codes) - x.to(torch.float64)).square().mean())
