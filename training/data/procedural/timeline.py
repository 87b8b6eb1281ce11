"""Per-frame curves for scene scripts: tracks that hold a value between eased moves."""
from __future__ import annotations

import numpy as np

FPS = 30
MIN_FRAMES = 60  # every scene lasts 2..10 s
MAX_FRAMES = 300


def smoothstep(u):
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def eased_progress(frames: int, ramp: int | None = None) -> np.ndarray:
    """Progress 0 -> 1 over ``frames + 1`` samples: speed rises over ``ramp`` frames, cruises, falls.

    ``ramp=None`` accelerates for half the time and decelerates for the other half.
    """
    if frames <= 0:
        return np.ones(1)
    ramp = frames / 2.0 if ramp is None else min(max(float(ramp), 0.5), frames / 2.0)
    middle = np.arange(frames, dtype=np.float64) + 0.5
    speed = np.minimum(smoothstep(middle / ramp), smoothstep((frames - middle) / ramp))
    distance = np.concatenate([[0.0], np.cumsum(speed)])
    return distance / distance[-1]


class Track:
    """Values [MAX_FRAMES, width] for one quantity; a move changes it from then on."""

    def __init__(self, value):
        value = np.atleast_1d(np.asarray(value, dtype=np.float64))
        self.values = np.tile(value, (MAX_FRAMES, 1))

    def at(self, frame: int) -> np.ndarray:
        return self.values[min(int(frame), MAX_FRAMES - 1)].copy()

    def move(self, start: int, end: int, value, ramp: int | None = None) -> "Track":
        """Ease from the value at ``start`` to ``value`` at ``end``, and hold it afterwards."""
        start, end = int(start), int(max(end, start))
        value = np.atleast_1d(np.asarray(value, dtype=np.float64))
        begin = self.at(start)
        progress = eased_progress(end - start, ramp)[:, None]
        stop = min(end + 1, MAX_FRAMES)
        self.values[start:stop] = (begin + (value - begin) * progress)[: stop - start]
        self.values[stop:] = value
        return self

    def add(self, start: int, offsets: np.ndarray) -> "Track":
        """Add per-frame ``offsets`` [n, width] from ``start`` on (oscillations on top of moves)."""
        offsets = np.asarray(offsets, dtype=np.float64).reshape(len(offsets), -1)
        stop = min(int(start) + len(offsets), MAX_FRAMES)
        self.values[int(start):stop] += offsets[: stop - int(start)]
        return self


def box_blur(values: np.ndarray, radius: int) -> np.ndarray:
    """Moving average over ``2 * radius + 1`` frames; the ends repeat the edge values."""
    padded = np.pad(values, radius, mode="edge")
    return np.convolve(padded, np.ones(2 * radius + 1) / (2 * radius + 1), mode="valid")


def window(rise: int, full: int, fade: int, gone: int) -> np.ndarray:
    """Weight [MAX_FRAMES]: 0 until ``rise``, eased to 1 at ``full``, 1 until ``fade``, 0 from ``gone``."""
    t = np.arange(MAX_FRAMES, dtype=np.float64)
    up = smoothstep((t - rise) / max(full - rise, 1)) if full > rise else (t >= rise).astype(float)
    down = 1.0 - smoothstep((t - fade) / max(gone - fade, 1)) if gone > fade else (t < fade).astype(float)
    return np.minimum(up, down)


def heading(from_xz, to_xz) -> float:
    """Yaw (about +Y) that turns a body facing +Z toward ``to_xz``."""
    delta = np.asarray(to_xz, dtype=np.float64) - np.asarray(from_xz, dtype=np.float64)
    return float(np.arctan2(delta[0], delta[1]))


def nearest_angle(angle: float, reference: float) -> float:
    """``angle`` plus whole turns, as close as possible to ``reference`` (turn the short way)."""
    return reference + (angle - reference + np.pi) % (2.0 * np.pi) - np.pi


def direction(yaw) -> np.ndarray:
    """Unit ground vectors [..., 2] (x, z) of a body facing ``yaw`` [...]."""
    return np.stack([np.sin(yaw), np.cos(yaw)], axis=-1)


def left_of(yaw) -> np.ndarray:
    """Unit ground vectors [..., 2] (x, z) to the left of a body facing ``yaw`` (its +X axis)."""
    return np.stack([np.cos(yaw), -np.sin(yaw)], axis=-1)


def lifted(ground, height=0.0) -> np.ndarray:
    """Ground vectors [..., 2] (x, z) as 3D points [..., 3] at ``height``."""
    ground = np.asarray(ground, dtype=np.float64)
    return np.stack([ground[..., 0], np.broadcast_to(height, ground.shape[:-1]), ground[..., 1]], axis=-1)


def seconds(t: float, tempo: float = 1.0) -> int:
    """Frames in ``t`` seconds of a scene played at ``tempo``."""
    return int(round(t * FPS / tempo))
