"""Transformer layers of the DHVAE's VAE and text encoder, in the released model's layout.

Parameter names follow ``torch.nn.MultiheadAttention`` / ``nn.TransformerEncoderLayer`` /
``nn.TransformerDecoderLayer`` and CLIP's residual blocks, so official weights load by a
prefix rename. The layers are written out rather than taken from torch because torch's
fused inference path cannot be exported to ONNX and differs between devices.

Masks follow one convention everywhere: a bool tensor where True marks a real element (a
valid frame, a token that may be attended to). The release's own masks mean the opposite.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def lengths_to_mask(lengths: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
    """[B] lengths -> [B, num_frames] bool mask (True = real frame); num_frames defaults to max(lengths)."""
    lengths = torch.as_tensor(lengths)
    if lengths.dim() != 1 or lengths.dtype.is_floating_point or lengths.numel() == 0:
        raise ValueError(f"lengths must be a non-empty 1-D integer tensor, got {tuple(lengths.shape)} {lengths.dtype}")
    if int(lengths.min()) < 1:
        raise ValueError(f"every length must be >= 1, got {lengths.tolist()}")
    longest = int(lengths.max())
    num_frames = longest if num_frames is None else num_frames
    if num_frames < longest:
        raise ValueError(f"num_frames={num_frames} is shorter than the longest length {longest}")
    return torch.arange(num_frames, device=lengths.device)[None, :] < lengths[:, None]


def always_real(mask: torch.Tensor, count: int) -> torch.Tensor:
    """``mask`` [B, T] with ``count`` real tokens put in front."""
    return torch.cat([mask.new_ones(mask.shape[0], count), mask], dim=1)


def attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask: torch.Tensor | None,
           scale: float | None = None) -> torch.Tensor:
    """Scaled dot-product attention over [B, H, L, d] tensors; ``attention_mask`` is a bool
    mask broadcastable to [B, H, L, S] (True = may attend).

    When exporting, it is spelled out: the ONNX exporter's own decomposition of SDPA adds a
    dozen shape nodes per call, a third of the denoiser step graph's nodes."""
    if not torch.onnx.is_in_onnx_export():
        return F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, scale=scale)
    scale = query.shape[-1] ** -0.5 if scale is None else scale
    scores = (query * scale) @ key.transpose(-2, -1)
    if attention_mask is not None:
        scores = scores.masked_fill(~attention_mask, float("-inf"))
    return scores.softmax(dim=-1) @ value


class TrainingDropout(nn.Dropout):
    """``nn.Dropout`` that leaves nothing in an eval-mode trace: ``nn.Dropout`` records a
    no-op dropout node per call even in eval mode, which every ONNX export traces twice and
    then removes (30 of the released VAE encoder's 511 traced nodes)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) if self.training else x


class MultiheadAttention(nn.Module):
    """``nn.MultiheadAttention`` (batch first, packed input projection) with bool key masks."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.heads, -1)).transpose(1, 2)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, key_mask: torch.Tensor | None = None,
                causal: bool = False) -> torch.Tensor:
        if context is None:
            query, key, value = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        else:
            w_q, w_kv = self.in_proj_weight.split([x.shape[-1], 2 * x.shape[-1]])
            b_q, b_kv = self.in_proj_bias.split([x.shape[-1], 2 * x.shape[-1]])
            query = F.linear(x, w_q, b_q)
            key, value = F.linear(context, w_kv, b_kv).chunk(2, dim=-1)
        mask = None if key_mask is None else key_mask[:, None, None, :]
        if causal:
            order = torch.ones(x.shape[1], key.shape[1], dtype=torch.bool, device=x.device).tril()
            mask = order if mask is None else mask & order
        attended = attend(self._heads(query), self._heads(key), self._heads(value), mask)
        return self.out_proj(attended.transpose(1, 2).flatten(2))


class EncoderLayer(nn.Module):
    """Post-norm self-attention layer (``nn.TransformerEncoderLayer``, ReLU unless given)."""

    def __init__(self, width: int, heads: int, ff: int, dropout: float, activation=F.relu):
        super().__init__()
        self.self_attn = MultiheadAttention(width, heads)
        self.linear1 = nn.Linear(width, ff)
        self.linear2 = nn.Linear(ff, width)
        self.norm1 = nn.LayerNorm(width)
        self.norm2 = nn.LayerNorm(width)
        self.dropout = TrainingDropout(dropout)
        self.activation = activation

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.norm1(x + self.dropout(self.self_attn(x, key_mask=key_mask)))
        return self.norm2(x + self.dropout(self.linear2(self.dropout(self.activation(self.linear1(x))))))


class DecoderLayer(nn.Module):
    """Post-norm self-attention, cross-attention to a memory, ReLU feed-forward
    (``nn.TransformerDecoderLayer``); the memory is never masked."""

    def __init__(self, width: int, heads: int, ff: int, dropout: float):
        super().__init__()
        self.self_attn = MultiheadAttention(width, heads)
        self.multihead_attn = MultiheadAttention(width, heads)
        self.linear1 = nn.Linear(width, ff)
        self.linear2 = nn.Linear(ff, width)
        self.norm1 = nn.LayerNorm(width)
        self.norm2 = nn.LayerNorm(width)
        self.norm3 = nn.LayerNorm(width)
        self.dropout = TrainingDropout(dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.dropout(self.self_attn(x, key_mask=key_mask)))
        x = self.norm2(x + self.dropout(self.multihead_attn(x, context=memory)))
        return self.norm3(x + self.dropout(self.linear2(self.dropout(F.relu(self.linear1(x))))))


class CrossLayer(nn.Module):
    """Post-norm cross-attention of a stream over another, then a ReLU feed-forward: one
    half of a co-transformer block. The release puts no dropout here."""

    def __init__(self, width: int, heads: int, ff: int):
        super().__init__()
        self.mha = MultiheadAttention(width, heads)
        self.ffn = nn.Sequential(nn.Linear(width, ff), nn.ReLU(), nn.Linear(ff, width))
        self.normlayer1 = nn.LayerNorm(width)
        self.normlayer2 = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, context: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        x = self.normlayer1(x + self.mha(x, context=context, key_mask=key_mask))
        return self.normlayer2(x + self.ffn(x))


def sinusoidal_table(length: int, width: int) -> torch.Tensor:
    """The Transformer's position table [length, width]: sine on even, cosine on odd channels."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10000.0) / width))
    table = torch.zeros(length, width)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: width // 2])
    return table


class LearnedPositions(nn.Module):
    """A learned table added to the first rows of a sequence.

    It starts as the sinusoidal table, not as small random rows: the VAE decoder's frame
    queries are this table alone, and queries that start as near-copies of each other settle
    on one rest pose sliding along the path. A tiny VAE overfitting a single procedural wave
    (smooth L1) kept the arm still for 400 steps from random rows, and waved by step 300 from
    the sinusoidal start.
    """

    def __init__(self, rows: int, width: int):
        super().__init__()
        self.table = nn.Parameter(sinusoidal_table(rows, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > self.table.shape[0]:
            raise ValueError(
                f"a sequence of {x.shape[1]} positions is longer than the model's table of "
                f"{self.table.shape[0]} (config vae.max_frames plus the latent tokens)"
            )
        return x + self.table[: x.shape[1]]
