"""Small random-weight models for the SDK tests (no training needed).

``micro_config`` is the ``tiny`` preset with one layer per stack, three denoiser layers and a
one-layer text tower, so that a full ONNX export takes seconds. Its text width (48) differs
from its latent width (64), so that a condition given the latent's width (or the reverse)
fails instead of passing by coincidence. Every weight is random (zero-initialized output
layers too), so that each graph computes something non-trivial.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from dhvae_sdk.checkpoint import save_checkpoint
from dhvae_sdk.models import build_model, get_preset

MAX_FRAMES = 90
TEXT_WIDTH = 48


def micro_config():
    config = get_preset("tiny")
    return replace(
        config,
        vae=replace(config.vae, person_layers=1, interaction_layers=1, max_frames=MAX_FRAMES),
        denoiser=replace(config.denoiser, layers=3),
        text=replace(config.text, width=TEXT_WIDTH, layers=1, mlp=96, head_ff=96),
    )


def save_micro_checkpoint(path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model = build_model(micro_config())
    with torch.no_grad():
        for parameter in model.parameters():
            if not parameter.any():
                parameter.normal_(0.0, 0.05)
    generator = torch.Generator().manual_seed(seed)
    feature_dim = model.config.vae.feature_dim
    save_checkpoint(
        path, model, stage="denoiser",
        feature_mean=0.1 * torch.randn(feature_dim, generator=generator),
        feature_std=0.5 + torch.rand(feature_dim, generator=generator),
        latent_scales=torch.tensor([1.5, 0.8, 1.2]),
    )
    return path
