"""Checkpoint loading and saving (`moshivis.models.loaders`) against the `kyuteye_tiny` fixture.

Every test runs on CPU in well under a second: models are the `tiny` preset (440k parameters), and
the wrong-preset test relies on `load_model` building on the `meta` device.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import struct
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from moshivis.config import AdapterConfig, ModelConfig, tiny
from moshivis.models import loaders
from moshivis.models.loaders import (
    CheckpointError,
    build_model,
    describe,
    load_adapters,
    load_model,
    read_safetensors,
    resolve_checkpoint,
    save_checkpoint,
    save_kyuteye,
)
from moshivis.models.moshivis import MoshiVis
from testkit import FIXTURE_DIR

FIXTURE = FIXTURE_DIR / "model.safetensors"
FIXTURE_PARAMS = 440_608  # from the fixture README
FIXTURE_TENSORS = 143

# The shared cross-attention is stored once, under layer 0 (see the fixture README).
SHARED_XA_KEYS = ("llm.transformer.layers.0.cross_attention.mha.in_proj_weight",
                  "llm.transformer.layers.0.cross_attention.mha.out_proj.weight")


@pytest.fixture(scope="module")
def fixture_path() -> Path:
    if not FIXTURE.is_file():
        pytest.skip(f"golden fixture not found: {FIXTURE}")
    return FIXTURE


@pytest.fixture(scope="module")
def fixture_tensors(fixture_path: Path) -> dict[str, torch.Tensor]:
    tensors, _ = read_safetensors(fixture_path)
    return tensors


@pytest.fixture(scope="module")
def fixture_meta(fixture_path: Path) -> dict[str, str]:
    with safe_open(str(fixture_path), framework="pt") as f:
        return dict(f.metadata() or {})


# ----------------------------------------------------------------------------------------------- helpers
def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    """Same keys, and for each key the same dtype, shape and values (bit for bit)."""
    assert set(a) == set(b), (f"only in first: {sorted(set(a) - set(b))[:5]}; "
                              f"only in second: {sorted(set(b) - set(a))[:5]}")
    for k in a:
        assert a[k].dtype == b[k].dtype, f"{k}: {a[k].dtype} vs {b[k].dtype}"
        assert a[k].shape == b[k].shape, f"{k}: {tuple(a[k].shape)} vs {tuple(b[k].shape)}"
        assert torch.equal(a[k], b[k]), k


def _split_file(path: Path) -> tuple[dict, bytes]:
    """(parsed header with key order kept, raw data section) of a safetensors file."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n], object_pairs_hook=lambda pairs: pairs)  # list of pairs: keeps order
    return header, raw[8 + n:]


def _randomize(model: MoshiVis, seed: int) -> MoshiVis:
    """Distinct random values everywhere, so a swapped or misnamed tensor cannot go unnoticed
    (default inits leave e.g. tanh gates and norms at identical constants)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen).to(p.dtype))
    return model


def _write_variant(tensors: dict[str, torch.Tensor], meta: dict[str, str], path: Path) -> Path:
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=meta)
    return path


def _assert_one_line(err: pytest.ExceptionInfo[CheckpointError]) -> None:
    """Readable for a user: a single line, with the library's traceback context suppressed."""
    message = str(err.value)
    assert "\n" not in message, message
    assert err.value.__cause__ is None


# ----------------------------------------------------------------------------------------------- 1. kyuteye
def test_kyuteye_round_trip_is_lossless(fixture_path: Path, fixture_tensors: dict[str, torch.Tensor],
                                        fixture_meta: dict[str, str], tmp_path: Path) -> None:
    model = load_model(fixture_path, "tiny")
    out = tmp_path / "kyuteye.safetensors"
    save_kyuteye(model, out, metadata=fixture_meta)

    written, written_meta = read_safetensors(out)
    _assert_same_tensors(written, fixture_tensors)
    assert written_meta == fixture_meta
    assert len(written) == FIXTURE_TENSORS

    # The shared cross-attention lives under layer 0 only, exactly as in the released layout.
    xa_keys = sorted(k for k in written if ".cross_attention.mha." in k)
    assert xa_keys == sorted(SHARED_XA_KEYS)

    # Byte level: identical data section and identical tensor header entries (in the same order).
    # The header's `__metadata__` object is the only part that may differ: safetensors writes its
    # entries in hash-map order, which varies between processes (the fixture README says so too).
    fx_header, fx_data = _split_file(fixture_path)
    out_header, out_data = _split_file(out)
    assert out_data == fx_data
    strip = lambda header: [(k, v) for k, v in header if k != "__metadata__"]  # noqa: E731
    assert strip(out_header) == strip(fx_header)
    meta_of = lambda header: dict(dict(header)["__metadata__"])  # noqa: E731
    assert meta_of(out_header) == meta_of(fx_header)
    assert out.stat().st_size == fixture_path.stat().st_size

    # Without the fixture's metadata the tensor bytes are still identical.
    plain = tmp_path / "plain.safetensors"
    save_kyuteye(model, plain)
    assert _split_file(plain)[1] == fx_data


