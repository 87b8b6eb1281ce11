"""Which backend runs a model: from what the path is and what this machine has.

A training checkpoint (.safetensors, or a released .ckpt) runs on torch. An exported model directory runs on
TensorRT when TensorRT, a GPU and engines built for both are present, else on ONNX Runtime
(its CUDA provider when it really starts). No path means the embedded demo model.
"""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from dhvae_sdk.manifest import ModelFormatError, is_model_directory, read_manifest
from dhvae_sdk.runtime.base import Backend, BackendUnavailableError

BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt")
DEMO_CHECKPOINT = "demo.safetensors"
DEMO_MODEL_DIR = "demo_onnx"
# The lead's README section holds the one command that trains, exports and copies the demo.
DEMO_REBUILD = "README.md, section 'Embedded demo model'"


def assets_directory() -> Path:
    return Path(str(resources.files("dhvae_sdk") / "assets"))


def demo_path(backend: str) -> Path:
    """The embedded demo model for ``backend``: its ONNX export, or its checkpoint for torch.
    A demo left in an older format is refused here, with the rebuild to run, rather than
    failing later inside a backend."""
    assets = assets_directory()
    exported, checkpoint = assets / DEMO_MODEL_DIR, assets / DEMO_CHECKPOINT
    if backend != "torch" and is_model_directory(exported):
        _require_current_demo(exported, lambda: read_manifest(exported, verify_files=False))
        return exported
    if backend in ("torch", "auto") and checkpoint.is_file():
        from dhvae_sdk.checkpoint import read_checkpoint_config  # imports torch: only when it is needed

        _require_current_demo(checkpoint, lambda: read_checkpoint_config(checkpoint))
        return checkpoint
    if checkpoint.is_file() or is_model_directory(exported):
        present, runs_on = (checkpoint, "torch") if checkpoint.is_file() else (exported, "onnxruntime")
        raise ModelFormatError(
            f"the embedded demo model is installed as {present}, which the {backend} backend cannot run; use "
            f"backend {runs_on!r} or 'auto', or pass the path of a model made for {backend}"
        )
    raise ModelFormatError(
        f"the embedded demo model is missing from {assets} (looked for {DEMO_MODEL_DIR}/ and {DEMO_CHECKPOINT}); "
        f"rebuild it as {DEMO_REBUILD} describes, or pass the path of a checkpoint or exported model directory"
    )


def _require_current_demo(path: Path, read) -> None:
    """``read()`` (which validates the format) must succeed, else the demo is outdated or damaged."""
    try:
        read()
    except ValueError as error:  # CheckpointError and ModelFormatError are both ValueErrors
        raise ModelFormatError(
            f"the embedded demo model {path} cannot be used by this dhvae-sdk (outdated or damaged: {error}); "
            f"rebuild it as {DEMO_REBUILD} describes, or pass the path of a checkpoint or exported model directory"
        ) from None


def open_backend(path: str | os.PathLike | None, backend: str = "auto", device: str | None = None,
                 threads: int | None = None) -> tuple[Backend, str]:
    """The backend that runs ``path`` and one sentence on why it was chosen. ``threads``: CPU
    threads of torch or ONNX Runtime (None: ``dhvae_sdk.threads.default_threads()``)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    path = demo_path(backend) if path is None else Path(path)
    if path.is_dir():
        return _open_model_directory(path, backend, device, threads)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; pass a training checkpoint (.safetensors or a released .ckpt) or an exported model directory")
    if backend in ("onnxruntime", "tensorrt"):
        raise ModelFormatError(
            f"{path} is a training checkpoint and the {backend} backend runs exported models: run "
            f"`python -m export.to_onnx {path} --out MODEL_DIR`{' and `python -m export.to_trt MODEL_DIR`' if backend == 'tensorrt' else ''} "
            "and pass MODEL_DIR, or use backend='torch'"
        )
    from dhvae_sdk.runtime.torch_backend import TorchBackend

    reason = "requested" if backend == "torch" else "a training checkpoint runs on PyTorch (export it with `python -m export.to_onnx` for ONNX Runtime)"
    return TorchBackend.from_checkpoint(path, device, threads), reason


def _open_model_directory(path: Path, backend: str, device: str | None,
                          threads: int | None) -> tuple[Backend, str]:
    manifest = read_manifest(path)
    if backend == "torch":
        raise ModelFormatError(
            f"{path} is an exported model directory and the torch backend runs training checkpoints; "
            "pass the .safetensors checkpoint it was exported from, or use backend='onnxruntime'"
        )
    trt_problem = None
    if backend in ("auto", "tensorrt") and device != "cpu":
        from dhvae_sdk.runtime.tensorrt_backend import TensorRTBackend, unavailable_reason

        trt_problem = unavailable_reason(manifest)
        if trt_problem is None:
            return TensorRTBackend(manifest), "a GPU, TensorRT and engines built for them are present"
        if backend == "tensorrt":
            raise BackendUnavailableError(trt_problem)
    from dhvae_sdk.runtime.onnx_backend import OnnxRuntimeBackend

    chosen = OnnxRuntimeBackend(manifest, device=device, threads=threads)
    if backend == "onnxruntime":
        return chosen, "requested"
    if trt_problem is None:
        return chosen, "the CPU was requested"
    return chosen, "TensorRT is not used: " + trt_problem.split(";")[0]
