"""Stage-1 losses of the DHVAE, the released recipe (``official-dhvae.md``, "Training recipe"):

  loss = w_rec (L1_A + L1_B) + w_joint (L1 of A's + of B's joint positions)
         + w_kl mean(KL_a, KL_b, KL_g) + w_tri triplet(z_g means)
         [+ w_distance_map (L1 of the A-to-B joint distances)
          + w_hand_contact (the same on the A-to-B hand distances)
          + w_joint_metres (L1 of A's + of B's joint positions in metres), not in the release]

(the CPU presets put smooth L1 in place of both L1s: ``LossConfig.recon_loss``).

The L1 terms are masked means over the real frames of normalized features (the release's
weighted L1 without its padding term: our decoder outputs zeros there, which no weight can
move); the joint term is the same L1 on the joint-position dims (0:66 for InterHuman), also
in normalized space. The triplet anchors on the posterior mean of z_g; its positive and
negative move person B's joints along x and along y (y is vertical), each axis by its own
draw, as the release does. Motion tensors are two-person batches [B, T, 2, D] with a frame
mask [B, T] (True = real frame). A representation without joint positions (InterX) has no
joint and no triplet term.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from dhvae_sdk.models import LatentPosterior, LossConfig, MotionVAE
from dhvae_sdk.motion import Normalizer
from dhvae_sdk.motion.skeleton import HAND_JOINTS
from dhvae_sdk.physics import contact_test
from dhvae_sdk.physics.bodies import HAND_CAPSULES

# The release draws every shift from a standard normal in metres (std 1 m) truncated to the
# allowed range, so inside the narrow ranges the draw is close to uniform.
SHIFT_STD = 1.0
# The shifted axes: x (sideways) and y (vertical); z (depth) stays.
SHIFTED_AXES = (0, 1)


@dataclass(frozen=True)
class MotionRepresentation:
    normalizer: Normalizer
    to_joints: Callable | None  # raw features [..., D] -> joints [..., J, 3]; None: not available
    positions: slice | None  # the joint positions (joint-major xyz) among the features; None: none


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` [B, T, ...] over the real frames of ``mask`` [B, T] and all other axes."""
    weights = mask.to(values.dtype).reshape(*mask.shape, *([1] * (values.dim() - 2)))
    per_frame = values[0, 0].numel()
    return (values * weights).sum() / (weights.sum() * per_frame).clamp_min(1.0)


# berHu ("reverse Huber"): L1 below this error (in normalized units), quadratic above it.
BERHU_THRESHOLD = 0.2


def elementwise_distance(a: torch.Tensor, b: torch.Tensor, kind: str) -> torch.Tensor:
    """|a - b| ("l1"), Huber with beta 1 ("smooth_l1"), or berHu ("berhu")."""
    error = (a - b).abs()
    if kind == "l1":
        return error
    if kind == "smooth_l1":
        return torch.where(error < 1.0, 0.5 * error * error, error - 0.5)
    if kind == "berhu":
        return torch.where(error <= BERHU_THRESHOLD, error,
                           (error * error + BERHU_THRESHOLD ** 2) / (2 * BERHU_THRESHOLD))
    raise ValueError(f"unknown reconstruction distance {kind!r}")


