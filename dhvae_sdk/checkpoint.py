"""Checkpoints: ONE safetensors file that rebuilds the whole model bundle.

Tensors: every ``DHVAEModel`` weight under its module prefix (``vae.``, ``denoiser.``,
``text.``; the CLIP text tower included, so the file alone rebuilds the model), the feature
normalization ``normalizer.mean`` /
``normalizer.std``, and ``latent.scales`` [3] (the per-group std of the latents a, b, g;
``models.scale_latents`` divides by it).
Metadata (strings): ``format`` = "dhvae-checkpoint", ``format_version``, ``config`` (the
DHVAEConfig as JSON), ``stage`` ("vae" or "denoiser": which part has been trained),
``created_by``, plus any caller extras.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, replace
from importlib.metadata import PackageNotFoundError, version

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .atomic_file import atomic_output
from .errors import DHVAEError
from .models import DHVAEConfig, DHVAEModel, build_model
from .models.latent import GROUPS

FORMAT = "dhvae-checkpoint"
FORMAT_VERSION = 2
# Version 1 held the retired clean-room architecture; its weights fit no module of today's.
OLDEST_READABLE_VERSION = 2
STAGES = ("vae", "denoiser")
NORMALIZER_MEAN = "normalizer.mean"
NORMALIZER_STD = "normalizer.std"
LATENT_SCALES = "latent.scales"
RESERVED_METADATA = ("format", "format_version", "config", "stage", "created_by")


class CheckpointError(DHVAEError, ValueError):
    """A file that is not a usable dhvae-sdk checkpoint."""


@dataclass
class Checkpoint:
    config: DHVAEConfig
    model: DHVAEModel
    feature_mean: torch.Tensor
    feature_std: torch.Tensor
    latent_scales: torch.Tensor
    stage: str
    metadata: dict[str, str]


def _package_version() -> str:
    try:
        return f"dhvae-sdk {version('dhvae-sdk')}"
    except PackageNotFoundError:
        return "dhvae-sdk (source tree, not installed)"


def _as_float_tensor(name: str, value) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value)
    if not tensor.is_floating_point():
        raise CheckpointError(f"{name} must be an array of floats, got {tuple(tensor.shape)} {tensor.dtype}")
    return tensor.detach().to("cpu", torch.float32).contiguous()


def _unusable_numbers(tensors: dict[str, torch.Tensor], feature_dim: int) -> str | None:
    """Why these weights and statistics would make a model that silently outputs garbage, or None."""
    bad = [key for key, value in tensors.items() if value.is_floating_point() and not bool(torch.isfinite(value).all())]
    if bad:
        return (f"non-finite (NaN or infinite) values in {_describe(set(bad))}: the training diverged "
                "(lower --lr) or the file is damaged; use an earlier checkpoint")
    mean, std, scales = tensors[NORMALIZER_MEAN], tensors[NORMALIZER_STD], tensors[LATENT_SCALES]
    if mean.shape != (feature_dim,) or std.shape != (feature_dim,):
        return (f"feature_mean {tuple(mean.shape)} and feature_std {tuple(std.shape)} must both have "
                f"shape ({feature_dim},), the model's feature size")
    if not bool((std > 0).all()):
        return f"feature_std must be positive; its smallest entry is {float(std.min())}"
    if scales.shape != (len(GROUPS),) or not bool((scales > 0).all()):
        return f"latent_scales must be {len(GROUPS)} positive numbers (one per latent group), got {scales.tolist()}"
    return None


def save_checkpoint(
    path: str | os.PathLike,
    model: DHVAEModel,
    *,
    feature_mean,
    feature_std,
    stage: str,
    latent_scales=None,
    extra_metadata: dict[str, str] | None = None,
) -> None:
    """Write ``model`` (its own ``model.config`` included) and the statistics to ``path``
    atomically: a temporary file in the same directory, fsync, then os.replace.
    ``latent_scales`` may be left out only at stage "vae" (they are computed for the
    denoiser stage); it is then stored as ones."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {list(STAGES)}, got {stage!r}")
    if latent_scales is None:
        if stage != "vae":
            raise ValueError(f"a {stage!r} checkpoint needs the latent_scales its denoiser was trained with")
        latent_scales = torch.ones(len(GROUPS))
    mean = _as_float_tensor("feature_mean", feature_mean)
    std = _as_float_tensor("feature_std", feature_std)
    scales = _as_float_tensor("latent_scales", latent_scales)
    extra = dict(extra_metadata or {})
    clashes = sorted(set(extra) & set(RESERVED_METADATA))
    if clashes or not all(isinstance(k, str) and isinstance(v, str) for k, v in extra.items()):
        raise ValueError(f"extra_metadata must map str to str and avoid the reserved keys {clashes or RESERVED_METADATA}")
    tensors = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    tensors.update({NORMALIZER_MEAN: mean, NORMALIZER_STD: std, LATENT_SCALES: scales})
    problem = _unusable_numbers(tensors, model.config.vae.feature_dim)
    if problem:
        raise CheckpointError(f"not saving {path}: {problem}")
    metadata = {
        **extra,
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "config": json.dumps(model.config.to_dict()),
        "stage": stage,
        "created_by": _package_version(),
    }
    with atomic_output(path, durable=True) as temporary:
        save_file(tensors, temporary, metadata=metadata)


