"""The flat MLD-style VAE, the paper's baseline: one joint latent for both persons.

One distribution-token encoder reads both persons' features concatenated per frame and one
latent-token decoder writes them back. To share the denoiser and the sampler with the DHVAE,
its latent has the DHVAE's layout and size, [B, 3l, d_z]: 3l tokens split into three groups
of l. The groups carry no person/interaction meaning here; the denoiser's segment embedding
simply tags token positions, and ``LatentPosterior.kl()`` reports the three slices.
"""
from __future__ import annotations

import torch
from torch import nn

from .config import VAEConfig
from .latent import GROUPS
from .vae_common import DistributionEncoder, LatentTokenDecoder, MotionVAE


class FlatVAE(MotionVAE):
    def __init__(self, config: VAEConfig):
        super().__init__(config)
        tokens = len(GROUPS) * config.latent_tokens
        self.encoder = DistributionEncoder(
            config, 2 * config.feature_dim, tokens, config.encoder_layers + config.cotransformer_layers,
        )
        self.decoder = LatentTokenDecoder(
            config, tokens, config.interaction_decoder_layers + config.person_decoder_layers,
        )
        self.head = nn.Linear(config.width, 2 * config.feature_dim)

    def _encode(self, motion_a, motion_b, mask):
        mean, logvar, _ = self.encoder(torch.cat([motion_a, motion_b], dim=-1), mask)
        return mean, logvar

    def _decode(self, z, mask):
        return self.head(self.decoder(z, mask)).chunk(2, dim=-1)
