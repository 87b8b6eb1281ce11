"""The 22-joint body skeleton shared by InterHuman, the procedural data and the physics.

Joint order is SMPL's first 22 joints. Rest directions are InterGen's ``t2m_raw_offsets``
(Y up, +X to the body's left, +Z forward; arms hang down). Bone lengths are those of an
average adult (SMPL neutral body, rounded to the centimetre): in the rest pose the pelvis
is 0.84 m above the ankles and the neck 0.52 m above the pelvis.
"""
from __future__ import annotations

import numpy as np

NUM_JOINTS = 22

JOINT_NAMES = (
    "pelvis", "l_hip", "r_hip", "spine1", "l_knee", "r_knee", "spine2", "l_ankle",
    "r_ankle", "spine3", "l_foot", "r_foot", "neck", "l_collar", "r_collar", "head",
    "l_shoulder", "r_shoulder", "l_elbow", "r_elbow", "l_wrist", "r_wrist",
)
JOINT_INDEX = {name: i for i, name in enumerate(JOINT_NAMES)}

PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)

KINEMATIC_CHAINS = (
    (0, 2, 5, 8, 11),
    (0, 1, 4, 7, 10),
    (0, 3, 6, 9, 12, 15),
    (9, 14, 17, 19, 21),
    (9, 13, 16, 18, 20),
)

RIGHT_CHAIN = (2, 5, 8, 11, 14, 17, 19, 21)
LEFT_CHAIN = (1, 4, 7, 10, 13, 16, 18, 20)

# Joint j of a mirrored body is joint MIRROR_PERMUTATION[j] of the original.
MIRROR_PERMUTATION = tuple(
    dict(zip(RIGHT_CHAIN + LEFT_CHAIN, LEFT_CHAIN + RIGHT_CHAIN)).get(j, j) for j in range(NUM_JOINTS)
)

# Joints that define the facing direction: across = r_hip - l_hip (and shoulders).
FACE_JOINTS = {"r_hip": 2, "l_hip": 1, "r_shoulder": 17, "l_shoulder": 16}
FOOT_JOINTS = {"left": (7, 10), "right": (8, 11)}
HAND_JOINTS = (20, 21)

_X, _Y, _Z = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)
_NX, _NY = (-1.0, 0.0, 0.0), (0.0, -1.0, 0.0)

REST_DIRECTIONS = np.array(
    [(0.0, 0.0, 0.0), _X, _NX, _Y, _NY, _NY, _Y, _NY, _NY, _Y, _Z, _Z, _Y, _X, _NX, _Z,
     _NY, _NY, _NY, _NY, _NY, _NY],
    dtype=np.float64,
)

# Bone length (m) from each joint's parent to the joint; 0 for the root.
BONE_LENGTHS = np.array(
    [0.0, 0.11, 0.11, 0.11, 0.42, 0.42, 0.14, 0.42, 0.42, 0.06, 0.13, 0.13,
     0.21, 0.09, 0.09, 0.10, 0.12, 0.12, 0.26, 0.26, 0.25, 0.25],
    dtype=np.float64,
)


def rest_offsets(bone_lengths: np.ndarray | None = None) -> np.ndarray:
    """Offsets [22, 3] of each joint from its parent in the rest pose."""
    lengths = BONE_LENGTHS if bone_lengths is None else np.asarray(bone_lengths, dtype=np.float64)
    if lengths.shape != (NUM_JOINTS,):
        raise ValueError(f"bone_lengths must have shape ({NUM_JOINTS},), got {lengths.shape}")
    return REST_DIRECTIONS * lengths[:, None]


def bone_lengths_of(joints: np.ndarray) -> np.ndarray:
    """Per-bone lengths [22] of a posed skeleton [..., 22, 3] (median over leading axes)."""
    joints = np.asarray(joints, dtype=np.float64)
    vectors = joints[..., 1:, :] - joints[..., list(PARENTS[1:]), :]
    lengths = np.linalg.norm(vectors, axis=-1).reshape(-1, NUM_JOINTS - 1)
    return np.concatenate([[0.0], np.median(lengths, axis=0)])


def forward_kinematics(
    root_rotation: np.ndarray,
    local_rotations: np.ndarray,
    root_position: np.ndarray,
    offsets: np.ndarray | None = None,
) -> np.ndarray:
    """Joint positions [..., 22, 3] from rotation matrices.

    root_rotation [..., 3, 3] is the pelvis orientation in the world; local_rotations
    [..., 21, 3, 3] are the rotations of joints 1..21 relative to their parents (SMPL
    convention: the rotation of joint j turns the bones to j's children);
    root_position [..., 3]; offsets [22, 3] default to ``rest_offsets()``.
    """
    offsets = rest_offsets() if offsets is None else np.asarray(offsets, dtype=np.float64)
    root_rotation = np.asarray(root_rotation, dtype=np.float64)
    local_rotations = np.asarray(local_rotations, dtype=np.float64)
    if local_rotations.shape[-3:] != (NUM_JOINTS - 1, 3, 3):
        raise ValueError(f"local_rotations must end in ({NUM_JOINTS - 1}, 3, 3), got {local_rotations.shape}")
    batch = local_rotations.shape[:-3]
    global_rot = np.empty(batch + (NUM_JOINTS, 3, 3))
    positions = np.empty(batch + (NUM_JOINTS, 3))
    global_rot[..., 0, :, :] = root_rotation
    positions[..., 0, :] = root_position
    for j in range(1, NUM_JOINTS):
        p = PARENTS[j]
        positions[..., j, :] = positions[..., p, :] + np.einsum("...ij,j->...i", global_rot[..., p, :, :], offsets[j])
        global_rot[..., j, :, :] = global_rot[..., p, :, :] @ local_rotations[..., j - 1, :, :]
    return positions
