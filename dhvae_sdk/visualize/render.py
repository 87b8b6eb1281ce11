"""Render two-person interactions to mp4, gif or png with matplotlib's Agg canvas (no screen).

Layout: one panel per clip, each with its own fixed camera and its title wrapped above it.
Panel sizes are multiples of 16 pixels (the H.264 macroblock), so ffmpeg never rescales.
"""
from __future__ import annotations

import math
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import imageio.v2 as imageio
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import is_color_like
from matplotlib.figure import Figure
from PIL import Image

from dhvae_sdk.atomic_file import atomic_output
from dhvae_sdk.motion.checks import joint_array, positive_fps
from dhvae_sdk.visualize.scene import Panel

DEFAULT_COLORS = ("#d1495b", "#2e86ab")
VIDEO_SUFFIXES = (".mp4", ".gif")
DPI = 100
TITLE_SIDE_PADDING_PX = 16
MAX_TITLE_LINES = 3
# GIF stores frame delays in hundredths of a second and players clamp delays under 20 ms.
MAX_GIF_FPS = 50.0


@dataclass(frozen=True)
class PanelLayout:
    width_px: int
    height_px: int
    title_px: float


SINGLE_LAYOUT = PanelLayout(640, 480, 15.0)
GRID_LAYOUT = PanelLayout(400, 320, 12.0)


def render_video(
    joints: np.ndarray,
    path: str | os.PathLike,
    title: str | None = None,
    fps: float = 30.0,
    colors: Sequence[str] = DEFAULT_COLORS,
) -> Path:
    """Write one interaction [T, 2, 22, 3] (Y up, metres) as .mp4 or .gif (by suffix)."""
    clip = joint_array(joints, persons=2)
    return _render_video([clip], [title], path, fps, colors, columns=1, layout=SINGLE_LAYOUT)


def render_grid(
    clips: Sequence[np.ndarray],
    path: str | os.PathLike,
    titles: Sequence[str | None] | None = None,
    columns: int | None = None,
    fps: float = 30.0,
    colors: Sequence[str] = DEFAULT_COLORS,
) -> Path:
    """Write several interactions side by side in one .mp4 or .gif; the video lasts as long as
    the longest clip and shorter clips hold their last frame."""
    if isinstance(clips, np.ndarray) or len(clips) == 0:
        raise ValueError("clips must be a non-empty list of [T, 2, 22, 3] arrays")
    arrays = [joint_array(clip, persons=2, what=f"clips[{i}]") for i, clip in enumerate(clips)]
    titles = [None] * len(arrays) if titles is None else list(titles)
    if len(titles) != len(arrays):
        raise ValueError(f"got {len(titles)} titles for {len(arrays)} clips; pass one title per clip (or None)")
    if columns is None:
        columns = math.ceil(math.sqrt(len(arrays)))
    if not isinstance(columns, int) or columns < 1:
        raise ValueError(f"columns must be a positive integer, got {columns!r}")
    return _render_video(arrays, titles, path, fps, colors, columns=min(columns, len(arrays)), layout=GRID_LAYOUT)


def render_frame(
    joints: np.ndarray,
    path: str | os.PathLike,
    frame: int = 0,
    title: str | None = None,
    colors: Sequence[str] = DEFAULT_COLORS,
) -> Path:
    """Write frame ``frame`` of an interaction [T, 2, 22, 3] as a .png picture."""
    clip = joint_array(joints, persons=2)
    path = _output_path(path, (".png",))
    if not isinstance(frame, (int, np.integer)) or not 0 <= frame < len(clip):
        raise ValueError(f"frame must be an integer in [0, {len(clip) - 1}], got {frame!r}")
    canvas = _Canvas([clip], [title], _check_colors(colors), columns=1, layout=SINGLE_LAYOUT)
    with atomic_output(path) as temp:
        Image.fromarray(canvas.image(int(frame))).save(temp)
    return path


def _render_video(clips, titles, path, fps, colors, columns, layout) -> Path:
    path = _output_path(path, VIDEO_SUFFIXES)
    fps = _check_fps(fps, path)
    canvas = _Canvas(clips, titles, _check_colors(colors), columns, layout)
    write = _write_gif if path.suffix.lower() == ".gif" else write_mp4
    with atomic_output(path) as temp:
        write(canvas.images(), temp, fps)
    return path


