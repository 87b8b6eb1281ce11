"""InterHuman features: canonical frame, shared world of the pair, contacts, joints and stats."""
import numpy as np
import pytest
import torch

from dhvae_sdk.motion import interhuman
from dhvae_sdk.motion.interhuman import (
    FEATURE_DIM,
    features_to_joints,
    interaction_features,
    person_features,
    raw_body,
    raw_from_body,
    translate_features,
)
from dhvae_sdk.motion.normalization import Normalizer, interhuman_normalizer
from dhvae_sdk.motion.rotation import axis_angle_to_matrix, matrix_to_6d, yaw_matrix
from dhvae_sdk.motion.skeleton import forward_kinematics
from tests.fk_motions import fk_pair_raw, fk_person

FIRST_YAW = (0.7, -2.3)
START_XZ = ((1.2, -0.4), (-0.8, 1.5))


def canonical(positions, first_yaw, origin_xz):
    """Positions seen from a frame at ``origin_xz`` turned by ``first_yaw`` (floor already at 0)."""
    shifted = positions - np.array([origin_xz[0], 0.0, origin_xz[1]])
    return shifted @ yaw_matrix(-first_yaw).T


@pytest.fixture(scope="module")
def pair():
    people = [fk_person(80, FIRST_YAW[i], START_XZ[i], seed=10 + i) for i in range(2)]
    lift = np.array([0.0, 0.37, 0.0])  # both stand on a floor 0.37 m up: canonicalization removes it
    raws = [raw_from_body(person[0] + lift, person[1]) for person in people]
    return people, raws, interaction_features(*raws)


def test_raw_layout_round_trip():
    positions, rotations, _, _ = fk_person(12, 0.3, (0.0, 0.0), seed=1)
    raw = raw_from_body(positions, rotations)
    assert raw.shape == (12, interhuman.RAW_DIM)
    # Z up on disk: the height (Y) is stored in the third column of each joint.
    np.testing.assert_allclose(raw[:, 2:66:3], positions[..., 1])
    back_positions, back_rotations = raw_body(raw)
    np.testing.assert_allclose(back_positions, positions, atol=1e-12)
    np.testing.assert_array_equal(back_rotations, rotations)


def test_joints_of_features_are_the_canonicalized_fk_joints(pair):
    people, _, features = pair
    assert features.shape == (79, 2, FEATURE_DIM)
    origin = people[0][0][0, 0, [0, 2]]
    for person in range(2):
        expected = canonical(people[person][0], FIRST_YAW[0], origin)[:-1]
        np.testing.assert_allclose(features_to_joints(features[:, person]), expected, atol=1e-6)


def test_first_frame_of_person1_is_at_origin_facing_plus_z(pair):
    joints = features_to_joints(pair[2][:, 0])
    np.testing.assert_allclose(joints[0, 0, [0, 2]], 0.0, atol=1e-12)
    across = joints[0, 2] - joints[0, 1]  # r_hip - l_hip points to -X when facing +Z
    assert across[0] < 0 and abs(across[2]) < 1e-9
    assert joints[..., 1].min() == pytest.approx(0.0, abs=1e-12)


def test_pelvis_distance_between_people_is_kept(pair):
    people, _, features = pair
    before = np.linalg.norm(people[0][0][:-1, 0] - people[1][0][:-1, 0], axis=-1)
    joints = features_to_joints(features)
    after = np.linalg.norm(joints[:, 0, 0] - joints[:, 1, 0], axis=-1)
    np.testing.assert_allclose(after, before, atol=1e-9)
    assert before.min() > 0.5  # the people are really apart, so the check is not trivial


def test_velocities_and_rotations(pair):
    people, _, features = pair
    for person in range(2):
        joints = features_to_joints(features[:, person])
        velocities = features[:, person, interhuman.VELOCITIES].reshape(-1, 22, 3)
        np.testing.assert_allclose(velocities[:-1], joints[1:] - joints[:-1], atol=1e-12)
        np.testing.assert_array_equal(
            features[:, person, interhuman.ROTATIONS], people[person][1][:-1].reshape(79, -1)
        )


def test_canonical_frame_numbers():
    positions, rotations, _, _ = fk_person(20, -1.1, (3.0, 2.0), seed=4)
    _, root_yaw, root_xz = person_features(positions + np.array([0.0, 0.2, 0.0]), rotations)
    assert root_yaw == pytest.approx(1.1)
    np.testing.assert_allclose(root_xz, positions[0, 0, [0, 2]])


def standing(frames, root_x_per_frame=0.0, left_hip_pitch=0.0):
    local = np.broadcast_to(np.eye(3), (frames, 21, 3, 3)).copy()
    local[:, 0] = axis_angle_to_matrix(np.array([left_hip_pitch, 0.0, 0.0]))
    root_position = np.stack([root_x_per_frame * np.arange(frames), np.ones(frames), np.zeros(frames)], axis=1)
    positions = forward_kinematics(np.broadcast_to(np.eye(3), (frames, 3, 3)), local, root_position)
    return positions, matrix_to_6d(local)


