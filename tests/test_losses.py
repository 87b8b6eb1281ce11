"""Stage-1 losses (the release's recipe): masking, the joint dims, the KL mean, the triplet
loss and the per-axis shifts behind it; and the CPU presets' recipe learning a moving limb."""
from dataclasses import replace

import numpy as np
import pytest
import torch

import training.losses
from dhvae_sdk.models import LatentPosterior, LossConfig, build_model, build_vae, get_preset
from dhvae_sdk.models.config import HAND_CONTACT_POINTS
from dhvae_sdk.motion import Normalizer
from dhvae_sdk.motion.interhuman import FOOT_CONTACTS, POSITIONS, ROTATIONS, VELOCITIES, interaction_features
from dhvae_sdk.motion.skeleton import JOINT_INDEX
from dhvae_sdk.physics import contact_test
from tests.fk_motions import fk_pair_raw
from training.losses import (
    HAND_POINT_MAPS, MotionRepresentation, distance_map_loss, hand_ends, joint_metres_loss, kl_loss, negative_shifts,
    pairs_in_contact, person_distance, positive_shifts, shift_person_b, triplet_margin, vae_losses, wrists,
)
from training.stages.common import representation_of

REPRESENTATION = representation_of("interhuman")
NORMALIZER = REPRESENTATION.normalizer


def real_pairs(count: int, frames: int = 24) -> torch.Tensor:
    """Normalized features [count, frames, 2, 262] of FK-built pairs."""
    pairs = [interaction_features(*fk_pair_raw(frames + 1, seed=7 * i)[:2]) for i in range(count)]
    return torch.as_tensor(NORMALIZER.normalize(np.stack(pairs)), dtype=torch.float32)


def test_shift_moves_positions_along_x_and_y_only():
    motion = real_pairs(2)
    shifts = torch.tensor([[0.3, -0.2], [-0.1, 0.7]])
    moved = shift_person_b(motion[:, :, 1], shifts, REPRESENTATION)
    before, after = NORMALIZER.denormalize(motion[:, :, 1].double()), NORMALIZER.denormalize(moved.double())
    shift = (after - before)[..., POSITIONS].reshape(2, -1, 22, 3)
    expected = torch.stack([shifts[:, 0], shifts[:, 1], torch.zeros(2)], dim=-1).double()[:, None, None, :]
    torch.testing.assert_close(shift, expected.expand_as(shift), atol=2e-5, rtol=0)
    for part in (VELOCITIES, ROTATIONS, FOOT_CONTACTS):  # the release moves positions only
        torch.testing.assert_close(after[..., part], before[..., part], atol=2e-5, rtol=0)


def test_triplet_margin_values_and_per_token_distances():
    anchor = torch.randn(5, 1, 8)
    assert float(triplet_margin(anchor, anchor, anchor + 10.0, margin=3.0)) == 0.0
    # Everything identical: each row pays the margin (less pairwise_distance's 1e-6 offset).
    assert float(triplet_margin(anchor, anchor, anchor, margin=3.0)) == pytest.approx(3.0, abs=1e-4)
    # A positive 2 away and a negative 0.5 away: 2 - 0.5 + 1.
    positive = anchor + torch.tensor([2.0] + [0.0] * 7)
    negative = anchor + torch.tensor([0.0, 0.5] + [0.0] * 6)
    assert float(triplet_margin(anchor, positive, negative, margin=1.0)) == pytest.approx(2.5, abs=1e-4)
    # Two tokens: distances per token, then the mean (token 0 pays 1 + 1, token 1 pays 0).
    two = torch.zeros(1, 2, 4)
    positive, negative = two.clone(), two.clone()
    positive[0, 0, 0], negative[0, 1, 0] = 1.0, 5.0
    assert float(triplet_margin(two, positive, negative, margin=1.0)) == pytest.approx(1.0, abs=1e-4)