# ----------------------------------------------------------------------------------------------- 2. ours
def test_own_format_round_trip_and_config(fixture_path: Path, tmp_path: Path) -> None:
    model = load_model(fixture_path, "tiny")
    path = tmp_path / "ours.safetensors"
    save_checkpoint(model, path)

    _, meta = read_safetensors(path)
    assert meta["format"] == "moshivis" and meta["content"] == "full"
    reloaded = load_model(path)  # no preset: the config comes from the metadata
    _assert_same_tensors(_state(reloaded), _state(model))
    assert reloaded.cfg == model.cfg
    assert ModelConfig.from_json(model.cfg.to_json()) == model.cfg
    assert not path.with_name(path.name + ".tmp").exists()  # the atomic write left nothing behind


def test_own_format_unknown_config_field_is_named(fixture_path: Path, tmp_path: Path) -> None:
    model = load_model(fixture_path, "tiny")
    cfg = json.loads(model.cfg.to_json())
    cfg["lm"]["temporal"]["bogus_field"] = 1
    path = tmp_path / "future.safetensors"
    save_checkpoint(model, path, extra_metadata={"config": json.dumps(cfg)})
    with pytest.raises(CheckpointError, match=r"bogus_field") as err:
        load_model(path)
    assert str(path) in str(err.value)
    _assert_one_line(err)


# ----------------------------------------------------------------------------------------------- 3. adapters
ADAPTER_PREFIXES = ("adapters.", "vision.proj.", "vision.norm.")


def test_adapter_only_file_round_trip(fixture_path: Path, tmp_path: Path) -> None:
    trained = load_model(fixture_path, "tiny")
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():  # "training": only the adapters move
        for _, p in trained.adapter_parameters():
            p.add_(torch.randn(p.shape, generator=gen))
    adapter_names = {n for n, _ in trained.adapter_parameters()}
    assert adapter_names and all(n.startswith(ADAPTER_PREFIXES) for n in adapter_names)

    full = tmp_path / "full.safetensors"
    adapters = tmp_path / "adapters.safetensors"
    save_checkpoint(trained, full)
    save_checkpoint(trained, adapters, adapters_only=True)

    tensors, meta = read_safetensors(adapters)
    assert meta["content"] == "adapters"
    assert set(tensors) == adapter_names
    assert not any(k.startswith(("lm.", "vision.tower.")) for k in tensors)
    # The tiny model's adapters are ~5 % of it (dim 64: the shared XA and two 8-wide gates);
    # at 7B they are a few percent too. 10 % leaves room for header overhead.
    assert adapters.stat().st_size < 0.1 * full.stat().st_size

    fresh = load_model(fixture_path, "tiny")
    base_before = _state(fresh)
    load_adapters(fresh, adapters)
    after = _state(fresh)
    trained_state = _state(trained)
    for k, v in after.items():
        expected = trained_state[k] if k in adapter_names else base_before[k]
        assert torch.equal(v, expected), k
    assert any(not torch.equal(after[k], base_before[k]) for k in adapter_names)  # the test moved something

    with pytest.raises(CheckpointError, match=r"load_adapters") as err:
        load_model(adapters)
    _assert_one_line(err)


def test_adapter_file_with_base_weights_is_refused(fixture_path: Path, tmp_path: Path) -> None:
    """A partial file may only touch adapter weights: a stray base tensor must not overwrite the base."""
    model = load_model(fixture_path, "tiny")
    path = tmp_path / "adapters.safetensors"
    save_checkpoint(model, path, adapters_only=True)
    tensors, meta = read_safetensors(path)
    tensors["lm.out_norm.alpha"] = torch.zeros_like(model.state_dict()["lm.out_norm.alpha"])
    _write_variant(tensors, meta, path)
    with pytest.raises(CheckpointError, match=r"unexpected key\(s\): lm\.out_norm\.alpha"):
        load_adapters(model, path)
    assert not torch.equal(model.state_dict()["lm.out_norm.alpha"], tensors["lm.out_norm.alpha"])


