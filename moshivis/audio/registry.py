"""Codecs by spec string, the form recorded in shard manifests and model bundles.

"mimi" (random weights, seed 0: tests and smoke runs), "mimi:PATH" (a file, folder or hub id of real
weights), "tiny:PATH" (the embedded model's codec folder), "py:module:Class" (any class built with no
arguments).
"""

from __future__ import annotations

from typing import Any


def load_codec(spec: str, device: str = "cpu") -> Any:
    """An `AudioCodec` from a spec: "mimi" (random weights, seed 0: tests and smoke runs), "mimi:PATH"
    (a file, folder or hub id of real weights), "py:module:Class" (any class built with no arguments).
    The instance gets `.spec` set, which is what the manifest records."""
    if spec == "mimi" or spec.startswith("mimi:"):
        from moshivis.audio.mimi import MimiCodec

        weights = spec.partition(":")[2] or None
        codec = MimiCodec.load(weights, device=device)
    elif spec.startswith("tiny:"):
        from moshivis.audio.tiny.codec import TinyCodec

        codec = TinyCodec.load(spec.partition(":")[2])
    elif spec.startswith("py:"):
        import importlib

        module, _, name = spec[3:].rpartition(":")
        if not module or not name:
            raise ValueError(f"codec spec {spec!r}: expected py:module:Class")
        codec = getattr(importlib.import_module(module), name)()
    else:
        raise ValueError(f"unknown codec spec {spec!r}: expected mimi, mimi:PATH, tiny:PATH or py:module:Class")
    codec.spec = spec
    return codec


def codec_spec(codec: Any) -> str:
    """The spec that rebuilds `codec`: its `.spec` when `load_codec` made it, else its class path."""
    spec = getattr(codec, "spec", None)
    if isinstance(spec, str) and spec:
        return spec
    cls = type(codec)
    return f"py:{cls.__module__}:{cls.__qualname__}"
