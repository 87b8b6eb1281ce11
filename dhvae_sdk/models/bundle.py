"""The model bundle: one nn.Module holding everything a checkpoint rebuilds.

``DHVAEModel`` has three children, whose names are the checkpoint's key prefixes:
``vae`` (DHVAE or FlatVAE), ``denoiser`` and ``text`` (TextEncoder), plus its ``config``.
The frozen CLIP tower inside ``text`` is the one part a checkpoint leaves out: its weights
come from the user's CLIP file, and ``checkpoint_state_dict`` skips them.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .config import DHVAEConfig
from .denoiser import Denoiser
from .text_encoder import FrozenClipTower, TextEncoder, tokenize
from .vae_common import MotionVAE


def external_prefixes(module: nn.Module) -> tuple[str, ...]:
    """State-dict prefixes of submodules whose weights come from elsewhere (frozen CLIP)."""
    return tuple(f"{name}." for name, child in module.named_modules() if isinstance(child, FrozenClipTower))


class DHVAEModel(nn.Module):
    def __init__(self, config: DHVAEConfig, vae: MotionVAE, denoiser: Denoiser, text: TextEncoder):
        super().__init__()
        self.config = config
        self.vae = vae
        self.denoiser = denoiser
        self.text = text

    def checkpoint_state_dict(self) -> dict[str, torch.Tensor]:
        """The state dict without the frozen CLIP tower."""
        skipped = external_prefixes(self)
        return {key: value for key, value in self.state_dict().items() if not key.startswith(skipped)}

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Sentences -> text embeddings [B, denoiser width] on the model's device."""
        tokens = tokenize(texts, self.config.text.context_length)
        return self.text(tokens.to(self.denoiser.null_text.device))