def test_positive_and_negative_shifts_per_axis():
    torch.manual_seed(0)
    config = LossConfig()
    touching = torch.arange(4000) % 2 == 0
    positive = positive_shifts(touching, config).abs()
    assert positive.shape == (4000, 2)
    assert float(positive[touching].max()) <= config.pos_contact
    assert float(positive[~touching].max()) <= config.pos_apart
    assert float(positive[~touching].max()) > 0.9 * config.pos_apart  # the wide range is used
    negative = negative_shifts(touching, config)
    magnitude = negative.abs()
    assert float(magnitude[touching].min()) >= config.neg_contact_min - 1e-6
    assert float(magnitude[touching].max()) <= config.neg_contact_max + 1e-6
    assert float(magnitude[~touching].min()) >= config.neg_apart_min - 1e-6
    assert float(magnitude[~touching].max()) <= config.neg_apart_max + 1e-6
    # Signs are random and independent per axis.
    assert 0.45 < float((negative > 0).float().mean()) < 0.55
    assert 0.2 < float(((negative[:, 0] > 0) & (negative[:, 1] > 0)).float().mean()) < 0.3
    # N(0, 1 m) truncated to [0.45, 0.9] puts more mass in its lower half than in its upper half.
    apart = magnitude[~touching]
    assert float((apart < 0.675).float().mean()) > 0.52


def test_l1_terms_are_masked_means_summed_over_persons():
    target = real_pairs(2)
    mask = torch.zeros(2, 24, dtype=torch.bool)
    mask[0, :20], mask[1, :10] = True, True
    recon = target.clone()
    recon[:, :, 0] += 0.5
    recon[:, :, 1] -= 0.25
    garbage = recon.clone()
    garbage[~mask] = 1e6
    assert float(person_distance(recon, target, mask)) == pytest.approx(0.75, rel=1e-5)
    assert float(person_distance(garbage, target, mask)) == pytest.approx(0.75, rel=1e-5)
    # Smooth L1: half the square below 1, |e| - 1/2 above.
    assert float(person_distance(recon, target, mask, "smooth_l1")) == pytest.approx(0.125 + 0.03125, rel=1e-5)
    far = target.clone()
    far[:, :, 0] += 3.0
    assert float(person_distance(far, target, mask, "smooth_l1")) == pytest.approx(2.5, rel=1e-5)
    # berHu: |e| up to 0.2, (e^2 + 0.04) / 0.4 above (0.725 at 0.5, 0.25625 at 0.25).
    assert float(person_distance(recon, target, mask, "berhu")) == pytest.approx(0.725 + 0.25625, rel=1e-5)
    assert float(person_distance(garbage, target, mask, "berhu")) == pytest.approx(0.725 + 0.25625, rel=1e-5)
    near = target.clone()
    near[:, :, 1] += 0.1
    assert float(person_distance(near, target, mask, "berhu")) == pytest.approx(0.1, rel=1e-5)
    with pytest.raises(ValueError, match="unknown reconstruction distance 'l2'"):
        person_distance(near, target, mask, "l2")


def test_kl_is_the_mean_of_the_three_groups():
    mean = torch.zeros(2, 3, 4)
    mean[:, 2] = 2.0  # only z_g is off: its KL is 0.5 * 2^2 = 2 per element
    posterior = LatentPosterior(mean, torch.zeros(2, 3, 4), 1)
    assert float(kl_loss(posterior)) == pytest.approx(2.0 / 3.0)


def test_contact_test_sees_touching_and_separated_pairs():
    motion = real_pairs(1)
    touching = motion.clone()
    touching[:, :, 1] = motion[:, :, 0]  # B exactly where A is
    apart = motion.clone()
    apart[:, :, 1] = shift_person_b(motion[:, :, 0], torch.tensor([[5.0, 0.0]]), REPRESENTATION)
    mask = torch.ones(1, 24, dtype=torch.bool)
    contact = pairs_in_contact(torch.cat([touching, apart]), mask.repeat(2, 1), REPRESENTATION, LossConfig())
    assert contact.tolist() == [True, False]


