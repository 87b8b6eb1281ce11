"""One descriptor per exported graph: its wrapper, input and output names, dynamic axes, sample
inputs for export and checking, and the TensorRT shape profile.

Dynamic axes: ``batch`` (texts x samples; the guidance batch is twice it), ``frames``, ``steps``
and ``rows`` (condition rows of the modulation graph: the sentences', or the null text's alone,
whose modulation the backends compute once per step schedule). Widths: conditions have the
text encoder's width C, latents and modulation rows the latent's (the VAE's) width W.
TensorRT profiles cover a batch of 1 to ``MAX_BATCH`` texts, 1 to the model's maximum frames,
and up to ``MAX_TRT_STEPS`` steps.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.export import Dim

from dhvae_sdk.models import GROUPS, Denoiser, DHVAEConfig, DHVAEModel
from export.wrappers import DecoderGraph, EncoderGraph, ModulationGraph, SamplerStepGraph, TextEncoderGraph

MAX_BATCH = 32
MAX_TRT_STEPS = 100
OPT_STEPS = 50
OPT_FRAMES = 210
OPSET = 20


@dataclass(frozen=True)
class SampleShape:
    """Sizes of the dynamic axes for one set of sample inputs."""

    batch: int
    frames: int
    steps: int


# Export traces at EXPORT_SHAPE. No dynamic axis may be 1 (torch.export would specialize it)
# or equal to another axis or a fixed size (3 latent tokens): the exporter can then confuse
# them and the graph is only right when they happen to be equal again. The checks run at the
# CHECK_SHAPES, which differ from it and from each other on every axis.
EXPORT_SHAPE = SampleShape(batch=2, frames=24, steps=5)
CHECK_SHAPES = (SampleShape(batch=1, frames=7, steps=4), SampleShape(batch=5, frames=41, steps=9))


@dataclass(frozen=True)
class GraphDescriptor:
    role: str
    build: Callable[[DHVAEModel, torch.Tensor], nn.Module]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    sample: Callable[[DHVAEConfig, SampleShape], tuple[np.ndarray, ...]]
    dynamic_axes: Callable[[DHVAEConfig], dict[str, dict[int, Dim] | None]]
    trt_profile: Callable[[DHVAEConfig], dict[str, tuple[tuple[int, ...], ...]]]

    @property
    def file_name(self) -> str:
        return f"{self.role}.onnx"


def _rng(shape: SampleShape) -> np.random.Generator:
    return np.random.default_rng(shape.batch * 1000 + shape.frames)


def _latent_shape(config: DHVAEConfig) -> tuple[int, int]:
    return len(GROUPS) * config.vae.latent_tokens, config.vae.width


def _modulation_rows(config: DHVAEConfig) -> int:
    """Counted by a denoiser of this config built on the meta device (no memory, no weights), so
    that the layer count of the skip variant is the model's own, not a copy of its rule."""
    with torch.device("meta"):
        denoiser = Denoiser(config.denoiser, config.vae.width, config.vae.latent_tokens, config.text.width)
    return denoiser.modulation_rows


def _profile(minimum: tuple, optimum: tuple, maximum: tuple) -> tuple[tuple[int, ...], ...]:
    return tuple(minimum), tuple(optimum), tuple(maximum)


def _text_sample(config, shape):
    context = config.text.context_length
    tokens = np.zeros((shape.batch, context), dtype=np.int64)
    rng = _rng(shape)
    for row, length in enumerate(rng.integers(3, context - 1, size=shape.batch)):
        tokens[row, 0] = 49406
        tokens[row, 1:length] = rng.integers(1, 49000, size=length - 1)
        tokens[row, length] = 49407
    return (tokens,)


def _text_profile(config):
    context = config.text.context_length
    return {"tokens": _profile((1, context), (1, context), (MAX_BATCH, context))}


def _modulation_sample(config, shape):
    rng = _rng(shape)
    num_train = config.denoiser.num_train_steps
    timesteps = np.sort(rng.choice(num_train, size=shape.steps, replace=False))[::-1].astype(np.int64)
    conditions = rng.standard_normal((shape.batch, config.text.width)).astype(np.float32)
    return timesteps.copy(), conditions


def _modulation_profile(config):
    width = config.text.width
    return {"timesteps": _profile((1,), (OPT_STEPS,), (MAX_TRT_STEPS,)),
            "conditions": _profile((1, width), (1, width), (MAX_BATCH, width))}


def _modulation_table(config, shape, rng):
    rows = _modulation_rows(config)
    width = config.vae.width
    # Modulations of a trained model are O(0.1..1); random ones in that range exercise every path.
    return (0.3 * rng.standard_normal((shape.steps, 2 * shape.batch, rows, width))).astype(np.float32)


