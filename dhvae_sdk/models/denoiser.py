"""The latent denoiser of the released model: AdaLN self-attention layers at the latent's width.

Input: latent tokens [B, 3l, W] in group order a, b, g (denoiser space, see ``latent.py``),
plus fixed sinusoidal positions; output: the predicted noise, same shape.
The condition c = text feature + MLP(sinusoidal timestep), both of the text width C. Each
layer regresses six rows of width W from SiLU(c) (attention gate, FFN gate, attention scale,
FFN scale, attention shift, FFN shift, in that order) and the head two (scale, shift); the
order is ``graph_contract.LAYER_MODULATION_ROWS`` / ``HEAD_MODULATION_ROWS``, which the
exported modulation table shares.

Two call paths give identical results:
- ``forward(x_t, timesteps, text_embedding)`` for training;
- ``condition`` -> ``modulation`` once per (text, step schedule), then
  ``forward_with_modulation(x_t, modulation)`` per step, which is all a sampling loop runs:
  the modulation depends only on the condition, so for a sentence the modulation of all
  steps is computed in one batched call before the loop.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dhvae_sdk.graph_contract import HEAD_MODULATION_ROWS, LAYER_MODULATION_ROWS

from .config import DenoiserConfig
from .latent import GROUPS
from .layers import attend, sinusoidal_table

LAYER_MODULATIONS = len(LAYER_MODULATION_ROWS)
HEAD_MODULATIONS = len(HEAD_MODULATION_ROWS)
FFN_RATIO = 4
ATTENTION_SCALE = 0.25  # the release scales logits by 0.25 / sqrt(head width)
NORM_EPS = 1e-6


def timestep_features(timesteps: torch.Tensor, width: int) -> torch.Tensor:
    """[N] timesteps -> [N, width]: cosines then sines of t * exp(-ln(1e4) i / (width / 2))."""
    half = width // 2
    frequency = torch.exp(torch.arange(half, dtype=torch.float32, device=timesteps.device) * (-math.log(10000.0) / half))
    angle = timesteps.float()[:, None] * frequency[None, :]
    return torch.cat([torch.cos(angle), torch.sin(angle)], dim=-1)


def _modulate(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:], eps=NORM_EPS) * (1.0 + scale) + shift


class SelfAttention(nn.Module):
    """Fused q/k/v projection without bias, plus learned q and v biases (k has none)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.mat_qkv = nn.Linear(width, 3 * width, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(width))
        self.v_bias = nn.Parameter(torch.zeros(width))
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = torch.cat([self.q_bias, torch.zeros_like(self.q_bias), self.v_bias])
        query, key, value = (
            part.unflatten(-1, (self.heads, -1)).transpose(1, 2)
            for part in F.linear(x, self.mat_qkv.weight, bias).chunk(3, dim=-1)
        )
        scale = ATTENTION_SCALE / math.sqrt(query.shape[-1])
        return self.proj(attend(query, key, value, None, scale=scale).transpose(1, 2).flatten(2))