def _other_tiny(**adapter_changes: object) -> ModelConfig:
    cfg = tiny()
    cfg.adapters = dataclasses.replace(cfg.adapters, **adapter_changes)
    return cfg


def test_adapters_of_other_architecture_are_refused(fixture_path: Path, tmp_path: Path) -> None:
    model = load_model(fixture_path, "tiny")

    per_layer = tmp_path / "per_layer.safetensors"
    save_checkpoint(build_model(_other_tiny(shared_xa=False)), per_layer, adapters_only=True)
    with pytest.raises(CheckpointError, match=r"shared_xa: file False, model True") as err:
        load_adapters(model, per_layer)
    _assert_one_line(err)
    assert "gate:" not in str(err.value)  # only what differs is listed

    narrow_cfg = tiny()
    narrow_cfg.lm.temporal = dataclasses.replace(narrow_cfg.lm.temporal, dim=32, ffn_hidden=88)
    narrow = tmp_path / "narrow.safetensors"
    save_checkpoint(build_model(narrow_cfg), narrow, adapters_only=True)
    with pytest.raises(CheckpointError, match=r"dim 32 .*model has dim 64") as err:
        load_adapters(model, narrow)
    _assert_one_line(err)

    # Nothing was changed by the refused loads.
    _assert_same_tensors(_state(model), _state(load_model(fixture_path, "tiny")))


# ----------------------------------------------------------------------------------------------- 4. ablations
VARIANTS = {
    "gate_dynamic": {"gate": "dynamic"},
    "gate_tanh": {"gate": "tanh"},
    "gate_none": {"gate": "none"},
    "per_layer_xa": {"shared_xa": False},
    "shared_gate": {"shared_gate": True},
    "only_layer_1": {"layers": (1,)},
}


@pytest.mark.parametrize("changes", list(VARIANTS.values()), ids=list(VARIANTS))
def test_ablation_variants_round_trip(changes: dict[str, object], tmp_path: Path) -> None:
    cfg = _other_tiny(**changes)
    model = _randomize(build_model(cfg), seed=1234)
    original = _state(model)

    ours = tmp_path / "ours.safetensors"
    save_checkpoint(model, ours)
    from_ours = load_model(ours)
    assert from_ours.cfg == cfg
    _assert_same_tensors(_state(from_ours), original)

    # ours -> kyuteye -> ours
    kyuteye = tmp_path / "kyuteye.safetensors"
    save_kyuteye(from_ours, kyuteye)
    from_kyuteye = load_model(kyuteye, cfg)
    _assert_same_tensors(_state(from_kyuteye), original)
    again = tmp_path / "again.safetensors"
    save_checkpoint(from_kyuteye, again)
    _assert_same_tensors(read_safetensors(again)[0], read_safetensors(ours)[0])

    # Where the adapter weights live in the released layout.
    keys = set(read_safetensors(kyuteye)[0])
    xa = sorted(k for k in keys if ".cross_attention.mha." in k)
    layers = cfg.adapters.layers if cfg.adapters.layers is not None else range(cfg.lm.temporal.num_layers)
    xa_layers = list(layers) if not cfg.adapters.shared_xa else [min(layers)]
    assert xa == sorted(f"llm.transformer.layers.{L}.cross_attention.mha.{w}"
                        for L in xa_layers for w in ("in_proj_weight", "out_proj.weight"))
    assert {k for k in keys if ".norm_cross." in k} == {f"llm.transformer.layers.{L}.norm_cross.alpha" for L in layers}
    gates = {k for k in keys if ".cross_attention.gate." in k}
    if cfg.adapters.gate == "none":
        assert not gates
    else:
        gate_layers = {int(k.split(".")[3]) for k in gates}
        assert gate_layers == ({min(layers)} if cfg.adapters.shared_gate else set(layers))


