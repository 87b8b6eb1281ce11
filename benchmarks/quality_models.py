"""A model under test: generation at the ground truth's lengths and VAE reconstruction.

It runs on any ``dhvae_sdk.runtime`` backend. Texts of different lengths share one guided
DDIM batch (the latents do not depend on the length); decoding and encoding, which do, run
once per distinct length.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from dhvae_sdk.checkpoint import CheckpointError, read_checkpoint_config
from dhvae_sdk.models import tokenize
from dhvae_sdk.runtime import Backend, open_backend
from dhvae_sdk.sampling import NumpyOps


def parse_model_argument(argument: str) -> tuple[str, Path]:
    """``LABEL=PATH`` or ``PATH``; the default label is the run folder of a
    ``checkpoint.safetensors``, else the file or directory name."""
    label, separator, path = argument.partition("=")
    if not separator:
        label, path = "", argument
    path = Path(path)
    if not label:
        label = path.parent.name if path.name == "checkpoint.safetensors" else path.stem
    return label, path


def same_length_groups(lengths: np.ndarray) -> list[np.ndarray]:
    return [np.flatnonzero(lengths == length) for length in np.unique(lengths)]


@dataclass
class ModelUnderTest:
    label: str
    path: Path
    backend: Backend
    batch_size: int

    @classmethod
    def open(cls, label: str, path: Path, backend: str, device: str | None, batch_size: int,
             feature_dim: int) -> "ModelUnderTest":
        if path.is_file():
            _, metadata = read_checkpoint_config(path)
            if metadata["stage"] != "denoiser":
                raise CheckpointError(
                    f"{path} is a {metadata['stage']}-stage checkpoint: its denoiser is untrained, so its "
                    f"generations mean nothing; pass the checkpoint of the denoiser stage "
                    f"(python -m training.main denoiser --vae {path} ...)")
        elif not path.exists():
            raise FileNotFoundError(f"model {path} does not exist; pass a denoiser-stage checkpoint "
                                    f"(RUN/checkpoint.safetensors) or an exported model directory")
        opened, _ = open_backend(path, backend, device)
        if opened.config.vae.feature_dim != feature_dim:
            raise ValueError(f"model {path} makes {opened.config.vae.feature_dim}-number features "
                             f"({opened.config.dataset}); the test set has {feature_dim}")
        limit = opened.max_batch if math.isfinite(opened.max_batch) else batch_size
        return cls(label, path, opened, max(1, min(batch_size, int(limit))))

    def describe(self) -> dict:
        config = self.backend.config
        return {"path": str(self.path), "backend": self.backend.describe(), "preset": config.preset,
                "vae_kind": config.vae.kind, "trained_on": config.dataset, "loss": config.loss.to_dict()}

    def generate(self, texts: list[str], lengths: np.ndarray, guidance: float, temperature: float, steps: int,
                 ops: NumpyOps, progress: Callable[[int], object] | None = None) -> list[np.ndarray]:
        """Raw two-person features [lengths[i], 2, D] for each text (batched; noise from ``ops``);
        ``progress(n)`` after each batch of n texts."""
        motions: list[np.ndarray] = [None] * len(texts)
        for start in range(0, len(texts), self.batch_size):
            rows = np.arange(start, min(start + self.batch_size, len(texts)))
            tokens = tokenize([texts[i] for i in rows], self.backend.config.text.context_length).numpy()
            latents = self.backend.sample(self.backend.encode_text(tokens), steps, guidance, temperature, ops)
            for group in same_length_groups(lengths[rows]):
                decoded = self.backend.decode(latents[group], int(lengths[rows[group[0]]]))
                for row, features in zip(rows[group], self._raw(decoded)):
                    motions[row] = features
            if progress is not None:
                progress(len(rows))
        return motions

    def reconstruct(self, motions: list[np.ndarray], progress: Callable[[int], object] | None = None,
                    ) -> list[np.ndarray]:
        """Raw features through the VAE (posterior means), each at its own length."""
        reconstructions: list[np.ndarray] = [None] * len(motions)
        lengths = np.array([len(motion) for motion in motions])
        for group in same_length_groups(lengths):
            for start in range(0, len(group), self.batch_size):
                rows = group[start:start + self.batch_size]
                for row, features in zip(rows, self.backend.reconstruct(np.stack([motions[i] for i in rows]))):
                    reconstructions[row] = features.astype(np.float32)
                if progress is not None:
                    progress(len(rows))
        return reconstructions

    def normalized(self, motions: list[np.ndarray]) -> list[np.ndarray]:
        return [self.backend.normalizer.normalize(motion.astype(np.float64)) for motion in motions]

    def _raw(self, normalized: np.ndarray) -> np.ndarray:
        return self.backend.normalizer.denormalize(normalized.astype(np.float64)).astype(np.float32)