class AdaLNLayer(nn.Module):
    def __init__(self, width: int, heads: int, condition_width: int):
        super().__init__()
        self.attn = SelfAttention(width, heads)
        self.ffn = nn.Sequential(nn.Linear(width, FFN_RATIO * width), nn.GELU(approximate="tanh"),
                                 nn.Linear(FFN_RATIO * width, width))
        self.ada_lin = nn.Linear(condition_width, LAYER_MODULATIONS * width)

    def forward(self, x: torch.Tensor, modulation: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """x [B, N, W]; modulation: this layer's six [B, 1, W] rows of ``Denoiser.modulation``."""
        gate_attention, gate_ffn, scale_attention, scale_ffn, shift_attention, shift_ffn = modulation
        x = x + gate_attention * self.attn(_modulate(x, scale_attention, shift_attention))
        return x + gate_ffn * self.ffn(_modulate(x, scale_ffn, shift_ffn))


class Denoiser(nn.Module):
    def __init__(self, config: DenoiserConfig, width: int, latent_tokens: int, condition_width: int):
        super().__init__()
        self.config = config
        self.width = width
        self.latent_tokens = latent_tokens
        self.condition_width = condition_width
        self.time_embedding = nn.Sequential(
            nn.Linear(condition_width, condition_width), nn.SiLU(), nn.Linear(condition_width, condition_width),
        )
        self.register_buffer("positions", sinusoidal_table(self.num_tokens, width), persistent=False)
        depth = config.layers + 1 if config.skip and config.layers % 2 == 0 else config.layers
        self.layers = nn.ModuleList(AdaLNLayer(width, config.heads, condition_width) for _ in range(depth))
        self.skip_merges = nn.ModuleList(nn.Linear(2 * width, width) for _ in range(depth // 2 if config.skip else 0))
        # The skip variant returns its last layer's output: the release leaves its head unused.
        self.head = None if config.skip else nn.Linear(condition_width, HEAD_MODULATIONS * width)

    @property
    def num_tokens(self) -> int:
        return len(GROUPS) * self.latent_tokens

    @property
    def modulation_rows(self) -> int:
        return LAYER_MODULATIONS * len(self.layers) + (0 if self.head is None else HEAD_MODULATIONS)

    def condition(self, timesteps: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        """c = text embedding + timestep embedding, [B, C]."""
        self._check_timesteps(timesteps)
        if text_embedding.shape != (timesteps.shape[0], self.condition_width):
            raise ValueError(
                f"text_embedding must be [B={timesteps.shape[0]}, {self.condition_width}], got {tuple(text_embedding.shape)}"
            )
        return text_embedding + self._timestep_embedding(timesteps)

    def modulation_table(self, timesteps: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
        """The modulation of every (step, text row) pair, [S, R, rows, W], for a sampling loop:
        the timestep embedding runs once per step, not once per pair."""
        self._check_timesteps(timesteps)
        if text_embeddings.dim() != 2 or text_embeddings.shape[1] != self.condition_width:
            raise ValueError(f"text_embeddings must be [R, {self.condition_width}], got {tuple(text_embeddings.shape)}")
        steps, rows = timesteps.shape[0], text_embeddings.shape[0]
        condition = self._timestep_embedding(timesteps)[:, None, :] + text_embeddings[None, :, :]
        modulation = self.modulation(condition.reshape(steps * rows, self.condition_width))
        return modulation.reshape(steps, rows, self.modulation_rows, self.width)

    def _timestep_embedding(self, timesteps: torch.Tensor) -> torch.Tensor:
        return self.time_embedding(timestep_features(timesteps, self.condition_width))

    def _check_timesteps(self, timesteps: torch.Tensor) -> None:
        if timesteps.dim() != 1 or timesteps.dtype != torch.long:
            raise ValueError(f"timesteps must be a 1-D long tensor [B], got {tuple(timesteps.shape)} {timesteps.dtype}")
        if not torch.compiler.is_compiling() and not torch.jit.is_tracing():
            if int(timesteps.min()) < 0 or int(timesteps.max()) >= self.config.num_train_steps:
                raise ValueError(
                    f"timesteps must lie in [0, {self.config.num_train_steps}), got "
                    f"{int(timesteps.min())}..{int(timesteps.max())}"
                )

    def modulation(self, condition: torch.Tensor) -> torch.Tensor:
        """Every layer's six rows, then the head's two: [B, modulation_rows, W]."""
        activated = F.silu(condition)
        heads = [layer.ada_lin for layer in self.layers] + ([] if self.head is None else [self.head])
        return torch.cat([head(activated) for head in heads], dim=-1).unflatten(-1, (-1, self.width))

    def forward_with_modulation(self, x_t: torch.Tensor, modulation: torch.Tensor) -> torch.Tensor:
        expected_x = (self.num_tokens, self.width)
        if x_t.dim() != 3 or tuple(x_t.shape[1:]) != expected_x:
            raise ValueError(f"x_t must be [B, {expected_x[0]}, {expected_x[1]}], got {tuple(x_t.shape)}")
        expected_modulation = (self.modulation_rows, self.width)
        if modulation.dim() != 3 or tuple(modulation.shape[1:]) != expected_modulation:
            raise ValueError(
                f"modulation must be [B, {expected_modulation[0]}, {expected_modulation[1]}] "
                f"(from Denoiser.modulation), got {tuple(modulation.shape)}"
            )
        h = x_t + self.positions
        # One split into [B, 1, W] rows (they broadcast over the tokens) keeps the exported
        # step graph to a single node here instead of a slice and six squeezes per layer.
        rows = modulation.split(1, dim=1)
        first_out = len(self.layers) - len(self.skip_merges)
        skipped = []
        for index, layer in enumerate(self.layers):
            if index >= first_out:
                # The output of layer i feeds layer L-1-i: a stack pops them in that order.
                h = self.skip_merges[index - first_out](torch.cat([h, skipped.pop()], dim=-1))
            h = layer(h, rows[LAYER_MODULATIONS * index:LAYER_MODULATIONS * (index + 1)])
            if index < len(self.skip_merges):
                skipped.append(h)
        if self.head is None:
            return h
        scale, shift = rows[-HEAD_MODULATIONS:]
        return _modulate(h, scale, shift)

    def forward(self, x_t: torch.Tensor, timesteps: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        return self.forward_with_modulation(x_t, self.modulation(self.condition(timesteps, text_embedding)))