def read_checkpoint_config(path: str | os.PathLike) -> tuple[DHVAEConfig, dict[str, str]]:
    """The config and metadata of a checkpoint, checked, without reading its weights."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(path, framework="pt") as file:
            metadata = file.metadata() or {}
    except (SafetensorError, OSError) as error:
        raise CheckpointError(
            f"{path} is not a readable safetensors file (truncated, corrupted or another format): {error}"
        ) from error
    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is a safetensors file but not a dhvae-sdk checkpoint "
            f"(metadata format={metadata.get('format')!r}, expected {FORMAT!r})"
        )
    try:
        format_version = int(metadata.get("format_version", ""))
    except ValueError:
        raise CheckpointError(f"{path}: bad format_version {metadata.get('format_version')!r}") from None
    if format_version < OLDEST_READABLE_VERSION:
        raise CheckpointError(
            f"{path} was written by dhvae-sdk before 0.2 (checkpoint format {format_version}) for the "
            f"retired clean-room architecture, which this version no longer builds; retrain it with "
            f"`python -m training.main`, or convert the released weights with `python -m dhvae_sdk.convert`"
        )
    if format_version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {format_version}, newer than this dhvae-sdk "
            f"reads ({FORMAT_VERSION}); upgrade dhvae-sdk"
        )
    if metadata.get("stage") not in STAGES:
        raise CheckpointError(f"{path}: stage {metadata.get('stage')!r} is not one of {list(STAGES)}")
    try:
        config = DHVAEConfig.from_dict(json.loads(metadata.get("config", "")))
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"{path}: invalid config in the metadata: {error}") from error
    return config, metadata


def _describe(keys: set[str]) -> str:
    listed = sorted(keys)
    return ", ".join(listed[:5]) + (f" and {len(listed) - 5} more" if len(listed) > 5 else "")


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> Checkpoint:
    """Rebuild the model from the file alone (in eval mode, on ``device``)."""
    path = os.fspath(path)
    config, metadata = read_checkpoint_config(path)
    # The weights come from the file: the CLIP file named for training is not read again.
    config = replace(config, text=replace(config.text, clip_weights=None))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No CLIP weights file given")
        model = build_model(config)
    tensors = load_file(path)
    expected = set(model.state_dict()) | {NORMALIZER_MEAN, NORMALIZER_STD, LATENT_SCALES}
    missing, unexpected = expected - set(tensors), set(tensors) - expected
    if missing or unexpected:
        raise CheckpointError(
            f"{path} does not match its own config: missing weight(s) {_describe(missing) or 'none'}; "
            f"unexpected weight(s) {_describe(unexpected) or 'none'}"
        )
    problem = _unusable_numbers(tensors, config.vae.feature_dim)
    if problem:
        raise CheckpointError(f"{path}: {problem}")
    statistics = {key: tensors.pop(key) for key in (NORMALIZER_MEAN, NORMALIZER_STD, LATENT_SCALES)}
    try:
        model.load_state_dict(tensors)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: weight shapes do not match its config: {error}") from error
    return Checkpoint(
        config=config,
        model=model.to(device).eval(),
        feature_mean=statistics[NORMALIZER_MEAN].to(device),
        feature_std=statistics[NORMALIZER_STD].to(device),
        latent_scales=statistics[LATENT_SCALES].to(device),
        stage=metadata["stage"],
        metadata=metadata,
    )
