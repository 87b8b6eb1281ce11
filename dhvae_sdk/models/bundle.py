"""The model bundle: one nn.Module holding everything a checkpoint rebuilds.

``DHVAEModel`` has three children, whose names are the checkpoint's key prefixes:
``vae`` (DHVAE or FlatVAE), ``denoiser`` and ``text`` (TextEncoder), plus its ``config``.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .config import DHVAEConfig
from .denoiser import Denoiser
from .text_encoder import TextEncoder, empty_text_tokens, tokenize
from .vae_common import MotionVAE


class DHVAEModel(nn.Module):
    def __init__(self, config: DHVAEConfig, vae: MotionVAE, denoiser: Denoiser, text: TextEncoder):
        super().__init__()
        self.config = config
        self.vae = vae
        self.denoiser = denoiser
        self.text = text

    @property
    def device(self) -> torch.device:
        return self.text.head_norm.weight.device

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Sentences -> text embeddings [B, condition width] on the model's device."""
        return self.text(tokenize(texts, self.config.text.context_length).to(self.device))

    def null_text_embedding(self, count: int = 1) -> torch.Tensor:
        """The unconditional condition of classifier-free guidance, the empty string's encoding, [count, C]."""
        tokens = empty_text_tokens(1, self.config.text.context_length).to(self.device)
        return self.text(tokens).expand(count, -1)
