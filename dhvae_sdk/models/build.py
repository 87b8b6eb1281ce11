"""Builders: a config (or a preset name) in, modules out."""
from __future__ import annotations

from torch import nn

from .bundle import DHVAEModel
from .config import DHVAEConfig, VAEConfig, get_preset
from .denoiser import Denoiser
from .dhvae import DHVAE
from .flat_vae import FlatVAE
from .text_encoder import TextEncoder
from .vae_common import MotionVAE

VAE_BUILDERS = {"dhvae": DHVAE, "flat": FlatVAE}


def build_vae(config: VAEConfig) -> MotionVAE:
    return VAE_BUILDERS[config.kind](config)


def build_denoiser(config: DHVAEConfig) -> Denoiser:
    """The denoiser of ``config.denoiser``, sized to the latent and the text features of ``config``."""
    return Denoiser(config.denoiser, config.vae.width, config.vae.latent_tokens, config.text.width)


def build_model(config: DHVAEConfig | str) -> DHVAEModel:
    """The model bundle of a config or of a preset name ("paper", "small", "tiny")."""
    if isinstance(config, str):
        config = get_preset(config)
    return DHVAEModel(
        config,
        vae=build_vae(config.vae),
        denoiser=build_denoiser(config),
        text=TextEncoder(config.text),
    )


def count_parameters(module: nn.Module, skip: tuple[str, ...] = ()) -> dict[str, int]:
    """Parameters per direct child of ``module`` and their "total", leaving out the children
    named in ``skip``. Works on meta-device modules."""
    counts = {name: 0 for name, _ in module.named_children() if name not in skip}
    for name, parameter in module.named_parameters():
        child = name.split(".", 1)[0]
        if child not in skip:
            counts[child] = counts.get(child, 0) + parameter.numel()
    counts["total"] = sum(counts.values())
    return counts
