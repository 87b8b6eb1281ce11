"""dhvae_sdk.checkpoint: bit-exact round trips, atomic writes, clear refusals."""
import json
import os
from dataclasses import replace

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import dhvae_sdk.checkpoint as checkpoint_module
from dhvae_sdk.checkpoint import CheckpointError, load_checkpoint, read_checkpoint_config, save_checkpoint
from dhvae_sdk.models import build_model, get_preset

MEAN = torch.linspace(-1.0, 1.0, 262)
STD = torch.linspace(0.5, 2.0, 262)
SCALES = torch.tensor([0.7, 1.3, 0.2])


def tiny_model(kind="dhvae", seed=0):
    torch.manual_seed(seed)
    config = get_preset("tiny")
    return build_model(replace(config, vae=replace(config.vae, kind=kind)))


def save(path, model, stage="denoiser", **extra):
    save_checkpoint(path, model, feature_mean=MEAN, feature_std=STD, latent_scales=SCALES, stage=stage, **extra)


@pytest.fixture
def saved(tmp_path):
    model = tiny_model()
    path = tmp_path / "model.safetensors"
    save(path, model, extra_metadata={"step": "42"})
    return path, model


def rewrite(source, target, drop=(), add=None, metadata_changes=None):
    """Copy a checkpoint with tensors removed/added or metadata changed."""
    with safe_open(str(source), framework="pt") as file:
        metadata = dict(file.metadata())
    tensors = {key: value for key, value in load_file(str(source)).items() if key not in drop}
    tensors.update(add or {})
    metadata.update(metadata_changes or {})
    save_file(tensors, str(target), metadata=metadata)
    return target


@pytest.mark.parametrize("kind", ["dhvae", "flat"])
def test_round_trip_is_bit_exact(tmp_path, kind):
    model = tiny_model(kind)
    path = tmp_path / "model.safetensors"
    save(path, model, extra_metadata={"step": "42"})
    loaded = load_checkpoint(path)
    assert loaded.config == model.config and loaded.config.vae.kind == kind
    original, restored = model.state_dict(), loaded.model.state_dict()
    assert original.keys() == restored.keys()
    assert all(torch.equal(original[key], restored[key]) for key in original)
    assert torch.equal(loaded.feature_mean, MEAN) and torch.equal(loaded.feature_std, STD)
    assert torch.equal(loaded.latent_scales, SCALES)
    assert loaded.stage == "denoiser" and loaded.metadata["step"] == "42"
    assert not loaded.model.training
    # Same weights, same function: a decode through both models agrees exactly.
    z, mask = torch.randn(1, 3, 64), torch.ones(1, 10, dtype=torch.bool)
    assert torch.equal(model.eval().vae.decode(z, mask)[0], loaded.model.vae.decode(z, mask)[0])


def test_metadata_and_tensor_names(saved):
    path, model = saved
    with safe_open(str(path), framework="pt") as file:
        metadata, keys = file.metadata(), set(file.keys())
    assert metadata["format"] == "dhvae-checkpoint" and metadata["format_version"] == "2"
    assert json.loads(metadata["config"]) == model.config.to_dict()
    assert metadata["created_by"].startswith("dhvae-sdk")
    assert {"normalizer.mean", "normalizer.std", "latent.scales"} <= keys
    assert {key.split(".")[0] for key in keys} == {"vae", "denoiser", "text", "normalizer", "latent"}
    config, _ = read_checkpoint_config(path)
    assert config == model.config


