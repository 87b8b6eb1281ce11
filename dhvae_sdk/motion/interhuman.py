"""InterHuman's raw per-person format and InterGen's 262-number training representation.

Raw (on disk, Z up, 30 fps): [T, 492] per person = 62 joint positions (joint-major xyz)
then 51 local 6D rotations (21 body joints, then 30 hand joints).

Features (Y up, metres), per frame t < T-1 of a person:
``[0:66]`` joint positions 22x3, ``[66:132]`` velocities p[t+1] - p[t], ``[132:258]``
local 6D rotations of joints 1..21 (copied from the raw file), ``[258:262]`` foot contacts
(l_ankle, l_foot, r_ankle, r_foot). Each person is put on the floor, at the origin and
facing +Z at its first frame; in a pair, person 2 is then moved rigidly into person 1's
frame so both share one world. These are InterGen's numbers (``process_motion_np`` and
``rigid_transform``), computed with yaw angles instead of quaternions.
"""
from __future__ import annotations

import numpy as np

from .arraylike import check_last_dim, constant_like
from .rotation import yaw_matrix
from .skeleton import FACE_JOINTS, FOOT_JOINTS, HAND_JOINTS, NUM_JOINTS

FPS = 30
RAW_DIM = 492
RAW_JOINTS = 62
RAW_ROTATIONS_COUNT = 51
RAW_POSITIONS = slice(0, NUM_JOINTS * 3)
RAW_ROTATIONS = slice(RAW_JOINTS * 3, RAW_JOINTS * 3 + (NUM_JOINTS - 1) * 6)

FEATURE_DIM = 262
POSITIONS = slice(0, 66)
VELOCITIES = slice(66, 132)
ROTATIONS = slice(132, 258)
FOOT_CONTACTS = slice(258, 262)

# (x, y, z) with Z up -> (x, z, -y) with Y up.
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

# A foot joint touches the ground when it moves less than this (squared metres per frame)...
CONTACT_SQUARED_DISPLACEMENT = 0.001
# ...and is lower than this (metres): ankles, feet.
CONTACT_HEIGHTS = (0.12, 0.05)
CONTACT_JOINTS = FOOT_JOINTS["left"] + FOOT_JOINTS["right"]

# Raw joints 22..61 are the hands: 22..36 and 52..56 left, 37..51 and 57..61 right.
_LEFT_HAND_RAW = list(range(22, 37)) + list(range(52, 57))
_RIGHT_HAND_RAW = list(range(37, 52)) + list(range(57, 62))
_IDENTITY_6D = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0])


