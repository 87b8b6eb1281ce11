"""What every backend offers the Generator, and the sampling plan they share.

A backend turns CLIP token ids into text embeddings, runs the guided DDIM loop in the
denoiser's (scaled) latent space, and moves between that space and normalized motion
features with the VAE. Arrays cross this boundary as numpy float32; the noise comes from the
caller's ``NumpyOps`` so that every backend sees the same numbers for the same seed.

The torch backend runs ``sampling.sample_latents`` itself (the reference). The graph backends
run a fused step graph and need all of the loop's randomness drawn up front: ``LoopPlan``
draws it in exactly the order ``sample_latents`` does, so their results match the reference.
"""
from __future__ import annotations

import math
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from dhvae_sdk.errors import DHVAEError
from dhvae_sdk.graph_contract import COEFFICIENT_COLUMNS
from dhvae_sdk.manifest import Manifest, ModelFormatError
from dhvae_sdk.models import DHVAEConfig
from dhvae_sdk.motion import Normalizer
from dhvae_sdk.sampling import DDIMScheduler, NumpyOps

# progress(step_index, num_steps) after every denoising step.
ProgressFn = Callable[[int, int], None]


class BackendUnavailableError(DHVAEError, RuntimeError):
    """The requested backend cannot run on this machine (library or device missing)."""


def scheduler_of(config: DHVAEConfig) -> DDIMScheduler:
    denoiser = config.denoiser
    return DDIMScheduler(
        num_train_steps=denoiser.num_train_steps, beta_start=denoiser.beta_start, beta_end=denoiser.beta_end,
        beta_schedule=denoiser.beta_schedule, prediction=denoiser.prediction,
        steps_offset=denoiser.steps_offset, set_alpha_to_one=denoiser.set_alpha_to_one,
    )


def config_of(manifest: Manifest) -> DHVAEConfig:
    """The model config an exported directory's manifest records."""
    try:
        return DHVAEConfig.from_dict(manifest.config)
    except (ValueError, TypeError) as error:
        raise ModelFormatError(f"{manifest.directory}: the manifest's model config is invalid ({error}); re-export the model") from error


def normalizer_of(manifest: Manifest) -> Normalizer:
    """The feature statistics an exported directory's manifest records."""
    try:
        return Normalizer(manifest.stats["mean"], manifest.stats["std"])
    except (KeyError, ValueError) as error:
        raise ModelFormatError(f"{manifest.directory}: the manifest's feature statistics are invalid ({error}); re-export the model") from error


class NullModulation:
    """The unconditional rows of the modulation table, [S, 1, rows, W], per step schedule.

    The null text (the empty string's encoding) is a constant of the model, so these rows
    depend only on the timesteps: they are computed on a schedule's first use and reused,
    which halves the modulation work of every later call. ``compute(timesteps [S] int64)``
    runs the backend's modulation on the null text alone. Thread-safe; the ``keep`` most
    recently used schedules are kept (a table of the paper model's 50 steps is 2.9 MB).
    """

    def __init__(self, compute: Callable[[np.ndarray], Any], keep: int = 4):
        self._compute = compute
        self._keep = keep
        self._tables: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, timesteps: np.ndarray):
        key = tuple(int(t) for t in timesteps)
        with self._lock:
            if key in self._tables:
                self._tables.move_to_end(key)
                return self._tables[key]
        table = self._compute(np.asarray(key, dtype=np.int64))
        with self._lock:
            self._tables[key] = table
            while len(self._tables) > self._keep:
                self._tables.popitem(last=False)
        return table


@dataclass(frozen=True)
class Inpainting:
    """Latent tokens fixed during sampling (denoiser space) and where they are fixed."""

    tokens: np.ndarray  # [B, N, d_z] float32
    mask: np.ndarray  # bool, broadcastable to tokens


