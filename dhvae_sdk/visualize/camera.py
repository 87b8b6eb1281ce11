"""A fixed perspective camera that keeps both people of a clip in view."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ELEVATION_DEG = 18.0
# Turning the view this far off the pure side-on line shows depth (arms reaching towards
# the other person) while the two people still stand side by side in the picture.
AZIMUTH_OFFSET_DEG = 30.0
# Camera distance = BASE_DISTANCE + DISTANCE_PER_RADIUS * (horizontal radius of the motion):
# far enough for a mild perspective and for the whole floor grid to lie in front of the lens.
BASE_DISTANCE = 3.0
DISTANCE_PER_RADIUS = 2.0


@dataclass(frozen=True)
class Camera:
    position: np.ndarray
    right: np.ndarray
    up: np.ndarray
    forward: np.ndarray
    floor_height: float
    center: np.ndarray  # horizontal centre of the motion, (x, z)
    radius: float  # horizontal radius of the motion around ``center``

    def project(self, points: np.ndarray) -> np.ndarray:
        """World points [..., 3] -> image-plane points [..., 2] (x right, y up)."""
        relative = np.asarray(points, dtype=np.float64) - self.position
        depth = relative @ self.forward
        return np.stack([relative @ self.right, relative @ self.up], axis=-1) / depth[..., None]

    def depth(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points, dtype=np.float64) - self.position) @ self.forward


def camera_for(joints: np.ndarray) -> Camera:
    """Camera for a clip [T, 2, 22, 3] (Y up): looks across the line along which the two
    people spread, so they appear side by side, with person 0 on the left."""
    horizontal = joints[..., [0, 2]].reshape(-1, 2)
    low, high = horizontal.min(axis=0), horizontal.max(axis=0)
    center = (low + high) / 2.0
    radius = float(np.linalg.norm(horizontal - center, axis=1).max())
    floor = float(joints[..., 1].min())
    height = float(joints[..., 1].max()) - floor
    target = np.array([center[0], floor + 0.45 * height, center[1]])

    view = _view_direction(joints[:, :, 0, :][..., [0, 2]])
    distance = BASE_DISTANCE + DISTANCE_PER_RADIUS * radius
    camera = _look_at(target, view, distance, floor, center, radius)
    pelvis_screen_x = camera.project(joints[:, :, 0, :])[..., 0].mean(axis=0)
    if pelvis_screen_x[0] > pelvis_screen_x[1]:
        camera = _look_at(target, -view, distance, floor, center, radius)
    return camera


def _look_at(target, view, distance, floor, center, radius) -> Camera:
    """Camera ``distance`` from ``target``, looking along horizontal ``view`` (x, z), tilted down."""
    elevation = np.radians(ELEVATION_DEG)
    forward = np.array([view[0] * np.cos(elevation), -np.sin(elevation), view[1] * np.cos(elevation)])
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return Camera(target - forward * distance, right, up, forward, floor, center, radius)


def _view_direction(pelvis_xz: np.ndarray) -> np.ndarray:
    """Unit horizontal (x, z) viewing direction: AZIMUTH_OFFSET_DEG off the perpendicular to
    the main axis of the pelvis positions of both people over the clip (-Z when they barely
    spread)."""
    points = pelvis_xz.reshape(-1, 2)
    spread = points - points.mean(axis=0)
    eigenvalues, eigenvectors = np.linalg.eigh(spread.T @ spread / len(points))
    # eigh sorts ascending: the first eigenvector is the axis of least spread.
    across = np.array([0.0, -1.0]) if eigenvalues[-1] < 1e-4 else eigenvectors[:, 0]
    turn = np.radians(AZIMUTH_OFFSET_DEG)
    return np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]]) @ across
