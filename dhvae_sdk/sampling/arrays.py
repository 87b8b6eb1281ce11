"""The three array operations the sampling loop needs beyond arithmetic.

The loop itself stays framework-free; a backend hands it one of these adapters. The numpy one
lives here; ``dhvae_sdk.sampling.torch_arrays`` holds the torch one so that importing the
sampling package never imports torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import numpy as np


class ArrayOps(Protocol):
    def randn(self, shape: Sequence[int]) -> Any:
        """Standard normal noise from the adapter's own seeded generator."""

    def concat(self, first: Any, second: Any) -> Any:
        """Join two arrays along the batch axis (axis 0)."""

    def where(self, mask: Any, if_true: Any, if_false: Any) -> Any:
        """Elementwise choice; ``mask`` is boolean and broadcasts against both."""


@dataclass
class NumpyOps:
    rng: np.random.Generator
    dtype: type = np.float32

    @classmethod
    def from_seed(cls, seed: int, dtype: type = np.float32) -> "NumpyOps":
        return cls(np.random.default_rng(seed), dtype)

    def randn(self, shape):
        return self.rng.standard_normal(tuple(shape)).astype(self.dtype)

    def concat(self, first, second):
        return np.concatenate([first, second], axis=0)

    def where(self, mask, if_true, if_false):
        return np.where(np.asarray(mask, dtype=bool), if_true, if_false)
