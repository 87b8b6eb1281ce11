"""The disentangled hierarchical VAE of the released model: z_a (person A), z_b (person B)
and z_g (their interaction), each ``l`` tokens of the model's width.

Encoder: per person, [2l distribution tokens, projected frames] plus learned positions
through post-norm encoder layers; its first l output tokens are the mean, the next l the
log-variance (no projection). The interaction: both persons' streams, each behind the same
2l interaction tokens, through a skip co-transformer; Linear(concat of the two streams) at
the interaction tokens gives q(z_g).
Decoder "cat": learned frame positions query [z_g, z_person] through a decoder stack per
person. "hire": frame positions behind z_g go through a co-transformer first (the same
sequence on both sides); its two streams, without the z_g rows, are the queries.
"""
from __future__ import annotations

import torch
from torch import nn

from .config import VAEConfig
from .cotransformer import SkipCoTransformer
from .latent import join_groups
from .layers import DecoderLayer, EncoderLayer, LearnedPositions, always_real
from .vae_common import MotionVAE

# The posterior is the last person-encoder layer's LayerNorm output, unprojected, so one bias
# serves the means and the log-variances. At the usual bias 0 every person posterior starts
# at sigma ~ 1, as noisy as the prior, the decoder learns to lean on z_g instead, and Adam
# moves a bias by at most the learning rate per step (tiny preset, procedural data, 750 steps:
# person latents with 8-10 of 64 dimensions 3x above their noise). Starting the bias at -3
# starts sigma near 0.2, the means merely shifted: 31-35 such dimensions by step 500, and a
# held-out MPJPE of 0.45 m at step 250 against 0.56-0.61 m (0.26-0.30 m either way by 500-750).
POSTERIOR_NORM_BIAS = -3.0


class PersonEncoder(nn.Module):
    def __init__(self, config: VAEConfig):
        super().__init__()
        self.distribution_tokens = nn.Parameter(torch.randn(2 * config.latent_tokens, config.width))
        self.input = nn.Linear(config.feature_dim, config.width)
        self.layers = nn.ModuleList(
            EncoderLayer(config.width, config.heads, config.ff, config.dropout) for _ in range(config.person_layers)
        )
        nn.init.constant_(self.layers[-1].norm2.bias, POSTERIOR_NORM_BIAS)

    def forward(self, frames: torch.Tensor, key_mask: torch.Tensor, positions: LearnedPositions) -> torch.Tensor:
        """[B, T, F] -> [B, 2l + T, W]: the distribution tokens' outputs, then the frames'."""
        tokens = self.distribution_tokens.expand(frames.shape[0], -1, -1)
        x = positions(torch.cat([tokens, self.input(frames)], dim=1))
        for layer in self.layers:
            x = layer(x, key_mask)
        return x


class PersonDecoder(nn.Module):
    def __init__(self, config: VAEConfig):
        super().__init__()
        self.layers = nn.ModuleList(
            DecoderLayer(config.width, config.heads, config.ff, config.dropout) for _ in range(config.decoder_layers)
        )
        self.output = nn.Linear(config.width, config.feature_dim)

    def forward(self, queries: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            queries = layer(queries, memory, mask)
        return self.output(queries)


class DHVAE(MotionVAE):
    def __init__(self, config: VAEConfig):
        super().__init__(config)
        width, tokens = config.width, config.latent_tokens
        self.encoder_positions = LearnedPositions(config.position_rows, width)
        self.encoder_a = PersonEncoder(config)
        self.encoder_b = PersonEncoder(config)
        self.interaction_tokens = nn.Parameter(torch.randn(2 * tokens, width))
        self.interaction_encoder = SkipCoTransformer(
            config.interaction_layers, width, config.heads, config.ff, config.dropout,
        )
        self.interaction_head = nn.Linear(2 * width, width)
        self.decoder_positions = LearnedPositions(config.position_rows, width)
        self.interaction_decoder = (
            SkipCoTransformer(config.interaction_layers, width, config.heads, config.ff, config.dropout)
            if config.decoder == "hire" else None
        )
        self.decoder_a = PersonDecoder(config)
        self.decoder_b = PersonDecoder(config)

    def _encode(self, motion_a, motion_b, mask):
        n = 2 * self.config.latent_tokens
        person_mask = always_real(mask, n)
        stream_a = self.encoder_a(motion_a, person_mask, self.encoder_positions)
        stream_b = self.encoder_b(motion_b, person_mask, self.encoder_positions)
        interaction = self.interaction_tokens.expand(mask.shape[0], -1, -1)
        left, right = self.interaction_encoder(
            torch.cat([interaction, stream_a], dim=1), torch.cat([interaction, stream_b], dim=1),
            always_real(mask, 2 * n),
        )
        stream_g = self.interaction_head(torch.cat([left[:, :n], right[:, :n]], dim=-1))
        half = self.config.latent_tokens
        means, logvars = zip(*(stream[:, :n].split(half, dim=1) for stream in (stream_a, stream_b, stream_g)))
        return join_groups(*means), join_groups(*logvars)

    def _decode(self, z, mask):
        z_a, z_b, z_g = z.split(self.tokens_per_group, dim=1)
        batch, num_frames = mask.shape
        frames = z.new_zeros(batch, num_frames, self.config.width)
        if self.interaction_decoder is None:
            queries_a = queries_b = self.decoder_positions(frames)
        else:
            sequence = self.decoder_positions(torch.cat([z_g, frames], dim=1))
            queries_a, queries_b = self.interaction_decoder(sequence, sequence, always_real(mask, z_g.shape[1]))
            queries_a, queries_b = queries_a[:, z_g.shape[1]:], queries_b[:, z_g.shape[1]:]
        return (self.decoder_a(queries_a, torch.cat([z_g, z_a], dim=1), mask),
                self.decoder_b(queries_b, torch.cat([z_g, z_b], dim=1), mask))
