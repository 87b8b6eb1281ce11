"""Bad inputs that used to give a silently wrong result or an unclear error: each now stops
with a DHVAEError whose message names the parameter or file and the fix."""
from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader

from dhvae_sdk import Generator
from dhvae_sdk.atomic_file import atomic_output
from dhvae_sdk.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from dhvae_sdk.cli import main as cli
from dhvae_sdk.errors import DHVAEError
from dhvae_sdk.generator import MAX_GUIDANCE, GeneratorError, batch_bytes
from dhvae_sdk.manifest import FORMAT_NAME, FORMAT_VERSION, MANIFEST_NAME, ModelFormatError, read_manifest
from dhvae_sdk.models import build_model
from dhvae_sdk.runtime import BackendUnavailableError, selection
from export.to_onnx import ExportError, export_model
from export.to_onnx import main as export_main
from model_fixtures import micro_config, save_micro_checkpoint
from training.data.base import DatasetError, read_names, read_sentences
from training.data.interhuman import dataset_normalizer
from training.runtime import ProcessContext
from training.stages.common import StageOptions, open_dataset
from training import main as training_main
from training.trainer import LoopConfig, Trainer, TrainingDivergedError, TrainingInterrupted

QUICK = dict(frames=12, steps=2)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_micro_checkpoint(tmp_path_factory.mktemp("ckpt") / "micro.safetensors")


@pytest.fixture(scope="module")
def generator(checkpoint):
    return Generator.from_pretrained(checkpoint, quiet=True)


@pytest.fixture(scope="module")
def vae_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("vae") / "vae.safetensors"
    model = build_model(micro_config())
    save_checkpoint(path, model, feature_mean=torch.zeros(262), feature_std=torch.ones(262), stage="vae")
    return path


# -- point 1: silent wrong results become errors ---------------------------------------

def test_export_refuses_a_vae_stage_checkpoint_and_names_the_denoiser_file(vae_checkpoint, tmp_path, capsys):
    with pytest.raises(ExportError, match=r"'vae'-stage checkpoint.*denoiser stage wrote"):
        export_model(vae_checkpoint, tmp_path / "model")
    assert export_main([str(vae_checkpoint), "--out", str(tmp_path / "model")]) == 1
    assert "'vae'-stage checkpoint" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def _rewrite(source: Path, target: Path, change) -> Path:
    tensors = load_file(source)
    change(tensors)
    from safetensors import safe_open

    with safe_open(source, framework="pt") as file:
        metadata = file.metadata()
    save_file(tensors, target, metadata=metadata)
    return target


@pytest.mark.parametrize("change, message", [
    (lambda t: t["denoiser.head.weight"].view(-1).__setitem__(0, math.nan), r"non-finite .*denoiser.head.weight"),
    (lambda t: t["normalizer.mean"].__setitem__(3, math.inf), r"non-finite .*normalizer.mean"),
    (lambda t: t["normalizer.std"].__setitem__(5, 0.0), "feature_std must be positive"),
    (lambda t: t.__setitem__("latent.scales", torch.tensor([1.0, -1.0, 1.0])), "latent_scales must be 3 positive"),
    (lambda t: t.__setitem__("latent.scales", torch.ones(4)), "latent_scales must be 3 positive"),
    (lambda t: t.__setitem__("normalizer.mean", torch.zeros(10)), r"must both have shape \(262,\)"),
])
def test_load_checkpoint_and_the_generator_refuse_unusable_numbers(checkpoint, tmp_path, change, message):
    bad = _rewrite(checkpoint, tmp_path / "bad.safetensors", change)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match=message):
        Generator.from_pretrained(bad, quiet=True)


def test_save_checkpoint_refuses_non_finite_weights(tmp_path):
    model = build_model(micro_config())
    with torch.no_grad():
        next(model.denoiser.parameters()).fill_(math.nan)
    with pytest.raises(CheckpointError, match="not saving .*non-finite"):
        save_checkpoint(tmp_path / "c.safetensors", model, feature_mean=torch.zeros(262),
                        feature_std=torch.ones(262), stage="vae")
    assert list(tmp_path.iterdir()) == []


class _ToyObjective(nn.Module):
    """A loss that turns NaN from call ``nan_from`` on, as a diverging training does, and
    that Ctrl-C interrupts in call ``interrupt_at``."""

    def __init__(self, nan_from: int, interrupt_at: int | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(2))
        self.calls, self.nan_from, self.interrupt_at = 0, nan_from, interrupt_at

    def forward(self, batch):
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        loss = ((self.weight * batch["x"]).sum() - 1) ** 2
        return {"loss": loss * math.nan if self.calls >= self.nan_from else loss}


