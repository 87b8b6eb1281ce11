"""TensorRT backend: the engines ``python -m export.to_trt`` builds into ``MODEL_DIR/tensorrt/``.

Each engine keeps device buffers for its current shapes (reallocated only when a call's
shapes differ from the last call's). The null text's modulation rows are computed once per
step schedule (``NullModulation``) and kept on the device. Sampling copies the modulation
table, the scheduler coefficients and the inpainting tables into the step engine's input buffers once, then per
step writes the step number, replays the step as a CUDA graph and copies the new latents back
into the input buffer, all on one stream. One execution context per engine means calls are
serialized by a lock.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np

from dhvae_sdk.graph_contract import DECODER, ENCODER, GRAPHS, MODULATION, SAMPLER_STEP, TEXT_ENCODER
from dhvae_sdk.manifest import Manifest, ModelFormatError
from dhvae_sdk.models import GROUPS
from dhvae_sdk.runtime.base import (
    Backend, BackendUnavailableError, Inpainting, LoopPlan, NullModulation, ProgressFn, config_of, normalizer_of,
    scheduler_of,
)
from dhvae_sdk.runtime.engine import Engine, EngineTarget, import_tensorrt, metadata_path, require_cuda
from dhvae_sdk.sampling import NumpyOps

ENGINE_DIR = "tensorrt"
INT8_NOT_FOR_TENSORRT = (
    "an int8 model runs on ONNX Runtime only (its step, modulation and decoder graphs are dynamically quantized, "
    "MatMulInteger, which TensorRT cannot build); for TensorRT export fp32 or fp16 graphs "
    "(`python -m export.to_onnx CHECKPOINT --out DIR [--fp16]`) and build their engines with "
    "`python -m export.to_trt DIR`"
)


def engine_paths(model_dir: Path) -> dict[str, Path]:
    return {graph.role: Path(model_dir) / ENGINE_DIR / f"{graph.role}.plan" for graph in GRAPHS}


def unavailable_reason(manifest: Manifest) -> str | None:
    """Why the TensorRT backend cannot run this model here, or None when it can."""
    if manifest.precision == "int8":
        return INT8_NOT_FOR_TENSORRT
    try:
        trt = import_tensorrt()
        require_cuda()
    except BackendUnavailableError as error:
        return str(error)
    paths = engine_paths(manifest.directory)
    missing = [role for role, path in paths.items() if not path.is_file()]
    if missing:
        return (f"{manifest.directory / ENGINE_DIR} has no engine for {', '.join(missing)}; build them with "
                f"`python -m export.to_trt {manifest.directory}`")
    here = EngineTarget.current(trt)
    for path in paths.values():
        mismatch = Engine(path).built_for().mismatch(here)
        if mismatch:
            return f"{path} cannot run here: {mismatch}; rebuild with `python -m export.to_trt {manifest.directory}`"
    return None


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, manifest: Manifest):
        self.torch = require_cuda()
        self.manifest = manifest
        self.config = config_of(manifest)
        self.normalizer = normalizer_of(manifest)
        self.scheduler = scheduler_of(self.config)
        self.null_text = manifest.null_text_embedding.astype(np.float32)
        self.engines = {}
        for role, path in engine_paths(manifest.directory).items():
            self.engines[role] = Engine(path)
            self.engines[role].load()
        self.max_steps, self.max_batch = _profile_limits(engine_paths(manifest.directory)[SAMPLER_STEP.role])
        self.stream = self.torch.cuda.Stream()
        self._shapes: dict[str, dict] = {}
        self._lock = threading.Lock()
        # Computed under ``_lock`` (inside ``sample``); the copy outlives the engine's output buffer.
        self.null_modulation = NullModulation(lambda timesteps: self._modulation(timesteps, self.null_text[None]).clone())

    def describe(self) -> str:
        trt = import_tensorrt()
        return f"TensorRT {trt.__version__} on {self.torch.cuda.get_device_name()} ({self.manifest.precision})"

    def encode_text(self, tokens: np.ndarray) -> np.ndarray:
        with self._lock:
            return self._infer(TEXT_ENCODER, tokens.astype(np.int64)).cpu().numpy()

    def sample(self, text_embeddings: np.ndarray, num_steps: int, guidance: float, temperature: float,
               ops: NumpyOps, inpainting: Inpainting | None = None, progress: ProgressFn | None = None) -> np.ndarray:
        batch = len(text_embeddings)
        if batch > self.max_batch:
            raise ValueError(f"the TensorRT engines take at most {self.max_batch} motions per call, got {batch}")
        shape = (batch, len(GROUPS) * self.config.vae.latent_tokens, self.config.vae.width)
        plan = LoopPlan.draw(self.scheduler, shape, num_steps, temperature, ops, inpainting)
        with self._lock:
            null = self.null_modulation(plan.timesteps)
            modulation = self.torch.cat([self._modulation(plan.timesteps, text_embeddings),
                                         null.expand(-1, batch, -1, -1)], dim=1)
            inputs = (plan.initial, np.zeros(1, dtype=np.int64), modulation, plan.coefficients,
                      np.array([guidance], dtype=np.float32), plan.known_table, plan.known_mask)
            engine = self._prepare(SAMPLER_STEP, inputs)
            latents_name, step_name = SAMPLER_STEP.input_names[:2]
            latents, step = engine.tensors[latents_name], engine.tensors[step_name]
            next_latents = engine.tensors[SAMPLER_STEP.outputs[0]]
            with self.torch.cuda.stream(self.stream):
                for index in range(num_steps):
                    step.fill_(index)
                    engine.replay(self.stream)
                    latents.copy_(next_latents)
                    if progress is not None:
                        progress(index, num_steps)
                result = latents.cpu().numpy()
        return plan.finish(result, inpainting)

    def _modulation(self, timesteps: np.ndarray, conditions: np.ndarray):
        """[S, R, rows, W] on the device, in the modulation engine's output buffer."""
        return self._infer(MODULATION, timesteps, conditions.astype(np.float32))

    def decode(self, latents: np.ndarray, frames: int) -> np.ndarray:
        mask = np.ones((len(latents), frames), dtype=bool)
        with self._lock:
            return self._infer(DECODER, latents.astype(np.float32), mask).cpu().numpy()

    def encode(self, features: np.ndarray) -> np.ndarray:
        mask = np.ones(features.shape[:2], dtype=bool)
        with self._lock:
            return self._infer(ENCODER, features.astype(np.float32), mask).cpu().numpy()

    def _prepare(self, graph, inputs: tuple) -> Engine:
        """Buffers sized for ``inputs`` (in the contract's order; kept when the shapes repeat),
        filled with them."""
        engine = self.engines[graph.role]
        named = dict(zip(graph.input_names, inputs))
        shapes = {name: tuple(value.shape) for name, value in named.items()}
        if self._shapes.get(graph.role) != shapes:
            engine.allocate(shapes)
            self._shapes[graph.role] = shapes
        with self.torch.cuda.stream(self.stream):
            for name, value in named.items():
                source = value if isinstance(value, self.torch.Tensor) else self.torch.from_numpy(np.ascontiguousarray(value))
                engine.tensors[name].copy_(source, non_blocking=False)
        return engine

    def _infer(self, graph, *inputs):
        """The graph's first output, in the engine's buffer."""
        engine = self._prepare(graph, inputs)
        engine.run(self.stream)
        self.stream.synchronize()
        return engine.tensors[graph.outputs[0]]


def _profile_limits(step_engine: Path) -> tuple[int, int]:
    """(max steps, max batch) of the step engine's shape profile, from its build record."""
    try:
        profile = json.loads(metadata_path(step_engine).read_text())["profile"]
        # The largest shapes of the step table and of the latents bound the steps and the batch.
        latents_name, _, _, coefficients_name = SAMPLER_STEP.input_names[:4]
        steps, batch = profile[coefficients_name][2][0], profile[latents_name][2][0]
    except (OSError, KeyError, IndexError, TypeError, ValueError) as error:
        raise ModelFormatError(f"{metadata_path(step_engine)} lacks the shape profile ({error}); rebuild with `python -m export.to_trt MODEL_DIR`") from error
    return int(steps), int(batch)
