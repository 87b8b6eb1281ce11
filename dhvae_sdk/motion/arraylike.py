"""Functions of the motion package accept numpy arrays and torch tensors alike.

Torch is not imported here: a tensor can only exist once the caller has imported torch, so
it is looked up in ``sys.modules``, and numpy-only users (the ONNX runtime) never load it.
"""
from __future__ import annotations

import sys

import numpy as np


def _torch_of(like):
    """The torch module when ``like`` is a tensor, else None."""
    torch = sys.modules.get("torch")
    return torch if torch is not None and isinstance(like, torch.Tensor) else None


def constant_like(value: np.ndarray, like, dtype=None):
    """``value`` as the same kind of array as ``like`` (device and float dtype included)."""
    torch = _torch_of(like)
    if torch is not None:
        return torch.as_tensor(value, dtype=dtype or like.dtype, device=like.device)
    return np.asarray(value, dtype=dtype or like.dtype)


def index_like(indices: np.ndarray, like):
    """Integer ``indices`` usable to index ``like`` along an axis."""
    torch = _torch_of(like)
    if torch is not None:
        return torch.as_tensor(indices, dtype=torch.long, device=like.device)
    return np.asarray(indices, dtype=np.int64)


def check_last_dim(array, width: int, what: str) -> None:
    if array.ndim == 0 or array.shape[-1] != width:
        raise ValueError(f"{what} must end in a dimension of {width}, got shape {tuple(array.shape)}")