def _step_sample(config, shape):
    rng = _rng(shape)
    tokens, dim = _latent_shape(config)
    latents = rng.standard_normal((shape.batch, tokens, dim)).astype(np.float32)
    coefficients = rng.uniform(0.2, 1.2, size=(shape.steps, 4)).astype(np.float32)
    known_table = rng.standard_normal((shape.steps, shape.batch, tokens, dim)).astype(np.float32)
    known_mask = np.zeros((shape.batch, tokens, 1), dtype=bool)
    known_mask[:, : tokens // 3] = True
    step = np.array([shape.steps - 1], dtype=np.int64)
    return (latents, step, _modulation_table(config, shape, rng), coefficients,
            np.array([3.5], dtype=np.float32), known_table, known_mask)


def _step_profile(config):
    tokens, dim = _latent_shape(config)
    rows, width = _modulation_rows(config), config.vae.width

    def shapes(batch: int, steps: int) -> dict[str, tuple[int, ...]]:
        return {"latents": (batch, tokens, dim), "step": (1,), "modulation_table": (steps, 2 * batch, rows, width),
                "coefficient_table": (steps, 4), "guidance": (1,), "known_table": (steps, batch, tokens, dim),
                "known_mask": (batch, tokens, 1)}

    low, opt, high = shapes(1, 1), shapes(1, OPT_STEPS), shapes(MAX_BATCH, MAX_TRT_STEPS)
    return {name: _profile(low[name], opt[name], high[name]) for name in low}


def _decoder_sample(config, shape):
    rng = _rng(shape)
    latents = rng.standard_normal((shape.batch, *_latent_shape(config))).astype(np.float32)
    return latents, np.ones((shape.batch, shape.frames), dtype=bool)


def _decoder_profile(config):
    tokens, dim = _latent_shape(config)
    longest = config.vae.max_frames
    return {"latents": _profile((1, tokens, dim), (1, tokens, dim), (MAX_BATCH, tokens, dim)),
            "mask": _profile((1, 1), (1, min(OPT_FRAMES, longest)), (MAX_BATCH, longest))}


def _encoder_sample(config, shape):
    rng = _rng(shape)
    features = rng.standard_normal((shape.batch, shape.frames, 2, config.vae.feature_dim)).astype(np.float32)
    return features, np.ones((shape.batch, shape.frames), dtype=bool)


def _encoder_profile(config):
    feature_dim, longest = config.vae.feature_dim, config.vae.max_frames
    optimum = min(OPT_FRAMES, longest)
    return {"features": _profile((1, 1, 2, feature_dim), (1, optimum, 2, feature_dim), (MAX_BATCH, longest, 2, feature_dim)),
            "mask": _profile((1, 1), (1, optimum), (MAX_BATCH, longest))}


def _axes_text(config):
    return {"tokens": {0: Dim("batch", min=1, max=1024)}}


def _axes_modulation(config):
    return {"timesteps": {0: Dim("steps", min=1, max=1000)}, "conditions": {0: Dim("rows", min=1, max=2048)}}


def _axes_step(config):
    batch, steps = Dim("batch", min=1, max=1024), Dim("steps", min=1, max=1000)
    return {"latents": {0: batch}, "step": None, "modulation_table": {0: steps, 1: 2 * batch},
            "coefficient_table": {0: steps}, "guidance": None, "known_table": {0: steps, 1: batch},
            "known_mask": {0: batch}}


def _axes_decoder(config):
    batch, frames = Dim("batch", min=1, max=1024), Dim("frames", min=1, max=config.vae.max_frames)
    return {"latents": {0: batch}, "mask": {0: batch, 1: frames}}


def _axes_encoder(config):
    batch, frames = Dim("batch", min=1, max=1024), Dim("frames", min=1, max=config.vae.max_frames)
    return {"features": {0: batch, 1: frames}, "mask": {0: batch, 1: frames}}


DESCRIPTORS = (
    GraphDescriptor("text_encoder", lambda model, scales: TextEncoderGraph(model), ("tokens",), ("text_embeddings",),
                    _text_sample, _axes_text, _text_profile),
    GraphDescriptor("modulation", lambda model, scales: ModulationGraph(model), ("timesteps", "conditions"),
                    ("modulation_table",), _modulation_sample, _axes_modulation, _modulation_profile),
    GraphDescriptor("sampler_step", lambda model, scales: SamplerStepGraph(model),
                    ("latents", "step", "modulation_table", "coefficient_table", "guidance", "known_table", "known_mask"),
                    ("next_latents",), _step_sample, _axes_step, _step_profile),
    GraphDescriptor("decoder", lambda model, scales: DecoderGraph(model, scales), ("latents", "mask"), ("features",),
                    _decoder_sample, _axes_decoder, _decoder_profile),
    GraphDescriptor("encoder", lambda model, scales: EncoderGraph(model, scales), ("features", "mask"), ("latents",),
                    _encoder_sample, _axes_encoder, _encoder_profile),
)
