"""Torch implementation of ``ArrayOps`` (see ``arrays.py``)."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TorchOps:
    generator: torch.Generator
    device: torch.device | str = "cpu"
    dtype: torch.dtype = torch.float32

    @classmethod
    def from_seed(cls, seed: int, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32) -> "TorchOps":
        # The generator must live on the device the noise is drawn on.
        return cls(torch.Generator(device=device).manual_seed(seed), device, dtype)

    def randn(self, shape):
        return torch.randn(tuple(shape), generator=self.generator, device=self.device, dtype=self.dtype)

    def concat(self, first, second):
        return torch.cat([first, second], dim=0)

    def where(self, mask, if_true, if_false):
        return torch.where(torch.as_tensor(mask, dtype=torch.bool, device=if_true.device), if_true, if_false)