def test_contact_test_keeps_to_the_training_threads(monkeypatch):
    threads_used = []

    def recording_test(*args, threads=None, **kwargs):
        threads_used.append(threads)
        return contact_test(*args, threads=threads, **kwargs)

    monkeypatch.setattr(training.losses, "contact_test", recording_test)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        motion = real_pairs(1)
        pairs_in_contact(motion, torch.ones(1, 24, dtype=torch.bool), REPRESENTATION, LossConfig())
    finally:
        torch.set_num_threads(previous)
    assert threads_used == [1]


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
    assert (weights.w_rec, weights.w_joint, weights.w_kl, weights.w_tri, weights.margin) == (0.5, 0.5, 1e-4, 1e-4, 3.0)
    expected = weights.w_rec * losses["recon"] + weights.w_kl * losses["kl"] + weights.w_joint * losses["joint"] \
        + weights.w_tri * losses["triplet"]
    torch.testing.assert_close(losses["loss"], expected)
    losses["triplet"].backward()
    # The triplet reaches z_g through both person encoders and the interaction head, not the decoders.
    assert float(vae.encoder_a.input.weight.grad.abs().sum()) > 0
    assert float(vae.interaction_head.weight.grad.abs().sum()) > 0
    assert vae.decoder_a.output.weight.grad is None

    interx = get_preset("tiny", "interx")
    interx_losses = vae_losses(build_vae(interx.vae), torch.randn(2, 12, 2, 336), torch.ones(2, 12, dtype=torch.bool),
                               representation_of("interx"), interx.loss)
    assert set(interx_losses) == {"recon", "kl", "loss"}


def test_distance_map_counts_the_near_joint_pairs_of_real_frames():
    # Two joints per person (features = xyz of each), identity normalization.
    two_joints = MotionRepresentation(Normalizer(np.zeros(6), np.ones(6)),
                                      to_joints=lambda features: features.reshape(*features.shape[:-1], 2, 3),
                                      positions=slice(0, 6))
    real = torch.zeros(1, 2, 2, 6)
    real[0, 0, 0] = torch.tensor([0.0, 0, 0, 0, 0, 0.5])  # A: origin, 0.5 m up z
    real[0, 0, 1] = torch.tensor([3.0, 0, 0, 0.3, 0, 0])  # B: root 3 m along x, its hand at 0.3 m
    recon = real.clone()
    recon[0, 0, 1, 3] = 0.5  # B's hand stops 0.2 m further away
    recon[0, 1] = 100.0  # a padded frame
    mask = torch.tensor([[True, False]])
    # B is placed on its real centroid, 0.1 m back along x: its hand is at 0.4 m. Near pairs
    # (< 1 m): A0-B1 0.3 -> 0.4 m and A1-B1 sqrt(0.34) -> sqrt(0.41); B's root is 3 m away.
    expected = (0.1 + (0.41 ** 0.5 - 0.34 ** 0.5)) / 2
    loss = distance_map_loss(recon.requires_grad_(), real, mask, two_joints, within=1.0)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert float(distance_map_loss(real, real, mask, two_joints, within=1.0)) == pytest.approx(0.0, abs=1e-4)
    # A whole body moved is put back on its real centroid: the path is not this term's.
    moved = recon.detach().clone()
    moved[0, 0, 1] -= torch.tensor([1.0, 0, 0.4, 1.0, 0, 0.4])
    assert distance_map_loss(moved, real, mask, two_joints, within=1.0).item() == pytest.approx(expected, abs=1e-6)
    touching = real.clone()
    touching[0, 0, 1, 3:] = 0.0  # B's hand on A's root: the gradient stays finite
    distance_map_loss(touching.requires_grad_(), real, mask, two_joints, within=5.0).backward()
    assert bool(torch.isfinite(touching.grad).all())
    # The body's joints are pulled apart or together, never the body as a whole.
    gradient = touching.grad[0, 0, 1].reshape(2, 3)
    assert gradient.any() and torch.allclose(gradient.sum(dim=0), torch.zeros(3), atol=1e-6)


