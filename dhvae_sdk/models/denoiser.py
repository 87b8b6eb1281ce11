"""The latent denoiser: AdaLN-zero Transformer blocks with U-Net long skips.

Input: (scaled) latent tokens [B, 3l, d_z] in group order a, b, g; output: the prediction
named by ``DenoiserConfig.prediction`` in the same shape. Token scaling happens outside
(``latent.scale_latents``); the scales travel in the checkpoint.

Two call paths give identical results:
- ``forward(x_t, timesteps, text_embedding)`` for training;
- ``condition`` -> ``modulation`` once per (text, step schedule), then
  ``forward_with_modulation(x_t, modulation)`` per step, which is all a sampling loop runs:
  every block's shift/scale/gate depends only on the condition, so for a sentence the
  modulation of all steps can be computed in one batched call before the loop.
"""
from __future__ import annotations

import torch
from torch import nn

from .config import DenoiserConfig
from .latent import GROUPS
from .layers import Attention, FeedForward

BLOCK_MODULATIONS = 6  # shift, scale, gate for attention, then for the feed-forward
FINAL_MODULATIONS = 2  # shift, scale before the output projection


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1.0 + scale) + shift


class ModulationHead(nn.Sequential):
    """condition [B, W] -> [B, count, W] through SiLU -> Linear(W, rank) -> Linear(rank, count*W).
    The last layer starts at zero, so every shift, scale and gate starts at zero."""

    def __init__(self, width: int, rank: int, count: int):
        super().__init__(nn.SiLU(), nn.Linear(width, rank), nn.Linear(rank, count * width))
        self.count = count
        nn.init.zeros_(self[-1].weight)
        nn.init.zeros_(self[-1].bias)

    def forward(self, condition: torch.Tensor) -> torch.Tensor:
        return super().forward(condition).unflatten(-1, (self.count, -1))


