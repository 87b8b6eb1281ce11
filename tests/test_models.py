"""Networks and configs of dhvae_sdk.models (tiny preset, CPU)."""
import dataclasses
import json
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from dhvae_sdk.models import (
    GROUPS, VAE_BUILDERS, DHVAEConfig, TextEncoder, build_model, build_vae, count_parameters, empty_text_tokens,
    get_preset, join_groups, lengths_to_mask, scale_latents, split_groups, tokenize, unscale_latents,
)
from dhvae_sdk.models.config import VAE_KINDS, TextEncoderConfig
from dhvae_sdk.models.denoiser import Denoiser
from dhvae_sdk.models.latent import LatentPosterior
from dhvae_sdk.models.layers import EncoderLayer, attend
from dhvae_sdk.models.text_encoder import ClipTextTower
from dhvae_sdk.models.tokenizer import clip_tokenizer, token_ids

FEATURES = 262
# Importing open_clip takes seconds: its tests share one worker (tests/conftest.py), which alone imports it.
OPEN_CLIP = pytest.mark.xdist_group("open-clip")


def tiny_vae_config(kind: str, latent_tokens: int = 1, decoder: str = "cat"):
    return dataclasses.replace(get_preset("tiny").vae, kind=kind, latent_tokens=latent_tokens, decoder=decoder)


def motion_batch(lengths, num_frames, seed=0):
    generator = torch.Generator().manual_seed(seed)
    batch = len(lengths)
    motion_a = torch.randn(batch, num_frames, FEATURES, generator=generator)
    motion_b = torch.randn(batch, num_frames, FEATURES, generator=generator)
    return motion_a, motion_b, lengths_to_mask(torch.tensor(lengths), num_frames)


VAES = [("dhvae", "cat"), ("dhvae", "hire"), ("flat", "cat")]


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
    with pytest.raises(ValueError, match="skip must be bool"):
        DHVAEConfig.from_dict({"denoiser": {"skip": 1}})
    partial = DHVAEConfig.from_dict({"preset": "custom", "denoiser": {"layers": 3, "beta_end": 0.02}})
    assert partial.denoiser.layers == 3 and partial.vae.width == 256 and partial.vae.kind == "dhvae"


def test_config_values_are_checked():
    with pytest.raises(ValueError, match="width=100 must be divisible by its number of heads"):
        DHVAEConfig.from_dict({"vae": {"width": 100, "heads": 8}})
    with pytest.raises(ValueError, match=r"vae.kind must be one of \['dhvae', 'flat'\]"):
        DHVAEConfig.from_dict({"vae": {"kind": "mld"}})
    with pytest.raises(ValueError, match=r"vae.decoder must be one of \['cat', 'hire'\]"):
        DHVAEConfig.from_dict({"vae": {"decoder": "skip"}})
    with pytest.raises(ValueError, match="interaction_layers must be odd"):
        DHVAEConfig.from_dict({"vae": {"interaction_layers": 4}})
    with pytest.raises(ValueError, match="prediction must be one of"):
        DHVAEConfig.from_dict({"denoiser": {"prediction": "noise"}})
    with pytest.raises(ValueError, match=r"denoiser.eta must be 0 \(dhvae-sdk samples with deterministic DDIM"):
        DHVAEConfig.from_dict({"denoiser": {"eta": 0.5}})
    with pytest.raises(ValueError, match="denoiser.temperature must be from 0 to 2, got 2.5"):
        DHVAEConfig.from_dict({"denoiser": {"temperature": 2.5}})
    # A checkpoint written before the temperature existed samples from unit noise, as it did then.
    assert DHVAEConfig.from_dict({"denoiser": {"layers": 3}}).denoiser.temperature == 1.0
    with pytest.raises(ValueError, match="neg_contact_min < neg_contact_max"):
        DHVAEConfig.from_dict({"loss": {"neg_contact_min": 2.0}})
    with pytest.raises(ValueError, match=r"unknown preset 'huge'; choose one of \['paper', 'small', 'tiny'\]"):
        get_preset("huge")
    assert set(VAE_BUILDERS) == set(VAE_KINDS)