def test_hand_contact_counts_only_the_near_wrist_pairs():
    # 22 joints per person (features = xyz of each), identity normalization. A's joints all sit
    # at the origin; B's stand 5 m away except its left wrist (20, 0.1 m) and its head (15).
    skeleton = MotionRepresentation(Normalizer(np.zeros(66), np.ones(66)),
                                    to_joints=lambda features: features.reshape(*features.shape[:-1], 22, 3),
                                    positions=slice(0, 66))
    real = torch.zeros(1, 3, 2, 22, 3)
    real[:, :, 1, :, 0] = 5.0
    real[:, :, 1, 20] = torch.tensor([0.1, 0.0, 0.0])
    real[:, :, 1, 15] = torch.tensor([0.05, 0.0, 0.0])
    real = real.flatten(3)
    recon = real.clone().reshape(1, 3, 2, 22, 3)
    recon[0, 0, 1, 20, 0] = 0.35  # the reach stops 0.25 m further away: 0.1 -> 0.35 m
    recon[0, :, 1, 15, 0] = 1.0  # the heads drift apart: not a hand pair
    recon[0, 2] = 50.0  # a padded frame
    recon = recon.flatten(3)
    mask = torch.tensor([[True, True, False]])
    # Near wrist pairs: A20-B20 and A21-B20 in the two real frames. B is placed on its real
    # centroid, which its wrist and head moved by (0.25 + 0.95) / 22 m along x in frame 0 and
    # its head by 0.95 / 22 m in frame 1.
    expected = ((0.25 - 1.2 / 22) + 0.95 / 22) / 2
    loss = distance_map_loss(recon, real, mask, skeleton, within=0.3, points=wrists)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert distance_map_loss(recon, real, mask, skeleton, within=0.3).item() > expected  # all joints: the heads count


def test_joint_metres_is_the_l1_of_the_joint_coordinates_in_metres_over_real_frames():
    # 22 joints per person (features = xyz of each), normalized with std 2 m: the normalized
    # error is half the metres one, and the term must report metres.
    skeleton = MotionRepresentation(Normalizer(np.zeros(66), np.full(66, 2.0)),
                                    to_joints=lambda features: features.reshape(*features.shape[:-1], 22, 3),
                                    positions=slice(0, 66))
    real = torch.zeros(1, 3, 2, 66)
    recon = real.clone().reshape(1, 3, 2, 22, 3)
    recon[0, 0, 0, 4, 2] = 0.33 / 2  # A's joint 4 is 0.33 m off along z in frame 0
    recon[0, 1, 1, :, 1] = 0.06 / 2  # every joint of B is 0.06 m too high in frame 1
    recon[0, 2] = 50.0  # a padded frame
    recon = recon.flatten(3)
    mask = torch.tensor([[True, True, False]])
    # per person: the mean over 2 real frames x 66 coordinates
    expected = 0.33 / (2 * 66) + 22 * 0.06 / (2 * 66)
    assert joint_metres_loss(recon, real, mask, skeleton).item() == pytest.approx(expected, abs=1e-7)


def test_hand_ends_count_the_gripping_hands_whose_wrists_stay_apart():
    # A's and B's right forearms point at each other along x, wrists 0.2 m apart; the hand ends,
    # 0.32 forearm lengths (0.25 m) past the wrists, are 0.04 m apart. Every other joint stands
    # 5 m away from the other person.
    skeleton = MotionRepresentation(Normalizer(np.zeros(66), np.ones(66)),
                                    to_joints=lambda features: features.reshape(*features.shape[:-1], 22, 3),
                                    positions=slice(0, 66))
    elbow, wrist = JOINT_INDEX["r_elbow"], JOINT_INDEX["r_wrist"]
    real = torch.zeros(1, 1, 2, 22, 3)
    real[0, 0, 0, :, 0], real[0, 0, 1, :, 0] = -5.0, 5.0
    real[0, 0, 0, elbow, 0], real[0, 0, 0, wrist, 0] = -0.35, -0.1
    real[0, 0, 1, elbow, 0], real[0, 0, 1, wrist, 0] = 0.35, 0.1
    ends = hand_ends(real)  # [1, 1, 2, (left, right), 3]
    torch.testing.assert_close(ends[0, 0, :, 1, 0], torch.tensor([-0.02, 0.02]))
    torch.testing.assert_close(ends[0, 0, :, 0], real[0, 0, :, JOINT_INDEX["l_wrist"]])  # a zero-length forearm
    recon = real.clone()
    recon[0, 0, 1, [elbow, wrist], 0] += 0.05  # B's forearm stops 5 cm short
    mask = torch.ones(1, 1, dtype=torch.bool)
    # B is placed on its real centroid, which the forearm moved by 0.1 / 22 m.
    assert distance_map_loss(recon.flatten(3), real.flatten(3), mask, skeleton, within=0.1,
                             points=hand_ends).item() == pytest.approx(0.05 - 0.1 / 22, abs=1e-6)
    assert distance_map_loss(recon.flatten(3), real.flatten(3), mask, skeleton, within=0.1, points=wrists).item() == 0
    assert set(HAND_POINT_MAPS) == set(HAND_CONTACT_POINTS)
    with pytest.raises(ValueError, match="hand_contact_points"):
        LossConfig(hand_contact_points="fingers")


