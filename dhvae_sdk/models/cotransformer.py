"""The co-transformer that couples two streams (the two persons, or the interaction's two views).

One block: the left stream cross-attends to the right one, then self-attends; the right
stream then cross-attends to the UPDATED left one and self-attends. A stack of ``depth``
(odd) blocks runs in-blocks, a middle block and out-blocks; each out-block first merges its
input with the output of the mirrored in-block through a Linear(2W -> W). The release builds
those merges as one Linear per side repeated, so every skip of a side shares its weights.
"""
from __future__ import annotations

import torch
from torch import nn

from .layers import CrossLayer, EncoderLayer


class CoTransformerBlock(nn.Module):
    def __init__(self, width: int, heads: int, ff: int, dropout: float):
        super().__init__()
        self.left_cross = CrossLayer(width, heads, ff)
        self.right_cross = CrossLayer(width, heads, ff)
        self.left_self = EncoderLayer(width, heads, ff, dropout)
        self.right_self = EncoderLayer(width, heads, ff, dropout)

    def forward(self, left: torch.Tensor, right: torch.Tensor, key_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        left = self.left_self(self.left_cross(left, right, key_mask), key_mask)
        right = self.right_self(self.right_cross(right, left, key_mask), key_mask)
        return left, right


class SkipCoTransformer(nn.Module):
    def __init__(self, depth: int, width: int, heads: int, ff: int, dropout: float):
        super().__init__()
        if depth % 2 != 1:
            raise ValueError(f"a skip co-transformer needs an odd depth, got {depth}")
        half = depth // 2
        self.in_blocks = nn.ModuleList(CoTransformerBlock(width, heads, ff, dropout) for _ in range(half))
        self.mid_block = CoTransformerBlock(width, heads, ff, dropout)
        self.out_blocks = nn.ModuleList(CoTransformerBlock(width, heads, ff, dropout) for _ in range(half))
        self.left_merge = nn.Linear(2 * width, width) if half else None
        self.right_merge = nn.Linear(2 * width, width) if half else None

    def forward(self, left: torch.Tensor, right: torch.Tensor, key_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both streams [B, L, W] share one key mask [B, L] (True = real)."""
        skipped = []
        for block in self.in_blocks:
            left, right = block(left, right, key_mask)
            skipped.append((left, right))
        left, right = self.mid_block(left, right, key_mask)
        for block in self.out_blocks:
            left_skip, right_skip = skipped.pop()
            left = self.left_merge(torch.cat([left, left_skip], dim=-1))
            right = self.right_merge(torch.cat([right, right_skip], dim=-1))
            left, right = block(left, right, key_mask)
        return left, right
