"""The disentangled hierarchical VAE: latents z_a (person A), z_b (person B), z_g (interaction).

Encoder: one distribution-token encoder per person (separate weights) gives q(z_a), q(z_b)
and per-frame features h_a, h_b; a CoTransformer lets each person's frames attend to the
other's; the two masked means and a learnable global token go through an MLP to q(z_g).
Decoder: z_g and sinusoidal frame queries -> an implicit interaction sequence g; one decoder
per person whose frame queries self-attend and cross-attend to [g, z_a] (resp. [g, z_b]).
"""
from __future__ import annotations

import torch
from torch import nn

from .config import VAEConfig
from .latent import join_groups
from .layers import SinusoidalPositions, TransformerLayer, TransformerStack, masked_mean
from .vae_common import DistributionEncoder, LatentTokenDecoder, MotionVAE


class CoTransformer(nn.Module):
    """Two cross-attention branches updated in lockstep: A queries B, B queries A.
    The pre-norm residuals keep each query's own stream intact."""

    def __init__(self, config: VAEConfig):
        super().__init__()

        def branch() -> nn.ModuleList:
            return nn.ModuleList(
                TransformerLayer(config.width, config.heads, config.ff, config.dropout,
                                 self_attention=False, cross_attention=True)
                for _ in range(config.cotransformer_layers)
            )

        self.branch_a = branch()
        self.branch_b = branch()
        self.norm_a = nn.LayerNorm(config.width)
        self.norm_b = nn.LayerNorm(config.width)

    def forward(self, h_a: torch.Tensor, h_b: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-frame features of both persons -> their pooled interaction features [B, width] each."""
        for layer_a, layer_b in zip(self.branch_a, self.branch_b):
            h_a, h_b = (
                layer_a(h_a, context=h_b, context_mask=mask),
                layer_b(h_b, context=h_a, context_mask=mask),
            )
        return masked_mean(self.norm_a(h_a), mask), masked_mean(self.norm_b(h_b), mask)


class GlobalLatentHead(nn.Module):
    """[pooled A, pooled B, global token i] -> MLP -> mean and logvar of z_g token i."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.global_tokens = nn.Parameter(torch.randn(config.latent_tokens, config.width) * 0.02)
        self.mlp = nn.Sequential(
            nn.Linear(3 * config.width, config.width), nn.GELU(), nn.Linear(config.width, 2 * config.latent_dim),
        )

    def forward(self, pooled_a: torch.Tensor, pooled_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, num_tokens = pooled_a.shape[0], self.global_tokens.shape[0]
        pooled = torch.cat([pooled_a, pooled_b], dim=-1)[:, None, :].expand(-1, num_tokens, -1)
        tokens = torch.cat([pooled, self.global_tokens.expand(batch, -1, -1)], dim=-1)
        return self.mlp(tokens).chunk(2, dim=-1)


class PersonDecoder(nn.Module):
    """Frame queries self-attend and cross-attend to [g, this person's latent] -> features."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.latent_input = nn.Linear(config.latent_dim, config.width)
        self.positions = SinusoidalPositions(config.max_frames, config.width)
        self.transformer = TransformerStack(
            config.person_decoder_layers, config.width, config.heads, config.ff, config.dropout,
            cross_attention=True,
        )
        self.head = nn.Linear(config.width, config.feature_dim)

    def forward(self, interaction: torch.Tensor, z_person: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, num_frames = mask.shape
        memory = torch.cat([interaction, self.latent_input(z_person)], dim=1)
        memory_mask = torch.cat([mask, mask.new_ones(batch, z_person.shape[1])], dim=1)
        queries = self.positions(num_frames).expand(batch, -1, -1)
        return self.head(self.transformer(queries, mask, memory, memory_mask))


class DHVAE(MotionVAE):
    def __init__(self, config: VAEConfig):
        super().__init__(config)
        tokens = config.latent_tokens
        self.encoder_a = DistributionEncoder(config, config.feature_dim, tokens, config.encoder_layers)
        self.encoder_b = DistributionEncoder(config, config.feature_dim, tokens, config.encoder_layers)
        self.cotransformer = CoTransformer(config)
        self.global_head = GlobalLatentHead(config)
        self.interaction_decoder = LatentTokenDecoder(config, tokens, config.interaction_decoder_layers)
        self.decoder_a = PersonDecoder(config)
        self.decoder_b = PersonDecoder(config)

    def _encode(self, motion_a, motion_b, mask):
        mean_a, logvar_a, h_a = self.encoder_a(motion_a, mask)
        mean_b, logvar_b, h_b = self.encoder_b(motion_b, mask)
        mean_g, logvar_g = self.global_head(*self.cotransformer(h_a, h_b, mask))
        return join_groups(mean_a, mean_b, mean_g), join_groups(logvar_a, logvar_b, logvar_g)

    def _decode(self, z, mask):
        z_a, z_b, z_g = z.split(self.tokens_per_group, dim=1)
        interaction = self.interaction_decoder(z_g, mask)
        return self.decoder_a(interaction, z_a, mask), self.decoder_b(interaction, z_b, mask)
