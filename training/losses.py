"""Stage-1 losses of the DHVAE: reconstruction, KL, joint positions and the interaction triplet.

All motion tensors are two-person batches [B, T, 2, D] in normalized units with a frame mask
[B, T] (True = real frame). Joint positions and translations work on de-normalized features,
so the representation brings its normalizer, its features-to-joints map and its ground-plane
translation (``MotionRepresentation``). A representation without joints (InterX without the
SMPL-X body model) has no joint and no triplet loss.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from dhvae_sdk.models import LatentPosterior, LossConfig, MotionVAE
from dhvae_sdk.motion import Normalizer
from dhvae_sdk.physics import contact_test

# Spread (metres) of the two-tailed Gaussian the negative's shift length is drawn from
# before truncation to [neg_min, neg_max]; the method fixes only the truncation bounds.


@dataclass(frozen=True)
class MotionRepresentation:
    normalizer: Normalizer
    to_joints: Callable | None  # raw features [..., D] -> joints [..., 22, 3]; None: not available
    translate: Callable | None  # (raw features [..., D], offset_xz [..., 2]) -> raw features


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` [B, T, ...] over the real frames of ``mask`` [B, T] and all other axes."""
    weights = mask.to(values.dtype).reshape(*mask.shape, *([1] * (values.dim() - 2)))
    per_frame = values[0, 0].numel()
    return (values * weights).sum() / (weights.sum() * per_frame).clamp_min(1.0)


def reconstruction_loss(recon: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Smooth L1 on normalized features, padded frames excluded."""
    return masked_mean(F.smooth_l1_loss(recon, target, reduction="none"), mask)


def kl_loss(posterior: LatentPosterior) -> torch.Tensor:
    """KL of the three posteriors (z_a, z_b, z_g) to N(0, I), summed over the groups."""
    return sum(posterior.kl().values())


def joints_of(motion: torch.Tensor, representation: MotionRepresentation) -> torch.Tensor:
    """Normalized features [..., D] -> joint positions [..., 22, 3] (metres), differentiable."""
    return representation.to_joints(representation.normalizer.denormalize(motion))


def joint_position_loss(recon: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                        representation: MotionRepresentation) -> torch.Tensor:
    """L1 between the joint positions of decoded and real features (metres), real frames only."""
    return masked_mean((joints_of(recon, representation) - joints_of(target, representation)).abs(), mask)


def pairs_in_contact(motion: torch.Tensor, mask: torch.Tensor, representation: MotionRepresentation,
                     config: LossConfig) -> torch.Tensor:
    """Bool [B]: do the two (real) bodies touch in any frame (dilated voxel overlap)?"""
    with torch.no_grad():
        joints = joints_of(motion.float(), representation).cpu().numpy()
        touching = contact_test(joints[:, :, 0], joints[:, :, 1], voxel=config.contact_voxel,
                                dilation=config.contact_dilation, lengths=mask.sum(dim=1).cpu().numpy())
    return torch.as_tensor(touching, dtype=torch.bool, device=motion.device)


def random_directions(count: int, device, dtype) -> torch.Tensor:
    angle = torch.rand(count, device=device, dtype=dtype) * (2 * math.pi)
    return torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)


def positive_offsets(touching: torch.Tensor, config: LossConfig, dtype=torch.float32) -> torch.Tensor:
    """[B, 2] ground-plane shifts, uniform in a disc of radius delta_c (touching) or delta_nc."""
    radius = torch.where(touching, config.delta_c, config.delta_nc).to(dtype)
    length = radius * torch.rand(touching.shape, device=touching.device, dtype=dtype).sqrt()
    return length[:, None] * random_directions(len(touching), touching.device, dtype)


def negative_offsets(count: int, config: LossConfig, device=None, dtype=torch.float32) -> torch.Tensor:
    """[B, 2] shifts whose length |s| follows N(0, config.neg_std) truncated to
    [neg_min, neg_max] (by inverse-CDF sampling), in a uniformly random direction."""
    low = torch.special.ndtr(torch.tensor(config.neg_min / config.neg_std, dtype=torch.float64))
    high = torch.special.ndtr(torch.tensor(config.neg_max / config.neg_std, dtype=torch.float64))
    uniform = low + (high - low) * torch.rand(count, dtype=torch.float64, device=device)
    length = (config.neg_std * torch.special.ndtri(uniform)).clamp(config.neg_min, config.neg_max).to(dtype)
    return length[:, None] * random_directions(count, device, dtype)


def translate_person_b(motion: torch.Tensor, offsets_xz: torch.Tensor,
                       representation: MotionRepresentation) -> torch.Tensor:
    """Normalized person-B features [B, T, D] moved on the ground by ``offsets_xz`` [B, 2]."""
    normalizer = representation.normalizer
    moved = representation.translate(normalizer.denormalize(motion), offsets_xz[:, None, :])
    return normalizer.normalize(moved)


def triplet_margin(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                   margin: float) -> torch.Tensor:
    """mean over the batch of max(0, ||a - p|| - ||a - n|| + margin); inputs [B, ...]."""
    flat = [x.float().flatten(1) for x in (anchor, positive, negative)]
    distance_positive = torch.linalg.vector_norm(flat[0] - flat[1], dim=-1)
    distance_negative = torch.linalg.vector_norm(flat[0] - flat[2], dim=-1)
    return F.relu(distance_positive - distance_negative + margin).mean()


def interaction_triplet_loss(vae: MotionVAE, motion: torch.Tensor, mask: torch.Tensor,
                             anchor: LatentPosterior, representation: MotionRepresentation,
                             config: LossConfig) -> torch.Tensor:
    """The triplet loss on the means of z_g: B moved a little (positive) or far (negative).

    ``anchor`` is the posterior of the real pair (already computed by the reconstruction pass).
    """
    motion_a, motion_b = motion[:, :, 0], motion[:, :, 1]
    touching = pairs_in_contact(motion, mask, representation, config)
    count = motion.shape[0]
    offsets = torch.cat([positive_offsets(touching, config, motion.dtype),
                         negative_offsets(count, config, motion.device, motion.dtype)])
    moved_b = translate_person_b(torch.cat([motion_b, motion_b]), offsets, representation)
    shifted = vae.encode(torch.cat([motion_a, motion_a]), moved_b, torch.cat([mask, mask])).group_means()["g"]
    return triplet_margin(anchor.group_means()["g"], shifted[:count], shifted[count:], config.margin)


def vae_losses(vae: MotionVAE, motion: torch.Tensor, mask: torch.Tensor,
               representation: MotionRepresentation, config: LossConfig) -> dict[str, torch.Tensor]:
    """Every stage-1 term and their weighted sum "loss" for one batch."""
    out = vae(motion[:, :, 0], motion[:, :, 1], mask)
    recon = torch.stack([out["recon_a"], out["recon_b"]], dim=2).float()  # losses in fp32 under autocast
    losses = {"recon": reconstruction_loss(recon, motion, mask), "kl": kl_loss(out["posterior"])}
    total = losses["recon"] + config.w_kl * losses["kl"]
    if representation.to_joints is not None and config.w_joint > 0:
        losses["joint"] = joint_position_loss(recon, motion, mask, representation)
        total = total + config.w_joint * losses["joint"]
    if representation.to_joints is not None and representation.translate is not None and config.w_tri > 0:
        losses["triplet"] = interaction_triplet_loss(vae, motion, mask, out["posterior"], representation, config)
        total = total + config.w_tri * losses["triplet"]
    losses["loss"] = total
    return losses