# ----------------------------------------------------------------------------------------------- 5. resolution
HUB_ID = "kyutai/moshika-vis-tiny"
SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub_cache(fixture_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A local HF cache holding `kyutai/moshika-vis-tiny`, with the hub forced offline."""
    import huggingface_hub.constants

    cache = tmp_path / "hf_cache"
    repo = cache / "models--kyutai--moshika-vis-tiny"
    snapshot = repo / "snapshots" / SNAPSHOT
    snapshot.mkdir(parents=True)
    shutil.copy(fixture_path, snapshot / "model.safetensors")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(SNAPSHOT)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads the variable once at import; `is_offline_mode()` returns this attribute.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)  # a relative `kyutai/...` folder in the cwd must not shadow the hub id
    return cache


def test_hub_id_resolves_from_local_cache(hub_cache: Path, fixture_tensors: dict[str, torch.Tensor]) -> None:
    expected = hub_cache / "models--kyutai--moshika-vis-tiny" / "snapshots" / SNAPSHOT / "model.safetensors"
    assert resolve_checkpoint(HUB_ID, cache_dir=hub_cache).resolve() == expected.resolve()
    model = load_model(HUB_ID, "tiny", cache_dir=hub_cache)
    assert sum(p.numel() for p in model.parameters()) == FIXTURE_PARAMS
    assert torch.equal(model.state_dict()["lm.out_norm.alpha"], fixture_tensors["llm.out_norm.alpha"])


def test_hub_id_missing_from_cache_is_one_line(hub_cache: Path) -> None:
    with pytest.raises(CheckpointError, match=r"kyutai/not-there: model\.safetensors is not in the hub cache") as err:
        resolve_checkpoint("kyutai/not-there", cache_dir=hub_cache)
    _assert_one_line(err)


def test_local_folder_resolution(fixture_path: Path, tmp_path: Path) -> None:
    default = tmp_path / "default"
    default.mkdir()
    shutil.copy(fixture_path, default / "model.safetensors")
    shutil.copy(fixture_path, default / "other.safetensors")  # the default name wins over others
    assert resolve_checkpoint(default) == default / "model.safetensors"

    single = tmp_path / "single"
    single.mkdir()
    shutil.copy(fixture_path, single / "weights.safetensors")
    assert resolve_checkpoint(single) == single / "weights.safetensors"
    assert isinstance(load_model(single, "tiny"), MoshiVis)

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "README.md").write_text("no weights here")
    with pytest.raises(CheckpointError, match=r"folder has no model\.safetensors and 0 \.safetensors files"):
        resolve_checkpoint(empty)

    two = tmp_path / "two"
    two.mkdir()
    for name in ("a.safetensors", "b.safetensors"):
        shutil.copy(fixture_path, two / name)
    with pytest.raises(CheckpointError, match=r"and 2 \.safetensors files"):
        resolve_checkpoint(two)

    with pytest.raises(CheckpointError, match=r"no such file or folder"):
        resolve_checkpoint(tmp_path / "missing.safetensors")


# ----------------------------------------------------------------------------------------------- 6. bad input
@pytest.mark.parametrize("kind", ["truncated_header", "truncated_data", "text", "empty"])
def test_unreadable_files(kind: str, fixture_path: Path, tmp_path: Path) -> None:
    path = tmp_path / f"{kind}.safetensors"
    raw = fixture_path.read_bytes()
    content = {"truncated_header": raw[:1000], "truncated_data": raw[:-100],
               "text": b"this is a text file, not weights\n", "empty": b""}[kind]
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"not a readable safetensors file") as err:
        load_model(path, "tiny")
    assert str(path) in str(err.value)
    assert f"({len(content)} bytes)" in str(err.value)
    _assert_one_line(err)


def test_missing_key_is_named(fixture_path: Path, fixture_tensors: dict[str, torch.Tensor],
                              fixture_meta: dict[str, str], tmp_path: Path) -> None:
    tensors = {k: v for k, v in fixture_tensors.items() if k != "llm.transformer.layers.1.norm2.alpha"}
    path = _write_variant(tensors, fixture_meta, tmp_path / "missing.safetensors")
    # The report uses our parameter name (`lm.` for the file's `llm.`).
    with pytest.raises(CheckpointError, match=r"1 missing key\(s\): lm\.transformer\.layers\.1\.norm2\.alpha") as err:
        load_model(path, "tiny")
    _assert_one_line(err)


def test_unexpected_key_is_named(fixture_path: Path, fixture_tensors: dict[str, torch.Tensor],
                                 fixture_meta: dict[str, str], tmp_path: Path) -> None:
    tensors = dict(fixture_tensors, **{"llm.transformer.layers.0.extra.weight": torch.zeros(3)})
    path = _write_variant(tensors, fixture_meta, tmp_path / "extra.safetensors")
    with pytest.raises(CheckpointError,
                       match=r"1 unexpected key\(s\): llm\.transformer\.layers\.0\.extra\.weight") as err:
        load_model(path, "tiny")
    assert "missing" not in str(err.value)
    _assert_one_line(err)


def test_shape_mismatch_names_key_and_shapes(fixture_path: Path, fixture_tensors: dict[str, torch.Tensor],
                                             fixture_meta: dict[str, str], tmp_path: Path) -> None:
    tensors = dict(fixture_tensors, **{"image_prefix.proj_xa.bias": torch.zeros(65)})
    path = _write_variant(tensors, fixture_meta, tmp_path / "shape.safetensors")
    with pytest.raises(CheckpointError,
                       match=r"shape mismatch for vision\.proj\.bias: checkpoint \[65\], model \[64\]") as err:
        load_model(path, "tiny")
    _assert_one_line(err)


def test_kyuteye_without_preset_asks_for_one(fixture_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"kyuteye checkpoint carries no config; pass a preset") as err:
        load_model(fixture_path)
    _assert_one_line(err)


def test_wrong_preset_is_reported_quickly(fixture_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """'small' against the tiny file: a key/shape report, built on `meta` (no 200M-parameter init)."""
    built: list[bool] = []
    real_build = loaders.build_model

    def spy(cfg: ModelConfig, *args: object, init: bool = True, **kwargs: object) -> MoshiVis:
        built.append(init)
        return real_build(cfg, *args, init=init, **kwargs)

    monkeypatch.setattr(loaders, "build_model", spy)
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"checkpoint does not match the model; \d+ missing key\(s\)") as err:
        load_model(fixture_path, "small")
    elapsed = time.perf_counter() - start
    assert built == [False]
    assert elapsed < 5.0, f"wrong-preset load took {elapsed:.1f}s"
    _assert_one_line(err)


# ----------------------------------------------------------------------------------------------- 7. describe
def test_describe(fixture_path: Path, tmp_path: Path) -> None:
    info = describe(fixture_path)
    assert info["format"] == "kyuteye"
    assert info["parameters"] == FIXTURE_PARAMS
    assert info["tensors"] == FIXTURE_TENSORS

    ours = tmp_path / "ours.safetensors"
    save_checkpoint(load_model(fixture_path, "tiny"), ours)
    info = describe(ours)
    assert info["format"] == "moshivis"
    # Ours stores the same weights: the tower's non-persistent buffers are not saved in either.
    assert info["parameters"] == FIXTURE_PARAMS
    assert info["metadata"]["content"] == "full"


# ----------------------------------------------------------------------------------------------- 8. bf16
def test_bf16_load_and_save(fixture_path: Path, fixture_tensors: dict[str, torch.Tensor], tmp_path: Path) -> None:
    model = load_model(fixture_path, "tiny", dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    out = tmp_path / "bf16.safetensors"
    save_kyuteye(model, out)
    written, _ = read_safetensors(out)
    assert set(written) == set(fixture_tensors)
    for k, v in written.items():
        assert v.dtype == torch.bfloat16, k
        assert torch.equal(v, fixture_tensors[k].to(torch.bfloat16)), k


def test_fresh_adapters_keep_lm_and_tower_and_allow_another_adapter_architecture(tmp_path: Path) -> None:
    """An ablation starts from a trained base: LM and vision tower bit-identical, adapters fresh and of
    another kind (unshared cross-attention, no gate) than the checkpoint's."""
    torch.manual_seed(0)
    base = build_model(tiny())
    path = tmp_path / "base.safetensors"
    save_checkpoint(base, path)
    other = dataclasses.replace(tiny(), adapters=AdapterConfig(shared_xa=False, gate="none"))
    with pytest.raises(CheckpointError):
        load_model(path, other)  # strict: the stored adapters do not fit
    model = load_model(path, other, fresh_adapters=True)
    for k, v in base.lm.state_dict().items():
        assert torch.equal(model.lm.state_dict()[k], v), k
    for k, v in base.vision.tower.state_dict().items():
        assert torch.equal(model.vision.tower.state_dict()[k], v), k
    assert not any("gate" in n for n, _ in model.adapter_parameters())
    assert any("gate" in n for n, _ in base.adapter_parameters())
    assert model.cfg.adapters is not None and model.cfg.adapters.gate == "none" and not model.cfg.adapters.shared_xa
