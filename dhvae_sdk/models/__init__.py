"""Networks of dhvae-sdk: the motion VAEs, the latent denoiser, the text encoder, their configs.

Build everything from a config with ``build_model(config_or_preset_name)``; the result is a
``DHVAEModel`` bundle (``.vae``, ``.denoiser``, ``.text``, ``.config``).
"""
from .build import VAE_BUILDERS, build_model, build_vae, count_parameters
from .bundle import DHVAEModel
from .config import (
    DATASETS, PRESETS, DenoiserConfig, DHVAEConfig, LossConfig, TextEncoderConfig, VAEConfig, get_preset,
)
from .denoiser import Denoiser
from .dhvae import DHVAE
from .flat_vae import FlatVAE
from .latent import GROUPS, LatentPosterior, join_groups, scale_latents, scale_logvars, split_groups, unscale_latents
from .layers import lengths_to_mask
from .text_encoder import TextEncoder, empty_text_tokens, tokenize
from .vae_common import MotionVAE

__all__ = [
    "DATASETS", "PRESETS", "GROUPS", "VAE_BUILDERS",
    "DHVAEConfig", "VAEConfig", "DenoiserConfig", "TextEncoderConfig", "LossConfig", "get_preset",
    "DHVAEModel", "MotionVAE", "DHVAE", "FlatVAE", "Denoiser", "TextEncoder", "LatentPosterior",
    "build_model", "build_vae", "count_parameters", "tokenize", "empty_text_tokens", "lengths_to_mask",
    "split_groups", "join_groups", "scale_latents", "scale_logvars", "unscale_latents",
]
