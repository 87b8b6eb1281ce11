"""Left/right mirror of features and sentences."""
import numpy as np
import pytest
import torch

from dhvae_sdk.motion.interhuman import features_to_joints, interaction_features, person_features, raw_from_body
from dhvae_sdk.motion.mirror import mirror_features, mirror_text
from dhvae_sdk.motion.rotation import matrix_to_6d
from dhvae_sdk.motion.skeleton import MIRROR_PERMUTATION, forward_kinematics
from tests.fk_motions import fk_person

REFLECT = np.diag([-1.0, 1.0, 1.0])
SLOT_PERMUTATION = [MIRROR_PERMUTATION[joint] - 1 for joint in range(1, 22)]


def mirrored_body(local, root, positions):
    """FK of the mirrored rotations: every rotation R -> S R S, left and right chains swapped."""
    mirrored_local = REFLECT @ local[:, SLOT_PERMUTATION] @ REFLECT
    mirrored_positions = forward_kinematics(REFLECT @ root @ REFLECT, mirrored_local, positions[:, 0] @ REFLECT)
    return mirrored_positions, matrix_to_6d(mirrored_local)


@pytest.fixture(scope="module")
def person():
    positions, rotations, local, root = fk_person(40, 0.9, (0.5, -1.0), seed=21)
    return positions, rotations, local, root


def test_mirrored_rotations_give_mirrored_joints(person):
    positions, _, local, root = person
    mirrored_positions, _ = mirrored_body(local, root, positions)
    np.testing.assert_allclose(mirrored_positions, positions[:, list(MIRROR_PERMUTATION)] @ REFLECT, atol=1e-12)


def test_mirror_of_features_equals_features_of_mirrored_body(person):
    positions, rotations, local, root = person
    mirrored_positions, mirrored_rotations = mirrored_body(local, root, positions)
    expected = person_features(mirrored_positions, mirrored_rotations)[0]
    np.testing.assert_allclose(mirror_features(person_features(positions, rotations)[0]), expected, atol=1e-9)


def test_mirror_commutes_with_pair_processing():
    people = [fk_person(30, yaw, start, seed) for yaw, start, seed in ((0.4, (0.0, 0.0), 1), (2.9, (1.0, 0.6), 2))]
    raws = [raw_from_body(p[0], p[1]) for p in people]
    mirrored_raws = [raw_from_body(*mirrored_body(p[2], p[3], p[0])) for p in people]
    np.testing.assert_allclose(
        interaction_features(*mirrored_raws), mirror_features(interaction_features(*raws)), atol=1e-9
    )


def test_mirror_swaps_sides(person):
    features = person_features(person[0], person[1])[0]
    joints, mirrored = features_to_joints(features), features_to_joints(mirror_features(features))
    np.testing.assert_allclose(mirrored[:, 1], joints[:, 2] * [-1, 1, 1])  # l_hip <- mirrored r_hip
    np.testing.assert_array_equal(mirror_features(features)[:, 258:], features[:, [260, 261, 258, 259]])


def test_mirroring_twice_is_identity_numpy_and_torch():
    features = np.random.default_rng(0).normal(size=(7, 2, 262))
    np.testing.assert_array_equal(mirror_features(mirror_features(features)), features)
    tensor = torch.tensor(features, dtype=torch.float32)
    assert torch.equal(mirror_features(mirror_features(tensor)), tensor)
    np.testing.assert_allclose(mirror_features(tensor).numpy(), mirror_features(features), rtol=1e-6)
    assert not np.allclose(mirror_features(features), features)
    with pytest.raises(ValueError, match="262"):
        mirror_features(np.zeros((3, 200)))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The person on the left raises his right hand.", "The person on the right raises his left hand."),
        ("Left hand first, then RIGHT.", "Right hand first, then LEFT."),
        ("They spin clockwise, then counterclockwise.", "They spin counterclockwise, then clockwise."),
        ("He turns counter-clockwise and anticlockwise.", "He turns clockwise and clockwise."),
        ("One steps leftwards to the rightmost spot.", "One steps rightwards to the leftmost spot."),
        ("A bright leftover stands upright.", "A bright leftover stands upright."),
    ],
)
def test_mirror_text(text, expected):
    assert mirror_text(text) == expected


def test_mirror_text_twice_is_identity_for_plain_words():
    text = "the left one turns clockwise while the Right one waits"
    assert mirror_text(mirror_text(text)) == text
