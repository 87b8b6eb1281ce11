"""overlap_counts: how many voxels two bodies share, per frame, on the CPU or a CUDA GPU.

The counting itself is the compiled extension ``dhvae_sdk.physics._voxel`` (csrc/); this
module checks the input, picks the device and reshapes. With device="auto" the CUDA path runs
when the extension was built with nvcc and the CUDA runtime sees a GPU, otherwise the CPU
path (all cores). Both give identical integer counts.
"""
from __future__ import annotations

import numbers
import os

import numpy as np

from dhvae_sdk.errors import DHVAEError
from dhvae_sdk.physics.bodies import CapsuleBody, MeshBody

DEVICES = ("auto", "cpu", "cuda")
# Lattice indices are int32 in the kernels; coordinates stay far below 2^31 voxels from 0.
_MAX_COORDINATE_IN_VOXELS = 1e8


class CudaUnavailableError(DHVAEError, RuntimeError):
    """device='cuda' was requested where the CUDA path cannot run."""


def _extension():
    try:
        from dhvae_sdk.physics import _voxel
    except ImportError as error:
        raise ImportError(
            "the voxel-overlap extension dhvae_sdk.physics._voxel is not built; run `pip install -e .` "
            f"(or `python setup.py build_ext --inplace`) in the dhvae-sdk checkout ({error})"
        ) from None
    return _voxel


def cuda_status() -> dict:
    """{'built': bool, 'device_count': int, 'error': str} of the extension's CUDA path."""
    return dict(_extension().cuda_status())


def resolve_device(device: str) -> str:
    """'cpu' or 'cuda' for a requested device of DEVICES."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "cpu":
        return "cpu"
    status = cuda_status()
    if status["built"] and status["device_count"] > 0:
        return "cuda"
    if device == "auto":
        return "cpu"
    reason = (
        "the extension was built without CUDA (no nvcc at build time, or DHVAE_NO_CUDA=1)"
        if not status["built"] else f"the CUDA runtime finds no GPU ({status['error'] or 'device count 0'})"
    )
    raise CudaUnavailableError(f"device='cuda' was requested but {reason}; use device='cpu' or 'auto'")


def as_body(body, name: str = "body") -> CapsuleBody | MeshBody:
    """A CapsuleBody or MeshBody as is; a joint array [N, T, 22, 3] as a CapsuleBody."""
    if isinstance(body, (CapsuleBody, MeshBody)):
        return body
    try:
        return CapsuleBody(body)
    except ValueError as error:
        raise ValueError(f"{name}: expected a CapsuleBody, a MeshBody or joints [N, T, 22, 3]; {error}") from None


def _check_reach(points: np.ndarray, voxel: float, name: str) -> None:
    if points.size and np.abs(points).max() / voxel > _MAX_COORDINATE_IN_VOXELS:
        raise ValueError(
            f"{name} has coordinates more than {_MAX_COORDINATE_IN_VOXELS:.0e} voxels from the origin; "
            "positions must be in metres (check the units) or the voxel size is too small"
        )


def overlap_counts(body_a, body_b, voxel: float = 0.02, dilation: int = 0, device: str = "auto",
                   threads: int | None = None) -> np.ndarray:
    """Voxels inside both bodies per frame: int64 [N, T].

    The lattice has cells of ``voxel`` metres with centres at (i + 0.5) * voxel; a voxel counts
    when its centre is inside both bodies. ``dilation`` grows each body by that many voxels
    (capsule radius + dilation * voxel; a mesh gains every point within dilation * voxel of
    its surface). ``threads`` limits the CPU path (default: every core this process may use).
    """
    if not (isinstance(voxel, numbers.Real) and np.isfinite(voxel) and voxel > 0):
        raise ValueError(f"voxel must be a positive number of metres, got {voxel!r}")
    if not isinstance(dilation, (int, np.integer)) or isinstance(dilation, bool) or dilation < 0:
        raise ValueError(f"dilation must be a whole number of voxels >= 0, got {dilation!r}")
    a, b = as_body(body_a, "body_a"), as_body(body_b, "body_b")
    if a.kind != b.kind:
        raise ValueError(f"body_a is a {a.kind} body and body_b a {b.kind} body; use the same body model for both")
    if a.batch_shape != b.batch_shape:
        raise ValueError(f"body_a has [N, T] = {list(a.batch_shape)} but body_b {list(b.batch_shape)}; they must match")
    batch = a.batch_shape
    frames = batch[0] * batch[1]
    if frames == 0:
        return np.zeros(batch, dtype=np.int64)
    resolved = resolve_device(device)
    threads = threads or len(os.sched_getaffinity(0))
    extension = _extension()
    if a.kind == "capsule":
        segments_a, segments_b = a.segments(), b.segments()
        _check_reach(segments_a, voxel, "body_a")
        _check_reach(segments_b, voxel, "body_b")
        counts = extension.capsule_counts(
            segments_a.reshape(frames, -1, 2, 3), a.radii, segments_b.reshape(frames, -1, 2, 3), b.radii,
            float(voxel), int(dilation), resolved, threads,
        )
    else:
        _check_reach(a.vertices, voxel, "body_a")
        _check_reach(b.vertices, voxel, "body_b")
        counts = extension.mesh_counts(
            a.vertices.reshape(frames, -1, 3), a.faces, b.vertices.reshape(frames, -1, 3), b.faces,
            float(voxel), int(dilation), resolved, threads,
        )
    return counts.reshape(batch)
