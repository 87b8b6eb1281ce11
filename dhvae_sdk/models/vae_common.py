"""What both motion VAEs share: the public interface and its input checks."""
from __future__ import annotations

import torch
from torch import nn

from .config import VAEConfig
from .latent import GROUPS, LatentPosterior


def _tracing() -> bool:
    """Value checks need a host sync that export tracing cannot follow; skip them there."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


def check_mask(mask: torch.Tensor, batch: int | None = None) -> None:
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.dim() != 2:
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(
            f"mask must be a bool tensor [B, T] (True = real frame), got {shape} "
            f"{getattr(mask, 'dtype', '')}; build one with lengths_to_mask(lengths, num_frames)"
        )
    if batch is not None and mask.shape[0] != batch:
        raise ValueError(f"mask has batch {mask.shape[0]} but the input has batch {batch}")
    if not _tracing() and not bool(mask.any(dim=1).all()):
        raise ValueError("every sequence needs at least one real frame, but a mask row is all False")


class MotionVAE(nn.Module):
    """Interface of both VAEs. Subclasses implement ``_encode`` and ``_decode``.

    Inputs are normalized features [B, T, feature_dim] per person and a bool mask [B, T].
    Padded frames never influence real frames: they are zeroed on the way in (so even NaN
    padding is harmless) and masked out of every attention; decoded padded frames are zero.
    """

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config

    @property
    def tokens_per_group(self) -> int:
        return self.config.latent_tokens

    def encode(self, motion_a: torch.Tensor, motion_b: torch.Tensor, mask: torch.Tensor) -> LatentPosterior:
        for name, motion in (("motion_a", motion_a), ("motion_b", motion_b)):
            if not isinstance(motion, torch.Tensor) or motion.dim() != 3 or motion.shape[-1] != self.config.feature_dim:
                shape = tuple(motion.shape) if isinstance(motion, torch.Tensor) else type(motion).__name__
                raise ValueError(
                    f"{name} must be [B, T, {self.config.feature_dim}] normalized features, got {shape}"
                )
        if motion_a.shape != motion_b.shape:
            raise ValueError(f"motion_a {tuple(motion_a.shape)} and motion_b {tuple(motion_b.shape)} differ in shape")
        self._check_length(mask)
        check_mask(mask, motion_a.shape[0])
        if mask.shape[1] != motion_a.shape[1]:
            raise ValueError(f"mask covers {mask.shape[1]} frames but the motion has {motion_a.shape[1]}")
        real = mask[..., None]
        mean, logvar = self._encode(
            torch.where(real, motion_a, 0.0), torch.where(real, motion_b, 0.0), mask,
        )
        return LatentPosterior(mean, logvar, self.tokens_per_group)

    def decode(self, z: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z [B, 3l, d_z] -> (features_a, features_b), each [B, T, feature_dim]; T = mask.shape[1]."""
        expected = (len(GROUPS) * self.tokens_per_group, self.config.width)
        if not isinstance(z, torch.Tensor) or z.dim() != 3 or tuple(z.shape[1:]) != expected:
            shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"z must be [B, {expected[0]}, {expected[1]}], got {shape}")
        check_mask(mask, z.shape[0])
        self._check_length(mask)
        features_a, features_b = self._decode(z, mask)
        real = mask[..., None]
        return torch.where(real, features_a, 0.0), torch.where(real, features_b, 0.0)

    def forward(
        self, motion_a: torch.Tensor, motion_b: torch.Tensor, mask: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> dict:
        """Training pass: {"posterior", "latents" (the sample decoded), "recon_a", "recon_b"}."""
        posterior = self.encode(motion_a, motion_b, mask)
        latents = posterior.sample(generator)
        recon_a, recon_b = self.decode(latents, mask)
        return {"posterior": posterior, "latents": latents, "recon_a": recon_a, "recon_b": recon_b}

    def _check_length(self, mask: torch.Tensor) -> None:
        if mask.dim() == 2 and mask.shape[1] > self.config.max_frames:
            raise ValueError(
                f"{mask.shape[1]} frames requested but the model handles at most {self.config.max_frames} "
                f"(config vae.max_frames)"
            )

    def _encode(self, motion_a, motion_b, mask) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _decode(self, z, mask) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError
