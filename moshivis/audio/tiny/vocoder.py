"""Log-mel -> waveform without a neural network: mel -> linear magnitude (non-negative least squares),
then streaming Griffin-Lim (RTISI-LA: real-time iterative spectrogram inversion with look-ahead).

STFT geometry is the encoder's (`features`): Hann 1024, hop 240, end-aligned frames, frame k covering
samples [240 k - 784, 240 k + 240). Every 80 ms step brings 8 new frames. The block being refined holds
every uncommitted frame; after `iters` Griffin-Lim iterations on the block, all but the newest
`lookahead` frames are committed (their overlap-add contribution is frozen). A sample is final once all
frames overlapping it are committed, so the output lags the input by
    delay = (1024 - 240) + 240 * lookahead samples   (lookahead 4: 1744 = 73 ms; 8: 2704 = 113 ms).
The estimate is Griffin-Lim's least-squares ISTFT: sum(w * frame) / sum(w^2), over committed and block
frames alike. A new frame starts with the phase of the current estimate at its position (RTISI's init).
Iterations use fast Griffin-Lim's momentum (Perraudin et al. 2013; `momentum` 0 = plain Griffin-Lim):
on true magnitudes it cut the spectral error of 16 iterations from 0.21 to 0.07 (look-ahead 4).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .features import ACOUSTIC_NFFT, FRAME_SIZE, FRAMES_PER_CODEC_FRAME, HOP, hann, mel_filterbank


class MelInverter:
    """Natural-log mel power [..., 80] -> linear magnitude [..., 513] float32: multiplicative-update NNLS
    on the filterbank (Lee-Seung), from the transpose init (each bin: the filter-weighted mean of its
    bands), which is positive wherever a filter reaches, as the updates need.

    float64 inside: Griffin-Lim amplifies any difference in its input (a 2e-6 relative change of the
    magnitudes moved the output by 0.26), so the magnitudes must not depend on how many frames are
    inverted at once; in float64 the shape-dependent rounding stays far below float32 precision."""

    def __init__(self, iters: int = 30) -> None:
        self.fb = mel_filterbank()  # [80, 513] float64
        self.iters = iters
        self._col = self.fb.sum(0).clamp_min(1e-12)

    def __call__(self, logmel: torch.Tensor) -> torch.Tensor:
        shape = logmel.shape
        mel = logmel.reshape(-1, shape[-1]).to(torch.float64).exp()
        target = mel @ self.fb  # M^T m
        s = target / self._col
        for _ in range(self.iters):
            s = s * target / ((s @ self.fb.T) @ self.fb).clamp_min(1e-30)
        return s.sqrt().to(torch.float32).reshape(*shape[:-1], self.fb.shape[1])


class StreamingGriffinLim:
    """Per-batch RTISI-LA state. push(mag [B, 8, 513]) -> wav [B, 1920], lagging by `delay` samples
    (zeros for the time before the stream start); flush() -> the last `delay` samples."""

    def __init__(self, batch_size: int, lookahead: int = 4, iters: int = 16, momentum: float = 0.99,
                 n_fft: int = ACOUSTIC_NFFT) -> None:
        if not 0 <= lookahead <= FRAMES_PER_CODEC_FRAME:
            raise ValueError(f"lookahead must be in [0, {FRAMES_PER_CODEC_FRAME}] STFT frames, got {lookahead}")
        if iters < 1:
            raise ValueError(f"Griffin-Lim needs at least one iteration per step, got {iters}")
        self.b, self.n_fft, self.lookahead, self.iters, self.momentum = batch_size, n_fft, lookahead, iters, momentum
        self.delay = n_fft - HOP + HOP * lookahead
        self.win = hann(n_fft).to(torch.float32)
        # sum(w^2) is about sum(win^2) / HOP (1.6) where frames overlap fully, but tends to 0 at a stream's
        # last sample (the tail of the last window): the output num / den there would blow rounding up by
        # 1e5. Flooring den in the output fades the edge out instead.
        self.den_floor = 0.1 * float(self.win.square().sum()) / HOP
        self.mag = torch.zeros(batch_size, 0, n_fft // 2 + 1)  # uncommitted frames
        self.spec = torch.zeros(batch_size, 0, n_fft // 2 + 1, dtype=torch.complex64)  # iterate (FGLA's t)
        self.proj = torch.zeros_like(self.spec)  # its magnitude projection (FGLA's c): what is committed
        self.fresh = 0  # block frames not yet iterated
        self.first = 0  # absolute index of the first uncommitted frame
        self.out_pos = -self.delay  # absolute sample index of the next output sample
        self.buf0 = -self.delay  # absolute sample index of num[:, 0] (delay >= n_fft - HOP: frame 0 fits)
        self.num = torch.zeros(batch_size, 0)  # committed sum of w * frame
        self.den = torch.zeros(0)  # committed sum of w^2

    def _start(self, k: int) -> int:
        """Absolute sample index where frame k begins."""
        return HOP * k - (self.n_fft - HOP)

    def _ola(self, frames: torch.Tensor) -> torch.Tensor:
        """[B, P, N] -> overlap-added [B, HOP (P - 1) + N]."""
        p = frames.shape[1]
        out = F.fold(frames.transpose(1, 2), output_size=(1, HOP * (p - 1) + self.n_fft),
                     kernel_size=(1, self.n_fft), stride=(1, HOP))
        return out[:, 0, 0]

    def _ensure(self, end: int) -> None:
        """Grow the committed buffers to cover absolute samples up to `end`."""
        extra = end - (self.buf0 + self.num.shape[1])
        if extra > 0:
            self.num = torch.cat([self.num, self.num.new_zeros(self.b, extra)], 1)
            self.den = torch.cat([self.den, self.den.new_zeros(extra)])

    def _refine(self) -> None:
        """`iters` Griffin-Lim iterations on the uncommitted block, committed frames held fixed."""
        p = self.mag.shape[1]
        if p == 0:
            return
        lo = self._start(self.first) - self.buf0
        hi = lo + HOP * (p - 1) + self.n_fft
        self._ensure(self.buf0 + hi)
        num0, den = self.num[:, lo:hi], self.den[lo:hi] + self._ola(self.win.square().expand(1, p, -1))[0]
        # no floor here: inside the block the least-squares estimate is exact even where den is small, and
        # the analysis window multiplies it by w again
        inv_den = 1.0 / den.clamp_min(1e-8)
        for _ in range(self.iters):
            frames = torch.fft.irfft(self.spec, n=self.n_fft) * self.win
            x = (num0 + self._ola(frames)) * inv_den
            est = torch.fft.rfft(x.unfold(-1, self.n_fft, HOP) * self.win)
            # target magnitude with the estimate's phase (phase 0 where the estimate is empty: stream start)
            size = est.abs()
            proj = torch.where(size > 1e-12, est * (self.mag / size.clamp_min(1e-12)), self.mag.to(est.dtype))
            if self.fresh:  # new frames have no previous projection: no momentum on their first step
                self.proj[:, p - self.fresh:] = proj[:, p - self.fresh:]
                self.fresh = 0
            # fast Griffin-Lim (Perraudin et al. 2013): extrapolate along the last step
            self.spec = proj + self.momentum * (proj - self.proj)
            self.proj = proj

    def _commit(self, n: int) -> None:
        """Freeze the first n block frames into the committed overlap-add."""
        if n == 0:
            return
        lo = self._start(self.first) - self.buf0
        frames = torch.fft.irfft(self.proj[:, :n], n=self.n_fft) * self.win
        seg = HOP * (n - 1) + self.n_fft
        self._ensure(self.buf0 + lo + seg)
        self.num[:, lo:lo + seg] += self._ola(frames)
        self.den[lo:lo + seg] += self._ola(self.win.square().expand(1, n, -1))[0]
        self.mag, self.spec, self.proj = self.mag[:, n:], self.spec[:, n:], self.proj[:, n:]
        self.first += n

    def _emit(self, n: int) -> torch.Tensor:
        """The next n final samples [B, n]; drops them from the buffers."""
        lo = self.out_pos - self.buf0
        self._ensure(self.out_pos + n)
        out = self.num[:, lo:lo + n] / self.den[lo:lo + n].clamp_min(self.den_floor)
        before = min(max(-self.out_pos, 0), n)  # samples before the stream start are silence
        if before:
            out = torch.cat([out.new_zeros(self.b, before), out[:, before:]], 1)
        self.out_pos += n
        keep = self.out_pos - self.buf0
        self.num, self.den, self.buf0 = self.num[:, keep:], self.den[keep:], self.out_pos
        return out

    def push(self, mag: torch.Tensor) -> torch.Tensor:
        """mag [B, 8, 513] (one codec frame) -> wav [B, 1920]."""
        if mag.shape != (self.b, FRAMES_PER_CODEC_FRAME, self.n_fft // 2 + 1):
            raise ValueError(f"expected magnitudes [{self.b}, 8, {self.n_fft // 2 + 1}], got {tuple(mag.shape)}")
        self.mag = torch.cat([self.mag, mag.to(torch.float32)], 1)
        # New frames start empty: the first projection gives them the phase of the current estimate.
        self.spec = torch.cat([self.spec, torch.zeros_like(mag, dtype=torch.complex64)], 1)
        self.proj = torch.cat([self.proj, torch.zeros_like(mag, dtype=torch.complex64)], 1)
        self.fresh = FRAMES_PER_CODEC_FRAME
        self._refine()
        self._commit(self.mag.shape[1] - self.lookahead)
        return self._emit(FRAME_SIZE)

    def flush(self) -> torch.Tensor:
        """Commit every pending frame (no more look-ahead) -> the remaining `delay` samples [B, delay]."""
        self._refine()
        self._commit(self.mag.shape[1])
        return self._emit(self.delay)
