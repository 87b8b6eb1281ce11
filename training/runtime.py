"""Process-level plumbing of a training run: distributed setup, seeds, RNG state, atomic files.

Everything written here is read back with ``torch.load(weights_only=True)``, so RNG states are
stored as tensors, lists and numbers only.
"""
from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from dhvae_sdk.atomic_file import atomic_output
from dhvae_sdk.errors import DHVAEError


@dataclass(frozen=True)
class ProcessContext:
    """Where this process sits in the (possibly single-process) job."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_process() -> ProcessContext:
    """Joins the process group torchrun describes in the environment (gloo on CPU, nccl on GPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = torch.cuda.is_available()
    if world_size == 1:
        return ProcessContext(0, 1, torch.device("cuda" if use_cuda else "cpu"))
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return ProcessContext(rank, world_size, device)


def close_process(context: ProcessContext) -> None:
    if context.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(context: ProcessContext) -> None:
    if context.distributed:
        dist.barrier()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng_state() -> dict:
    """This process's python / numpy / torch (and CUDA) generator states, weights_only-safe."""
    py_version, py_key, py_gauss = random.getstate()
    np_name, np_key, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": [py_version, list(py_key), py_gauss],
        "numpy": [np_name, torch.from_numpy(np_key.astype(np.int64)), int(np_pos), int(np_has_gauss),
                  float(np_gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    py_version, py_key, py_gauss = state["python"]
    random.setstate((py_version, tuple(py_key), py_gauss))
    np_name, np_key, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np.random.set_state((np_name, np_key.numpy().astype(np.uint32), np_pos, np_has_gauss, np_gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def gather_rng_states(context: ProcessContext) -> list[dict]:
    """RNG states of every rank, in rank order (a collective call: every rank must enter)."""
    own = capture_rng_state()
    if not context.distributed:
        return [own]
    gathered: list = [None] * context.world_size
    dist.all_gather_object(gathered, own)
    return gathered


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    """Writes ``obj`` so that ``path`` always holds either the old or the new complete file,
    also across a power loss."""
    with atomic_output(path, durable=True) as temp_path:
        torch.save(obj, temp_path)


def atomic_write_json(path: str | os.PathLike, data) -> None:
    path = Path(path)
    with atomic_output(path) as temp_path:
        temp_path.write_text(json.dumps(data, indent=2) + "\n")


class TrainingStateError(DHVAEError, ValueError):
    """A training-state file that cannot be resumed from."""


def load_training_state(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several unrelated types for bad files
        raise TrainingStateError(
            f"{path} is not a readable training state ({error}); delete it (and its run directory's "
            "checkpoint) to start the run afresh, or pass a different --out"
        ) from error
