"""One interaction in a single .npz file: joints, optional features, text and frame rate.

Keys: ``joints`` float32 [T, 2, 22, 3] (Y up, metres), ``features`` float32 [T, 2, D]
(absent when not saved), ``text`` a 0-d numpy unicode array, ``fps`` a 0-d float64 array.
Only plain arrays are stored, so the file loads with ``allow_pickle=False``.
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dhvae_sdk.atomic_file import atomic_output
from dhvae_sdk.motion.checks import joint_array, positive_fps

REQUIRED_KEYS = ("joints", "text", "fps")


@dataclass(frozen=True)
class InteractionRecord:
    joints: np.ndarray  # [T, 2, 22, 3]
    features: np.ndarray | None  # [T, 2, D]
    text: str
    fps: float


def save_interaction_npz(
    path: str | os.PathLike,
    joints: np.ndarray,
    features: np.ndarray | None,
    text: str,
    fps: float,
) -> Path:
    """Write an interaction to ``path`` (written exactly there; '.npz' is not appended)."""
    joints = joint_array(joints, persons=2).astype(np.float32)
    arrays = {"joints": joints, "text": np.array(_check_text(text)), "fps": np.array(positive_fps(fps))}
    if features is not None:
        arrays["features"] = _check_features(np.asarray(features), len(joints), "features")
    path = Path(path)
    with atomic_output(path) as temp, open(temp, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    return path


def load_interaction_npz(path: str | os.PathLike) -> InteractionRecord:
    """Read a file written by :func:`save_interaction_npz`; a wrong file names what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"interaction file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path} is not a readable .npz of plain arrays ({error})") from None
    missing = [key for key in REQUIRED_KEYS if key not in arrays]
    if missing:
        raise ValueError(f"{path} lacks the keys {missing}; it was not written by save_interaction_npz")
    joints = joint_array(arrays["joints"], persons=2, what=f"'joints' in {path}")
    features = arrays.get("features")
    if features is not None:
        features = _check_features(features, len(joints), f"'features' in {path}")
    text, fps = arrays["text"], arrays["fps"]
    if text.shape != () or text.dtype.kind != "U":
        raise ValueError(f"'text' in {path} must be a single unicode string, got dtype {text.dtype} shape {text.shape}")
    if fps.shape != () or fps.dtype.kind not in "fiu" or not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"'fps' in {path} must be a single positive number, got {fps!r}")
    return InteractionRecord(joints.astype(np.float32), features, str(text), float(fps))


def _check_features(features: np.ndarray, frames: int, what: str) -> np.ndarray:
    """``features`` as float32 [frames, 2, D], finite."""
    if features.dtype.kind not in "fiu":
        raise ValueError(f"{what} must be numbers, got dtype {features.dtype}")
    features = features.astype(np.float32)
    if features.ndim != 3 or features.shape[:2] != (frames, 2):
        raise ValueError(f"{what} must have shape [T={frames}, 2, D] like the joints, got {features.shape}")
    if not np.isfinite(features).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    return features


def _check_text(text: str) -> str:
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}")
    return text
