"""Networks and configs of dhvae_sdk.models (tiny preset, CPU)."""
import dataclasses
import json
import warnings

import open_clip
import pytest
import torch
from open_clip.transformer import TextTransformer
from safetensors.torch import save_file

from dhvae_sdk.models import (
    GROUPS, VAE_BUILDERS, DHVAEConfig, TextEncoder, build_model, build_vae, count_parameters, get_preset,
    join_groups, lengths_to_mask, scale_latents, split_groups, tokenize, unscale_latents,
)
from dhvae_sdk.models.config import VAE_KINDS
from dhvae_sdk.models.denoiser import Denoiser
from dhvae_sdk.models.latent import LatentPosterior
from dhvae_sdk.models.text_encoder import CLIP_VOCAB_SIZE, FrozenClipTower, _clip_tokenizer

FEATURES = 262


def tiny_vae_config(kind: str, latent_tokens: int = 1):
    config = get_preset("tiny").vae
    return dataclasses.replace(config, kind=kind, latent_tokens=latent_tokens)


def motion_batch(lengths, num_frames, seed=0):
    generator = torch.Generator().manual_seed(seed)
    batch = len(lengths)
    motion_a = torch.randn(batch, num_frames, FEATURES, generator=generator)
    motion_b = torch.randn(batch, num_frames, FEATURES, generator=generator)
    return motion_a, motion_b, lengths_to_mask(torch.tensor(lengths), num_frames)