OPTIONAL_TERMS = ("distance_map", "hand_contact", "joint_metres")


@pytest.mark.parametrize("term", OPTIONAL_TERMS)
def test_optional_terms_join_the_weighted_total(term):
    # Ranges of 10 m: the FK pairs stand apart, and the relational terms must still see them.
    config = replace(get_preset("tiny").loss, **{f"w_{term}": 2.0}, distance_map_range=10.0, hand_contact_range=10.0)
    losses = vae_losses(build_vae(get_preset("tiny").vae), real_pairs(2), torch.ones(2, 24, dtype=torch.bool),
                        REPRESENTATION, config)
    expected_total = config.w_rec * losses["recon"] + config.w_kl * losses["kl"] + config.w_joint * losses["joint"] \
        + config.w_tri * losses["triplet"] + 2.0 * losses[term]
    torch.testing.assert_close(losses["loss"], expected_total)
    assert losses[term].item() > 0 and not (set(OPTIONAL_TERMS) - {term}) & set(losses)  # the others: weight 0
    if term != "joint_metres":
        with pytest.raises(ValueError, match=f"{term}_range must be positive"):
            LossConfig(**{f"{term}_range": 0.0})
    with pytest.raises(ValueError, match=f"w_{term} must be >= 0"):
        LossConfig(**{f"w_{term}": -1.0})


def test_flat_vae_ablation_trains_on_the_same_losses():
    torch.manual_seed(0)
    config = get_preset("tiny")
    config = replace(config, vae=replace(config.vae, kind="flat"))
    losses = vae_losses(build_vae(config.vae), real_pairs(2), torch.ones(2, 24, dtype=torch.bool), REPRESENTATION,
                        config.loss)
    assert set(losses) == {"recon", "kl", "joint", "triplet", "loss"}
    assert all(bool(torch.isfinite(value)) for value in losses.values())
    losses["loss"].backward()


def limb_contrast_after_training(config, frames: int = 30, steps: int = 700) -> float:
    """Trains a new VAE of ``config`` on one clip in which person A holds six features (a wrist's
    position and an arm rotation, in normalized units) at 2 for the middle third and at 0
    otherwise; returns how much higher the reconstruction holds them in the middle third."""
    torch.manual_seed(0)
    vae = build_model(config).vae
    dim = config.feature_dim
    motion = torch.zeros(1, frames, 2, dim)
    middle, limb = slice(frames // 3, 2 * frames // 3), [30, 31, 32, 150, 151, 152]
    motion[:, middle, 0, limb] = 2.0
    mask = torch.ones(1, frames, dtype=torch.bool)
    identity = MotionRepresentation(Normalizer(np.zeros(dim), np.ones(dim)), to_joints=None, positions=POSITIONS)
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(steps):
            loss = vae_losses(vae, motion, mask, identity, config.loss)["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(previous_threads)
    with torch.no_grad():
        recon_a, _ = vae.eval().decode(vae.encode(motion[:, :, 0], motion[:, :, 1], mask).mean, mask)
    held = recon_a[0, :, limb].mean(dim=-1)
    outside = torch.cat([held[: middle.start], held[middle.stop:]])
    return float(held[middle].mean() - outside.mean())


@pytest.mark.slow
def test_the_cpu_recipe_learns_a_limb_that_moves_in_one_clip():
    # The release's L1 from a random start learned 1e-4 of the 2.0 in the same 700 steps: a
    # rest pose (tests the sinusoidal start of the position tables and the smooth L1 together).
    # The smooth L1 leaves the rest pose after a plateau whose length depends on the seed and
    # the CPU's kernels: on an AVX-512 host seed 0 held 0.26 at 250 steps and 1.98 at 500, seed
    # 3 0.0 at 400 and 1.77 at 700, seeds 1 and 2 were at 2.0 by 250 (on earlier hosts seed 0
    # passed at 250); 700 steps clear every plateau seen.
    assert get_preset("tiny").loss.recon_loss == "smooth_l1"
    assert limb_contrast_after_training(get_preset("tiny", "synthetic")) > 1.0
