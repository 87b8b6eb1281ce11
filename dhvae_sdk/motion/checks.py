"""Validation of joint-position arrays handed in by users."""
from __future__ import annotations

import numpy as np

from dhvae_sdk.motion.skeleton import NUM_JOINTS


def joint_array(joints, *, persons: int | None, what: str = "joints") -> np.ndarray:
    """``joints`` as float64 [T, 22, 3] (persons=None) or [T, persons, 22, 3], finite, T >= 1."""
    tail = (NUM_JOINTS, 3) if persons is None else (persons, NUM_JOINTS, 3)
    expected = "[T, " + ", ".join(str(n) for n in tail) + "]"
    try:
        array = np.asarray(joints, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what} must be a numeric array of shape {expected}: {error}") from None
    if array.ndim != len(tail) + 1 or array.shape[1:] != tail:
        raise ValueError(f"{what} must have shape {expected} (frames first, metres, Y up), got {array.shape}")
    if array.shape[0] == 0:
        raise ValueError(f"{what} has no frames; pass at least one frame")
    bad = ~np.isfinite(array)
    if bad.any():
        frame = int(np.argwhere(bad)[0][0])
        raise ValueError(f"{what} contains NaN or infinite values (first at frame {frame}); clean the motion first")
    return array


def positive_fps(fps) -> float:
    """``fps`` as a float after checking it is a finite positive number."""
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.number)) or not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number of frames per second, got {fps!r}")
    return float(fps)