def randomize(module: torch.nn.Module, seed: int = 0) -> None:
    """Overwrite every parameter (zero-initialised ones included) with small random values."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)


# ---------------------------------------------------------------- configs


@pytest.mark.parametrize("name", ["paper", "small", "tiny"])
def test_config_round_trips_through_json(name):
    config = get_preset(name, "interx")
    restored = DHVAEConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config
    assert restored.feature_dim == 336 and restored.denoiser.guidance == 3.0


def test_config_rejects_unknown_and_mistyped_keys_and_defaults_missing_ones():
    data = get_preset("tiny").to_dict()
    data["vae"]["widht"] = 64
    with pytest.raises(ValueError, match=r"VAEConfig: unknown key\(s\) \['widht'\]; known keys are"):
        DHVAEConfig.from_dict(data)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['extra'\]"):
        DHVAEConfig.from_dict({"extra": 1})
    with pytest.raises(ValueError, match="VAEConfig.width must be int, got '64'"):
        DHVAEConfig.from_dict({"vae": {"width": "64"}})
    with pytest.raises(ValueError, match="long_skips must be bool"):
        DHVAEConfig.from_dict({"denoiser": {"long_skips": 1}})
    partial = DHVAEConfig.from_dict({"preset": "custom", "denoiser": {"blocks": 3, "beta_end": 0.02}})
    assert partial.denoiser.blocks == 3 and partial.denoiser.width == 512 and partial.vae.kind == "dhvae"


def test_config_values_are_checked():
    with pytest.raises(ValueError, match="width=100 must be divisible by its number of heads"):
        DHVAEConfig.from_dict({"vae": {"width": 100, "heads": 8}})
    with pytest.raises(ValueError, match=r"vae.kind must be one of \['dhvae', 'flat'\]"):
        DHVAEConfig.from_dict({"vae": {"kind": "mld"}})
    with pytest.raises(ValueError, match="prediction must be one of"):
        DHVAEConfig.from_dict({"denoiser": {"prediction": "noise"}})
    with pytest.raises(ValueError, match="neg_min < neg_max"):
        DHVAEConfig.from_dict({"loss": {"neg_min": 2.0}})
    with pytest.raises(ValueError, match=r"unknown preset 'huge'; choose one of \['paper', 'small', 'tiny'\]"):
        get_preset("huge")
    assert set(VAE_BUILDERS) == set(VAE_KINDS)


def test_chosen_values_are_the_method_defaults():
    config = get_preset("paper")
    assert (config.vae.latent_tokens, config.vae.latent_dim, config.vae.width) == (1, 256, 256)
    assert (config.vae.encoder_layers, config.vae.cotransformer_layers) == (4, 3)
    assert (config.vae.interaction_decoder_layers, config.vae.person_decoder_layers) == (3, 4)
    denoiser = config.denoiser
    assert (denoiser.width, denoiser.ff, denoiser.blocks, denoiser.num_train_steps) == (512, 1024, 13, 1000)
    assert (denoiser.beta_schedule, denoiser.beta_start, denoiser.beta_end) == ("scaled_linear", 0.00085, 0.012)
    assert (denoiser.prediction, denoiser.cond_drop, denoiser.guidance) == ("epsilon", 0.1, 3.5)
    loss = config.loss
    assert (loss.w_kl, loss.w_joint, loss.w_tri, loss.margin) == (1e-4, 1.0, 0.1, 1.0)
    assert (loss.delta_c, loss.delta_nc, loss.neg_min, loss.neg_max) == (0.05, 0.25, 0.4, 1.5)
    assert config.text.kind == "clip" and config.text.layers == 2


# ---------------------------------------------------------------- VAEs


@pytest.mark.parametrize("kind", ["dhvae", "flat"])
@pytest.mark.parametrize("latent_tokens", [1, 2])
def test_vae_shapes(kind, latent_tokens):
    config = tiny_vae_config(kind, latent_tokens)
    vae = build_vae(config).eval()
    motion_a, motion_b, mask = motion_batch([20, 9, 14], 20)
    posterior = vae.encode(motion_a, motion_b, mask)
    assert posterior.mean.shape == posterior.logvar.shape == (3, 3 * latent_tokens, config.latent_dim)
    features_a, features_b = vae.decode(posterior.mean, mask)
    assert features_a.shape == features_b.shape == (3, 20, FEATURES)
    out = vae(motion_a, motion_b, mask, generator=torch.Generator().manual_seed(1))
    assert out["recon_a"].shape == (3, 20, FEATURES) and out["latents"].shape == posterior.mean.shape
    assert not torch.equal(out["latents"], posterior.mean)
    assert set(posterior.kl()) == set(GROUPS)


@pytest.mark.parametrize("kind", ["dhvae", "flat"])
def test_padded_frames_do_not_change_real_frames(kind):
    vae = build_vae(tiny_vae_config(kind)).eval()
    motion_a, motion_b, mask = motion_batch([16, 7], 16)
    posterior = vae.encode(motion_a, motion_b, mask)
    changed_a, changed_b = motion_a.clone(), motion_b.clone()
    changed_a[1, 7:] = float("nan")
    changed_b[1, 7:] = 1e4
    assert torch.equal(vae.encode(changed_a, changed_b, mask).mean, posterior.mean)

    features_a, features_b = vae.decode(posterior.mean, mask)
    assert features_a[1, 7:].abs().sum() == 0 and features_b[1, 7:].abs().sum() == 0
    # The same latent decoded at its exact length gives the same real frames.
    alone_a, alone_b = vae.decode(posterior.mean[1:], lengths_to_mask(torch.tensor([7])))
    torch.testing.assert_close(alone_a, features_a[1:, :7], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alone_b, features_b[1:, :7], atol=1e-5, rtol=1e-5)


def test_dhvae_latents_are_disentangled_by_construction():
    vae = build_vae(tiny_vae_config("dhvae")).eval()
    motion_a, motion_b, mask = motion_batch([12, 12], 12)
    posterior = vae.encode(motion_a, motion_b, mask)
    other = vae.encode(motion_a, torch.randn_like(motion_b), mask).group_means()
    means = posterior.group_means()
    assert torch.equal(other["a"], means["a"])  # q(z_a) sees person A only
    assert not torch.allclose(other["b"], means["b"]) and not torch.allclose(other["g"], means["g"])

    z = posterior.mean
    groups = split_groups(z, 1)
    features_a, features_b = vae.decode(z, mask)
    new_a, new_b = vae.decode(join_groups(groups["a"] + 1.0, groups["b"], groups["g"]), mask)
    assert torch.equal(new_b, features_b) and not torch.allclose(new_a, features_a)
    new_a, new_b = vae.decode(join_groups(groups["a"], groups["b"], groups["g"] + 1.0), mask)
    assert not torch.allclose(new_a, features_a) and not torch.allclose(new_b, features_b)


def test_vae_rejects_bad_inputs_clearly():
    vae = build_vae(tiny_vae_config("dhvae"))
    motion_a, motion_b, mask = motion_batch([5, 3], 5)
    with pytest.raises(ValueError, match=r"motion_a must be \[B, T, 262\]"):
        vae.encode(motion_a[..., :100], motion_b, mask)
    with pytest.raises(ValueError, match="mask must be a bool tensor"):
        vae.encode(motion_a, motion_b, mask.float())
    with pytest.raises(ValueError, match="at least one real frame"):
        vae.encode(motion_a, motion_b, torch.zeros_like(mask))
    with pytest.raises(ValueError, match=r"z must be \[B, 3, 32\]"):
        vae.decode(torch.zeros(2, 2, 32), mask)
    too_long = lengths_to_mask(torch.tensor([301]))
    with pytest.raises(ValueError, match=r"301 frames requested but the model handles at most 300"):
        vae.decode(torch.zeros(1, 3, 32), too_long)
    with pytest.raises(ValueError, match="every length must be >= 1"):
        lengths_to_mask(torch.tensor([4, 0]))


def test_posterior_kl_and_sampling():
    mean = torch.zeros(2, 3, 4)
    mean[:, 2] = 2.0  # only the "g" token is off the prior
    posterior = LatentPosterior(mean, torch.zeros(2, 3, 4), tokens_per_group=1)
    kl = posterior.kl()
    assert float(kl["a"]) == 0.0 and float(kl["b"]) == 0.0 and float(kl["g"]) == pytest.approx(2.0)
    first = posterior.sample(torch.Generator().manual_seed(3))
    assert torch.equal(first, posterior.sample(torch.Generator().manual_seed(3)))


def test_latent_scaling_divides_each_group_by_its_scale():
    tokens = torch.ones(1, 6, 2)
    scales = torch.tensor([2.0, 4.0, 0.5])
    scaled = scale_latents(tokens, scales, tokens_per_group=2)
    assert scaled[0, :, 0].tolist() == [0.5, 0.5, 0.25, 0.25, 2.0, 2.0]
    assert torch.equal(unscale_latents(scaled, scales, tokens_per_group=2), tokens)
    with pytest.raises(ValueError, match=r"one per group a, b, g"):
        scale_latents(tokens, torch.ones(2), tokens_per_group=2)


# ---------------------------------------------------------------- denoiser


def tiny_denoiser(latent_tokens=1, **overrides):
    config = dataclasses.replace(get_preset("tiny").denoiser, **overrides)
    return Denoiser(config, latent_dim=32, latent_tokens=latent_tokens)


def test_denoiser_starts_at_exactly_zero():
    denoiser = tiny_denoiser()
    x = torch.randn(4, 3, 32)
    text = torch.randn(4, 128)
    out = denoiser(x, torch.tensor([0, 10, 500, 999]), text)
    assert out.shape == x.shape and torch.count_nonzero(out) == 0


@pytest.mark.parametrize("latent_tokens", [1, 2])
def test_precomputed_modulation_equals_forward(latent_tokens):
    denoiser = tiny_denoiser(latent_tokens).eval()
    randomize(denoiser)
    x = torch.randn(2, 3 * latent_tokens, 32)
    text = torch.cat([torch.randn(1, 128), denoiser.null_text_embedding(1)])  # conditional + unconditional row
    steps = torch.tensor([999, 500, 1])
    # The sampler's way: one call for the modulation of every step, then only the blocks per step.
    conditions = denoiser.condition(steps.repeat_interleave(2), text.repeat(len(steps), 1))
    modulation = denoiser.modulation(conditions).view(len(steps), 2, denoiser.modulation_rows, -1)
    for index, step in enumerate(steps):
        expected = denoiser(x, step.repeat(2), text)
        assert expected.abs().max() > 1e-3
        assert torch.equal(denoiser.forward_with_modulation(x, denoiser.modulation(denoiser.condition(step.repeat(2), text))), expected)
        torch.testing.assert_close(denoiser.forward_with_modulation(x, modulation[index]), expected, atol=1e-5, rtol=1e-4)


def test_long_skips_connect_block_i_to_block_mirror():
    denoiser = tiny_denoiser().eval()  # 5 blocks: 0 -> 4, 1 -> 3, block 2 in the middle
    randomize(denoiser)
    block_outputs, skip_inputs = {}, {}
    for index, block in enumerate(denoiser.blocks):
        block.register_forward_hook(lambda module, args, out, index=index: block_outputs.__setitem__(index, out))
    for index, projection in enumerate(denoiser.skip_projections):
        projection.register_forward_hook(lambda module, args, out, index=index: skip_inputs.__setitem__(index, args[0]))
    denoiser(torch.randn(2, 3, 32), torch.tensor([3, 4]), torch.randn(2, 128))
    width = denoiser.config.width
    assert len(denoiser.skip_projections) == 2
    assert torch.equal(skip_inputs[0][..., width:], block_outputs[1])  # feeds block 3
    assert torch.equal(skip_inputs[0][..., :width], block_outputs[2])
    assert torch.equal(skip_inputs[1][..., width:], block_outputs[0])  # feeds block 4
    assert len(tiny_denoiser(long_skips=False).skip_projections) == 0


def test_segment_embedding_tells_groups_apart():
    denoiser = tiny_denoiser().eval()
    randomize(denoiser)
    x = torch.randn(1, 1, 32).expand(2, 3, 32)  # the same token in every group
    out = denoiser(x, torch.tensor([7, 7]), torch.randn(1, 128).expand(2, 128))
    assert not torch.allclose(out[:, 0], out[:, 1]) and not torch.allclose(out[:, 1], out[:, 2])


def test_denoiser_rejects_bad_inputs():
    denoiser = tiny_denoiser()
    x, text = torch.randn(2, 3, 32), torch.randn(2, 128)
    with pytest.raises(ValueError, match=r"timesteps must lie in \[0, 1000\)"):
        denoiser(x, torch.tensor([0, 1000]), text)
    with pytest.raises(ValueError, match="1-D long tensor"):
        denoiser(x, torch.tensor([0.5, 1.0]), text)
    with pytest.raises(ValueError, match=r"x_t must be \[B, 3, 32\]"):
        denoiser(torch.randn(2, 4, 32), torch.tensor([0, 1]), text)
    with pytest.raises(ValueError, match=r"modulation must be \[B, 32, 128\]"):
        denoiser.forward_with_modulation(x, torch.zeros(2, 30, 128))


# ---------------------------------------------------------------- text


def test_tokenize_matches_clip_layout_and_checks_input():
    tokens = tokenize(["two people shake hands", "a hug"])
    tokenizer = _clip_tokenizer()
    assert tokens.shape == (2, 77) and tokens.dtype == torch.long
    assert tokens[0, 0] == tokenizer.sot_token_id and tokens[0].argmax() == 5 and tokens[0, 5] == tokenizer.eot_token_id
    assert torch.count_nonzero(tokens[1, 4:]) == 0
    assert tokenizer.vocab_size == CLIP_VOCAB_SIZE
    with pytest.warns(UserWarning, match="text 1 has .* tokens, more than the context of 77; it is truncated"):
        long = tokenize(["short", "word " * 100])
    assert long[1, -1] == tokenizer.eot_token_id and torch.count_nonzero(long[1]) == 77
    assert torch.equal(long, open_clip.tokenize(["short", "word " * 100]))  # CLIP's own truncation
    for bad, message in ((["ok", ""], "text 1 must be a non-empty string"), ([3], "text 0 must be"),
                         ("a bare string", "list of strings"), ([], "non-empty list")):
        with pytest.raises(ValueError, match=message):
            tokenize(bad)


def test_small_clip_text_encoder_reads_up_to_the_end_token():
    text = TextEncoder(get_preset("tiny").text, output_width=128).eval()
    tokens = tokenize(["two people shake hands", "a hug"])
    out = text(tokens)
    assert out.shape == (2, 128)
    after_end = tokens.clone()
    after_end[0, 7:] = 320  # ids after the end token cannot change a causal encoder's end feature
    torch.testing.assert_close(text(after_end), out, atol=0, rtol=0)
    changed = tokens.clone()
    changed[0, 2] = 320
    assert not torch.allclose(text(changed)[0], out[0])
    with pytest.raises(ValueError, match=r"tokens must be a long tensor \[B, 77\]"):
        text(tokens[:, :10])


SMALL_CLIP_TEXT = {"context_length": 77, "vocab_size": CLIP_VOCAB_SIZE, "width": 64, "heads": 2, "layers": 2}


@pytest.fixture
def small_clip_config(monkeypatch):
    """The ViT-L-14 text tower's code path with a narrow tower, so tests stay fast."""
    monkeypatch.setattr(open_clip, "get_model_config", lambda name: {"text_cfg": SMALL_CLIP_TEXT})


