"""Rotation frames and two-bone IK for the procedural body (numpy, batched over frames)."""
from __future__ import annotations

import numpy as np

from dhvae_sdk.motion.rotation import axis_angle_to_matrix


def rotation_about(axis: int, angle) -> np.ndarray:
    """Rotations [..., 3, 3] by ``angle`` [...] radians about the coordinate axis 0, 1 or 2."""
    angle = np.asarray(angle, dtype=np.float64)
    vector = np.zeros(angle.shape + (3,))
    vector[..., axis] = angle
    return axis_angle_to_matrix(vector)


def normalized(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def bone_frame(bone_direction: np.ndarray, x_axis: np.ndarray) -> np.ndarray:
    """Global rotation whose -Y axis (the rest direction of limb bones) is ``bone_direction``.

    ``x_axis`` must be perpendicular to the bone; it becomes the frame's X axis.
    """
    y_axis = -normalized(bone_direction)
    z_axis = np.cross(x_axis, y_axis)
    return np.stack([x_axis, y_axis, z_axis], axis=-1)


def two_bone_ik(root, target, upper: float, lower: float, pole):
    """Place a two-bone limb (shoulder-elbow-wrist, hip-knee-ankle) so its end reaches ``target``.

    root, target, pole [..., 3]: the middle joint bends toward ``pole`` (a direction). Targets
    out of reach are pulled onto the reachable shell. Returns (middle [..., 3], end [..., 3],
    hinge [..., 3]): ``hinge`` is the unit normal of the bending plane, the same for both
    bones, so the middle joint turns about it alone.
    """
    reach = np.asarray(target, dtype=np.float64) - root
    distance = np.linalg.norm(reach, axis=-1, keepdims=True)
    direction = reach / np.maximum(distance, 1e-9)
    distance = np.clip(distance, abs(upper - lower) + 1e-4, (upper + lower) * (1.0 - 1e-6))
    side = pole - np.sum(pole * direction, axis=-1, keepdims=True) * direction
    side = normalized(side)
    cos_root = (upper**2 + distance**2 - lower**2) / (2.0 * upper * distance)
    sin_root = np.sqrt(np.clip(1.0 - cos_root**2, 0.0, 1.0))
    middle = root + upper * (cos_root * direction + sin_root * side)
    end = root + distance * direction
    return middle, end, np.cross(direction, side)
