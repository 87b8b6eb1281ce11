"""Backends that run a model: torch (training checkpoints), ONNX Runtime and TensorRT
(exported model directories), and the choice between them. Backend modules import their
heavy libraries only when they are used."""
from dhvae_sdk.runtime.base import Backend, BackendUnavailableError, Inpainting, LoopPlan, ProgressFn
from dhvae_sdk.runtime.selection import BACKENDS, open_backend

__all__ = ["BACKENDS", "Backend", "BackendUnavailableError", "Inpainting", "LoopPlan", "ProgressFn", "open_backend"]
