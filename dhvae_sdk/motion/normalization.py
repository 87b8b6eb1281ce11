"""Z-normalization of motion features with the datasets' published statistics."""
from __future__ import annotations

from importlib import resources

import numpy as np

from dhvae_sdk.atomic_file import atomic_output
from dhvae_sdk.errors import DHVAEError

from . import interx
from .arraylike import check_last_dim, constant_like


class StatisticsError(DHVAEError, ValueError):
    """Normalization statistics files that cannot be used; the message names them."""


class Normalizer:
    """``(x - mean) / std`` over the last axis, for numpy arrays and torch tensors."""

    def __init__(self, mean, std):
        mean = np.asarray(mean, dtype=np.float64)
        std = np.asarray(std, dtype=np.float64)
        if mean.ndim != 1 or mean.shape != std.shape:
            raise ValueError(f"mean and std must be vectors of one length, got shapes {mean.shape} and {std.shape}")
        if not np.all(np.isfinite(mean)):
            raise ValueError("mean has NaN or infinite entries")
        bad = np.flatnonzero(~(std > 0) | ~np.isfinite(std))
        if bad.size:
            raise ValueError(f"std must be finite and > 0; entries {bad[:10].tolist()} are {std[bad[:10]].tolist()}")
        self.mean = mean
        self.std = std

    @classmethod
    def fit(cls, features, min_std: float = 0.005) -> "Normalizer":
        """Statistics of ``features`` [..., D] over every leading axis.

        std is floored at ``min_std`` (below the smallest std of the published InterHuman
        statistics, 0.0074): a feature that barely varies would otherwise turn tiny model
        errors on it into huge normalized ones.
        """
        flat = np.asarray(features, dtype=np.float64).reshape(-1, np.shape(features)[-1])
        if flat.shape[0] < 2:
            raise ValueError(f"fitting statistics needs at least 2 frames, got {flat.shape[0]}")
        return cls(flat.mean(axis=0), np.maximum(flat.std(axis=0), min_std))

    @classmethod
    def from_files(cls, mean_path, std_path) -> "Normalizer":
        try:
            return cls(np.load(mean_path, allow_pickle=False), np.load(std_path, allow_pickle=False))
        except (OSError, ValueError) as error:
            raise StatisticsError(f"cannot use normalization statistics {mean_path} / {std_path}: {error}") from None

    def save(self, mean_path, std_path) -> None:
        for path, values in ((mean_path, self.mean), (std_path, self.std)):
            with atomic_output(path) as temp:
                with open(temp, "wb") as handle:
                    np.save(handle, values.astype(np.float32))

    @property
    def dim(self) -> int:
        return len(self.mean)

    def normalize(self, features):
        check_last_dim(features, self.dim, "features")
        return (features - constant_like(self.mean, features)) / constant_like(self.std, features)

    def denormalize(self, features):
        check_last_dim(features, self.dim, "features")
        return features * constant_like(self.std, features) + constant_like(self.mean, features)


def _stats(file_name: str) -> np.ndarray:
    resource = resources.files("dhvae_sdk.motion").joinpath("stats").joinpath(file_name)
    with resources.as_file(resource) as path:
        return np.load(path, allow_pickle=False)


def interhuman_normalizer() -> Normalizer:
    """InterGen's ``global_mean`` / ``global_std`` [262], shared by both persons."""
    return Normalizer(_stats("interhuman_global_mean.npy"), _stats("interhuman_global_std.npy"))


def interx_normalizer() -> Normalizer:
    """Statistics for the 336-number InterX feature, built from InterMask's [12] vectors.

    InterMask's 12 numbers describe one SMPL-X joint of its per-joint representation:
    position xyz, velocity xyz, 6D rotation. Each of the 55 rotation slots here takes the
    rotation part, the root translation the position part, the root velocity the velocity part.
    """
    mean, std = _stats("interx_mean.npy"), _stats("interx_std.npy")
    return Normalizer(_expand_joint_stats(mean), _expand_joint_stats(std))


def _expand_joint_stats(joint_stats: np.ndarray) -> np.ndarray:
    if joint_stats.shape != (12,):
        raise ValueError(f"InterX statistics must have shape (12,), got {joint_stats.shape}")
    expanded = np.empty(interx.FEATURE_DIM)
    expanded[interx.ROTATIONS] = np.tile(joint_stats[6:12], interx.NUM_ROTATIONS)
    expanded[interx.TRANSLATION] = joint_stats[0:3]
    expanded[interx.VELOCITY] = joint_stats[3:6]
    return expanded
