"""PV, PFR, PDR, Contact and the triplet loss's contact test, with hand-computed values."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.voxel_reference import hug_joints
from dhvae_sdk.motion.skeleton import NUM_JOINTS, forward_kinematics
from dhvae_sdk.physics import (
    DEFAULT_RADII,
    CapsuleBody,
    PhysicsConfig,
    contact_test,
    metrics_from_counts,
    overlap_counts,
    physics_metrics,
)


def rest_joints() -> np.ndarray:
    eye = np.eye(3)
    return forward_kinematics(eye, np.broadcast_to(eye, (NUM_JOINTS - 1, 3, 3)), np.zeros(3))


def beside(joints: np.ndarray, gap: float) -> np.ndarray:
    """The rest body moved along x so that its capsules stand ``gap`` metres from the original's."""
    segments = CapsuleBody(joints[None, None]).segments()[0, 0]
    half_width = (np.abs(segments[..., 0]).max(axis=-1) + DEFAULT_RADII).max()
    return joints + [2 * half_width + gap, 0.0, 0.0]


def test_one_sequence_penetrating_in_two_of_five_frames():
    counts = np.zeros((4, 5), dtype=np.int64)
    counts[2, [1, 3]] = [3, 5]
    result = metrics_from_counts(counts)
    assert result.pfr == pytest.approx(1 / 4)
    assert result.pdr == pytest.approx((2 / 5) / 4)
    assert result.pv == pytest.approx(8 / 20)
    assert result.contact is None and result.sequences == 4 and result.frames == 20


def test_padded_frames_do_not_count():
    counts = np.array([[0, 2, 9, 9], [4, 0, 0, 0], [7, 7, 7, 7]])
    result = metrics_from_counts(counts, lengths=np.array([2, 3, 0]))
    # Real frames: [0, 2] and [4, 0, 0]; the third sequence has none and takes no part.
    assert result.sequences == 2 and result.frames == 5
    assert result.pv == pytest.approx(6 / 5)
    assert result.pfr == pytest.approx(1.0)
    assert result.pdr == pytest.approx((1 / 2 + 1 / 3) / 2)


def test_contact_needs_dilated_touch_without_severe_penetration():
    config = PhysicsConfig(severe_k=4)
    undilated = np.array([[0, 0, 0], [0, 64, 0], [0, 65, 0], [0, 0, 0], [0, 0, 0]])
    dilated = np.array([[0, 3, 0], [10, 90, 10], [10, 99, 10], [0, 0, 0], [0, 0, 5]])
    should_touch = np.array([True, True, True, True, False])
    result = metrics_from_counts(undilated, dilated, should_touch, config=config)
    # Touching: sequences 0 and 1 (64 = 4^3 is not beyond the cube); 2 penetrates severely;
    # 3 never touches; 4 touches but is not expected to.
    assert result.contact == pytest.approx(2 / 4)
    assert result.contact_sequences == 4
    assert (result.severe_k, result.contact_dilation, result.voxel, result.body_model) == (4, 1, 0.02, "capsule")


def test_contact_without_dilated_counts_is_an_error():
    with pytest.raises(ValueError, match="dilated"):
        metrics_from_counts(np.zeros((2, 3)), should_touch=[True, False])


