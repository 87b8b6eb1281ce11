"""The released DHVAE checkpoints (Lightning ``.ckpt`` files of the paper's code) as our models.

``read_official(path)`` reads a full-model checkpoint (keys ``vae.``, ``denoiser.``,
``text_encoder.``) or a VAE-stage one (keys ``encoder.``, ``decoder.``) with
``torch.load(weights_only=True, map_location="cpu")``, derives our config from its
``hyper_parameters`` and its tensor shapes (the decoder variant, the depths and the skip
denoiser are read from the keys, never from folder names), and maps every key. Every
released key is either mapped to one of ours or known to be unused by the release's own
forward pass (``UNUSED``); anything else, or anything missing, is refused.

The release's layout is also written out for a config (``release_layout``), which is how
the tests check the mapping against the full-size key list and count its parameters.
"""
from __future__ import annotations

import os
import re
import warnings

import numpy as np
import torch

from dhvae_sdk.checkpoint import Checkpoint
from dhvae_sdk.errors import DHVAEError
from dhvae_sdk.models import DHVAEConfig, DHVAEModel, build_model
from dhvae_sdk.models.config import DenoiserConfig, TextEncoderConfig, VAEConfig
from dhvae_sdk.models.layers import sinusoidal_table
from dhvae_sdk.motion import interhuman, interhuman_normalizer

RELEASE_POSITION_ROWS = 5000  # the release's learned position tables, whatever max_len is
RELEASE_DENOISER_POSITIONS = 1000
TEXT_HEAD_HEADS = 8  # hard-coded in the release's text encoder


class OfficialCheckpointError(DHVAEError, ValueError):
    """A file that is not a released DHVAE checkpoint this converter can read."""


# ----------------------------------------------------------------------------- key names

_BLOCK_PARTS = (("left_cross.", "LeftCoTRMLayer."), ("right_cross.", "RightCoTRMLayer."),
                ("left_self.", "LeftTRMLayer."), ("right_self.", "RightTRMLayer."))


def _cotransformer_name(rest: str) -> str:
    rest = rest.replace("mid_block.", "mid_blocks.0.")
    rest = rest.replace("left_merge.", "left_concat_layers.0.").replace("right_merge.", "right_concat_layers.0.")
    for ours, theirs in _BLOCK_PARTS:
        rest = rest.replace(ours, theirs)
    return rest


def _denoiser_layer_name(index: int, config: DHVAEConfig, depth: int) -> str:
    if not config.denoiser.skip:
        return f"layers.{index}."
    half = depth // 2
    if index < half:
        return f"in_layers.{index}."
    if index == half:
        return "mid_layer."
    return f"out_layers.{index - half - 1}."


_VAE_RULES = (
    (r"vae\.encoder_positions\.table", "encoder.pe.pe"),
    (r"vae\.encoder_a\.distribution_tokens", "encoder.u1"),
    (r"vae\.encoder_b\.distribution_tokens", "encoder.u2"),
    (r"vae\.interaction_tokens", "encoder.u3"),
    (r"vae\.encoder_a\.input\.", "encoder.input_proj1."),
    (r"vae\.encoder_b\.input\.", "encoder.input_proj2."),
    (r"vae\.encoder_a\.layers\.", "encoder.encoder_left.layers."),
    (r"vae\.encoder_b\.layers\.", "encoder.encoder_right.layers."),
    (r"vae\.interaction_head\.", "encoder.contact_layer."),
    (r"vae\.decoder_positions\.table", "decoder.pe.pe"),
    (r"vae\.decoder_a\.layers\.", "decoder.decoder_left.layers."),
    (r"vae\.decoder_b\.layers\.", "decoder.decoder_right.layers."),
    (r"vae\.decoder_a\.output\.", "decoder.output_proj1."),
    (r"vae\.decoder_b\.output\.", "decoder.output_proj2."),
)


