"""Weight averaging of fine-tunes (`moshivis.train.soup`): the mean is exact, loads strictly, and keeps the
config; mismatched ingredients are refused with the file and key named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from moshivis.models.loaders import CheckpointError, load_model, read_safetensors, save_checkpoint
from moshivis.train.soup import average_state, main, make_soup, resolve_model_file
from tests.testkit import tiny_model


def _perturbed(seed: int):
    """The same tiny model, every float weight moved by seeded noise: fine-tunes of one start."""
    model = tiny_model(seed=0)
    g = torch.Generator().manual_seed(100 + seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=g))
    return model


def test_soup_of_checkpoints_is_the_weighted_mean_and_loads(tmp_path: Path) -> None:
    models = [_perturbed(s) for s in range(3)]
    files = []
    for i, m in enumerate(models):
        files.append(tmp_path / f"m{i}.safetensors")
        save_checkpoint(m, files[-1])
    out = make_soup(files, tmp_path / "soup.safetensors", weights=[1, 1, 2])

    soup = load_model(out)  # strict load: every key there, config from the metadata
    assert soup.cfg == models[0].cfg
    states = [m.state_dict() for m in models]
    for key, got in soup.state_dict().items():
        want = (states[0][key].double() + states[1][key].double() + 2 * states[2][key].double()) / 4
        torch.testing.assert_close(got.double(), want.to(got.dtype).double(), rtol=0, atol=1e-6)
    # not a copy of any ingredient
    assert any(not torch.equal(soup.state_dict()[k], states[0][k]) for k in states[0])
    _, meta = read_safetensors(out)
    assert json.loads(meta["soup"])["weights"] == [1, 1, 2]
    assert meta["format"] == "moshivis"


def test_soup_of_one_is_the_same_weights(tmp_path: Path) -> None:
    model = _perturbed(0)
    save_checkpoint(model, tmp_path / "a.safetensors")
    out = make_soup([tmp_path / "a.safetensors"], tmp_path / "out")  # a folder: out/model.safetensors
    assert out == tmp_path / "out" / "model.safetensors"
    a, _ = read_safetensors(tmp_path / "a.safetensors")
    b, _ = read_safetensors(out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_run_folder_means_its_latest_checkpoint(tmp_path: Path) -> None:
    for step in (100, 200):
        d = tmp_path / "run" / "checkpoints" / f"step_{step:06d}"
        d.mkdir(parents=True)
        (d / "model.safetensors").write_bytes(b"x")
    assert resolve_model_file(tmp_path / "run") == tmp_path / "run/checkpoints/step_000200/model.safetensors"
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        resolve_model_file(tmp_path)
    with pytest.raises(CheckpointError, match="no such file"):
        resolve_model_file(tmp_path / "nothing")


def test_mismatched_ingredients_name_file_and_key() -> None:
    a = {"w": torch.zeros(2, 3), "n": torch.tensor([1, 2])}
    with pytest.raises(CheckpointError, match=r"b\.st: keys differ.*missing \['w'\]"):
        average_state([a, {"n": torch.tensor([1, 2])}], ["a.st", "b.st"])
    with pytest.raises(CheckpointError, match=r"b\.st: w is \(3, 2\)"):
        average_state([a, {"w": torch.zeros(3, 2), "n": torch.tensor([1, 2])}], ["a.st", "b.st"])
    with pytest.raises(CheckpointError, match=r"b\.st: n .*differs"):
        average_state([a, {"w": torch.zeros(2, 3), "n": torch.tensor([1, 3])}], ["a.st", "b.st"])
    with pytest.raises(ValueError, match="1 weights for 2"):
        average_state([a, a], ["a", "b"], weights=[1])
    with pytest.raises(ValueError, match="positive sum"):
        average_state([a, a], ["a", "b"], weights=[0, 0])
    # integer tensors pass through when equal; floats average
    got = average_state([a, {"w": torch.ones(2, 3), "n": torch.tensor([1, 2])}], ["a", "b"])
    assert torch.equal(got["n"], a["n"]) and torch.allclose(got["w"], torch.full((2, 3), 0.5))


def test_cli_reports_a_truncated_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_checkpoint(_perturbed(0), tmp_path / "a.safetensors")
    raw = (tmp_path / "a.safetensors").read_bytes()
    (tmp_path / "b.safetensors").write_bytes(raw[: len(raw) // 2])
    rc = main([str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors"), "--out", str(tmp_path / "s")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "b.safetensors" in err and "not a readable safetensors file" in err
    assert not (tmp_path / "s").exists()  # nothing written