def contacts_of(positions, rotations):
    return person_features(positions, rotations)[0][:, interhuman.FOOT_CONTACTS]


def test_foot_contacts_standing_sliding_and_lifted():
    np.testing.assert_array_equal(contacts_of(*standing(6)), 1.0)
    # 0.03 m per frame: squared 0.0009 < 0.001 -> still a contact; 0.035 m -> 0.0012, none.
    np.testing.assert_array_equal(contacts_of(*standing(6, root_x_per_frame=0.03)), 1.0)
    np.testing.assert_array_equal(contacts_of(*standing(6, root_x_per_frame=0.035)), 0.0)
    # Left leg raised forward: the left ankle and foot are high, the right ones on the floor.
    lifted = contacts_of(*standing(6, left_hip_pitch=-1.2))
    np.testing.assert_array_equal(lifted, np.tile([0.0, 0.0, 1.0, 1.0], (5, 1)))


def test_features_to_joints_numpy_and_torch_agree_and_differentiate(pair):
    features = pair[2]
    tensor = torch.tensor(features, requires_grad=True)
    joints = features_to_joints(tensor)
    assert joints.shape == (79, 2, 22, 3)
    np.testing.assert_array_equal(joints.detach().numpy(), features_to_joints(features))
    joints[..., 1].sum().backward()
    assert tensor.grad[..., 1:66:3].eq(1).all() and tensor.grad[..., 66:].eq(0).all()


def test_translate_features_moves_positions_only(pair):
    features = torch.tensor(pair[2], requires_grad=True)
    offset = torch.tensor([[[0.5, -0.25]], [[0.0, 0.0]]]).permute(1, 0, 2)  # [1, 2, 2]: person 1 moves
    moved = translate_features(features, offset)
    delta = (features_to_joints(moved) - features_to_joints(features)).detach().numpy()
    np.testing.assert_allclose(delta[:, 0], np.broadcast_to([0.5, 0.0, -0.25], (79, 22, 3)), atol=1e-12)
    np.testing.assert_array_equal(delta[:, 1], 0.0)
    np.testing.assert_array_equal(moved[..., 66:].detach().numpy(), pair[2][..., 66:])
    moved.sum().backward()
    assert torch.all(features.grad == 1)
    np.testing.assert_allclose(translate_features(pair[2], np.array([1.0, 2.0]))[..., 0:66:3], pair[2][..., 0:66:3] + 1)


def test_bad_shapes_are_refused():
    raw1, raw2, _ = fk_pair_raw(10, seed=3)
    with pytest.raises(ValueError, match="same frame count"):
        interaction_features(raw1, raw2[:-1])
    with pytest.raises(ValueError, match="492"):
        interaction_features(raw1[:, :300], raw2[:, :300])
    with pytest.raises(ValueError, match="at least 2 frames"):
        interaction_features(raw1[:1], raw2[:1])
    with pytest.raises(ValueError, match="262"):
        features_to_joints(np.zeros((4, 261)))
    with pytest.raises(ValueError, match="offset_xz"):
        translate_features(np.zeros((4, 262)), np.zeros(3))


def test_real_statistics_fit_the_layout():
    normalizer = interhuman_normalizer()
    assert normalizer.dim == FEATURE_DIM
    assert normalizer.mean[1] == pytest.approx(0.88, abs=0.01)  # pelvis height
    # A person standing in the rest pose sits inside the data's distribution. Rotations in
    # the row 6D layout instead would be 40 standard deviations off.
    positions, rotations = standing(5)
    z = normalizer.normalize(person_features(positions, rotations)[0])
    assert np.abs(z[:, interhuman.POSITIONS]).max() < 3.0
    assert np.abs(z[:, interhuman.ROTATIONS]).max() < 2.5


def test_normalizer_round_trip_and_validation():
    normalizer = Normalizer(np.array([1.0, -2.0]), np.array([0.5, 4.0]))
    values = np.array([[2.0, 2.0]], dtype=np.float32)
    np.testing.assert_allclose(normalizer.normalize(values), [[2.0, 1.0]])
    assert normalizer.normalize(values).dtype == np.float32
    tensor = torch.tensor(values, dtype=torch.float64)
    assert torch.allclose(normalizer.denormalize(normalizer.normalize(tensor)), tensor)
    with pytest.raises(ValueError, match="> 0"):
        Normalizer(np.zeros(2), np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="> 0"):
        Normalizer(np.zeros(2), np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="NaN"):
        Normalizer(np.array([np.nan, 0.0]), np.ones(2))
    with pytest.raises(ValueError, match="one length"):
        Normalizer(np.zeros(2), np.ones(3))
    with pytest.raises(ValueError, match="end in a dimension of 2"):
        normalizer.normalize(np.zeros((3, 5)))
