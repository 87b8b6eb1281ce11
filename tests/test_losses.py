"""Stage-1 losses: masking, joints, the triplet loss and the translation behind it."""
import numpy as np
import pytest
import torch

from dhvae_sdk.models import LossConfig, build_vae, get_preset
from dhvae_sdk.motion.interhuman import FOOT_CONTACTS, POSITIONS, ROTATIONS, VELOCITIES, interaction_features
from tests.fk_motions import fk_pair_raw
from training.losses import (
    joint_position_loss, negative_offsets, pairs_in_contact, positive_offsets, reconstruction_loss,
    translate_person_b, triplet_margin, vae_losses,
)
from training.stages.common import representation_of

REPRESENTATION = representation_of("interhuman")
NORMALIZER = REPRESENTATION.normalizer


def real_pairs(count: int, frames: int = 24) -> torch.Tensor:
    """Normalized features [count, frames, 2, 262] of FK-built pairs."""
    pairs = [interaction_features(*fk_pair_raw(frames + 1, seed=7 * i)[:2]) for i in range(count)]
    return torch.as_tensor(NORMALIZER.normalize(np.stack(pairs)), dtype=torch.float32)


def test_translation_moves_positions_only():
    motion = real_pairs(2)
    offsets = torch.tensor([[0.3, -0.2], [-1.1, 0.7]])
    moved = translate_person_b(motion[:, :, 1], offsets, REPRESENTATION)
    before, after = NORMALIZER.denormalize(motion[:, :, 1].double()), NORMALIZER.denormalize(moved.double())
    shift = (after - before)[..., POSITIONS].reshape(2, -1, 22, 3)
    expected = torch.stack([offsets[:, 0], torch.zeros(2), offsets[:, 1]], dim=-1).double()[:, None, None, :]
    torch.testing.assert_close(shift, expected.expand_as(shift), atol=2e-5, rtol=0)
    for part in (VELOCITIES, ROTATIONS, FOOT_CONTACTS):
        torch.testing.assert_close(after[..., part], before[..., part], atol=2e-5, rtol=0)


def test_triplet_is_zero_for_identical_positive_and_far_negative():
    anchor = torch.randn(5, 1, 8)
    far = anchor + 10.0
    assert float(triplet_margin(anchor, anchor, far, margin=1.0)) == 0.0
    # Everything identical: each row pays exactly the margin.
    assert float(triplet_margin(anchor, anchor, anchor, margin=1.0)) == pytest.approx(1.0)
    # A positive 2 away and a negative 0.5 away: 2 - 0.5 + 1.
    positive = anchor + torch.tensor([2.0] + [0.0] * 7)
    negative = anchor + torch.tensor([0.0, 0.5] + [0.0] * 6)
    assert float(triplet_margin(anchor, positive, negative, margin=1.0)) == pytest.approx(2.5)


def test_positive_and_negative_offset_lengths():
    torch.manual_seed(0)
    config = LossConfig()
    touching = torch.arange(4000) % 2 == 0
    lengths = positive_offsets(touching, config).norm(dim=-1)
    assert float(lengths[touching].max()) <= config.delta_c + 1e-6
    assert float(lengths[~touching].max()) <= config.delta_nc + 1e-6
    assert float(lengths[~touching].max()) > 2 * config.delta_c  # the wide disc is used
    negative = negative_offsets(4000, config).norm(dim=-1)
    assert float(negative.min()) >= config.neg_min - 1e-6 and float(negative.max()) <= config.neg_max + 1e-6
    # A zero-centred Gaussian truncated to [0.4, 1.5] puts more mass near 0.4 than near 1.5.
    assert float((negative < 0.7).float().mean()) > float((negative > 1.2).float().mean())


def test_reconstruction_loss_ignores_padded_frames():
    target = real_pairs(2)
    mask = torch.zeros(2, 24, dtype=torch.bool)
    mask[0, :20], mask[1, :10] = True, True
    recon = target + 0.5
    garbage = recon.clone()
    garbage[~mask] = 1e6
    loss = reconstruction_loss(recon, target, mask)
    assert float(loss) == pytest.approx(0.125, rel=1e-5)  # smooth L1 of 0.5 is 0.5 * 0.5^2
    assert float(reconstruction_loss(garbage, target, mask)) == pytest.approx(float(loss), rel=1e-6)


def test_joint_loss_measures_metres():
    target = real_pairs(2)
    mask = torch.ones(2, 24, dtype=torch.bool)
    raw = NORMALIZER.denormalize(target.double())
    shifted = raw.clone()
    shifted[..., POSITIONS.start:POSITIONS.stop:3] += 0.3  # every joint 0.3 m along x
    recon = NORMALIZER.normalize(shifted).float()
    assert float(joint_position_loss(target, target, mask, REPRESENTATION)) == 0.0
    assert float(joint_position_loss(recon, target, mask, REPRESENTATION)) == pytest.approx(0.1, rel=1e-4)


def test_contact_test_sees_touching_and_separated_pairs():
    motion = real_pairs(1)
    touching = motion.clone()
    touching[:, :, 1] = motion[:, :, 0]  # B exactly where A is
    apart = motion.clone()
    apart[:, :, 1] = translate_person_b(motion[:, :, 0], torch.tensor([[5.0, 0.0]]), REPRESENTATION)
    mask = torch.ones(1, 24, dtype=torch.bool)
    config = LossConfig()
    contact = pairs_in_contact(torch.cat([touching, apart]), mask.repeat(2, 1), REPRESENTATION, config)
    assert contact.tolist() == [True, False]


def test_vae_losses_weighted_sum_and_representation_without_joints():
    torch.manual_seed(0)
    config = get_preset("tiny")
    vae = build_vae(config.vae)
    motion = real_pairs(3)
    mask = torch.ones(3, 24, dtype=torch.bool)
    mask[2, 15:] = False
    losses = vae_losses(vae, motion, mask, REPRESENTATION, config.loss)
    assert set(losses) == {"recon", "kl", "joint", "triplet", "loss"}
    weights = config.loss
    expected = losses["recon"] + weights.w_kl * losses["kl"] + weights.w_joint * losses["joint"] \
        + weights.w_tri * losses["triplet"]
    torch.testing.assert_close(losses["loss"], expected)
    losses["triplet"].backward()
    # The triplet reaches z_g through both encoders' frame features, not the z_a head.
    assert float(vae.encoder_a.input.weight.grad.abs().sum()) > 0
    assert float(vae.encoder_a.to_mean.weight.grad.abs().sum()) == 0

    interx = get_preset("tiny", "interx")
    interx_losses = vae_losses(build_vae(interx.vae), torch.randn(2, 12, 2, 336), torch.ones(2, 12, dtype=torch.bool),
                               representation_of("interx"), interx.loss)
    assert set(interx_losses) == {"recon", "kl", "loss"}