def release_name(key: str, config: DHVAEConfig, denoiser_depth: int) -> str:
    """The released full-model key of one of our state-dict keys."""
    if key.startswith("vae.interaction_encoder."):
        return "vae.encoder.encoder_top." + _cotransformer_name(key.removeprefix("vae.interaction_encoder."))
    if key.startswith("vae.interaction_decoder."):
        return "vae.decoder.top_decoder." + _cotransformer_name(key.removeprefix("vae.interaction_decoder."))
    for pattern, theirs in _VAE_RULES:
        if re.match(pattern, key):
            return "vae." + re.sub("^" + pattern, theirs, key)
    inner = "denoiser.denoiser.denoiser."
    if match := re.match(r"denoiser\.layers\.(\d+)\.(.*)", key):
        rest = match.group(2).replace("ffn.0.", "ffn.fc1.").replace("ffn.2.", "ffn.fc2.")
        rest = rest.replace("ada_lin.", "ada_lin.1.")
        return inner + _denoiser_layer_name(int(match.group(1)), config, denoiser_depth) + rest
    if key.startswith("denoiser.skip_merges."):
        return inner + "linear_layers." + key.removeprefix("denoiser.skip_merges.")
    if key.startswith("denoiser.head."):
        return inner + "head_nm.ada_lin.1." + key.removeprefix("denoiser.head.")
    if key.startswith("denoiser.time_embedding."):
        return key.replace("time_embedding.0.", "time_embedding.linear_1.").replace("time_embedding.2.", "time_embedding.linear_2.")
    text_rules = (("text.tower.token_embedding.", "text_encoder.clip_token_embedding."),
                  ("text.tower.positional_embedding", "text_encoder.clip_positional_embedding"),
                  ("text.tower.resblocks.", "text_encoder.clip_transformer.resblocks."),
                  ("text.tower.ln_final.", "text_encoder.clip_ln_final."),
                  ("text.head_norm.", "text_encoder.clipln."),
                  ("text.head.", "text_encoder.clipTrans.layers."))
    for ours, theirs in text_rules:
        if key.startswith(ours):
            return theirs + key.removeprefix(ours)
    raise KeyError(f"no released name for {key}")