def reference_clip_weights():
    torch.manual_seed(5)
    tower = TextTransformer(**SMALL_CLIP_TEXT, output_dim=None, output_tokens=True,
                            act_layer=open_clip.transformer.QuickGELU).eval()
    return tower, tower.state_dict()


def test_frozen_clip_tower_loads_user_weights(small_clip_config, tmp_path):
    reference, state = reference_clip_weights()
    tokens = tokenize(["two people shake hands"])
    expected = reference(tokens)[1]
    wrapped = {"state_dict": {f"module.{key}": value for key, value in state.items()}}
    wrapped["state_dict"]["module.visual.proj"] = torch.zeros(3)
    torch.save(wrapped, tmp_path / "clip.pt")
    save_file({**state, "logit_scale": torch.ones(())}, str(tmp_path / "clip.safetensors"))
    for name in ("clip.pt", "clip.safetensors"):
        tower = FrozenClipTower(str(tmp_path / name), quick_gelu=True)
        assert torch.equal(tower(tokens), expected)
        assert not any(parameter.requires_grad for parameter in tower.parameters())


def test_frozen_clip_tower_refuses_bad_files_and_warns_without_one(small_clip_config, tmp_path):
    _, state = reference_clip_weights()
    save_file({key: value for key, value in state.items() if key != "ln_final.weight"}, str(tmp_path / "part.safetensors"))
    with pytest.raises(ValueError, match=r"part.safetensors is not an open_clip ViT-L-14 text tower: 1 key\(s\) missing"):
        FrozenClipTower(str(tmp_path / "part.safetensors"), quick_gelu=True)
    with pytest.raises(FileNotFoundError, match="nowhere.pt does not exist"):
        FrozenClipTower(str(tmp_path / "nowhere.pt"), quick_gelu=True)
    with pytest.warns(UserWarning, match="RANDOM weights"):
        FrozenClipTower(None, quick_gelu=True)


