"""The released DHVAE checkpoints: key layout, conversion and numerical parity with the
authors' recorded outputs (``shared/reference/official-fixture``), on PyTorch."""
import json
import warnings
from dataclasses import dataclass, replace

import numpy as np
import pytest
import torch

from dhvae_sdk.checkpoint import load_checkpoint
from dhvae_sdk.convert import OfficialCheckpointError, convert_official, read_official, release_layout
from dhvae_sdk.convert.__main__ import main as convert_main
from dhvae_sdk.convert.official import release_parameter_count
from dhvae_sdk.models import build_model, empty_text_tokens, get_preset, lengths_to_mask, tokenize
from dhvae_sdk.models.denoiser import timestep_features
from dhvae_sdk.runtime.base import scheduler_of
from dhvae_sdk.sampling import classifier_free_guidance, sample_latents
from tests.official_fixture import (
    VARIANTS, assert_matches, clip_heads, model_checkpoint, official, recorded, require_fixture, vae_folder,
)


def _release_file(variant: str) -> dict:
    keys = json.loads((require_fixture() / "full_size_keys.json").read_text())["files"]
    name = next(name for name in keys if name.startswith(f"chmld_{variant}:"))
    return keys[name]


@pytest.mark.parametrize("variant,total", [("cat", 56_425_996), ("hire", 63_004_172)])
def test_full_size_release_layout_is_ours(variant, total):
    config = get_preset("paper")
    config = replace(config, vae=replace(config.vae, decoder=variant))
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(config)
    expected = {key: tuple(shape) for key, shape, *_ in _release_file(variant)["keys"]}
    assert release_layout(model) == expected
    assert release_parameter_count(model) == total