def test_configs_are_frozen_and_changed_by_replace_into_independent_copies():
    config = get_preset("tiny")
    for owner, name in [(config, "fps"), (config.vae, "kind"), (config.denoiser, "guidance"),
                        (config.text, "clip_weights"), (config.loss, "w_tri")]:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(owner, name, getattr(owner, name))
    flat = dataclasses.replace(config, vae=dataclasses.replace(config.vae, kind="flat"))
    interx = get_preset("tiny", "interx")
    assert (flat.vae.kind, config.vae.kind, get_preset("tiny").vae.kind) == ("flat", "dhvae", "dhvae")
    assert (interx.feature_dim, interx.denoiser.guidance, interx.fps) == (336, 3.0, 30)
    assert (config.feature_dim, config.denoiser.guidance) == (262, 3.5) and get_preset("tiny") == config
    with pytest.raises(ValueError, match="interaction_layers must be odd"):  # a replace is checked too
        dataclasses.replace(config.vae, interaction_layers=4)


def test_paper_preset_is_the_released_configuration():
    config = get_preset("paper")
    vae = config.vae
    assert (vae.kind, vae.decoder, vae.latent_tokens, vae.width, vae.heads, vae.ff) == ("dhvae", "cat", 1, 256, 4, 1024)
    assert (vae.person_layers, vae.interaction_layers, vae.decoder_layers, vae.max_frames) == (4, 3, 7, 300)
    denoiser = config.denoiser
    assert (denoiser.layers, denoiser.heads, denoiser.skip, denoiser.prediction) == (9, 4, False, "epsilon")
    assert (denoiser.steps_offset, denoiser.set_alpha_to_one, denoiser.guidance, denoiser.sampling_steps) == (1, False, 3.5, 50)
    assert (denoiser.beta_schedule, denoiser.beta_start, denoiser.beta_end) == ("scaled_linear", 0.00085, 0.012)
    text = config.text
    assert (text.width, text.layers, text.heads, text.mlp, text.quick_gelu, text.train_tower) == (768, 12, 12, 3072, True, False)
    assert (text.head_layers, text.head_heads, text.head_ff) == (2, 8, 2048)
    loss = config.loss
    assert (loss.w_rec, loss.w_joint, loss.w_kl, loss.w_tri, loss.margin) == (0.5, 0.5, 1e-4, 1e-4, 3.0)
    assert (loss.pos_contact, loss.pos_apart) == (0.05, 0.3)
    assert (loss.neg_contact_min, loss.neg_contact_max, loss.neg_apart_min, loss.neg_apart_max) == (0.075, 0.15, 0.45, 0.9)


# ---------------------------------------------------------------- VAEs


@pytest.mark.parametrize("kind,decoder", VAES)
@pytest.mark.parametrize("latent_tokens", [1, 2])
def test_vae_shapes(kind, decoder, latent_tokens):
    config = tiny_vae_config(kind, latent_tokens, decoder)
    vae = build_vae(config).eval()
    motion_a, motion_b, mask = motion_batch([20, 9, 14], 20)
    posterior = vae.encode(motion_a, motion_b, mask)
    assert posterior.mean.shape == posterior.logvar.shape == (3, 3 * latent_tokens, config.width)
    features_a, features_b = vae.decode(posterior.mean, mask)
    assert features_a.shape == features_b.shape == (3, 20, FEATURES)
    out = vae(motion_a, motion_b, mask, generator=torch.Generator().manual_seed(1))
    assert out["recon_a"].shape == (3, 20, FEATURES) and out["latents"].shape == posterior.mean.shape
    assert not torch.equal(out["latents"], posterior.mean)
    assert set(posterior.kl()) == set(GROUPS)