def person_distance(recon: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """Sum over the two persons of the masked-mean ``elementwise_distance`` between [B, T, 2, D]
    tensors."""
    return sum(masked_mean(elementwise_distance(recon[:, :, person], target[:, :, person], kind), mask)
               for person in (0, 1))


def distance_map_loss(recon: torch.Tensor, motion: torch.Tensor, mask: torch.Tensor,
                      representation: MotionRepresentation, within: float,
                      points: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Mean |d_recon - d_real| (metres) of the distances between each of A's ``points`` (a map
    of joints [..., J, 3] to points [..., P, 3]; None: the joints) and each of B's, over the real
    frames' point pairs closer than ``within`` in ``motion``.

    Each reconstructed body is moved so that the centroid of its joints falls on the real
    one's: the term sees the pose, so moving a whole body changes nothing for it and its
    gradient holds no pull on a body as a whole. Measured fine-tuning at weight 3 (path error
    from 0.061 m): in world space the term pulled the bodies together (0.142 m after 125
    steps); placed on the real pelvis, it moved the pelvis alone (0.233 m, the other joints
    staying put); placed with the pelvis offset held constant, it pushed joints that the
    decoder moves with the body (0.31 m)."""
    real = joints_of(motion, representation).detach()  # [B, T, 2, J, 3]
    recon_joints = joints_of(recon, representation)
    placed = recon_joints - recon_joints.mean(dim=-2, keepdim=True) + real.mean(dim=-2, keepdim=True)

    def distances(positions):
        if points is not None:
            positions = points(positions)
        offsets = positions[:, :, 0, :, None] - positions[:, :, 1, None, :]
        # the epsilon keeps the gradient finite where two joints coincide (a handshake)
        return (offsets.square().sum(dim=-1) + 1e-8).sqrt()  # [B, T, P, P]

    real_distances = distances(real)
    near = (real_distances < within) & mask[:, :, None, None]
    error = (distances(placed) - real_distances).abs()
    return (error * near).sum() / near.sum().clamp_min(1)


def wrists(joints: torch.Tensor) -> torch.Tensor:
    return joints[..., list(HAND_JOINTS), :]


def hand_ends(joints: torch.Tensor) -> torch.Tensor:
    """The far ends of the physics hand capsules, where gripping hands meet (the wrists of a
    handshake stay 15-20 cm apart)."""
    return torch.cat([capsule.axis_points(joints, capsule.end) for capsule in HAND_CAPSULES], dim=-2)


HAND_POINT_MAPS = {"wrists": wrists, "hand_ends": hand_ends}  # by LossConfig.hand_contact_points


def joint_metres_loss(recon: torch.Tensor, motion: torch.Tensor, mask: torch.Tensor,
                      representation: MotionRepresentation) -> torch.Tensor:
    """Sum over the two persons of the masked-mean |recon - real| of the joint coordinates in
    metres (world space: the path counts, as in MPJPE)."""
    return person_distance(joints_of(recon, representation), joints_of(motion, representation).detach(), mask)


def kl_loss(posterior: LatentPosterior) -> torch.Tensor:
    """Mean of the three KLs (z_a, z_b, z_g) to N(0, I), each a mean over its elements."""
    kls = posterior.kl().values()
    return sum(kls) / len(kls)


def joints_of(motion: torch.Tensor, representation: MotionRepresentation) -> torch.Tensor:
    """Normalized features [..., D] -> joint positions [..., J, 3] (metres)."""
    return representation.to_joints(representation.normalizer.denormalize(motion))


def pairs_in_contact(motion: torch.Tensor, mask: torch.Tensor, representation: MotionRepresentation,
                     config: LossConfig) -> torch.Tensor:
    """Bool [B]: do the two (real) bodies touch in any frame (dilated voxel overlap)?

    The test runs on the training process's torch threads (``--threads``): left to its default of
    every core, each of two single-threaded jobs sharing a 2-core machine would use both."""
    with torch.no_grad():
        joints = joints_of(motion.float(), representation).cpu().numpy()
        touching = contact_test(joints[:, :, 0], joints[:, :, 1], voxel=config.contact_voxel,
                                dilation=config.contact_dilation, lengths=mask.sum(dim=1).cpu().numpy(),
                                threads=torch.get_num_threads())
    return torch.as_tensor(touching, dtype=torch.bool, device=motion.device)


def truncated_normal(low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """One draw of N(0, SHIFT_STD^2) truncated to [low, high] per element (inverse CDF)."""
    cdf_low, cdf_high = (torch.special.ndtr(bound.double() / SHIFT_STD) for bound in (low, high))
    uniform = cdf_low + (cdf_high - cdf_low) * torch.rand(low.shape, dtype=torch.float64, device=low.device)
    return (SHIFT_STD * torch.special.ndtri(uniform)).clamp(low.double(), high.double()).to(low.dtype)


def positive_shifts(touching: torch.Tensor, config: LossConfig, dtype=torch.float32) -> torch.Tensor:
    """[B, 2] shifts (x, y) with |d| <= pos_contact (pairs in contact) or pos_apart, per axis."""
    bound = torch.where(touching, config.pos_contact, config.pos_apart).to(dtype)[:, None].expand(-1, 2)
    return truncated_normal(-bound, bound)


def negative_shifts(touching: torch.Tensor, config: LossConfig, dtype=torch.float32) -> torch.Tensor:
    """[B, 2] shifts (x, y) with |d| in [neg_contact_min, neg_contact_max] (contact) or the
    apart range, per axis, each with a random sign."""
    low = torch.where(touching, config.neg_contact_min, config.neg_apart_min).to(dtype)[:, None].expand(-1, 2)
    high = torch.where(touching, config.neg_contact_max, config.neg_apart_max).to(dtype)[:, None].expand(-1, 2)
    sign = torch.where(torch.rand(low.shape, device=low.device) < 0.5, -1.0, 1.0).to(dtype)
    return sign * truncated_normal(low, high)


def shift_person_b(motion_b: torch.Tensor, shifts: torch.Tensor, representation: MotionRepresentation) -> torch.Tensor:
    """Normalized person-B features [B, T, D] with every joint moved by ``shifts`` [B, 2] along
    SHIFTED_AXES (metres, every frame). Only the positions move: velocities, rotations and
    contacts stay, as in the release."""
    positions = representation.positions
    joints = (positions.stop - positions.start) // 3
    offset = motion_b.new_zeros(len(shifts), 3)
    offset[:, list(SHIFTED_AXES)] = shifts.to(motion_b.dtype)
    raw = representation.normalizer.denormalize(motion_b)
    moved = raw.clone()
    moved[..., positions] = raw[..., positions] + offset.repeat(1, joints)[:, None, :]
    return representation.normalizer.normalize(moved)


def triplet_margin(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                   margin: float) -> torch.Tensor:
    """Mean over batch and latent tokens of max(0, |a - p| - |a - n| + margin); inputs [B, l, W],
    distances per token over the width (``F.pairwise_distance``, as the release)."""
    distance_positive = F.pairwise_distance(anchor.float(), positive.float(), p=2)
    distance_negative = F.pairwise_distance(anchor.float(), negative.float(), p=2)
    return F.relu(distance_positive - distance_negative + margin).mean()


def interaction_triplet_loss(vae: MotionVAE, motion: torch.Tensor, mask: torch.Tensor,
                             anchor: LatentPosterior, representation: MotionRepresentation,
                             config: LossConfig) -> torch.Tensor:
    """The triplet loss on the means of z_g: B moved a little (positive) or far (negative).

    ``anchor`` is the posterior of the real pair (already computed by the reconstruction pass);
    positive and negative are encoded together in one batch.
    """
    motion_a, motion_b = motion[:, :, 0], motion[:, :, 1]
    touching = pairs_in_contact(motion, mask, representation, config)
    shifts = torch.cat([positive_shifts(touching, config, motion.dtype), negative_shifts(touching, config, motion.dtype)])
    moved_b = shift_person_b(torch.cat([motion_b, motion_b]), shifts, representation)
    shifted = vae.encode(torch.cat([motion_a, motion_a]), moved_b, torch.cat([mask, mask])).group_means()["g"]
    count = motion.shape[0]
    return triplet_margin(anchor.group_means()["g"], shifted[:count], shifted[count:], config.margin)


def vae_losses(vae: MotionVAE, motion: torch.Tensor, mask: torch.Tensor,
               representation: MotionRepresentation, config: LossConfig) -> dict[str, torch.Tensor]:
    """Every stage-1 term (unweighted) and their weighted sum "loss" for one batch."""
    out = vae(motion[:, :, 0], motion[:, :, 1], mask)
    recon = torch.stack([out["recon_a"], out["recon_b"]], dim=2).float()  # losses in fp32 under autocast
    losses = {"recon": person_distance(recon, motion, mask, config.recon_loss), "kl": kl_loss(out["posterior"])}
    total = config.w_rec * losses["recon"] + config.w_kl * losses["kl"]
    positions = representation.positions
    if positions is not None and config.w_joint > 0:
        losses["joint"] = person_distance(recon[..., positions], motion[..., positions], mask, config.recon_loss)
        total = total + config.w_joint * losses["joint"]
    if representation.to_joints is not None and config.w_distance_map > 0:
        losses["distance_map"] = distance_map_loss(recon, motion.float(), mask, representation,
                                                   config.distance_map_range)
        total = total + config.w_distance_map * losses["distance_map"]
    if representation.to_joints is not None and config.w_hand_contact > 0:
        losses["hand_contact"] = distance_map_loss(recon, motion.float(), mask, representation,
                                                   config.hand_contact_range,
                                                   points=HAND_POINT_MAPS[config.hand_contact_points])
        total = total + config.w_hand_contact * losses["hand_contact"]
    if representation.to_joints is not None and config.w_joint_metres > 0:
        losses["joint_metres"] = joint_metres_loss(recon, motion.float(), mask, representation)
        total = total + config.w_joint_metres * losses["joint_metres"]
    if positions is not None and representation.to_joints is not None and config.w_tri > 0:
        losses["triplet"] = interaction_triplet_loss(vae, motion, mask, out["posterior"], representation, config)
        total = total + config.w_tri * losses["triplet"]
    losses["loss"] = total
    return losses
