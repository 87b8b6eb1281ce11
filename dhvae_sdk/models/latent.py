"""The latent layout shared by both VAEs, the denoiser and the sampler.

A latent is [B, 3 * l, d_z]: the l tokens of group "a" (person A), then "b" (person B),
then "g" (the interaction). The flat VAE uses the same layout for one joint latent (see
``flat_vae.py``). Token scaling divides each group by its own scale (the std of that group
over the training set, stored in the checkpoint) so the denoiser sees comparable magnitudes.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import GROUPS


def split_groups(tokens: torch.Tensor, tokens_per_group: int) -> dict[str, torch.Tensor]:
    """[B, 3l, d] -> {"a": [B, l, d], "b": ..., "g": ...}."""
    if tokens.dim() != 3 or tokens.shape[1] != len(GROUPS) * tokens_per_group:
        raise ValueError(
            f"latent tokens must be [B, {len(GROUPS) * tokens_per_group}, d] "
            f"({len(GROUPS)} groups of {tokens_per_group}), got {tuple(tokens.shape)}"
        )
    return dict(zip(GROUPS, tokens.split(tokens_per_group, dim=1)))


def join_groups(a: torch.Tensor, b: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return torch.cat([a, b, g], dim=1)


def _per_token_scales(scales: torch.Tensor, tokens: torch.Tensor, tokens_per_group: int) -> torch.Tensor:
    if scales.shape != (len(GROUPS),):
        raise ValueError(f"latent scales must have shape [{len(GROUPS)}] (one per group a, b, g), got {tuple(scales.shape)}")
    if tokens.shape[1] != len(GROUPS) * tokens_per_group:
        raise ValueError(f"expected {len(GROUPS) * tokens_per_group} latent tokens, got {tokens.shape[1]}")
    return scales.to(tokens).repeat_interleave(tokens_per_group)[None, :, None]


def scale_latents(tokens: torch.Tensor, scales: torch.Tensor, tokens_per_group: int) -> torch.Tensor:
    """VAE latent -> denoiser space: each group divided by its scale."""
    return tokens / _per_token_scales(scales, tokens, tokens_per_group)


def scale_logvars(logvars: torch.Tensor, scales: torch.Tensor, tokens_per_group: int) -> torch.Tensor:
    """Log-variances of VAE latents -> those of their denoiser-space values (``scale_latents``
    divides a value by s, so its variance by s^2)."""
    return logvars - 2.0 * torch.log(_per_token_scales(scales, logvars, tokens_per_group))


def unscale_latents(tokens: torch.Tensor, scales: torch.Tensor, tokens_per_group: int) -> torch.Tensor:
    """Denoiser space -> VAE latent (inverse of ``scale_latents``)."""
    return tokens * _per_token_scales(scales, tokens, tokens_per_group)


@dataclass
class LatentPosterior:
    """Diagonal Gaussian q(z | motion); mean and logvar are [B, 3l, d_z] in group order a, b, g."""

    mean: torch.Tensor
    logvar: torch.Tensor
    tokens_per_group: int

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """A reparameterized sample (differentiable in mean and logvar)."""
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + torch.exp(0.5 * self.logvar) * noise

    def kl(self) -> dict[str, torch.Tensor]:
        """KL to N(0, I) per group, averaged over batch, tokens and dims (MLD's convention, so
        the chosen w_kl = 1e-4 weighs it as in MLD)."""
        per_element = 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar)
        return {name: part.mean() for name, part in split_groups(per_element, self.tokens_per_group).items()}

    def group_means(self) -> dict[str, torch.Tensor]:
        return split_groups(self.mean, self.tokens_per_group)