def test_bad_lengths_and_config_are_rejected():
    with pytest.raises(ValueError, match="lengths must lie"):
        metrics_from_counts(np.zeros((2, 3)), lengths=np.array([1, 4]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        metrics_from_counts(np.zeros((2, 3)), lengths=np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="voxel"):
        PhysicsConfig(voxel=0.0)


def test_physics_metrics_on_capsule_bodies():
    """Sequence 0: B steps into A in frames 1 and 3 of 5; sequences 1 and 2 stay 1.5 m apart."""
    rest = rest_joints()
    joints_a = np.broadcast_to(rest, (3, 5, NUM_JOINTS, 3)).copy()
    joints_b = joints_a + [1.5, 0.0, 0.0]
    joints_b[0, [1, 3]] = rest + [0.1, 0.0, 0.0]
    result = physics_metrics(joints_a, joints_b, config=PhysicsConfig(voxel=0.04))
    undilated = overlap_counts(joints_a, joints_b, voxel=0.04)
    assert undilated[0, 1] > 0 and undilated[0, 3] > 0
    assert result.pfr == pytest.approx(1 / 3)
    assert result.pdr == pytest.approx((2 / 5) / 3)
    assert result.pv == pytest.approx(undilated.sum() / 15)
    assert result.body_model == "capsule" and result.voxel == 0.04 and result.contact is None


def test_physics_metrics_scores_contact_from_dilated_bodies():
    # Sequence 0: side by side 1 cm apart, so only the one-voxel dilation (2 cm per body) makes
    # them touch. Sequence 1: 20 cm into each other, a severe penetration.
    rest = rest_joints()
    joints_a = np.stack([rest[None], rest[None]])
    joints_b = np.stack([beside(rest, 0.01)[None], beside(rest, -0.2)[None]])
    undilated = overlap_counts(joints_a, joints_b)
    assert undilated[0, 0] == 0 and undilated[1, 0] > 64
    result = physics_metrics(joints_a, joints_b, should_touch=[True, True])
    assert result.contact == pytest.approx(1 / 2) and result.contact_sequences == 2
    assert result.as_dict()["severe_k"] == 4


def test_contact_test_uses_the_dilated_capsules():
    joints_a, joints_b = hug_joints(3, seed=0)
    far = joints_b + [2.0, 0.0, 0.0]
    batch_a = np.concatenate([joints_a, joints_a])
    batch_b = np.concatenate([joints_b, far])
    np.testing.assert_array_equal(contact_test(batch_a, batch_b), [True, False])
    # The overlap of the hug only exists in real frames; with length 0 there are none.
    np.testing.assert_array_equal(contact_test(batch_a, batch_b, lengths=np.array([0, 3])), [False, False])


def test_contact_test_finds_a_gap_only_dilation_closes():
    rest = rest_joints()
    joints_a = rest[None, None]
    near, apart = beside(rest, 0.01)[None, None], beside(rest, 0.05)[None, None]
    assert overlap_counts(joints_a, near)[0, 0] == 0
    np.testing.assert_array_equal(contact_test(joints_a, near), [True])
    np.testing.assert_array_equal(contact_test(joints_a, near, dilation=0), [False])
    np.testing.assert_array_equal(contact_test(joints_a, apart), [False])


def test_mesh_sequences_one_at_a_time_match_the_batch_and_report_millilitres():
    from dhvae_sdk.physics import MeshBody, mesh_sequence_metrics
    from tests.smplx_fixture import CORNERS, TETRA_FACES

    tetra = CORNERS * 10  # a 40 cm tetrahedron
    rng = np.random.default_rng(0)
    # Two sequences (3 and 2 frames) of two tetrahedra, from deep overlap to apart.
    shifts = [np.array([0.05, 0.1, 0.6]), np.array([0.0, 0.7])]
    sequences = [np.stack([np.broadcast_to(tetra, (len(s), 4, 3)), tetra + s[:, None, None] * [1, 0, 0]], axis=1)
                 + rng.normal(0, 1e-3, (len(s), 2, 4, 3)) for s in shifts]
    touch = np.array([True, False])
    result = mesh_sequence_metrics(sequences, TETRA_FACES, touch)
    padded = np.zeros((2, 3, 2, 4, 3))
    for index, vertices in enumerate(sequences):
        padded[index, :len(vertices)] = vertices
        padded[index, len(vertices):] = vertices[-1]
    batch = physics_metrics(MeshBody(padded[:, :, 0], TETRA_FACES), MeshBody(padded[:, :, 1], TETRA_FACES),
                            should_touch=touch, lengths=np.array([3, 2]))
    assert (result.pv, result.pfr, result.pdr, result.contact) == (batch.pv, batch.pfr, batch.pdr, batch.contact)
    assert result.pv > 0 and result.body_model == "smplx mesh"
    assert result.pv_ml == pytest.approx(8.0 * result.pv)  # 2 cm voxels hold 8 ml
    assert result.as_dict()["pv_ml"] == result.pv_ml
    with pytest.raises(ValueError, match=r"sequence 0: vertices must be \[T, 2, V, 3\]"):
        mesh_sequence_metrics([np.zeros((3, 4, 3))], TETRA_FACES)