@pytest.mark.parametrize("variant", VARIANTS)
def test_text_encoder_and_time_embedding_match(variant):
    model, arrays = official(variant).model, recorded(variant)
    texts = [str(text) for text in arrays["texts"]]
    with pytest.warns(UserWarning, match="truncated"):
        tokens = torch.cat([empty_text_tokens(len(texts)), tokenize(texts)])
    np.testing.assert_array_equal(tokens.numpy(), arrays["tokens"])
    with torch.no_grad():
        assert_matches("clip_out", model.text.tower(tokens), arrays["clip_out"])
        assert_matches("cond", model.text(tokens), arrays["cond"])
        assert_matches("null text", model.null_text_embedding(3), arrays["cond"][:3])
        width = model.config.text.width
        steps = torch.from_numpy(arrays["timesteps"])
        assert_matches("time_emb", model.denoiser.time_embedding(timestep_features(steps, width)), arrays["time_emb"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_single_denoiser_calls_match(variant):
    denoiser, arrays = official(variant).model.denoiser, recorded(variant)
    tensor = lambda name: torch.from_numpy(arrays[name])  # noqa: E731
    with torch.no_grad():
        assert_matches("den_out", denoiser(tensor("den_x"), tensor("den_t"), tensor("den_cond")[:, 0]), arrays["den_out"])
        single = tensor("den_t_single").expand(len(arrays["den_x"]))
        assert_matches("den_out_single_t", denoiser(tensor("den_x"), single, tensor("den_cond")[:, 0]),
                       arrays["den_out_single_t"])
        assert_matches("den_out_lowvar", denoiser(tensor("den_x_lowvar"), tensor("den_t_lowvar"),
                                                  tensor("den_cond_lowvar")[:, 0]), arrays["den_out_lowvar"])


@dataclass
class RecordedNoise:
    """``ArrayOps`` whose only draw is the fixture's initial noise."""

    initial: torch.Tensor

    def randn(self, shape):
        assert tuple(shape) == tuple(self.initial.shape)
        return self.initial.clone()

    def concat(self, first, second):
        return torch.cat([first, second])

    def where(self, mask, if_true, if_false):
        return torch.where(mask, if_true, if_false)


@pytest.mark.parametrize("variant", VARIANTS)
def test_guided_ddim_loop_and_decoding_match(variant):
    converted, arrays = official(variant), recorded(variant)
    model, config = converted.model, converted.config
    scheduler = scheduler_of(config)
    steps = int(arrays["steps"])
    pairs = scheduler.step_pairs(steps)
    np.testing.assert_array_equal([t for t, _ in pairs], arrays["timesteps"])
    np.testing.assert_array_equal([t for _, t in pairs], arrays["prev_timesteps"])
    assert_matches("alphas", scheduler.alphas_cumprod, arrays["scheduler_alphas_cumprod"])
    assert_matches("alpha_prev", [scheduler.alpha_cumprod(t) for _, t in pairs], arrays["alpha_cumprod_prev"])
    assert config.denoiser.guidance == float(arrays["guidance"]) and steps == config.denoiser.sampling_steps

    cond = torch.from_numpy(arrays["cond"])
    batch = len(arrays["texts"])
    conditions = torch.cat([cond[batch:], cond[:batch]])  # ours: conditional rows first
    raw, guided, inputs = [], [], []

    def denoise(latents, timestep, step_index):
        output = model.denoiser(latents, torch.full((len(latents),), timestep), conditions)
        inputs.append(latents[:batch])
        raw.append(torch.cat([output[batch:], output[:batch]]))  # the release's row order
        guided.append(classifier_free_guidance(output, config.denoiser.guidance))
        return output

    with torch.no_grad():
        latents = sample_latents(denoise, scheduler, arrays["init_latents"].shape, steps, config.denoiser.guidance,
                                 RecordedNoise(torch.from_numpy(arrays["init_latents"])))
        assert_matches("step_noise_pred_raw", torch.stack(raw), arrays["step_noise_pred_raw"])
        assert_matches("step_noise_pred_guided", torch.stack(guided), arrays["step_noise_pred_guided"])
        # Each step's result is the next step's input; the last one is returned.
        assert_matches("step_latents_out", torch.stack(inputs[1:] + [latents]), arrays["step_latents_out"])
        z = latents * converted.latent_scales.repeat_interleave(config.vae.latent_tokens)[None, :, None]
        for index, group in enumerate(z.split(config.vae.latent_tokens, dim=1)):
            assert_matches(f"dec_z{index + 1}", group, arrays[f"dec_z{index + 1}"])
        lengths = torch.from_numpy(arrays["lengths"])
        mask = lengths_to_mask(lengths, config.vae.max_frames)
        person_a, person_b = model.vae.decode(z, mask)
        output = torch.cat([person_a, person_b], dim=-1)
        assert_matches("output_normalized", output, arrays["output_normalized"])
        denormalized = output.unflatten(-1, (2, -1)) * converted.feature_std + converted.feature_mean
        assert_matches("output_denormalized", denormalized, arrays["output_denormalized"])
        np.testing.assert_array_equal(converted.feature_mean.numpy(), arrays["denorm_mean"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_encoder_and_reconstruction_match(variant):
    converted, arrays = official(variant), recorded(variant)
    vae, tokens = converted.model.vae, converted.config.vae.latent_tokens
    motion = torch.from_numpy(arrays["enc_motion"])
    mask = lengths_to_mask(torch.from_numpy(arrays["enc_lengths"]), motion.shape[1])
    with torch.no_grad():
        posterior = vae.encode(motion[..., :262], motion[..., 262:], mask)
        means, logvars = posterior.mean.split(tokens, dim=1), posterior.logvar.split(tokens, dim=1)
        for index in range(3):
            assert_matches(f"enc_z{index + 1}", torch.cat([means[index], logvars[index]], dim=1),
                           arrays[f"enc_z{index + 1}"])
        person_a, person_b = vae.decode(posterior.mean, mask)
    assert_matches("recon_x1_from_mu", person_a, arrays["recon_x1_from_mu"])
    assert_matches("recon_x2_from_mu", person_b, arrays["recon_x2_from_mu"])


@pytest.mark.parametrize("variant", ["cat", "hire"])
def test_vae_folder_converts_to_the_same_vae_as_the_full_model(variant, tmp_path):
    vae_only = read_official(vae_folder(variant))
    assert vae_only.stage == "vae" and official(variant).stage == "denoiser"
    assert vae_only.config.vae == official(variant).config.vae
    full_vae = official(variant).model.vae.state_dict()
    for key, value in vae_only.model.vae.state_dict().items():
        assert torch.equal(value, full_vae[key]), key


def test_converted_checkpoint_loads_alone_and_decodes_the_same(tmp_path, capsys):
    out = tmp_path / "cat.safetensors"
    assert convert_main([str(model_checkpoint("cat")), "--out", str(out), "--clip-heads", str(clip_heads())]) == 0
    assert "'cat' decoder, 3 denoiser layers" in capsys.readouterr().out
    checkpoint = load_checkpoint(out)
    assert checkpoint.stage == "denoiser" and checkpoint.config.vae.decoder == "cat"
    assert checkpoint.latent_scales.tolist() == pytest.approx([1.0, 1.0, 0.2])
    reference = official("cat").model.state_dict()
    for key, value in checkpoint.model.state_dict().items():
        assert torch.equal(value, reference[key]), key


# ------------------------------------------------------------------- refusals


def _edited_copy(tmp_path, edit) -> str:
    checkpoint = torch.load(model_checkpoint("cat"), map_location="cpu", weights_only=True)
    edit(checkpoint)
    path = tmp_path / "edited.ckpt"
    torch.save(checkpoint, path)
    return str(path)


@pytest.mark.parametrize("edit,message", [
    (lambda c: c["state_dict"].pop("denoiser.time_embedding.linear_1.bias"), r"missing \['denoiser.time_embedding.linear_1.bias'\]"),
    (lambda c: c["state_dict"].__setitem__("denoiser.extra", torch.zeros(1)), r"unexpected \['denoiser.extra'\]"),
    (lambda c: c["state_dict"].__setitem__("vae.encoder.u1", torch.zeros(3, 24)), r"vae.encoder.u1 \(3, 24\) \(expected \(2, 24\)\)"),
    (lambda c: c["state_dict"]["denoiser.denoiser.denoiser.layers.0.attn.zero_k_bias"].fill_(1.0), "is not zero"),
    (lambda c: c.pop("hyper_parameters"), "not a DHVAE one"),
    (lambda c: c["hyper_parameters"]["mld"].__setitem__("is_vp", True), "v/sample prediction"),
    (lambda c: c["hyper_parameters"]["NoiseScheduler"].__setitem__("eta", 0.5), r"NoiseScheduler.eta 0.5 \(stochastic DDIM\)"),
])
def test_refuses_files_that_are_not_the_release(tmp_path, edit, message):
    with pytest.raises(OfficialCheckpointError, match=message):
        read_official(_edited_copy(tmp_path, edit), clip_heads=clip_heads())


def test_refuses_truncated_and_foreign_files(tmp_path):
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(model_checkpoint("cat").read_bytes()[:100_000])
    with pytest.raises(OfficialCheckpointError, match="truncated, corrupted, or not a checkpoint"):
        read_official(truncated)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"model.weight": torch.zeros(2)}, "hyper_parameters": {"lr": 1}}, foreign)
    with pytest.raises(OfficialCheckpointError, match="not a DHVAE one"):
        read_official(foreign)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(OfficialCheckpointError, match="holds no .ckpt file"):
        read_official(empty)
    assert convert_main([str(truncated), "--out", str(tmp_path / "x.safetensors")]) == 1
    assert not (tmp_path / "x.safetensors").exists()