def test_latent_scales_are_optional_only_for_a_vae_checkpoint(tmp_path):
    model = tiny_model()
    save_checkpoint(tmp_path / "vae.safetensors", model, feature_mean=MEAN, feature_std=STD, stage="vae")
    assert torch.equal(load_checkpoint(tmp_path / "vae.safetensors").latent_scales, torch.ones(3))
    with pytest.raises(ValueError, match="a 'denoiser' checkpoint needs the latent_scales"):
        save_checkpoint(tmp_path / "d.safetensors", model, feature_mean=MEAN, feature_std=STD, stage="denoiser")
    with pytest.raises(ValueError, match="stage must be one of"):
        save_checkpoint(tmp_path / "d.safetensors", model, feature_mean=MEAN, feature_std=STD, stage="final")
    with pytest.raises(ValueError, match=r"latent_scales must be 3 positive numbers"):
        save_checkpoint(tmp_path / "d.safetensors", model, feature_mean=MEAN, feature_std=STD, stage="vae",
                        latent_scales=torch.tensor([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="reserved keys"):
        save(tmp_path / "d.safetensors", model, extra_metadata={"format": "mine"})


def test_save_is_atomic(saved, monkeypatch):
    path, _ = saved
    before = path.read_bytes()

    def crash(tensors, filename, metadata=None):
        with open(filename, "wb") as file:
            file.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        save(path, tiny_model(seed=1))
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == [path.name]


def test_refuses_missing_truncated_and_random_files(saved, tmp_path):
    path, _ = saved
    with pytest.raises(CheckpointError, match="nothing.safetensors: no such checkpoint file"):
        load_checkpoint(tmp_path / "nothing.safetensors")
    data = path.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.safetensors is not a readable safetensors file"):
        load_checkpoint(truncated)
    random_bytes = tmp_path / "random.bin"
    random_bytes.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match="random.bin is not a readable safetensors file"):
        load_checkpoint(random_bytes)


def test_refuses_foreign_and_newer_files(saved, tmp_path):
    path, _ = saved
    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(3)}, str(foreign))
    with pytest.raises(CheckpointError, match="not a dhvae-sdk checkpoint .*format=None"):
        load_checkpoint(foreign)
    newer = rewrite(path, tmp_path / "newer.safetensors", metadata_changes={"format_version": "3"})
    with pytest.raises(CheckpointError, match="format version 3, newer than this dhvae-sdk reads"):
        load_checkpoint(newer)
    retired = rewrite(path, tmp_path / "retired.safetensors", metadata_changes={"format_version": "1"})
    with pytest.raises(CheckpointError, match="retired clean-room architecture.*python -m dhvae_sdk.convert"):
        load_checkpoint(retired)
    bad_config = rewrite(path, tmp_path / "bad.safetensors", metadata_changes={"config": json.dumps({"vea": {}})})
    with pytest.raises(CheckpointError, match=r"invalid config in the metadata: .*unknown key\(s\) \['vea'\]"):
        load_checkpoint(bad_config)
    config = read_checkpoint_config(path)[0].to_dict()
    config["denoiser"]["eta"] = 1.0  # a stochastic sampler the backends would not run
    stochastic = rewrite(path, tmp_path / "eta.safetensors", metadata_changes={"config": json.dumps(config)})
    with pytest.raises(CheckpointError, match="invalid config in the metadata: denoiser.eta must be 0"):
        load_checkpoint(stochastic)


def test_refuses_missing_unexpected_and_misshapen_weights(saved, tmp_path):
    path, _ = saved
    missing = rewrite(path, tmp_path / "missing.safetensors", drop={"denoiser.head.bias"})
    with pytest.raises(CheckpointError, match="missing weight\\(s\\) denoiser.head.bias; unexpected weight\\(s\\) none"):
        load_checkpoint(missing)
    extra = rewrite(path, tmp_path / "extra.safetensors", add={"vae.extra_head": torch.zeros(2)})
    with pytest.raises(CheckpointError, match="unexpected weight\\(s\\) vae.extra_head"):
        load_checkpoint(extra)
    shaped = rewrite(path, tmp_path / "shaped.safetensors", add={"denoiser.head.bias": torch.zeros(5)})
    with pytest.raises(CheckpointError, match="weight shapes do not match its config"):
        load_checkpoint(shaped)


def test_checkpoint_carries_the_text_tower_and_needs_no_clip_file(tmp_path):
    config = get_preset("tiny")
    clip_file = tmp_path / "clip.safetensors"
    tower = tiny_model(seed=3).text.tower.state_dict()  # stored in open_clip's layout
    save_file({("transformer." if key.startswith("resblocks.") else "") + key: value for key, value in tower.items()},
              str(clip_file))
    model = build_model(replace(config, text=replace(config.text, clip_weights=str(clip_file))))
    path = tmp_path / "model.safetensors"
    save(path, model)
    assert any(key.startswith("text.tower.resblocks.") for key in load_file(str(path)))
    clip_file.unlink()  # the checkpoint alone rebuilds the model
    restored = load_checkpoint(path).model.state_dict()
    assert all(torch.equal(value, restored[key]) for key, value in model.state_dict().items())
    assert torch.equal(restored["text.tower.ln_final.weight"], tower["ln_final.weight"])
