"""One descriptor per exported graph: its contract (``dhvae_sdk.graph_contract``: role, input
and output names, dynamic axes), its wrapper, sample inputs for export and checking, and the
TensorRT shape profile.

The contract names the dynamic axes; here they get their bounds for the exporter.
TensorRT profiles cover a batch of 1 to ``MAX_BATCH`` texts, 1 to the model's maximum frames,
and up to ``MAX_TRT_STEPS`` steps. Widths: conditions have the text encoder's width C,
latents and modulation rows the latent's (the VAE's) width W.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.export import Dim

from dhvae_sdk.graph_contract import (
    COEFFICIENT_COLUMNS, DECODER, ENCODER, MODULATION, SAMPLER_STEP, TEXT_ENCODER, GraphContract,
)
from dhvae_sdk.models import GROUPS, DHVAEConfig, DHVAEModel, build_denoiser
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
    contract: GraphContract
    build: Callable[[DHVAEModel, torch.Tensor], nn.Module]
    sample: Callable[[DHVAEConfig, SampleShape], tuple[np.ndarray, ...]]
    # The shape of every input (in the contract's order) at the given sizes of the dynamic axes.
    shapes: Callable[[DHVAEConfig, SampleShape], tuple[tuple[int, ...], ...]]

    @property
    def role(self) -> str:
        return self.contract.role

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.contract.input_names

    @property
    def outputs(self) -> tuple[str, ...]:
        return self.contract.outputs

    @property
    def file_name(self) -> str:
        return self.contract.file_name

    def dynamic_axes(self, config: DHVAEConfig) -> dict[str, dict[int, Dim] | None]:
        """The exporter's ``dynamic_shapes``: one ``Dim`` per axis name, shared by the inputs."""
        batch = Dim("batch", min=1, max=1024)
        dims = {"batch": batch, "guided": 2 * batch, "steps": Dim("steps", min=1, max=1000),
                "rows": Dim("rows", min=1, max=2048), "frames": Dim("frames", min=1, max=config.vae.max_frames)}
        return {name: {axis: dims[label] for axis, label in enumerate(labels) if label} or None
                for name, labels in self.contract.inputs.items()}

    def trt_profile(self, config: DHVAEConfig) -> dict[str, tuple[tuple[int, ...], ...]]:
        """(min, opt, max) shapes per input: one text, one step and one frame at least; one text,
        ``OPT_STEPS`` steps and ``OPT_FRAMES`` frames as the optimum; at most ``MAX_BATCH``
        texts, ``MAX_TRT_STEPS`` steps and the model's maximum frames."""
        longest = config.vae.max_frames
        sizes = (SampleShape(1, 1, 1), SampleShape(1, min(OPT_FRAMES, longest), OPT_STEPS),
                 SampleShape(MAX_BATCH, longest, MAX_TRT_STEPS))
        low, opt, high = (self.shapes(config, size) for size in sizes)
        return {name: (low[i], opt[i], high[i]) for i, name in enumerate(self.inputs)}


def _rng(shape: SampleShape) -> np.random.Generator:
    return np.random.default_rng(shape.batch * 1000 + shape.frames)


def _latent_shape(config: DHVAEConfig) -> tuple[int, int]:
    return len(GROUPS) * config.vae.latent_tokens, config.vae.width


def _modulation_rows(config: DHVAEConfig) -> int:
    """Counted by a denoiser of this config built on the meta device (no memory, no weights), so
    that the layer count of the skip variant is the model's own, not a copy of its rule."""
    with torch.device("meta"):
        denoiser = build_denoiser(config)
    return denoiser.modulation_rows


def _text_sample(config, shape):
    context = config.text.context_length
    tokens = np.zeros((shape.batch, context), dtype=np.int64)
    rng = _rng(shape)
    for row, length in enumerate(rng.integers(3, context - 1, size=shape.batch)):
        tokens[row, 0] = 49406
        tokens[row, 1:length] = rng.integers(1, 49000, size=length - 1)
        tokens[row, length] = 49407
    return (tokens,)


def _text_shapes(config, shape):
    return ((shape.batch, config.text.context_length),)


def _modulation_sample(config, shape):
    rng = _rng(shape)
    num_train = config.denoiser.num_train_steps
    timesteps = np.sort(rng.choice(num_train, size=shape.steps, replace=False))[::-1].astype(np.int64)
    conditions = rng.standard_normal(_modulation_shapes(config, shape)[1]).astype(np.float32)
    return timesteps.copy(), conditions


def _modulation_shapes(config, shape):
    return (shape.steps,), (shape.batch, config.text.width)


def _step_sample(config, shape):
    rng = _rng(shape)
    latents, _, modulation, coefficients, _, known, mask = _step_shapes(config, shape)
    known_mask = np.zeros(mask, dtype=bool)
    known_mask[:, : mask[1] // 3] = True
    step = np.array([shape.steps - 1], dtype=np.int64)
    # Modulations of a trained model are O(0.1..1); random ones in that range exercise every path.
    return (rng.standard_normal(latents).astype(np.float32), step,
            (0.3 * rng.standard_normal(modulation)).astype(np.float32),
            rng.uniform(0.2, 1.2, size=coefficients).astype(np.float32), np.array([3.5], dtype=np.float32),
            rng.standard_normal(known).astype(np.float32), known_mask)


def _step_shapes(config, shape):
    tokens, dim = _latent_shape(config)
    batch, steps = shape.batch, shape.steps
    return ((batch, tokens, dim), (1,), (steps, 2 * batch, _modulation_rows(config), config.vae.width),
            (steps, len(COEFFICIENT_COLUMNS)), (1,), (steps, batch, tokens, dim), (batch, tokens, 1))


def _decoder_sample(config, shape):
    latents, mask = _decoder_shapes(config, shape)
    return _rng(shape).standard_normal(latents).astype(np.float32), np.ones(mask, dtype=bool)


def _decoder_shapes(config, shape):
    return (shape.batch, *_latent_shape(config)), (shape.batch, shape.frames)


def _encoder_sample(config, shape):
    features, mask = _encoder_shapes(config, shape)
    return _rng(shape).standard_normal(features).astype(np.float32), np.ones(mask, dtype=bool)


def _encoder_shapes(config, shape):
    return (shape.batch, shape.frames, 2, config.vae.feature_dim), (shape.batch, shape.frames)


DESCRIPTORS = (
    GraphDescriptor(TEXT_ENCODER, lambda model, scales: TextEncoderGraph(model), _text_sample, _text_shapes),
    GraphDescriptor(MODULATION, lambda model, scales: ModulationGraph(model), _modulation_sample, _modulation_shapes),
    GraphDescriptor(SAMPLER_STEP, lambda model, scales: SamplerStepGraph(model), _step_sample, _step_shapes),
    GraphDescriptor(DECODER, lambda model, scales: DecoderGraph(model, scales), _decoder_sample, _decoder_shapes),
    GraphDescriptor(ENCODER, lambda model, scales: EncoderGraph(model, scales), _encoder_sample, _encoder_shapes),
)