def test_frozen_clip_tower_is_neither_counted_nor_saved(small_clip_config):
    config = get_preset("tiny")
    config.text.kind = "clip"
    with pytest.warns(UserWarning, match="RANDOM weights"):
        model = build_model(config)
    tower_parameters = sum(p.numel() for p in model.text.tower.parameters())
    assert tower_parameters > 0
    counts = count_parameters(model)
    everything = sum(p.numel() for p in model.parameters())
    assert counts["total"] == everything - tower_parameters == sum(counts[k] for k in ("vae", "denoiser", "text"))
    assert not any(key.startswith("text.tower.") for key in model.checkpoint_state_dict())


# ---------------------------------------------------------------- sizes


def test_preset_parameter_counts():
    totals = {}
    for name in ("paper", "small", "tiny"):
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the paper preset's CLIP tower has no weights file here
            totals[name] = count_parameters(build_model(name))["total"]
    assert 50e6 <= totals["paper"] <= 62e6
    assert 5e6 <= totals["small"] <= 10e6
    assert 1e6 <= totals["tiny"] <= 5e6


def test_the_exported_attention_equals_scaled_dot_product_attention():
    from dhvae_sdk.models.layers import _explicit_attention

    generator = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(2, 4, 7, 8, generator=generator) for _ in range(3))
    key_mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])[:, None, None, :]
    causal = torch.ones(7, 7, dtype=torch.bool).tril()
    for mask in (None, key_mask, key_mask & causal):
        expected = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask)
        torch.testing.assert_close(_explicit_attention(query, key, value, mask), expected, rtol=1e-5, atol=1e-6)
