"""The embedded model's speech codec: Mimi-shaped (24 kHz, 80 ms frames, 8 codebooks, streaming), built
from Whisper tiny.en's encoder, log-mel k-means RVQ and Griffin-Lim; no neural network is trained.

    features   causal log-mel front ends (acoustic 1024-point, Whisper's 25-ms one) on the codec grid
    semantic   codebook 0: Whisper encoder on a sliding causal window, pooled to 12.5 Hz
    acoustic   codebooks 1-7: PCA + residual k-means of 8 stacked log-mel frames
    kmeans     k-means / RVQ in torch
    vocoder    mel -> magnitude (NNLS) -> streaming Griffin-Lim (RTISI-LA)
    codec      `TinyCodec` (the `AudioCodec`), its streaming halves, save / load
    sentences, voices, train   the training recipe (`python -m moshivis.audio.tiny.train`)
    evaluate   WER of round trips, semantic-token stability, real-time factors

Import `moshivis.audio.tiny.codec` for the codec; this package file imports nothing.
"""