@pytest.mark.parametrize("kind,decoder", VAES)
def test_padded_frames_do_not_change_real_frames(kind, decoder):
    vae = build_vae(tiny_vae_config(kind, decoder=decoder)).eval()
    motion_a, motion_b, mask = motion_batch([16, 7], 16)
    posterior = vae.encode(motion_a, motion_b, mask)
    changed_a, changed_b = motion_a.clone(), motion_b.clone()
    changed_a[1, 7:] = float("nan")
    changed_b[1, 7:] = 1e4
    torch.testing.assert_close(vae.encode(changed_a, changed_b, mask).mean, posterior.mean, atol=1e-5, rtol=1e-5)

    features_a, features_b = vae.decode(posterior.mean, mask)
    assert features_a[1, 7:].abs().sum() == 0 and features_b[1, 7:].abs().sum() == 0
    # The same latent decoded at its exact length gives the same real frames.
    alone_a, alone_b = vae.decode(posterior.mean[1:], lengths_to_mask(torch.tensor([7])))
    torch.testing.assert_close(alone_a, features_a[1:, :7], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alone_b, features_b[1:, :7], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("decoder", ["cat", "hire"])
def test_dhvae_latents_are_disentangled_by_construction(decoder):
    vae = build_vae(tiny_vae_config("dhvae", decoder=decoder)).eval()
    motion_a, motion_b, mask = motion_batch([12, 12], 12)
    posterior = vae.encode(motion_a, motion_b, mask)
    other = vae.encode(motion_a, torch.randn_like(motion_b), mask).group_means()
    means = posterior.group_means()
    assert torch.equal(other["a"], means["a"])  # q(z_a) sees person A only
    assert not torch.allclose(other["b"], means["b"]) and not torch.allclose(other["g"], means["g"])

    groups = split_groups(posterior.mean, 1)
    features_a, features_b = vae.decode(posterior.mean, mask)
    new_a, new_b = vae.decode(join_groups(groups["a"] + 1.0, groups["b"], groups["g"]), mask)
    assert torch.equal(new_b, features_b) and not torch.allclose(new_a, features_a)
    new_a, new_b = vae.decode(join_groups(groups["a"], groups["b"], groups["g"] + 1.0), mask)
    assert not torch.allclose(new_a, features_a) and not torch.allclose(new_b, features_b)


@pytest.mark.parametrize("latent_tokens", [1, 2])
def test_a_new_dhvae_starts_with_informative_person_posteriors(latent_tokens):
    """The person posteriors are unprojected LayerNorm outputs: at the usual zero bias they would
    start as noisy as the prior (sigma ~ 1) and the decoder would learn to ignore them."""
    torch.manual_seed(0)
    vae = build_vae(tiny_vae_config("dhvae", latent_tokens)).eval()
    with torch.no_grad():
        posterior = vae.encode(*motion_batch([20, 20, 20, 20], 20))
    sigma = split_groups((0.5 * posterior.logvar).exp(), latent_tokens)
    for group in ("a", "b"):
        assert 0.05 < float(sigma[group].median()) < 0.4, (group, float(sigma[group].median()))


def test_vae_rejects_bad_inputs_clearly():
    vae = build_vae(tiny_vae_config("dhvae"))
    motion_a, motion_b, mask = motion_batch([5, 3], 5)
    with pytest.raises(ValueError, match=r"motion_a must be \[B, T, 262\]"):
        vae.encode(motion_a[..., :100], motion_b, mask)
    with pytest.raises(ValueError, match="mask must be a bool tensor"):
        vae.encode(motion_a, motion_b, mask.float())
    with pytest.raises(ValueError, match="at least one real frame"):
        vae.encode(motion_a, motion_b, torch.zeros_like(mask))
    with pytest.raises(ValueError, match=r"z must be \[B, 3, 64\]"):
        vae.decode(torch.zeros(2, 2, 64), mask)
    too_long = lengths_to_mask(torch.tensor([301]))
    with pytest.raises(ValueError, match=r"301 frames requested but the model handles at most 300"):
        vae.decode(torch.zeros(1, 3, 64), too_long)
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
    return Denoiser(config, width=64, latent_tokens=latent_tokens, condition_width=32).eval()


@pytest.mark.parametrize("latent_tokens,skip", [(1, False), (2, False), (1, True)])
def test_precomputed_modulation_equals_forward(latent_tokens, skip):
    denoiser = tiny_denoiser(latent_tokens, skip=skip)
    x = torch.randn(2, 3 * latent_tokens, 64)
    text = torch.randn(2, 32)
    steps = torch.tensor([999, 500, 1])
    # The sampler's way: one call for the modulation of every step, then only the layers per step.
    modulation = denoiser.modulation_table(steps, text)
    assert modulation.shape == (len(steps), 2, denoiser.modulation_rows, 64)
    for index, step in enumerate(steps):
        expected = denoiser(x, step.repeat(2), text)
        assert expected.abs().max() > 1e-3
        torch.testing.assert_close(denoiser.forward_with_modulation(x, modulation[index]), expected, atol=1e-5, rtol=1e-4)


def test_skip_denoiser_connects_layer_i_to_its_mirror_and_has_no_head():
    denoiser = tiny_denoiser(layers=4, skip=True)  # an even depth gets one more layer: 0 -> 4, 1 -> 3
    assert len(denoiser.layers) == 5 and len(denoiser.skip_merges) == 2 and denoiser.head is None
    assert denoiser.modulation_rows == 6 * 5
    outputs, merge_inputs = {}, {}
    for index, layer in enumerate(denoiser.layers):
        layer.register_forward_hook(lambda module, args, out, index=index: outputs.__setitem__(index, out))
    for index, merge in enumerate(denoiser.skip_merges):
        merge.register_forward_hook(lambda module, args, out, index=index: merge_inputs.__setitem__(index, args[0]))
    result = denoiser(torch.randn(2, 3, 64), torch.tensor([3, 4]), torch.randn(2, 32))
    assert torch.equal(merge_inputs[0][..., 64:], outputs[1]) and torch.equal(merge_inputs[0][..., :64], outputs[2])
    assert torch.equal(merge_inputs[1][..., 64:], outputs[0])
    assert torch.equal(result, outputs[4])  # the last layer's output, no head
    plain = tiny_denoiser()
    assert len(plain.skip_merges) == 0 and plain.modulation_rows == 6 * 4 + 2


def test_fixed_positions_tell_groups_apart():
    denoiser = tiny_denoiser()
    x = torch.randn(1, 1, 64).expand(2, 3, 64)  # the same token in every group
    out = denoiser(x, torch.tensor([7, 7]), torch.randn(1, 32).expand(2, 32))
    assert not torch.allclose(out[:, 0], out[:, 1]) and not torch.allclose(out[:, 1], out[:, 2])


def test_denoiser_rejects_bad_inputs():
    denoiser = tiny_denoiser()
    x, text = torch.randn(2, 3, 64), torch.randn(2, 32)
    with pytest.raises(ValueError, match=r"timesteps must lie in \[0, 1000\)"):
        denoiser(x, torch.tensor([0, 1000]), text)
    with pytest.raises(ValueError, match="1-D long tensor"):
        denoiser(x, torch.tensor([0.5, 1.0]), text)
    with pytest.raises(ValueError, match=r"text_embedding must be \[B=2, 32\]"):
        denoiser(x, torch.tensor([0, 1]), torch.randn(2, 64))
    with pytest.raises(ValueError, match=r"x_t must be \[B, 3, 64\]"):
        denoiser(torch.randn(2, 4, 64), torch.tensor([0, 1]), text)
    with pytest.raises(ValueError, match=r"modulation must be \[B, 26, 64\]"):
        denoiser.forward_with_modulation(x, torch.zeros(2, 30, 64))


# ---------------------------------------------------------------- text


@OPEN_CLIP
def test_tokenize_matches_clip_layout_and_checks_input():
    import open_clip

    tokens = tokenize(["two people shake hands", "a hug"])
    tokenizer = clip_tokenizer()
    assert tokens.shape == (2, 77) and tokens.dtype == torch.long
    assert tokens[0, 0] == tokenizer.start_id and tokens[0].argmax() == 5 and tokens[0, 5] == tokenizer.end_id
    assert torch.count_nonzero(tokens[1, 4:]) == 0
    with pytest.warns(UserWarning, match="text 1 has .* tokens, more than the context of 77; it is truncated"):
        long = tokenize(["short", "word " * 100])
    assert long[1, -1] == tokenizer.end_id and torch.count_nonzero(long[1]) == 77
    assert torch.equal(long, open_clip.tokenize(["short", "word " * 100]))  # CLIP's own truncation
    assert empty_text_tokens(2)[:, :3].tolist() == [[tokenizer.start_id, tokenizer.end_id, 0]] * 2
    for bad, message in ((["ok", ""], "text 1 must be a non-empty string"), ([3], "text 0 must be"),
                         ("a bare string", "list of strings"), ([], "non-empty list")):
        with pytest.raises(ValueError, match=message):
            tokenize(bad)


@OPEN_CLIP
def test_our_bpe_gives_open_clips_ids():
    import open_clip

    texts = ["Two people SHAKE hands!!", "one person's arm, then the other's; 3 times (x2)...",
             "Café &amp; naïve  résumé \u2014 über", "they hug\tand   spin 360°", "<end_of_text> inside", "a",
             "emoji \U0001F600 and ｆｕｌｌｗｉｄｔｈ", "supercalifragilisticexpialidocious dancers"]
    np.testing.assert_array_equal(token_ids(texts), open_clip.tokenize(texts).numpy())


def test_text_encoder_pools_the_end_token_over_an_unmasked_head():
    text = TextEncoder(get_preset("tiny").text).eval()
    tokens = tokenize(["two people shake hands", "a hug"])
    out = text(tokens)
    assert out.shape == (2, 64)
    after_end = tokens.clone()
    after_end[0, 7:] = 320
    # The tower is causal: ids after the end token leave its end feature alone ...
    torch.testing.assert_close(text.tower(after_end)[0, 5], text.tower(tokens)[0, 5], atol=0, rtol=0)
    # ... but the head attends to every position, padding included, as the release does.
    assert not torch.allclose(text(after_end)[0], out[0])
    with pytest.raises(ValueError, match=r"tokens must be a long tensor \[B, 77\]"):
        text(tokens[:, :10])


def test_frozen_tower_trains_only_its_positions():
    config = dataclasses.replace(get_preset("tiny").text, train_tower=False)
    with pytest.warns(UserWarning, match="RANDOM weights"):
        text = TextEncoder(config)
    trainable = {name for name, parameter in text.tower.named_parameters() if parameter.requires_grad}
    assert trainable == {"positional_embedding"}
    assert all(parameter.requires_grad for parameter in text.head.parameters())


SMALL_CLIP = TextEncoderConfig(width=64, layers=2, heads=2, mlp=256)


def open_clip_tower():
    from open_clip.transformer import QuickGELU, TextTransformer

    torch.manual_seed(5)
    return TextTransformer(context_length=77, vocab_size=49408, width=64, heads=2, layers=2, mlp_ratio=4.0,
                           output_dim=None, output_tokens=True, act_layer=QuickGELU).eval()


@OPEN_CLIP
def test_clip_tower_loads_open_clip_weights(tmp_path):
    reference = open_clip_tower()
    state = reference.state_dict()
    tokens = tokenize(["two people shake hands"])
    expected = reference(tokens)[1]
    wrapped = {"state_dict": {f"module.{key}": value for key, value in state.items()}}
    torch.save(wrapped, tmp_path / "clip.pt")
    save_file({**state, "logit_scale": torch.ones(())}, str(tmp_path / "clip.safetensors"))
    for name in ("clip.pt", "clip.safetensors"):
        tower = ClipTextTower(SMALL_CLIP).eval()
        tower.load_clip_weights(str(tmp_path / name))
        torch.testing.assert_close(tower(tokens), expected, atol=1e-5, rtol=1e-5)


@OPEN_CLIP
def test_clip_tower_refuses_bad_files(tmp_path):
    state = open_clip_tower().state_dict()
    save_file({key: value for key, value in state.items() if key != "ln_final.weight"}, str(tmp_path / "part.safetensors"))
    tower = ClipTextTower(SMALL_CLIP)
    with pytest.raises(ValueError, match=r"part.safetensors is not a CLIP text tower of this shape: 1 key\(s\) missing"):
        tower.load_clip_weights(str(tmp_path / "part.safetensors"))
    with pytest.raises(FileNotFoundError, match="nowhere.pt does not exist"):
        tower.load_clip_weights(str(tmp_path / "nowhere.pt"))
    save_file(state, str(tmp_path / "full.safetensors"))
    with pytest.raises(ValueError, match="do not match the configured CLIP text tower"):
        ClipTextTower(dataclasses.replace(SMALL_CLIP, mlp=128)).load_clip_weights(str(tmp_path / "full.safetensors"))


# ---------------------------------------------------------------- sizes


def test_preset_parameter_counts():
    counts = {}
    for name in ("paper", "small", "tiny"):
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the paper preset's CLIP tower has no weights file here
            counts[name] = count_parameters(build_model(name), skip=("text",))["total"]
    assert counts["paper"] == 50_664_716  # the release's 56,425,996 less its unused copies (test_official)
    assert 5e6 <= counts["small"] <= 10e6
    assert 1e6 <= counts["tiny"] <= 3e6


def test_the_exported_attention_equals_scaled_dot_product_attention(monkeypatch):
    generator = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(2, 4, 7, 8, generator=generator) for _ in range(3))
    key_mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])[:, None, None, :]
    causal = torch.ones(7, 7, dtype=torch.bool).tril()
    for mask, scale in ((None, None), (key_mask, None), (key_mask & causal, 0.03)):
        expected = attend(query, key, value, mask, scale)
        monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
        torch.testing.assert_close(attend(query, key, value, mask, scale), expected, rtol=1e-5, atol=1e-6)
        monkeypatch.undo()


def test_dropout_acts_in_training_only_and_leaves_no_node_in_an_eval_trace():
    layer = EncoderLayer(width=16, heads=2, ff=32, dropout=0.5)
    x = torch.randn(2, 5, 16)
    torch.manual_seed(0)
    layer.train()
    assert not torch.allclose(layer(x), layer(x))  # two dropout masks
    layer.eval()
    assert torch.equal(layer(x), layer(x))
    traced = torch.export.export(layer, (x,))
    targets = {str(node.target) for node in traced.graph.nodes if node.op == "call_function"}
    assert not [target for target in targets if "dropout" in target], targets
    assert "aten.layer_norm.default" in targets  # the layer itself was traced
