"""One panel of a video: floor grid, two skeletons with floor shadows, a title.

The floor grid and the title are drawn once into the cached background; the skeleton
artists are ``animated`` so each frame only moves their line data (blitting).
"""
from __future__ import annotations

import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgb
from matplotlib.lines import Line2D

from dhvae_sdk.motion.skeleton import JOINT_INDEX, KINEMATIC_CHAINS, LEFT_CHAIN
from dhvae_sdk.visualize.camera import Camera, camera_for

GRID_SPACING = 0.5  # m
GRID_COLOR = "#b9b9b9"
SHADOW_COLOR = "#d9d9d9"
BONE_WIDTH = 3.2  # points
LEFT_SIDE_WHITENING = 0.45  # left limbs are drawn in a lighter shade of the person's colour
VIEW_MARGIN = 0.08  # fraction of the projected extent added on every side
HEAD = JOINT_INDEX["head"]
PELVIS = JOINT_INDEX["pelvis"]


class Panel:
    """Draws one clip [T, 2, 22, 3] into ``axes``; frame t past the clip's end holds its last frame."""

    def __init__(self, axes: Axes, joints: np.ndarray, colors: tuple[str, str], title: str, title_px: float):
        self.axes = axes
        axes.set_title(title, fontsize=title_px * 72.0 / axes.figure.dpi, pad=4.0)
        self.num_frames = len(joints)
        camera = camera_for(joints)
        self._screen = camera.project(joints)  # [T, 2, 22, 2]
        grounded = joints.copy()
        grounded[..., 1] = camera.floor_height
        self._shadow = camera.project(grounded)
        self._pelvis_depth = camera.depth(joints[:, :, PELVIS, :])  # [T, 2]
        self._frame_view(camera)
        self._draw_floor(camera)
        self._people = [self._person_artists(color) for color in colors]

    def artists_at(self, frame: int) -> list[Artist]:
        """Artists of ``frame`` with their data updated, in drawing order (far person first)."""
        t = min(frame, self.num_frames - 1)
        shadows, bodies = [], []
        for person in np.argsort(-self._pelvis_depth[t]):
            shadow, bones, head = self._people[person]
            shadow.set_segments([self._shadow[t, person, chain] for chain in KINEMATIC_CHAINS])
            bones.set_segments([self._screen[t, person, chain] for chain in KINEMATIC_CHAINS])
            head.set_data(self._screen[t, person, [HEAD], 0], self._screen[t, person, [HEAD], 1])
            shadows.append(shadow)
            bodies.extend([bones, head])
        return shadows + bodies

    def _frame_view(self, camera: Camera) -> None:
        points = self._screen.reshape(-1, 2)
        low, high = points.min(axis=0), points.max(axis=0)
        center = (low + high) / 2.0
        half = (high - low) / 2.0 * (1.0 + 2.0 * VIEW_MARGIN) + 1e-3
        box = self.axes.get_window_extent()
        aspect = box.width / box.height
        half = np.maximum(half, [half[1] * aspect, half[0] / aspect])
        self.axes.set_xlim(center[0] - half[0], center[0] + half[0])
        self.axes.set_ylim(center[1] - half[1], center[1] + half[1])
        self.axes.set_axis_off()

    def _draw_floor(self, camera: Camera) -> None:
        reach = np.ceil((camera.radius + 1.0) / GRID_SPACING) * GRID_SPACING
        ticks = np.arange(-reach, reach + GRID_SPACING / 2, GRID_SPACING)
        ends = np.full((2 * len(ticks), 2, 3), camera.floor_height)
        ends[: len(ticks), :, 0], ends[: len(ticks), :, 2] = ticks[:, None], [-reach, reach]
        ends[len(ticks):, :, 0], ends[len(ticks):, :, 2] = [-reach, reach], ticks[:, None]
        ends[..., 0] += camera.center[0]
        ends[..., 2] += camera.center[1]
        self.axes.add_collection(LineCollection(camera.project(ends), colors=GRID_COLOR, linewidths=0.8, zorder=0))

    def _person_artists(self, color: str) -> tuple[LineCollection, LineCollection, Line2D]:
        lighter = tuple(c + (1.0 - c) * LEFT_SIDE_WHITENING for c in to_rgb(color))
        chain_colors = [lighter if chain[-1] in LEFT_CHAIN else color for chain in KINEMATIC_CHAINS]
        shadow = self._animated(LineCollection([], colors=SHADOW_COLOR, linewidths=BONE_WIDTH, capstyle="round"))
        bones = self._animated(LineCollection([], colors=chain_colors, linewidths=BONE_WIDTH, capstyle="round",
                                              joinstyle="round"))
        head = self._animated(Line2D([], [], color=color, marker="o", markersize=9, linestyle="none"))
        return shadow, bones, head

    def _animated(self, artist: Artist) -> Artist:
        artist.set_animated(True)
        self.axes.add_artist(artist)
        return artist