def _cotransformer_template(prefix: str, block: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """The release's SkipCoTransformer keeps the block it deep-copies from as an unused child."""
    return {f"{prefix}co_transformer_layer.{_cotransformer_name(name)}": shape for name, shape in block.items()}


def unused_release_entries(model: DHVAEModel) -> dict[str, tuple[int, ...]]:
    """Released keys (with shapes) that the release's forward pass never reads."""
    config, width = model.config, model.config.vae.width
    state = model.state_dict()
    entries = {}
    for ours, theirs in (("vae.interaction_encoder.", "vae.encoder.encoder_top."),
                         ("vae.interaction_decoder.", "vae.decoder.top_decoder.")):
        block = {key.removeprefix(ours + "mid_block."): tuple(value.shape)
                 for key, value in state.items() if key.startswith(ours + "mid_block.")}
        if block:
            entries.update(_cotransformer_template(theirs, block))
            for side in ("left", "right"):
                for copy in range(1, config.vae.interaction_layers // 2):
                    for name in ("weight", "bias"):
                        entries[f"{theirs}{side}_concat_layers.{copy}.{name}"] = tuple(state[f"{ours}{side}_merge.{name}"].shape)
    condition = config.text.width
    entries["denoiser.text_proj.weight"] = (width, condition)
    entries["denoiser.text_proj.bias"] = (width,)
    entries["denoiser.pe.pe"] = (1, RELEASE_DENOISER_POSITIONS, width)
    depth = len(model.denoiser.layers)
    for index in range(depth):
        entries[f"denoiser.denoiser.denoiser.{_denoiser_layer_name(index, config, depth)}attn.zero_k_bias"] = (width,)
    if config.denoiser.skip:
        entries["denoiser.denoiser.denoiser.head_nm.ada_lin.1.weight"] = (2 * width, condition)
        entries["denoiser.denoiser.denoiser.head_nm.ada_lin.1.bias"] = (2 * width,)
    return entries


def release_layout(model: DHVAEModel) -> dict[str, tuple[int, ...]]:
    """Every key of a released full-model checkpoint of this config, with its shape."""
    depth = len(model.denoiser.layers)
    layout = {}
    for key, value in model.state_dict().items():
        shape = tuple(value.shape)
        if key.endswith("_positions.table"):
            shape = (1, RELEASE_POSITION_ROWS, shape[-1])
        layout[release_name(key, model.config, depth)] = shape
    layout.update(unused_release_entries(model))
    return layout


def release_parameter_count(model: DHVAEModel) -> int:
    """Parameters of the VAE and the denoiser as the release counts them (its 56,425,996 for
    ``paper``): unused copies and the full position tables included, buffers excluded."""
    buffers = ("denoiser.pe.pe", "zero_k_bias")
    return sum(int(np.prod(shape)) for key, shape in release_layout(model).items()
               if key.startswith(("vae.", "denoiser.")) and not key.endswith(buffers))


# ----------------------------------------------------------------------------- reading

def _load(path: str) -> dict:
    if os.path.isdir(path):
        path = _checkpoint_in_folder(path)
    if not os.path.isfile(path):
        raise OfficialCheckpointError(f"{path}: no such file")
    try:
        # map_location: a release written on a GPU tags its storages cuda:0.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError, zip errors
        raise OfficialCheckpointError(
            f"{path} cannot be read as a Lightning checkpoint with torch.load(weights_only=True): "
            f"it is truncated, corrupted, or not a checkpoint ({type(error).__name__}: {str(error)[:200]})"
        ) from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise OfficialCheckpointError(f"{path} is not a Lightning checkpoint: it has no 'state_dict'")
    hyper = checkpoint.get("hyper_parameters")
    if not isinstance(hyper, dict) or not isinstance(hyper.get("vae"), dict):
        raise OfficialCheckpointError(
            f"{path} is a Lightning checkpoint but not a DHVAE one: its hyper_parameters have no 'vae' section"
        )
    return {"path": path, "state": checkpoint["state_dict"], "hyper": hyper}


def _checkpoint_in_folder(folder: str) -> str:
    """A release folder (``ckpt/<name>/``) holds ``last.ckpt`` or a best ``epoch=...ckpt``."""
    names = sorted(name for name in os.listdir(folder) if name.endswith(".ckpt"))
    if not names:
        raise OfficialCheckpointError(f"{folder} holds no .ckpt file")
    return os.path.join(folder, "last.ckpt" if "last.ckpt" in names else names[-1])


def _count(state: dict, pattern: str) -> int:
    indices = {int(m.group(1)) for key in state if (m := re.match(pattern, key))}
    return max(indices) + 1 if indices else 0


def _require(condition: bool, path: str, message: str) -> None:
    if not condition:
        raise OfficialCheckpointError(f"{path}: {message}")


def config_from_release(loaded: dict, clip_heads: int | None = None) -> DHVAEConfig:
    """Our config of a released checkpoint: structure from the keys, sizes from the shapes."""
    path, state, hyper = loaded["path"], loaded["state"], loaded["hyper"]
    vae, mld = hyper["vae"], hyper.get("mld") or {}
    schedule = hyper.get("NoiseScheduler") or {}
    _require(not vae.get("is_skip", False), path, "vae.is_skip (the VAE's skip transformers) is not used by the release and not supported")
    _require(not vae.get("is_two_pe", False), path, "vae.is_two_pe (two position tables) is not supported")
    _require(vae.get("is_learn_pe", True), path, "vae.is_learn_pe false (fixed VAE positions) is not supported")
    _require(float(schedule.get("eta", 0.0)) == 0.0, path,
             f"NoiseScheduler.eta {schedule.get('eta')} (stochastic DDIM) is not supported: dhvae-sdk samples with eta 0")
    width = int(vae["latent_dim"])
    hire = any(key.startswith("vae.decoder.top_decoder.") for key in state)
    person_layers = _count(state, r"vae\.encoder\.encoder_left\.layers\.(\d+)\.")
    decoder_layers = _count(state, r"vae\.decoder\.decoder_left\.layers\.(\d+)\.")
    top = 2 * _count(state, r"vae\.encoder\.encoder_top\.in_blocks\.(\d+)\.") + 1
    _require(person_layers > 0 and decoder_layers > 0, path, "no VAE encoder/decoder layers found in the state dict")
    _require(decoder_layers == (person_layers if hire else person_layers + top), path,
             f"{decoder_layers} decoder layers per person fit neither decoder variant "
             f"({person_layers} encoder layers, co-transformer depth {top})")
    vae_config = VAEConfig(
        decoder="hire" if hire else "cat", feature_dim=int(vae["d_input"]), latent_tokens=int(vae["latent_size"]),
        width=width, heads=int(vae["nhead"]), ff=int(state["vae.encoder.encoder_left.layers.0.linear1.weight"].shape[0]),
        person_layers=person_layers, interaction_layers=top, dropout=float(vae.get("dropout", 0.1)),
        max_frames=int(vae["max_len"]),
    )
    _require(mld.get("arch", "adaln") == "adaln" and not mld.get("is_ar", False), path,
             f"only the released AdaLN denoiser is supported (arch={mld.get('arch')!r}, is_ar={mld.get('is_ar')})")
    _require(not mld.get("is_lpe", False) and not mld.get("is_vp", False) and not mld.get("is_sample", False)
             and not mld.get("is_dpm", False), path,
             "learned denoiser positions, v/sample prediction and DPM-Solver are not used by the release and not supported")
    skip = any(key.startswith("denoiser.denoiser.denoiser.in_layers.") for key in state)
    if any(key.startswith("denoiser.") for key in state):
        layers = (2 * _count(state, r"denoiser\.denoiser\.denoiser\.in_layers\.(\d+)\.") + 1 if skip
                  else _count(state, r"denoiser\.denoiser\.denoiser\.layers\.(\d+)\."))
    else:
        layers = int(mld.get("nlayer", 9))
    denoiser_config = DenoiserConfig(
        layers=layers, heads=int(mld.get("nhead", vae["nhead"])), skip=skip,
        num_train_steps=int(schedule.get("num_train_timesteps", 1000)),
        beta_schedule=str(schedule.get("beta_schedule", "scaled_linear")),
        beta_start=float(schedule.get("beta_start", 0.00085)), beta_end=float(schedule.get("beta_end", 0.012)),
        steps_offset=int(schedule.get("steps_offset", 1)), set_alpha_to_one=bool(schedule.get("set_alpha_to_one", False)),
        cond_drop=float(mld.get("guidance_uncondp", 0.1)), guidance=3.5,
        sampling_steps=int(schedule.get("num_inference_timesteps", 50)),
    )
    condition = int((mld.get("text_encoder") or {}).get("d_cond", 768))
    text_config = _text_config(state, condition, clip_heads, path)
    return DHVAEConfig(preset="official", dataset="interhuman", fps=interhuman.FPS,
                       vae=vae_config, denoiser=denoiser_config, text=text_config)


def _text_config(state: dict, width: int, clip_heads: int | None, path: str) -> TextEncoderConfig:
    """The CLIP tower's head count is recorded nowhere: CLIP's convention (width / 64) unless given."""
    heads = clip_heads or max(width // 64, 1)
    if "text_encoder.clip_token_embedding.weight" not in state:  # a VAE-stage file: ViT-L/14's shape
        return TextEncoderConfig(width=width, heads=heads, mlp=4 * width)
    _require(width % heads == 0, path, f"the CLIP width {width} is not divisible by {heads} heads; pass clip_heads")
    vocab, tower_width = state["text_encoder.clip_token_embedding.weight"].shape
    _require(tower_width == width, path, f"the CLIP width {tower_width} differs from mld.text_encoder.d_cond {width}")
    return TextEncoderConfig(
        context_length=int(state["text_encoder.clip_positional_embedding"].shape[0]), vocab_size=int(vocab),
        width=width, layers=_count(state, r"text_encoder\.clip_transformer\.resblocks\.(\d+)\."), heads=heads,
        mlp=int(state["text_encoder.clip_transformer.resblocks.0.mlp.c_fc.weight"].shape[0]),
        head_layers=_count(state, r"text_encoder\.clipTrans\.layers\.(\d+)\."), head_heads=TEXT_HEAD_HEADS,
        head_ff=int(state["text_encoder.clipTrans.layers.0.linear1.weight"].shape[0]),
    )


def read_official(path: str | os.PathLike, clip_heads: int | None = None) -> Checkpoint:
    """A released checkpoint (a file, or its ``ckpt/<name>/`` folder) as one of ours, in eval
    mode: stage "denoiser" for a full model, "vae" for a VAE folder (whose denoiser and text
    encoder are then untrained)."""
    loaded = _load(os.fspath(path))
    path, state = loaded["path"], loaded["state"]
    full = any(key.startswith("denoiser.") for key in state)
    if not full:  # a VAE folder's checkpoint: the same keys without the "vae." prefix
        _require(all(key.startswith(("encoder.", "decoder.")) for key in state), path,
                 "its keys are neither a DHVAE full model's (vae./denoiser./text_encoder.) nor a VAE's (encoder./decoder.)")
        state = {"vae." + key: value for key, value in state.items()}
        loaded = {**loaded, "state": state}
    config = config_from_release(loaded, clip_heads)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No CLIP weights file given")
        model = build_model(config)
    layout = release_layout(model)
    wanted = layout if full else {key: shape for key, shape in layout.items() if key.startswith("vae.")}
    missing = sorted(set(wanted) - set(state))
    unexpected = sorted(set(state) - set(wanted))
    _require(not missing and not unexpected, path,
             f"does not match the released layout of its own config: missing {missing[:5] or 'none'}"
             f"{' ...' if len(missing) > 5 else ''}, unexpected {unexpected[:5] or 'none'}{' ...' if len(unexpected) > 5 else ''}")
    bad_shapes = [f"{key} {tuple(state[key].shape)} (expected {shape})" for key, shape in wanted.items()
                  if tuple(state[key].shape) != shape]
    _require(not bad_shapes, path, f"tensor shapes differ from its config: {bad_shapes[:5]}")
    _check_unused(state, model, path, full)
    depth = len(model.denoiser.layers)
    ours = model.state_dict()
    converted = {}
    for key, value in ours.items():
        name = release_name(key, config, depth)
        if name not in state:
            continue  # a VAE-stage file: the denoiser and text encoder keep their fresh weights
        tensor = state[name].float()
        converted[key] = tensor[0, : value.shape[0]] if key.endswith("_positions.table") else tensor
    model.load_state_dict({**ours, **converted})
    _require(all(bool(torch.isfinite(value).all()) for value in converted.values()), path, "holds non-finite weights")
    # The release denormalizes with InterGen's published statistics, and scales z3 by 5.
    normalizer = interhuman_normalizer()
    z3_scale = float((loaded["hyper"].get("mld") or {}).get("z3_scale", 5.0))
    return Checkpoint(
        config=config, model=model.eval(), stage="denoiser" if full else "vae",
        latent_scales=torch.tensor([1.0, 1.0, 1.0 / z3_scale]),
        feature_mean=torch.as_tensor(normalizer.mean, dtype=torch.float32),
        feature_std=torch.as_tensor(normalizer.std, dtype=torch.float32),
        metadata={"converted_from": path},
    )


def _check_unused(state: dict, model: DHVAEModel, path: str, full: bool) -> None:
    """The unused entries must be what the release's code makes them; otherwise the file
    comes from a variant whose forward pass reads them, and converting would be wrong."""
    width = model.config.vae.width
    for key in state:
        if key.endswith("zero_k_bias"):
            _require(not bool(state[key].any()), path, f"{key} is not zero: a key bias this converter does not model")
        copy = re.match(r"(.*_concat_layers\.)([1-9]\d*)\.(weight|bias)$", key)
        if copy:
            first = f"{copy.group(1)}0.{copy.group(3)}"
            _require(torch.equal(state[key], state[first]), path, f"{key} differs from {first}: the merges are not shared")
    if full:
        table = state["denoiser.pe.pe"][0, : model.denoiser.num_tokens].float()
        _require(torch.allclose(table, sinusoidal_table(model.denoiser.num_tokens, width), atol=1e-6), path,
                 "denoiser.pe.pe is not the fixed sinusoidal table (learned denoiser positions are not supported)")
