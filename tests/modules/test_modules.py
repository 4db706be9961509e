"""Building blocks alone: norms, RoPE, ring KV cache, per-step weights, gates."""

from __future__ import annotations

import torch

from moshivis.config import AdapterConfig
from moshivis.modules.attention import SelfAttention
from moshivis.modules.cross_attention import VisionAdapters
from moshivis.modules.norms import RMSNorm
from moshivis.modules.rope import apply_rope


def test_rms_norm_both_forms():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 16) + 0.5  # non-zero mean: the two forms differ
    for kind, stat in (("rms", x.pow(2).mean(-1, keepdim=True)), ("var", x.var(-1, keepdim=True, unbiased=True))):
        norm = RMSNorm(16, kind, eps=1e-5)
        with torch.no_grad():
            norm.alpha.copy_(torch.rand(1, 1, 16))
        torch.testing.assert_close(norm(x), x * norm.alpha / torch.sqrt(stat + 1e-5))
    # bf16 in, float32 compute, bf16 out.
    y = RMSNorm(16, "rms")(x.bfloat16())
    assert y.dtype == torch.bfloat16


def test_rope_is_a_relative_rotation():
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)

    def dot(m: int, n: int) -> float:
        qm = apply_rope(q, torch.tensor([[m]]))
        kn = apply_rope(k, torch.tensor([[n]]))
        return float((qm * kn).sum())

    assert abs(dot(5, 3) - dot(12, 10)) < 1e-4 and abs(dot(5, 3) - dot(3, 5)) > 1e-3
    # Interleaved pairs: (x0, x1) rotated as one complex number.
    z = torch.view_as_complex(q.view(1, 1, 1, 4, 2))
    angle = 7 * torch.exp(torch.arange(4) * (-torch.log(torch.tensor(10000.0)) * 2 / 8))
    expected = torch.view_as_real(z * torch.polar(torch.ones(4), angle)).view(1, 1, 1, 8)
    torch.testing.assert_close(apply_rope(q, torch.tensor([[7]])), expected)


def test_ring_cache_wraps_like_a_windowed_full_forward():
    """Context 4 with a 4-slot ring over 11 steps: every step sees exactly its last 4 steps."""
    torch.manual_seed(0)
    attn = SelfAttention(16, 2, context=4, rope=True)
    x = torch.randn(2, 11, 16)
    full = attn(x)
    cache = attn.new_cache(2, capacity=4, device="cpu", dtype=torch.float32)
    steps = torch.cat([attn(x[:, t:t + 1], cache) for t in range(11)], 1)
    torch.testing.assert_close(steps, full, rtol=1e-5, atol=1e-6)
    # Two steps at once through the cache equal two single steps.
    cache2 = attn.new_cache(2, capacity=4, device="cpu", dtype=torch.float32)
    pairs = torch.cat([attn(x[:, t:t + 2], cache2) for t in range(0, 10, 2)], 1)
    torch.testing.assert_close(pairs, full[:, :10], rtol=1e-5, atol=1e-6)


def test_cache_reset_one_item():
    torch.manual_seed(0)
    attn = SelfAttention(16, 2, context=100)
    x = torch.randn(2, 6, 16)
    cache = attn.new_cache(2, 100, "cpu", torch.float32)
    for t in range(3):
        attn(x[:, t:t + 1], cache)
    cache.reset(torch.tensor([False, True]))
    out = torch.cat([attn(x[:, t:t + 1], cache) for t in range(3, 6)], 1)
    fresh = attn(x[1:, 3:6])  # item 1 restarted at step 3: its clock and history are new
    torch.testing.assert_close(out[1:], fresh, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out[:1], attn(x[:1])[:, 3:6], rtol=1e-5, atol=1e-6)


def test_per_step_weights_pick_their_chunk():
    torch.manual_seed(0)
    attn = SelfAttention(8, 2, context=8, rope=False, weights_per_step=3)
    x = torch.randn(1, 3, 8)
    full = attn(x)
    cache = attn.new_cache(1, 3, "cpu", torch.float32)
    steps = torch.cat([attn(x[:, c:c + 1], cache, step=c) for c in range(3)], 1)
    torch.testing.assert_close(steps, full, rtol=1e-5, atol=1e-6)
    # Position 0 attends only to itself: out = Wo_0 (Wv_0 x0).
    w_in = attn.in_proj.weight.view(3, 24, 8)[0]
    w_out = attn.out_proj.weight.view(3, 8, 8)[0]
    torch.testing.assert_close(full[0, 0], w_out @ (w_in[16:] @ x[0, 0]), rtol=1e-5, atol=1e-6)


def test_gate_variants_start_values():
    torch.manual_seed(0)
    y = torch.randn(1, 2, 32)
    img = torch.randn(1, 5, 32)
    for gate, expected in (("dynamic", torch.sigmoid(torch.tensor(-4.0)).item()), ("tanh", 0.0), ("none", None)):
        ad = VisionAdapters(AdapterConfig(gate=gate), dim=32, num_heads=4, num_layers=2)
        seen: dict[int, torch.Tensor] = {}
        fuse = ad.fusions(ad.image_kv(img), record=lambda i, g: seen.__setitem__(i, g))
        out = fuse[0](y)
        if expected is None:
            assert not seen and not torch.equal(out, y)
        else:
            torch.testing.assert_close(seen[0], torch.full_like(seen[0], expected))
    shared = VisionAdapters(AdapterConfig(shared_gate=True), 32, 4, 3)
    assert len(shared.gates) == 1 and len(shared.norms) == 3