class _ToyStage:
    name = "toy"
    checkpoint_name = "toy.safetensors"

    def __init__(self, nan_from: int, interrupt_at: int | None = None):
        self.module = _ToyObjective(nan_from, interrupt_at)
        self.loader = DataLoader([{"texts": "t", "x": torch.ones(2)}] * 4, batch_size=2)

    def evaluate(self):
        return {}

    def save_checkpoint(self, path):
        with atomic_output(path) as temp:
            save_file({k: v.detach().clone() for k, v in self.module.state_dict().items()}, temp)


def _trainer(tmp_path: Path, nan_from: int, interrupt_at: int | None = None, ckpt_every: int = 1) -> Trainer:
    config = LoopConfig(steps=5, ckpt_every=ckpt_every, log_every=1, lr=0.01, lr_schedule="cosine", warmup_steps=1,
                        precision="fp32")
    return Trainer(_ToyStage(nan_from, interrupt_at), config, ProcessContext(0, 1, torch.device("cpu")), tmp_path)


def test_training_stops_at_a_non_finite_loss_and_keeps_the_last_finite_checkpoint(tmp_path):
    trainer = _trainer(tmp_path, nan_from=3)
    with pytest.raises(TrainingDivergedError, match=r"toy loss became nan at step 3.*lower --lr"):
        trainer.run()
    assert trainer.step == 2
    saved = load_file(tmp_path / "toy.safetensors")["weight"]
    assert torch.isfinite(saved).all() and not torch.equal(saved, torch.ones(2))  # step 2's weights
    assert torch.load(tmp_path / "train_state.pt", weights_only=True)["step"] == 2


def test_ctrl_c_ends_training_with_the_step_a_rerun_resumes_from(tmp_path):
    trainer = _trainer(tmp_path, nan_from=99, interrupt_at=4, ckpt_every=2)  # steps 1-3 done, 2 saved
    with pytest.raises(TrainingInterrupted, match=rf"toy interrupted at step 3 of 5; {tmp_path} keeps step 2: "
                                                  "rerun the same command to resume from there"):
        trainer.run()
    rerun = _trainer(tmp_path, nan_from=99, ckpt_every=2)
    rerun.run()
    assert rerun.step == 5 and rerun.module.calls == 3  # steps 3, 4 and 5


def test_the_training_command_prints_an_interruption_as_its_one_line(tmp_path, monkeypatch):
    message = f"vae interrupted at step 7 of 9; {tmp_path} keeps step 5: rerun the same command to resume from there"

    def interrupted(options):
        raise TrainingInterrupted(message)

    monkeypatch.setattr(training_main, "train", interrupted)
    with pytest.raises(SystemExit) as stopped:
        training_main.main(["vae", "--preset", "tiny", "--dataset", "synthetic", "--data-root", str(tmp_path),
                            "--out", str(tmp_path)])
    assert stopped.value.code == message


def test_training_never_saves_non_finite_weights(tmp_path):
    trainer = _trainer(tmp_path, nan_from=99)
    with torch.no_grad():
        trainer.module.weight.fill_(math.inf)
    with pytest.raises(TrainingDivergedError, match=r"became NaN or infinite.*\(first: weight\)"):
        trainer.save()
    assert not (tmp_path / "toy.safetensors").exists() and not (tmp_path / "train_state.pt").exists()


@pytest.mark.parametrize("text", ["", "   \n\t", "\x00\x01\x02", "\u200b\u200b", "\x1b\x07"])
def test_text_without_printable_characters_is_refused(generator, text):
    with pytest.raises(GeneratorError, match="text 1 is empty or has no printable characters"):
        generator.generate(["two people hug", text], **QUICK)


@pytest.mark.parametrize("guidance", [MAX_GUIDANCE + 0.5, 1e6, math.inf, math.nan, -0.1])
def test_guidance_outside_0_to_the_documented_maximum_is_refused(generator, guidance):
    with pytest.raises(GeneratorError, match=f"guidance must be a number from 0 to {MAX_GUIDANCE:g}"):
        generator.generate("two people hug", guidance=guidance, **QUICK)


def test_guidance_at_the_maximum_is_accepted(generator):
    [motion] = generator.generate("two people hug", guidance=MAX_GUIDANCE, seed=1, **QUICK)
    assert np.isfinite(motion.joints).all()


