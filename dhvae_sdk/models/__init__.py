"""Networks of dhvae-sdk: the motion VAEs, the latent denoiser, the text encoder, their configs.

Build everything from a config with ``build_model(config_or_preset_name)``; the result is a
``DHVAEModel`` bundle (``.vae``, ``.denoiser``, ``.text``, ``.config``).

Names are imported from their module on first use: the configs, ``GROUPS`` and the
tokenizer's ``token_ids`` need no torch, so the ONNX runtime uses them without loading it.
"""
import importlib

_MODULES = {
    "build": ("VAE_BUILDERS", "build_denoiser", "build_model", "build_vae", "count_parameters"),
    "bundle": ("DHVAEModel",),
    "config": ("DATASETS", "GROUPS", "PRESETS", "DenoiserConfig", "DHVAEConfig", "LossConfig", "TextEncoderConfig",
               "VAEConfig", "get_preset"),
    "denoiser": ("Denoiser",),
    "dhvae": ("DHVAE",),
    "flat_vae": ("FlatVAE",),
    "latent": ("LatentPosterior", "join_groups", "scale_latents", "scale_logvars", "split_groups", "unscale_latents"),
    "layers": ("lengths_to_mask",),
    "text_encoder": ("TextEncoder", "empty_text_tokens", "tokenize"),
    "tokenizer": ("empty_token_ids", "token_ids"),
    "vae_common": ("MotionVAE",),
}
_MODULE_OF = {name: module for module, names in _MODULES.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'dhvae_sdk.models' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
