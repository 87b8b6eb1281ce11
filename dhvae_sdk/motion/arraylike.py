"""Functions of the motion package accept numpy arrays and torch tensors alike."""
from __future__ import annotations

import numpy as np
import torch


def constant_like(value: np.ndarray, like, dtype=None):
    """``value`` as the same kind of array as ``like`` (device and float dtype included)."""
    if isinstance(like, torch.Tensor):
        return torch.as_tensor(value, dtype=dtype or like.dtype, device=like.device)
    return np.asarray(value, dtype=dtype or like.dtype)


def index_like(indices: np.ndarray, like):
    """Integer ``indices`` usable to index ``like`` along an axis."""
    if isinstance(like, torch.Tensor):
        return torch.as_tensor(indices, dtype=torch.long, device=like.device)
    return np.asarray(indices, dtype=np.int64)


def check_last_dim(array, width: int, what: str) -> None:
    if array.ndim == 0 or array.shape[-1] != width:
        raise ValueError(f"{what} must end in a dimension of {width}, got shape {tuple(array.shape)}")
