"""Classifier-free guidance and the DDIM sampling loop shared by every backend.

Batch convention: the network is always called once on a doubled batch, rows ``[0:B]``
conditional and rows ``[B:2B]`` unconditional. The loop only uses arithmetic plus the three
operations of an ``ArrayOps`` adapter, so the torch, ONNX Runtime and TensorRT backends run
this same code with their own ``denoise_fn``.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from dhvae_sdk.sampling.arrays import ArrayOps
from dhvae_sdk.sampling.scheduler import DDIMScheduler

# denoise_fn(latents_doubled [2B, ...], timestep, step_index) -> model output [2B, ...].
# timestep is the training-step value the network embeds; step_index counts sampling steps
# from 0 (noisiest), for backends that precompute per-step inputs.
DenoiseFn = Callable[[Any, int, int], Any]


def classifier_free_guidance(output_batched: Any, scale: float) -> Any:
    """eps_u + scale * (eps_c - eps_u) from one doubled batch ([cond; uncond])."""
    rows = output_batched.shape[0]
    if rows % 2:
        raise ValueError(f"guidance needs a doubled batch (conditional rows then unconditional), "
                         f"got an odd number of rows: {rows}")
    conditional, unconditional = output_batched[: rows // 2], output_batched[rows // 2:]
    return unconditional + scale * (conditional - unconditional)


def sample_latents(denoise_fn: DenoiseFn, scheduler: DDIMScheduler, shape: Sequence[int],
                   num_steps: int, guidance_scale: float, ops: ArrayOps, *, eta: float = 0.0,
                   temperature: float = 1.0, known_tokens: Any = None, known_mask: Any = None) -> Any:
    """DDIM from noise to clean latents of ``shape``, the starting noise scaled by ``temperature``.

    Inpainting: where the boolean ``known_mask`` (broadcastable to ``shape``) is set, the
    latents are replaced before every step by ``known_tokens`` noised to that step's level,
    and by ``known_tokens`` themselves at the end.
    """
    shape = tuple(shape)
    if (known_tokens is None) != (known_mask is None):
        raise ValueError("inpainting needs both known_tokens and known_mask (or neither)")
    if known_tokens is not None and tuple(known_tokens.shape) != shape:
        raise ValueError(f"known_tokens have shape {tuple(known_tokens.shape)}, the latents {shape}")
    latents = ops.randn(shape) * temperature
    for step_index, (t, t_prev) in enumerate(scheduler.step_pairs(num_steps)):
        if known_tokens is not None:
            noised_known = scheduler.add_noise(known_tokens, ops.randn(shape), t)
            latents = ops.where(known_mask, noised_known, latents)
        output = denoise_fn(ops.concat(latents, latents), t, step_index)
        if tuple(output.shape) != (2 * shape[0],) + shape[1:]:
            raise ValueError(f"denoise_fn returned shape {tuple(output.shape)} for a doubled batch "
                             f"of shape {(2 * shape[0],) + shape[1:]}")
        guided = classifier_free_guidance(output, guidance_scale)
        noise = ops.randn(shape) if eta > 0.0 else None
        latents = scheduler.step(guided, t, t_prev, latents, eta=eta, noise=noise)
    if known_tokens is not None:
        latents = ops.where(known_mask, known_tokens, latents)
    return latents