# -- point 2: unclear errors become clear ---------------------------------------------

@pytest.mark.parametrize("seed", [-1, 1.5, True, "3"])
def test_seed_must_be_a_non_negative_integer(generator, seed):
    with pytest.raises(GeneratorError, match="seed must be a non-negative integer"):
        generator.generate("two people hug", seed=seed, **QUICK)


def test_num_samples_beyond_the_memory_estimate_is_refused(generator):
    with pytest.raises(GeneratorError, match=r"1000000000 motions .*\(lower num_samples\)"):
        generator.generate("two people hug", num_samples=10**9, **QUICK)
    per_motion = batch_bytes(generator.config, 12)
    assert 100_000 < per_motion < 10_000_000  # a micro model's 12 frames: the estimate is in a sane range


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "CPU", 0, "auto"])
def test_device_is_validated_by_name(checkpoint, device):
    with pytest.raises(GeneratorError, match="device must be None"):
        Generator.from_pretrained(checkpoint, device=device, quiet=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_cuda_without_a_gpu_is_refused_by_the_torch_backend(checkpoint):
    with pytest.raises(BackendUnavailableError, match="device 'cuda': PyTorch sees no CUDA GPU"):
        Generator.from_pretrained(checkpoint, device="cuda", quiet=True)


def test_the_backend_choice_is_one_line_on_stderr_unless_quiet(checkpoint, capsys):
    Generator.from_pretrained(checkpoint)
    assert capsys.readouterr().err.splitlines() == [
        f"dhvae: using PyTorch {torch.__version__} on cpu (a training checkpoint runs on PyTorch "
        "(export it with `python -m export.to_onnx` for ONNX Runtime))"]
    Generator.from_pretrained(checkpoint, quiet=True)
    assert capsys.readouterr().err == ""


def test_the_demo_is_called_missing_only_when_it_is(tmp_path, monkeypatch):
    monkeypatch.setattr(selection, "assets_directory", lambda: tmp_path)
    with pytest.raises(ModelFormatError, match="embedded demo model is missing"):
        selection.demo_path("onnxruntime")
    (tmp_path / selection.DEMO_CHECKPOINT).write_bytes(b"placeholder")
    with pytest.raises(ModelFormatError) as caught:
        selection.demo_path("onnxruntime")
    assert "missing" not in str(caught.value)
    assert "installed as" in str(caught.value) and "backend 'torch' or 'auto'" in str(caught.value)


@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp / "a_folder.npz", "is a folder"),
    (lambda tmp: tmp / "a_file" / "out.npz", "is a file, not a folder"),
    (lambda tmp: tmp / "missing" / "out.npz", "does not exist; create it first"),
])
def test_unwritable_outputs_are_one_line_before_generating(checkpoint, tmp_path, capsys, make, message):
    (tmp_path / "a_folder.npz").mkdir()
    (tmp_path / "a_file").write_text("")
    assert cli(["generate", "x", "--model", str(checkpoint), "-o", str(make(tmp_path)), "--frames", "12"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("dhvae: error: cannot write") and message in err
    assert "dhvae: using" not in err  # refused before the model was even opened


def _refuses_new_files(folder: str) -> bool:
    try:
        with tempfile.TemporaryFile(dir=folder):
            return False
    except OSError:
        return True


@pytest.mark.skipif(not _refuses_new_files("/sys"), reason="needs a folder that refuses new files even to root")
def test_a_folder_that_refuses_new_files_is_reported_before_generating(checkpoint, capsys):
    assert cli(["generate", "x", "--model", str(checkpoint), "-o", "/sys/out.npz", "--frames", "12"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dhvae: error: cannot write /sys/out.npz: /sys does not accept new files (")
    assert err.count("\n") == 1


def test_info_on_a_missing_path_says_it_does_not_exist(tmp_path, capsys):
    assert cli(["info", str(tmp_path / "nothing.safetensors")]) == 1
    assert capsys.readouterr().err == (f"dhvae: error: {tmp_path / 'nothing.safetensors'} does not exist; pass a "
                                       "training checkpoint (.safetensors) or an exported model directory\n")


def _manifest(directory: Path, **changes) -> Path:
    config = micro_config()
    raw = {"format": FORMAT_NAME, "format_version": list(FORMAT_VERSION), "precision": "fp32",
           "config": config.to_dict(), "stats": {"mean": [0.0] * 262, "std": [1.0] * 262},
           "latent_scales": [1.0, 1.0, 0.2], "null_text_embedding": [0.0] * config.text.width,
           "files": {}, "versions": {}}
    raw.update(changes)
    directory.mkdir()
    (directory / MANIFEST_NAME).write_text(json.dumps(raw))
    return directory


@pytest.mark.parametrize("changes, message", [
    (dict(null_text_embedding=None), r"null_text_embedding must be 48 finite numbers \(shape \(\)"),
    (dict(null_text_embedding=[0.0] * 64), r"null_text_embedding must be 48 finite numbers \(shape \(64,\)"),
    (dict(stats={"mean": [0.0] * 262}), "stats.std must be 262 finite numbers .missing"),
    (dict(stats={"mean": [None] * 262, "std": [1.0] * 262}), "stats.mean must be 262 finite numbers"),
    (dict(stats={"mean": [0.0] * 262, "std": [0.0] * 262}), "stats.std must be positive"),
    (dict(latent_scales=[1.0, 1.0]), "latent_scales must be 3 finite numbers"),
    (dict(latent_scales=[1.0, -1.0, 1.0]), "latent_scales must be positive"),
])
def test_manifest_numbers_are_validated_at_load(tmp_path, changes, message):
    assert read_manifest(_manifest(tmp_path / "good")).latent_scales.tolist() == pytest.approx([1, 1, 0.2])
    with pytest.raises(ModelFormatError, match=message):
        read_manifest(_manifest(tmp_path / "bad", **changes))


def test_training_data_errors_name_the_file(tmp_path):
    annotation = tmp_path / "s1.txt"
    annotation.write_bytes("deux personnes se saluent, caf\u00e9".encode("latin-1"))
    with pytest.raises(DatasetError, match=r"annotation .*s1.txt is not UTF-8 text \(byte 30"):
        read_sentences(annotation)
    split = tmp_path / "train.txt"
    split.write_bytes(b"\xff\xfes\x001\x00")  # UTF-16
    with pytest.raises(DatasetError, match=r"list file .*train.txt is not UTF-8"):
        read_names(split)


def test_statistics_errors_name_the_files(tmp_path):
    mean, std = tmp_path / "global_mean.npy", tmp_path / "global_std.npy"
    np.save(mean, np.zeros(262, np.float32))
    with pytest.raises(DHVAEError, match=r"global_std.npy is missing but its twin is present"):
        dataset_normalizer(tmp_path)
    np.save(std, np.zeros(262, np.float32))
    with pytest.raises(DHVAEError, match=r"global_mean.npy / .*global_std.npy: std must be finite and > 0"):
        dataset_normalizer(tmp_path)
    np.save(std, np.ones(10, np.float32))
    with pytest.raises(DHVAEError, match=r"global_mean.npy / .*global_std.npy: mean and std must be vectors"):
        dataset_normalizer(tmp_path)
    np.save(mean, np.zeros(10, np.float32))
    with pytest.raises(DHVAEError, match=r"hold 10 numbers each; InterHuman features have 262"):
        dataset_normalizer(tmp_path)
    std.write_bytes(b"not numpy")
    with pytest.raises(DHVAEError, match=r"cannot use normalization statistics .*global_std.npy"):
        dataset_normalizer(tmp_path)


@pytest.mark.parametrize("lr", [0.0, -1e-4, math.nan, math.inf])
def test_lr_errors_name_the_option(lr):
    with pytest.raises(ValueError, match="--lr must be a positive finite number"):
        LoopConfig(lr=lr)


@pytest.mark.parametrize("dataset, frames, shortest", [("interhuman", 5, 14), ("interx", 20, 24),
                                                       ("synthetic", -1, 14)])
def test_max_frames_errors_name_the_option(tmp_path, dataset, frames, shortest):
    options = StageOptions(run_dir=tmp_path, dataset=dataset, data_root=tmp_path, preset="tiny", max_frames=frames)
    with pytest.raises(ValueError, match=f"--max-frames must be at least {shortest} for the {dataset} dataset"):
        open_dataset(options, "train", seed=0)


def test_latent_tokens_below_one_are_refused_before_any_data_is_read(tmp_path):
    with pytest.raises(ValueError, match=r"these options must be >= 1: \{'--latent-tokens': 0\}"):
        StageOptions(run_dir=tmp_path, dataset="synthetic", data_root=tmp_path / "none", preset="tiny", latent_tokens=0)
