"""The modules exported to ONNX: each is exactly one graph the ONNX Runtime and TensorRT
backends run, written with the model's own methods so that it computes what the torch
backend computes.

- ``TextEncoderGraph``: CLIP BPE ids [N, context] -> text embeddings [N, C] (C: text width).
- ``ModulationGraph``: timesteps [S] and text embeddings [R, C] (the sentences', or the null
  text alone: the backends compute its rows once per step schedule) -> the AdaLN gates,
  scales and shifts of every layer and the head for every step, [S, R, rows, W] (W: latent
  width). It runs once per call, before the loop.
- ``SamplerStepGraph``: one DDIM step with classifier-free guidance. It picks its step's
  modulation and scheduler coefficients out of whole-loop tables by ``step`` [1], so that
  every per-step input lives in a buffer bound once (ONNX Runtime io binding, a CUDA graph in
  TensorRT) and only the step number changes between steps.
- ``DecoderGraph`` / ``EncoderGraph``: the VAE between denoiser-space latents (scaled by the
  checkpoint's per-group scales) and normalized features [B, T, 2, feature_dim].

Their input and output names are ``dhvae_sdk.graph_contract``'s.
"""
from __future__ import annotations

import torch
from torch import nn

from dhvae_sdk.models import DHVAEModel, scale_latents, scale_logvars, unscale_latents
from dhvae_sdk.sampling import classifier_free_guidance


class TextEncoderGraph(nn.Module):
    def __init__(self, model: DHVAEModel):
        super().__init__()
        self.text = model.text

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.text(tokens)


class ModulationGraph(nn.Module):
    def __init__(self, model: DHVAEModel):
        super().__init__()
        self.denoiser = model.denoiser

    def forward(self, timesteps: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        return self.denoiser.modulation_table(timesteps, conditions)


class SamplerStepGraph(nn.Module):
    """x_t [B, N, d] -> x_prev, ``sampling.sample_latents``'s step: the fixed tokens (where
    ``known_mask`` [B, N, 1] is set) take this step's ``known_table`` values, the denoiser runs
    once on [x_t; x_t] (conditional rows, then unconditional), guidance, then
    ``DDIMScheduler.step``'s two linear maps with eta = 0 and no clipping (``coefficient_table`` columns are
    ``graph_contract.COEFFICIENT_COLUMNS``)."""

    def __init__(self, model: DHVAEModel):
        super().__init__()
        self.denoiser = model.denoiser

    def forward(self, latents: torch.Tensor, step: torch.Tensor, modulation_table: torch.Tensor,
                coefficient_table: torch.Tensor, guidance: torch.Tensor, known_table: torch.Tensor,
                known_mask: torch.Tensor) -> torch.Tensor:
        latents = torch.where(known_mask, known_table.index_select(0, step).squeeze(0), latents)
        modulation = modulation_table.index_select(0, step).squeeze(0)
        coefficients = coefficient_table.index_select(0, step).squeeze(0)
        output = self.denoiser.forward_with_modulation(torch.cat([latents, latents]), modulation)
        guided = classifier_free_guidance(output, guidance)
        x0 = coefficients[0] * latents + coefficients[1] * guided
        return coefficients[2] * x0 + coefficients[3] * latents


class DecoderGraph(nn.Module):
    def __init__(self, model: DHVAEModel, latent_scales: torch.Tensor):
        super().__init__()
        self.vae = model.vae
        self.register_buffer("latent_scales", latent_scales.detach().clone())

    def forward(self, latents: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        z = unscale_latents(latents, self.latent_scales, self.vae.tokens_per_group)
        return torch.stack(self.vae.decode(z, mask), dim=2)


class EncoderGraph(nn.Module):
    """The posterior of both persons' normalized features [B, T, 2, F] in denoiser space: its
    means and log-variances."""

    def __init__(self, model: DHVAEModel, latent_scales: torch.Tensor):
        super().__init__()
        self.vae = model.vae
        self.register_buffer("latent_scales", latent_scales.detach().clone())

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        posterior = self.vae.encode(features[:, :, 0], features[:, :, 1], mask)
        tokens = self.vae.tokens_per_group
        return (scale_latents(posterior.mean, self.latent_scales, tokens),
                scale_logvars(posterior.logvar, self.latent_scales, tokens))
