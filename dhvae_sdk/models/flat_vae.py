"""The flat MLD-style VAE, the paper's baseline: one joint latent for both persons.

It is built from the DHVAE's own layers at the DHVAE's depths: one encoder of
``person_layers + interaction_layers`` layers reads both persons' features concatenated per
frame behind 2 x 3l distribution tokens; one decoder stack of the DHVAE's per-person depth
turns learned frame positions, attending to the latent, back into both persons' features.
To share the denoiser and the sampler with the DHVAE, its latent has the DHVAE's layout
[B, 3l, W]; the three groups carry no person/interaction meaning here.
"""
from __future__ import annotations

import torch
from torch import nn

from .config import VAEConfig
from .latent import GROUPS
from .layers import DecoderLayer, EncoderLayer, LearnedPositions, always_real
from .vae_common import MotionVAE


class FlatVAE(MotionVAE):
    def __init__(self, config: VAEConfig):
        super().__init__(config)
        width, tokens = config.width, len(GROUPS) * config.latent_tokens
        self.distribution_tokens = nn.Parameter(torch.randn(2 * tokens, width))
        self.input = nn.Linear(2 * config.feature_dim, width)
        self.encoder_positions = LearnedPositions(2 * tokens + config.max_frames, width)
        self.encoder = nn.ModuleList(
            EncoderLayer(width, config.heads, config.ff, config.dropout)
            for _ in range(config.person_layers + config.interaction_layers)
        )
        self.decoder_positions = LearnedPositions(config.max_frames, width)
        self.decoder = nn.ModuleList(
            DecoderLayer(width, config.heads, config.ff, config.dropout) for _ in range(config.decoder_layers)
        )
        self.output = nn.Linear(width, 2 * config.feature_dim)

    def _encode(self, motion_a, motion_b, mask):
        tokens = self.distribution_tokens.expand(mask.shape[0], -1, -1)
        x = self.encoder_positions(torch.cat([tokens, self.input(torch.cat([motion_a, motion_b], dim=-1))], dim=1))
        key_mask = always_real(mask, tokens.shape[1])
        for layer in self.encoder:
            x = layer(x, key_mask)
        mean, logvar = x[:, : tokens.shape[1]].chunk(2, dim=1)
        return mean, logvar

    def _decode(self, z, mask):
        x = self.decoder_positions(z.new_zeros(*mask.shape, self.config.width))
        for layer in self.decoder:
            x = layer(x, z, mask)
        return self.output(x).chunk(2, dim=-1)
