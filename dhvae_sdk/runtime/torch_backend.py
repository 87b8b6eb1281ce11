"""The reference backend: the training checkpoint's modules in eager PyTorch.

Sampling is ``sampling.sample_latents`` itself; the AdaLN modulation of every step is computed
in one batched call before the loop and each step only indexes it. The unconditional condition
(the text encoder's encoding of the empty string) is the same for every request, so it is
computed once when the backend opens, and its modulation rows once per step schedule
(``NullModulation``), as the graph backends do.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dhvae_sdk.checkpoint import Checkpoint, load_checkpoint
from dhvae_sdk.manifest import ModelFormatError
from dhvae_sdk.models import lengths_to_mask, scale_latents, unscale_latents
from dhvae_sdk.motion import Normalizer
from dhvae_sdk.runtime.base import (
    Backend, BackendUnavailableError, Inpainting, NullModulation, ProgressFn, scheduler_of,
)
from dhvae_sdk.sampling import NumpyOps, sample_latents
from dhvae_sdk.threads import resolve_threads


@dataclass
class NumpySeededTorchOps:
    """``ArrayOps`` on torch tensors whose noise comes from a numpy generator, so that the torch
    backend draws exactly the numbers the graph backends draw for the same seed."""

    source: NumpyOps
    device: torch.device

    def randn(self, shape):
        return torch.from_numpy(self.source.randn(shape)).to(self.device)

    def concat(self, first, second):
        return torch.cat([first, second], dim=0)

    def where(self, mask, if_true, if_false):
        return torch.where(torch.as_tensor(mask, dtype=torch.bool, device=self.device), if_true, if_false)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, checkpoint: Checkpoint):
        self.checkpoint = checkpoint
        self.config = checkpoint.config
        self.model = checkpoint.model.eval()
        self.device = next(self.model.denoiser.parameters()).device
        self.scheduler = scheduler_of(self.config)
        self.normalizer = Normalizer(checkpoint.feature_mean.cpu().numpy(), checkpoint.feature_std.cpu().numpy())
        with torch.inference_mode():
            self.null_text = self.model.null_text_embedding(1)
        self.null_modulation = NullModulation(lambda timesteps: self._modulation(timesteps, self.null_text))

    @classmethod
    def from_checkpoint(cls, path: Path, device: str | torch.device | None = None,
                        threads: int | None = None) -> "TorchBackend":
        """A dhvae-sdk checkpoint, or a released Lightning ``.ckpt`` converted on the fly.
        ``threads``: torch's CPU threads, which are per process: this sets them for the whole
        process (None: ``dhvae_sdk.threads.default_threads()``)."""
        if device is not None and torch.device(device).type == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailableError(f"device {str(device)!r}: PyTorch sees no CUDA GPU here; use device='cpu'")
        torch.set_num_threads(resolve_threads(threads))
        if Path(path).suffix == ".ckpt":
            from dhvae_sdk.convert import read_official

            checkpoint = read_official(path)
            checkpoint.model.to(device or default_device())
        else:
            checkpoint = load_checkpoint(path, device=device or default_device())
        if checkpoint.stage != "denoiser":
            raise ModelFormatError(
                f"{path} is a {checkpoint.stage!r}-stage checkpoint: its denoiser is untrained, so it cannot "
                f"generate; pass the checkpoint the denoiser stage wrote (runs/.../denoiser/checkpoint.safetensors)"
            )
        return cls(checkpoint)

    def describe(self) -> str:
        return f"PyTorch {torch.__version__} on {self.device}"

    @torch.inference_mode()
    def encode_text(self, tokens: np.ndarray) -> np.ndarray:
        return self.model.text(torch.from_numpy(tokens).to(self.device)).float().cpu().numpy()

    @torch.inference_mode()
    def sample(self, text_embeddings: np.ndarray, num_steps: int, guidance: float, temperature: float,
               ops: NumpyOps, inpainting: Inpainting | None = None, progress: ProgressFn | None = None) -> np.ndarray:
        denoiser = self.model.denoiser
        batch = len(text_embeddings)
        timesteps = np.array(self.scheduler.timesteps(num_steps), dtype=np.int64)
        modulation = torch.cat([self._modulation(timesteps, torch.from_numpy(text_embeddings).to(self.device)),
                                self.null_modulation(timesteps).expand(-1, batch, -1, -1)], dim=1)

        def denoise(latents, timestep, step_index):
            output = denoiser.forward_with_modulation(latents, modulation[step_index])
            if progress is not None:
                progress(step_index, num_steps)
            return output

        shape = (batch, denoiser.num_tokens, denoiser.width)
        known = {}
        if inpainting is not None:
            known = {"known_tokens": torch.from_numpy(inpainting.tokens).to(self.device),
                     "known_mask": torch.from_numpy(np.asarray(inpainting.mask, dtype=bool)).to(self.device)}
        latents = sample_latents(denoise, self.scheduler, shape, num_steps, guidance,
                                 NumpySeededTorchOps(ops, self.device), temperature=temperature, **known)
        return latents.float().cpu().numpy()

    @torch.inference_mode()
    def _modulation(self, timesteps: np.ndarray, conditions: torch.Tensor) -> torch.Tensor:
        """The modulation of every (step, condition row) pair, [S, R, rows, W]."""
        return self.model.denoiser.modulation_table(torch.from_numpy(timesteps).to(self.device), conditions)

    @torch.inference_mode()
    def decode(self, latents: np.ndarray, frames: int) -> np.ndarray:
        z = unscale_latents(torch.from_numpy(latents).to(self.device), self.checkpoint.latent_scales,
                            self.model.vae.tokens_per_group)
        mask = lengths_to_mask(torch.full((len(latents),), frames, device=self.device), frames)
        return torch.stack(self.model.vae.decode(z, mask), dim=2).float().cpu().numpy()

    @torch.inference_mode()
    def encode(self, features: np.ndarray) -> np.ndarray:
        motion = torch.from_numpy(features).to(self.device)
        mask = torch.ones(motion.shape[:2], dtype=torch.bool, device=self.device)
        posterior = self.model.vae.encode(motion[:, :, 0], motion[:, :, 1], mask)
        return scale_latents(posterior.mean, self.checkpoint.latent_scales, self.model.vae.tokens_per_group).cpu().numpy()