@dataclass(frozen=True)
class LoopPlan:
    """Every input of a fused-step sampling loop, drawn before the first step. Without
    inpainting the known table is zeros and the mask all False (no noise is drawn for it)."""

    initial: np.ndarray  # [B, N, d_z] x_T
    timesteps: np.ndarray  # [S] int64
    coefficients: np.ndarray  # [S, 4] float32, columns graph_contract.COEFFICIENT_COLUMNS
    known_table: np.ndarray  # [S, B, N, d_z]: the fixed tokens noised to each step's level
    known_mask: np.ndarray  # [B, N, 1] bool

    @classmethod
    def draw(cls, scheduler: DDIMScheduler, shape: tuple[int, ...], num_steps: int, temperature: float,
             ops: NumpyOps, inpainting: Inpainting | None) -> "LoopPlan":
        initial = ops.randn(shape) * temperature
        pairs = scheduler.step_pairs(num_steps)
        if inpainting is None:
            known_table = np.zeros((len(pairs), *shape), dtype=np.float32)
            known_mask = np.zeros((shape[0], shape[1], 1), dtype=bool)
        else:
            known_table = np.stack([scheduler.add_noise(inpainting.tokens, ops.randn(shape), t) for t, _ in pairs])
            known_mask = np.broadcast_to(inpainting.mask, shape)[..., :1].copy()
        coefficients = [scheduler.step_coefficients(t, t_prev) for t, t_prev in pairs]
        table = np.array([[getattr(c, name) for name in COEFFICIENT_COLUMNS] for c in coefficients], dtype=np.float32)
        return cls(initial, np.array([t for t, _ in pairs], dtype=np.int64), table,
                   known_table.astype(np.float32), known_mask)

    def finish(self, latents: np.ndarray, inpainting: Inpainting | None) -> np.ndarray:
        """The loop's last latents with the fixed tokens put back exactly."""
        return latents if inpainting is None else np.where(self.known_mask, inpainting.tokens, latents)


class Backend(ABC):
    """One way of running a model. Subclasses set ``name``, ``config`` and ``normalizer`` (the
    feature statistics the model was trained with); ``max_steps`` / ``max_batch`` bound what
    one call may ask for (engines are built for a range of shapes)."""

    name: str
    config: DHVAEConfig
    normalizer: Normalizer
    max_steps: float = math.inf
    max_batch: float = math.inf

    @abstractmethod
    def describe(self) -> str:
        """Where it runs (device, execution providers), for logs and ``dhvae info``."""

    @abstractmethod
    def encode_text(self, tokens: np.ndarray) -> np.ndarray:
        """CLIP BPE ids [N, context] int64 -> text embeddings [N, text width] (the condition width)."""

    @abstractmethod
    def sample(self, text_embeddings: np.ndarray, num_steps: int, guidance: float, temperature: float,
               ops: NumpyOps, inpainting: Inpainting | None = None, progress: ProgressFn | None = None) -> np.ndarray:
        """Guided DDIM from noise (scaled by ``temperature``) to latents [B, N, d_z] (denoiser
        space), one row per text row."""

    @abstractmethod
    def decode(self, latents: np.ndarray, frames: int) -> np.ndarray:
        """Denoiser-space latents [B, N, d_z] -> normalized features [B, frames, 2, F]."""

    @abstractmethod
    def encode(self, features: np.ndarray) -> np.ndarray:
        """Normalized features [B, T, 2, F] -> posterior-mean latents [B, N, d_z] (denoiser space)."""

    def reconstruct(self, features: np.ndarray) -> np.ndarray:
        """Raw features [B, T, 2, F] through the VAE (posterior means, decoded at T frames) -> raw
        features [B, T, 2, F] (float64): how much of a motion the latent keeps."""
        normalized = self.normalizer.normalize(features.astype(np.float64)).astype(np.float32)
        decoded = self.decode(self.encode(normalized), features.shape[1])
        return self.normalizer.denormalize(decoded.astype(np.float64))