class _Canvas:
    """A figure holding one panel per clip; yields RGB frames by blitting the moving artists."""

    def __init__(self, clips, titles, colors, columns, layout: PanelLayout):
        rows = math.ceil(len(clips) / columns)
        width, height, title_px = layout.width_px, layout.height_px, layout.title_px
        wrapped = [_wrap_title(t, width - TITLE_SIDE_PADDING_PX, title_px) for t in titles]
        lines = max(t.count("\n") + 1 if t else 0 for t in wrapped)
        title_band = lines * title_px * 1.3 + 10.0

        self.figure = Figure(figsize=(columns * width / DPI, rows * height / DPI), dpi=DPI, facecolor="white")
        self.canvas = FigureCanvasAgg(self.figure)
        self.num_frames = max(len(c) for c in clips)
        self.panels = []
        for index, (clip, title) in enumerate(zip(clips, wrapped)):
            row, column = divmod(index, columns)
            axes = self.figure.add_axes((
                column / columns, 1.0 - (row + 1) / rows,
                1.0 / columns, (height - title_band) / (rows * height),
            ))
            self.panels.append(Panel(axes, clip, colors, title or "", title_px))
        # A running frame number: it shows where the viewer is, and it keeps consecutive
        # frames distinct, which GIF writers would otherwise merge into one.
        self.counter = self.figure.text(0.995, 0.005, "", ha="right", va="bottom", fontsize=7,
                                        color="#808080", animated=True)
        self.canvas.draw()
        self.background = self.canvas.copy_from_bbox(self.figure.bbox)

    def image(self, frame: int) -> np.ndarray:
        self.canvas.restore_region(self.background)
        for panel in self.panels:
            for artist in panel.artists_at(frame):
                panel.axes.draw_artist(artist)
        self.counter.set_text(f"{frame + 1}/{self.num_frames}")
        self.figure.draw_artist(self.counter)
        return np.asarray(self.canvas.buffer_rgba())[:, :, :3].copy()

    def images(self) -> Iterator[np.ndarray]:
        return (self.image(t) for t in range(self.num_frames))


def write_mp4(images: Iterator[np.ndarray], path: Path, fps: float) -> None:
    with imageio.get_writer(path, format="FFMPEG", mode="I", fps=fps, codec="libx264", quality=8,
                            pixelformat="yuv420p", macro_block_size=16, ffmpeg_log_level="error") as writer:
        for image in images:
            writer.append_data(image)


def _write_gif(images: Iterator[np.ndarray], path: Path, fps: float) -> None:
    # One palette for the whole clip, taken from the first frame (every frame shows the
    # same few colours), keeps colours steady and frames at one byte per pixel in memory.
    palette = None
    frames = []
    for image in images:
        picture = Image.fromarray(image)
        if palette is None:
            palette = picture.quantize(colors=255, method=Image.Quantize.MEDIANCUT)
        frames.append(picture.quantize(palette=palette, dither=Image.Dither.NONE))
    # Delays in whole centiseconds whose running sum follows the true clock.
    ticks = np.round(np.arange(len(frames) + 1) * 100.0 / fps)
    delays_ms = (np.diff(ticks) * 10).astype(int).tolist()
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:], duration=delays_ms, loop=0)


def _wrap_title(text: str | None, width_px: float, font_px: float) -> str | None:
    """Wrap to the panel width; text past MAX_TITLE_LINES lines is cut with an ellipsis."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValueError(f"a title must be a string or None, got {type(text).__name__}")
    characters = max(10, int(width_px / (0.55 * font_px)))
    lines = textwrap.wrap(" ".join(text.split()), characters)
    if len(lines) > MAX_TITLE_LINES:
        lines = lines[:MAX_TITLE_LINES]
        lines[-1] = lines[-1][: characters - 1].rstrip() + "…"
    return "\n".join(lines)


def _output_path(path: str | os.PathLike, suffixes: tuple[str, ...]) -> Path:
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise ValueError(f"cannot tell the format of {path}: its name must end in one of {', '.join(suffixes)}")
    return path


def _check_fps(fps: float, path: Path) -> float:
    fps = positive_fps(fps)
    if path.suffix.lower() == ".gif" and fps > MAX_GIF_FPS:
        raise ValueError(f"GIF players cannot show more than {MAX_GIF_FPS:g} frames/s (got fps={fps}); "
                         "write an .mp4 or subsample the motion")
    return fps


def _check_colors(colors: Sequence[str]) -> tuple[str, str]:
    colors = tuple(colors)
    if len(colors) != 2 or not all(isinstance(c, str) and is_color_like(c) for c in colors):
        raise ValueError(f"colors must be two matplotlib colour strings (person 0, person 1), got {colors!r}")
    return colors
