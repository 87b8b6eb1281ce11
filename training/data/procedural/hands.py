"""The 40 hand joints of InterHuman's raw layout, placed on a relaxed hand at each wrist.

Raw joint order (SMPL-H): 22..36 left hand and 37..51 right hand, each index 1-3, middle
1-3, pinky 1-3, ring 1-3, thumb 1-3; then fingertips 52..56 left and 57..61 right (thumb,
index, middle, ring, pinky). Only the first 22 joints feed the training features, so the
hand is a plausible shape, not a model of a real hand.

Hand frame (left hand; the right hand is its mirror image, x negated): fingers along -Y,
thumb side +Z, palm facing -X. It is the wrist's global rotation: with the arm hanging and
the wrist rotation at identity the palm faces the thigh and the thumb points forward.
"""
from __future__ import annotations

import numpy as np

# Finger knuckle (joint 1) in the hand frame, segment lengths to joints 2, 3 and the tip (m).
_FINGERS = {
    "index": ((0.0, -0.085, 0.025), (0.040, 0.025, 0.022)),
    "middle": ((0.0, -0.088, 0.0), (0.044, 0.028, 0.024)),
    "pinky": ((0.0, -0.075, -0.034), (0.032, 0.020, 0.020)),
    "ring": ((0.0, -0.083, -0.017), (0.040, 0.027, 0.023)),
}
_THUMB_BASE = (-0.012, -0.030, 0.028)
_THUMB_DIRECTION = np.array([-0.30, -0.55, 0.78]) / np.linalg.norm([-0.30, -0.55, 0.78])
_THUMB_SEGMENTS = (0.035, 0.032, 0.027)
# A relaxed hand: each finger segment bends further toward the palm (cumulative, radians).
_CURL = (0.25, 0.55, 0.85)
_JOINT_ORDER = ("index", "middle", "pinky", "ring", "thumb")
_TIP_ORDER = ("thumb", "index", "middle", "ring", "pinky")

# The palm's contact point: the middle finger's knuckle (raw joints 25 left, 40 right), on the
# forearm's axis so that wrist roll does not move it.
PALM = np.array(_FINGERS["middle"][0])


def _finger_points(name: str) -> np.ndarray:
    """Knuckle, two finger joints and the tip of a left-hand finger: [4, 3]."""
    if name == "thumb":
        base = np.array(_THUMB_BASE)
        directions = [_THUMB_DIRECTION] * 3
        segments = _THUMB_SEGMENTS
    else:
        base = np.array(_FINGERS[name][0])
        segments = _FINGERS[name][1]
        directions = [np.array([-np.sin(c), -np.cos(c), 0.0]) for c in _CURL]
    points = [base]
    for direction, length in zip(directions, segments):
        points.append(points[-1] + length * direction)
    return np.stack(points)


def _left_hand_layout() -> np.ndarray:
    """[20, 3]: 15 finger joints in SMPL-H order, then 5 tips."""
    fingers = {name: _finger_points(name) for name in _JOINT_ORDER}
    joints = [fingers[name][:3] for name in _JOINT_ORDER]
    tips = [fingers[name][3:] for name in _TIP_ORDER]
    return np.concatenate(joints + tips)


LEFT_HAND = _left_hand_layout()
RIGHT_HAND = LEFT_HAND * np.array([-1.0, 1.0, 1.0])


def hand_points(wrists: np.ndarray, wrist_rotations: np.ndarray, scale: float) -> np.ndarray:
    """Raw joints 22..61 [T, 40, 3] from wrists [T, 2, 3] and their global rotations [T, 2, 3, 3]."""
    left = wrists[:, 0, None] + scale * np.einsum("tij,nj->tni", wrist_rotations[:, 0], LEFT_HAND)
    right = wrists[:, 1, None] + scale * np.einsum("tij,nj->tni", wrist_rotations[:, 1], RIGHT_HAND)
    return np.concatenate([left[:, :15], right[:, :15], left[:, 15:], right[:, 15:]], axis=1)