def raw_body(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Body part of a raw [T, 492] motion: positions [T, 22, 3] (Y up) and 6D rotations [T, 21, 6]."""
    raw = np.asarray(raw, dtype=np.float64)
    if raw.ndim != 2 or raw.shape[1] != RAW_DIM:
        raise ValueError(f"a raw InterHuman motion is [T, {RAW_DIM}], got shape {raw.shape}")
    positions_z_up = raw[:, RAW_POSITIONS].reshape(-1, NUM_JOINTS, 3)
    rotations = raw[:, RAW_ROTATIONS].reshape(-1, NUM_JOINTS - 1, 6)
    return positions_z_up @ Z_UP_TO_Y_UP.T, rotations


def raw_from_body(positions: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """A raw [T, 492] motion from body positions [T, 22, 3] (Y up) and 6D rotations [T, 21, 6].

    Hand joints sit at their wrist and keep the identity rotation, so a body-only motion
    (procedural or retargeted) can be stored in InterHuman's layout.
    """
    positions, rotations = _check_body(positions, rotations)
    frames = len(positions)
    all_positions = np.empty((frames, RAW_JOINTS, 3))
    all_positions[:, :NUM_JOINTS] = positions
    all_positions[:, _LEFT_HAND_RAW] = positions[:, HAND_JOINTS[0], None]
    all_positions[:, _RIGHT_HAND_RAW] = positions[:, HAND_JOINTS[1], None]
    all_rotations = np.broadcast_to(_IDENTITY_6D, (frames, RAW_ROTATIONS_COUNT, 6)).copy()
    all_rotations[:, : NUM_JOINTS - 1] = rotations
    z_up = all_positions @ Z_UP_TO_Y_UP  # the inverse of a rotation is its transpose
    return np.concatenate([z_up.reshape(frames, -1), all_rotations.reshape(frames, -1)], axis=1)


def person_features(positions: np.ndarray, rotations: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Canonical features of one person.

    positions [T, 22, 3] (Y up, metres), rotations [T, 21, 6] (local 6D). Returns
    (features [T-1, 262], root_yaw, root_xz): the person was shifted by ``-root_xz`` on the
    ground and then turned by ``yaw_matrix(root_yaw)`` to face +Z at its first frame.
    """
    positions, rotations = _check_body(positions, rotations)
    positions = positions.copy()
    positions[..., 1] -= positions[..., 1].min()
    root_xz = positions[0, 0, [0, 2]].copy()
    positions[..., [0, 2]] -= root_xz
    across = positions[0, FACE_JOINTS["r_hip"]] - positions[0, FACE_JOINTS["l_hip"]]
    # forward = up x across = (across_z, 0, -across_x); this yaw turns it onto +Z.
    root_yaw = float(np.arctan2(-across[2], -across[0]))
    positions = positions @ yaw_matrix(root_yaw).T

    velocities = positions[1:] - positions[:-1]
    frames = len(velocities)
    feet = list(CONTACT_JOINTS)
    still = np.sum(velocities[:, feet] ** 2, axis=-1) < CONTACT_SQUARED_DISPLACEMENT
    low = positions[:-1, feet, 1] < np.tile(CONTACT_HEIGHTS, 2)
    features = np.concatenate([
        positions[:-1].reshape(frames, -1),
        velocities.reshape(frames, -1),
        rotations[:-1].reshape(frames, -1),
        (still & low).astype(np.float64),
    ], axis=1)
    return features, root_yaw, root_xz


def two_person_features(positions: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """Features [T-1, 2, 262] of a pair in person 1's canonical frame.

    positions [T, 2, 22, 3] (Y up), rotations [T, 2, 21, 6]. Person 2's positions and
    velocities are turned and its positions shifted by the relative yaw and ground offset
    of the two first root poses; its rotations are local and stay as they are.
    """
    positions = np.asarray(positions, dtype=np.float64)
    rotations = np.asarray(rotations, dtype=np.float64)
    if positions.ndim != 4 or positions.shape[1] != 2 or rotations.ndim != 4 or rotations.shape[1] != 2:
        raise ValueError(
            f"a pair needs positions [T, 2, 22, 3] and rotations [T, 2, 21, 6], "
            f"got {positions.shape} and {rotations.shape}"
        )
    features1, yaw1, xz1 = person_features(positions[:, 0], rotations[:, 0])
    features2, yaw2, xz2 = person_features(positions[:, 1], rotations[:, 1])
    offset = yaw_matrix(yaw1) @ np.array([xz2[0] - xz1[0], 0.0, xz2[1] - xz1[1]])
    features2 = translate_features(_turn_features(features2, yaw1 - yaw2), offset[[0, 2]])
    return np.stack([features1, features2], axis=1)


def interaction_features(raw1: np.ndarray, raw2: np.ndarray) -> np.ndarray:
    """Features [T-1, 2, 262] of two raw [T, 492] motions (InterHuman's files person1, person2)."""
    positions1, rotations1 = raw_body(raw1)
    positions2, rotations2 = raw_body(raw2)
    if len(positions1) != len(positions2):
        raise ValueError(f"both persons need the same frame count, got {len(positions1)} and {len(positions2)}")
    return two_person_features(np.stack([positions1, positions2], axis=1), np.stack([rotations1, rotations2], axis=1))


def features_to_joints(features):
    """Joint positions [..., 22, 3] of features [..., 262] (raw units; numpy or torch, differentiable)."""
    check_last_dim(features, FEATURE_DIM, "InterHuman features")
    return features[..., POSITIONS].reshape(*features.shape[:-1], NUM_JOINTS, 3)


_XZ_TO_POSITIONS = np.zeros((2, FEATURE_DIM))
_XZ_TO_POSITIONS[0, POSITIONS.start : POSITIONS.stop : 3] = 1.0
_XZ_TO_POSITIONS[1, POSITIONS.start + 2 : POSITIONS.stop : 3] = 1.0


def translate_features(features, offset_xz):
    """Features shifted on the ground by ``offset_xz`` [..., 2] (metres).

    Works on raw (de-normalized) features, numpy or torch (differentiable); positions move,
    velocities, rotations and contacts do not. ``offset_xz`` broadcasts against the
    leading axes, e.g. [B, 1, 2] moves every frame of each batch item.
    """
    check_last_dim(features, FEATURE_DIM, "InterHuman features")
    offset_xz = constant_like(offset_xz, features)
    check_last_dim(offset_xz, 2, "offset_xz")
    return features + offset_xz @ constant_like(_XZ_TO_POSITIONS, features)


def _turn_features(features: np.ndarray, yaw: float) -> np.ndarray:
    """Positions and velocities turned about +Y by ``yaw``; rotations and contacts kept."""
    turned = features.copy()
    rotation = yaw_matrix(yaw)
    for part in (POSITIONS, VELOCITIES):
        points = features[..., part].reshape(*features.shape[:-1], NUM_JOINTS, 3)
        turned[..., part] = (points @ rotation.T).reshape(*features.shape[:-1], -1)
    return turned


def _check_body(positions, rotations) -> tuple[np.ndarray, np.ndarray]:
    positions = np.asarray(positions, dtype=np.float64)
    rotations = np.asarray(rotations, dtype=np.float64)
    if positions.ndim != 3 or positions.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"positions must be [T, {NUM_JOINTS}, 3], got {positions.shape}")
    if rotations.shape != (len(positions), NUM_JOINTS - 1, 6):
        raise ValueError(f"rotations must be [T, {NUM_JOINTS - 1}, 6] with T = {len(positions)}, got {rotations.shape}")
    if len(positions) < 2:
        raise ValueError("a motion needs at least 2 frames (velocities use the next frame)")
    return positions, rotations
