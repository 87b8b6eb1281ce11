"""Builders: a config (or a preset name) in, modules out."""
from __future__ import annotations

from torch import nn

from .bundle import DHVAEModel, external_prefixes
from .config import DHVAEConfig, VAEConfig, get_preset
from .denoiser import Denoiser
from .dhvae import DHVAE
from .flat_vae import FlatVAE
from .text_encoder import TextEncoder
from .vae_common import MotionVAE

VAE_BUILDERS = {"dhvae": DHVAE, "flat": FlatVAE}


def build_vae(config: VAEConfig) -> MotionVAE:
    return VAE_BUILDERS[config.kind](config)


def build_model(config: DHVAEConfig | str) -> DHVAEModel:
    """The model bundle of a config or of a preset name ("paper", "small", "tiny")."""
    if isinstance(config, str):
        config = get_preset(config)
    return DHVAEModel(
        config,
        vae=build_vae(config.vae),
        denoiser=Denoiser(config.denoiser, config.vae.latent_dim, config.vae.latent_tokens),
        text=TextEncoder(config.text, config.denoiser.width),
    )


def count_parameters(module: nn.Module) -> dict[str, int]:
    """Parameters per direct child of ``module`` and their "total", without the frozen CLIP
    tower (it is not part of the model's own size). Works on meta-device modules."""
    skipped = external_prefixes(module)
    counts = {name: 0 for name, _ in module.named_children()}
    for name, parameter in module.named_parameters():
        if not name.startswith(skipped):
            counts[name.split(".", 1)[0]] = counts.get(name.split(".", 1)[0], 0) + parameter.numel()
    counts["total"] = sum(counts.values())
    return counts
