"""An mp4 of the two fitted SMPL-X meshes: flat-shaded triangles drawn far to near (painter's
order) through the same fixed camera as the skeleton videos."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from dhvae_sdk.atomic_file import atomic_output
from dhvae_sdk.visualize.camera import camera_for
from dhvae_sdk.visualize.render import DEFAULT_COLORS, write_mp4

from .export import InteractionFit
from .meshes import fitted_joints, mesh_vertices

SIZE_PX = 512
DPI = 100
LIGHT = np.array([0.3, 0.8, -0.5]) / np.linalg.norm([0.3, 0.8, -0.5])


def render_mesh_mp4(fit: InteractionFit, path: str | os.PathLike, title: str | None = None) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".mp4":
        raise ValueError(f"{path}: the mesh render is an .mp4 file")
    vertices = mesh_vertices(fit)
    faces = fit.model.faces
    camera = camera_for(fitted_joints(fit))
    figure = Figure(figsize=(SIZE_PX / DPI, SIZE_PX / DPI), dpi=DPI, facecolor="white")
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_axis_off()
    corners = camera.project(vertices.reshape(-1, 3))
    axes.set_xlim(corners[:, 0].min() - 0.05, corners[:, 0].max() + 0.05)
    axes.set_ylim(corners[:, 1].min() - 0.05, corners[:, 1].max() + 0.05)
    axes.set_aspect("equal")
    if title:
        axes.set_title(title, fontsize=9)
    base_colors = np.array([to_rgb(color) for color in DEFAULT_COLORS])

    def images():
        collection = None
        for frame in range(len(vertices)):
            triangles = vertices[frame][:, faces]  # [2, F, 3, 3]
            normals = np.cross(triangles[..., 1, :] - triangles[..., 0, :], triangles[..., 2, :] - triangles[..., 0, :])
            normals /= np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)
            shade = 0.35 + 0.65 * np.abs(normals @ LIGHT)  # both sides lit: face winding is not trusted
            colors = (shade[..., None] * base_colors[:, None, :]).reshape(-1, 3)
            flat = triangles.reshape(-1, 3, 3)
            order = np.argsort(-camera.depth(flat.mean(axis=1)))
            if collection is not None:
                collection.remove()
            collection = PolyCollection(camera.project(flat[order]), facecolors=colors[order], edgecolors="none")
            axes.add_collection(collection)
            canvas.draw()
            yield np.asarray(canvas.buffer_rgba())[:, :, :3].copy()

    with atomic_output(path) as temp:
        write_mp4(images(), temp, fit.fps)
    return path