class AdaLNZeroBlock(nn.Module):
    def __init__(self, config: DenoiserConfig):
        super().__init__()
        self.attention_norm = nn.LayerNorm(config.width, elementwise_affine=False, eps=1e-6)
        self.attention = Attention(config.width, config.heads)
        self.ff_norm = nn.LayerNorm(config.width, elementwise_affine=False, eps=1e-6)
        self.ff = FeedForward(config.width, config.ff, config.dropout)
        self.modulation = ModulationHead(config.width, config.modulation_rank, BLOCK_MODULATIONS)

    def forward(self, x: torch.Tensor, modulation: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """x [B, N, W]; modulation: this block's six [B, 1, W] rows of ``Denoiser.modulation``."""
        shift_a, scale_a, gate_a, shift_f, scale_f, gate_f = modulation
        x = x + gate_a * self.attention(_modulate(self.attention_norm(x), shift_a, scale_a))
        return x + gate_f * self.ff(_modulate(self.ff_norm(x), shift_f, scale_f))


class Denoiser(nn.Module):
    def __init__(self, config: DenoiserConfig, latent_dim: int, latent_tokens: int):
        super().__init__()
        self.config = config
        self.latent_dim = latent_dim
        self.latent_tokens = latent_tokens
        width = config.width
        self.input = nn.Linear(latent_dim, width)
        # Segment positional encoding: which group a token belongs to, and (l > 1) where in it.
        self.segment_embedding = nn.Parameter(torch.randn(len(GROUPS), width) * 0.02)
        self.position_in_group = (
            nn.Parameter(torch.randn(latent_tokens, width) * 0.02) if latent_tokens > 1 else None
        )
        self.timestep_embedding = nn.Sequential(
            nn.Embedding(config.num_train_steps, width), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width),
        )
        self.null_text = nn.Parameter(torch.zeros(width))
        self.blocks = nn.ModuleList(AdaLNZeroBlock(config) for _ in range(config.blocks))
        num_skips = config.blocks // 2 if config.long_skips else 0
        self.skip_projections = nn.ModuleList(nn.Linear(2 * width, width) for _ in range(num_skips))
        self.final_norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.final_modulation = ModulationHead(width, config.modulation_rank, FINAL_MODULATIONS)
        self.output = nn.Linear(width, latent_dim)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    @property
    def num_tokens(self) -> int:
        return len(GROUPS) * self.latent_tokens

    @property
    def modulation_rows(self) -> int:
        return BLOCK_MODULATIONS * len(self.blocks) + FINAL_MODULATIONS

    def null_text_embedding(self, batch: int) -> torch.Tensor:
        """The learned "no text" condition for classifier-free guidance, [batch, width]."""
        return self.null_text.expand(batch, -1)

    def condition(self, timesteps: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        """c = timestep embedding + text embedding, [B, width]."""
        if timesteps.dim() != 1 or timesteps.dtype != torch.long:
            raise ValueError(f"timesteps must be a 1-D long tensor [B], got {tuple(timesteps.shape)} {timesteps.dtype}")
        if text_embedding.shape != (timesteps.shape[0], self.config.width):
            raise ValueError(
                f"text_embedding must be [B={timesteps.shape[0]}, {self.config.width}], got {tuple(text_embedding.shape)}"
            )
        if not torch.compiler.is_compiling() and not torch.jit.is_tracing():
            if int(timesteps.min()) < 0 or int(timesteps.max()) >= self.config.num_train_steps:
                raise ValueError(
                    f"timesteps must lie in [0, {self.config.num_train_steps}), got "
                    f"{int(timesteps.min())}..{int(timesteps.max())}"
                )
        return self.timestep_embedding(timesteps) + text_embedding

    def modulation(self, condition: torch.Tensor) -> torch.Tensor:
        """All blocks' shift/scale/gate then the final shift/scale, [B, modulation_rows, width]."""
        return torch.cat([block.modulation(condition) for block in self.blocks] + [self.final_modulation(condition)], dim=1)

    def forward_with_modulation(self, x_t: torch.Tensor, modulation: torch.Tensor) -> torch.Tensor:
        expected_x = (self.num_tokens, self.latent_dim)
        if x_t.dim() != 3 or tuple(x_t.shape[1:]) != expected_x:
            raise ValueError(f"x_t must be [B, {expected_x[0]}, {expected_x[1]}], got {tuple(x_t.shape)}")
        expected_modulation = (self.modulation_rows, self.config.width)
        if modulation.dim() != 3 or tuple(modulation.shape[1:]) != expected_modulation:
            raise ValueError(
                f"modulation must be [B, {expected_modulation[0]}, {expected_modulation[1]}] "
                f"(from Denoiser.modulation), got {tuple(modulation.shape)}"
            )
        h = self.input(x_t) + self._token_embedding()
        # One split into [B, 1, W] rows (they broadcast over the tokens) keeps the exported
        # step graph to a single node here instead of a slice and six squeezes per block.
        rows = modulation.split(1, dim=1)
        first_of_second_half = len(self.blocks) - len(self.skip_projections)
        skipped = []
        for index, block in enumerate(self.blocks):
            if index >= first_of_second_half:
                # The output of block i feeds block L-1-i: a stack pops them in that order.
                h = self.skip_projections[index - first_of_second_half](torch.cat([h, skipped.pop()], dim=-1))
            h = block(h, rows[BLOCK_MODULATIONS * index:BLOCK_MODULATIONS * (index + 1)])
            if index < len(self.skip_projections):
                skipped.append(h)
        shift, scale = rows[-FINAL_MODULATIONS:]
        return self.output(_modulate(self.final_norm(h), shift, scale))

    def forward(self, x_t: torch.Tensor, timesteps: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        return self.forward_with_modulation(x_t, self.modulation(self.condition(timesteps, text_embedding)))

    def _token_embedding(self) -> torch.Tensor:
        segments = self.segment_embedding.repeat_interleave(self.latent_tokens, dim=0)
        if self.position_in_group is None:
            return segments
        return segments + self.position_in_group.repeat(len(GROUPS), 1)
