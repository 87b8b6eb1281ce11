"""Rotation conversions (numpy, float64 in, same dtype family out).

6D layout: the first two columns of the matrix, flattened row by row,
``[m00, m01, m10, m11, m20, m21]``. This is the layout for which InterGen's mirror rule
(negate components 1, 2 and 4) is exactly ``diag(-1, 1, 1) @ R @ diag(-1, 1, 1)``.
"""
from __future__ import annotations

import numpy as np


def matrix_to_6d(matrix: np.ndarray) -> np.ndarray:
    """[..., 3, 3] -> [..., 6]."""
    matrix = np.asarray(matrix)
    return matrix[..., :, :2].reshape(matrix.shape[:-2] + (6,))


def sixd_to_matrix(sixd: np.ndarray) -> np.ndarray:
    """[..., 6] -> [..., 3, 3] by Gram-Schmidt on the two stored columns."""
    sixd = np.asarray(sixd, dtype=np.float64)
    pair = sixd.reshape(sixd.shape[:-1] + (3, 2))
    first = pair[..., 0] / np.linalg.norm(pair[..., 0], axis=-1, keepdims=True)
    second = pair[..., 1] - np.sum(first * pair[..., 1], axis=-1, keepdims=True) * first
    second = second / np.linalg.norm(second, axis=-1, keepdims=True)
    third = np.cross(first, second)
    return np.stack([first, second, third], axis=-1)


def axis_angle_to_matrix(axis_angle: np.ndarray) -> np.ndarray:
    """Rodrigues: [..., 3] rotation vectors -> [..., 3, 3]."""
    axis_angle = np.asarray(axis_angle, dtype=np.float64)
    angle = np.linalg.norm(axis_angle, axis=-1, keepdims=True)
    axis = axis_angle / np.where(angle > 1e-12, angle, 1.0)
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    skew = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(axis.shape[:-1] + (3, 3))
    sin = np.sin(angle)[..., None]
    cos = np.cos(angle)[..., None]
    eye = np.broadcast_to(np.eye(3), skew.shape)
    return eye + sin * skew + (1.0 - cos) * (skew @ skew)


def matrix_to_axis_angle(matrix: np.ndarray) -> np.ndarray:
    """[..., 3, 3] -> [..., 3] rotation vectors (angle in [0, pi])."""
    matrix = np.asarray(matrix, dtype=np.float64)
    cos = np.clip((np.trace(matrix, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
    angle = np.arccos(cos)
    vee = np.stack([matrix[..., 2, 1] - matrix[..., 1, 2],
                    matrix[..., 0, 2] - matrix[..., 2, 0],
                    matrix[..., 1, 0] - matrix[..., 0, 1]], axis=-1)
    sin = np.sin(angle)
    small = sin < 1e-6
    axis = vee / np.where(small, 1.0, 2.0 * sin)[..., None]
    # Near pi the antisymmetric part vanishes: take the axis from the symmetric part.
    near_pi = small & (cos < 0)
    if np.any(near_pi):
        sym = (matrix[near_pi] + np.eye(3)) / 2.0
        diag = np.sqrt(np.clip(np.diagonal(sym, axis1=-2, axis2=-1), 0.0, None))
        col = np.argmax(diag, axis=-1)
        best = np.take_along_axis(sym, col[:, None, None].repeat(3, axis=1), axis=2)[..., 0]
        best = best / np.linalg.norm(best, axis=-1, keepdims=True)
        axis[near_pi] = best
    axis = np.where((small & ~near_pi)[..., None], vee / 2.0, axis)
    return np.where((small & ~near_pi)[..., None], axis, axis * angle[..., None])


def yaw_matrix(angle: np.ndarray) -> np.ndarray:
    """Rotation about +Y (up) by ``angle`` radians: [...] -> [..., 3, 3]."""
    angle = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(angle), np.sin(angle)
    one, zero = np.ones_like(c), np.zeros_like(c)
    return np.stack([c, zero, s, zero, one, zero, -s, zero, c], axis=-1).reshape(angle.shape + (3, 3))
