"""ONNX Runtime backend: the graphs of an exported model directory.

Sampling computes the modulation table of all steps in one call (for the sentences; the
null text's rows come from a ``NullModulation`` cache), then runs the fused step graph once
per step through two io bindings prepared before the loop: latents ping-pong between two
buffers, the tables stay bound, and only the step number is written between steps, so the
loop allocates nothing. Bindings and buffers belong to one call, so one backend
serves many threads (``InferenceSession.run`` is thread-safe).

The CUDA execution provider is used when it really starts: ONNX Runtime silently falls back to
the CPU when CUDA libraries are missing, so the active providers are read back from the session.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from dhvae_sdk.graph_contract import DECODER, ENCODER, GRAPHS, MODULATION, SAMPLER_STEP, TEXT_ENCODER
from dhvae_sdk.manifest import Manifest, ModelFormatError, read_manifest
from dhvae_sdk.models import GROUPS
from dhvae_sdk.runtime.base import (
    Backend, BackendUnavailableError, Inpainting, LoopPlan, NullModulation, ProgressFn, config_of, normalizer_of,
    scheduler_of,
)
from dhvae_sdk.sampling import NumpyOps
from dhvae_sdk.threads import resolve_threads

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
# ONNX Runtime's CPU kernel for a residual add fused into the following LayerNorm
# (SkipLayerNormalization) is slower than the two ops it replaces: the paper preset's
# post-norm decoder took 115 ms against 130 ms with it (210 frames, one thread, interleaved
# runs); the step and the text encoder timed the same either way. CUDA keeps the fusion.
CPU_DISABLED_FUSIONS = ["SkipLayerNormFusion"]
log = logging.getLogger("dhvae")


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as error:
        raise BackendUnavailableError(
            f"ONNX Runtime is not installed ({error}); `pip install dhvae-sdk[cpu]` (or [gpu]), or use backend='torch'"
        ) from None
    return onnxruntime


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, manifest: Manifest, device: str | None = None, threads: int | None = None):
        ort = import_onnxruntime()
        self.manifest = manifest
        self.config = config_of(manifest)
        self.scheduler = scheduler_of(self.config)
        self.normalizer = normalizer_of(manifest)
        self.null_text = manifest.null_text_embedding.astype(np.float32)
        providers = _requested_providers(ort, device)
        threads = resolve_threads(threads)
        self.sessions = {}
        for graph in GRAPHS:
            options = _session_options(ort, 1 if graph is SAMPLER_STEP else threads)
            self.sessions[graph.role] = _open_session(ort, manifest.file_path(graph.role), options, providers)
            active = self.sessions[graph.role].get_providers()
            if providers[0] == CUDA and active[0] != CUDA:
                if device == "cuda":
                    raise BackendUnavailableError(
                        "ONNX Runtime lists the CUDA provider but could not start it (missing CUDA/cuDNN "
                        "libraries or no GPU); use device='cpu'"
                    )
                log.warning("ONNX Runtime's CUDA provider did not start here; using the CPU provider")
                providers = [CPU]
        self.providers = providers
        self.device_type = "cuda" if providers[0] == CUDA else "cpu"
        self._ort = ort
        self.null_modulation = NullModulation(lambda timesteps: self._modulation(timesteps, self.null_text[None]))

    @classmethod
    def from_directory(cls, directory: Path, device: str | None = None, threads: int | None = None):
        return cls(read_manifest(directory), device=device, threads=threads)

    def describe(self) -> str:
        return f"ONNX Runtime {self._ort.__version__} ({', '.join(self.providers)}, {self.manifest.precision})"

    def encode_text(self, tokens: np.ndarray) -> np.ndarray:
        return self._run(TEXT_ENCODER, tokens.astype(np.int64))

    def sample(self, text_embeddings: np.ndarray, num_steps: int, guidance: float, temperature: float,
               ops: NumpyOps, inpainting: Inpainting | None = None, progress: ProgressFn | None = None) -> np.ndarray:
        batch = len(text_embeddings)
        shape = (batch, len(GROUPS) * self.config.vae.latent_tokens, self.config.vae.width)
        plan = LoopPlan.draw(self.scheduler, shape, num_steps, temperature, ops, inpainting)
        null = self.null_modulation(plan.timesteps)
        modulation = np.concatenate([self._modulation(plan.timesteps, text_embeddings),
                                     np.broadcast_to(null, (num_steps, batch, *null.shape[2:]))], axis=1)
        session = self.sessions[SAMPLER_STEP.role]
        latents_name, step_name, *table_names = SAMPLER_STEP.input_names
        [next_name] = SAMPLER_STEP.outputs
        # On the CPU an OrtValue wraps its numpy array without owning it, and ``OrtValue.numpy()``
        # may return a view of it: ``host`` keeps every array alive until the result is copied out.
        tables = (modulation, plan.coefficients, np.array([guidance], dtype=np.float32), plan.known_table, plan.known_mask)
        host = {step_name: np.zeros(1, dtype=np.int64), **dict(zip(table_names, tables))}
        values = {name: self._ort.OrtValue.ortvalue_from_numpy(array, self.device_type, 0) for name, array in host.items()}
        latents = [np.ascontiguousarray(plan.initial), np.zeros(shape, dtype=np.float32)]
        buffers = [self._ort.OrtValue.ortvalue_from_numpy(array, self.device_type, 0) for array in latents]
        bindings = []
        for source in (0, 1):
            binding = session.io_binding()
            for name, value in values.items():
                binding.bind_ortvalue_input(name, value)
            binding.bind_ortvalue_input(latents_name, buffers[source])
            binding.bind_ortvalue_output(next_name, buffers[1 - source])
            bindings.append(binding)
        for index in range(num_steps):
            host[step_name][0] = index
            if self.device_type != "cpu":
                values[step_name].update_inplace(host[step_name])
            session.run_with_iobinding(bindings[index % 2])
            if progress is not None:
                progress(index, num_steps)
        return plan.finish(np.array(buffers[num_steps % 2].numpy(), copy=True), inpainting)

    def _modulation(self, timesteps: np.ndarray, conditions: np.ndarray) -> np.ndarray:
        return self._run(MODULATION, timesteps, conditions.astype(np.float32))

    def decode(self, latents: np.ndarray, frames: int) -> np.ndarray:
        return self._run(DECODER, latents.astype(np.float32), np.ones((len(latents), frames), dtype=bool))

    def encode(self, features: np.ndarray) -> np.ndarray:
        return self._run(ENCODER, features.astype(np.float32), np.ones(features.shape[:2], dtype=bool))

    def _run(self, graph, *inputs: np.ndarray) -> np.ndarray:
        """The graph's first output for its inputs, given in the contract's order."""
        session = self.sessions[graph.role]
        return session.run(graph.outputs[:1], dict(zip(graph.input_names, inputs)))[0]


def _session_options(ort, threads: int):
    """Workers do not spin: idle spinning workers of one session steal the cores that the next
    session's run needs. The step graph gets one thread (the caller passes 1): with three
    tokens per person its products are too small to split, it measured as fast on one thread
    as on two spinning ones (paper preset, 2.5 ms), and twice as fast when another process
    held a core (5.2 against 10.5 ms)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _requested_providers(ort, device: str | None) -> list[str]:
    if device not in (None, "auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'cpu', 'cuda' or None (automatic), got {device!r}")
    if device == "cpu":
        return [CPU]
    if CUDA in ort.get_available_providers():
        return [CUDA, CPU]
    if device == "cuda":
        raise BackendUnavailableError(
            "this ONNX Runtime build has no CUDA provider; install `dhvae-sdk[gpu]` (onnxruntime-gpu) or use device='cpu'"
        )
    return [CPU]


def _open_session(ort, path: Path, options, providers: list[str]):
    disabled = CPU_DISABLED_FUSIONS if providers == [CPU] else None
    try:
        return ort.InferenceSession(str(path), options, providers=providers, disabled_optimizers=disabled)
    except Exception as error:  # onnxruntime raises its own exception types for bad files
        raise ModelFormatError(f"{path} cannot be loaded by ONNX Runtime ({error}); re-export the model") from error
