"""Session-wide fixtures: the micro model's checkpoint and fp32 export, made once per session,
and one trace per distinct graph.

``torch.onnx.export`` traces a graph for tens of seconds on a 2-core CPU, and most exports of a
session trace a wrapper that an earlier export already traced: the fp16 and int8 exports and
the failure tests' partial exports all start from the fp32 export's graphs. ``traced_once``
keeps each traced file under a key of everything the trace depends on (the wrapper's class,
the submodules, parameters and buffers its forward pass uses, the sample inputs and the export
options) and copies it on a repeat; the conversions, quantization and parity checks of every
export still run. The store lives beside the session's temporary folders, under a lock per
key, so that pytest-xdist workers share it too.

Scheduling (pytest-xdist ``--dist loadgroup``): tests that share an expensive module fixture
name a group (``xdist_group``), so that one worker makes the fixture once; every other test is
handed out on its own. Grouping whole modules was measured slower (5:48 against 4:34): a few
large groups leave one worker idle at the end. Groups holding a slow test are queued first:
the workers start on the long ones and the short tests, handed out one at a time, even out
the end.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
import torch
from filelock import FileLock
from torch.nn.modules.module import register_module_forward_hook
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from export.to_onnx import export_model
from model_fixtures import save_micro_checkpoint


def pytest_configure(config):
    # A pytest-xdist worker per core: threads of their own on every core would make the two
    # workers (and the programs they start) fight over both.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


def pytest_collection_modifyitems(items):
    def group(item):
        marker = item.get_closest_marker("xdist_group")
        return marker.args[0] if marker else item.nodeid

    slow_groups = {group(item) for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: group(item) not in slow_groups)


class _TensorsRead(TorchFunctionMode):
    """Records the id of every tensor a torch function or tensor method is given."""

    def __init__(self):
        super().__init__()
        self.ids: set[int] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.ids.update(id(leaf) for leaf in tree_leaves((args, kwargs)) if isinstance(leaf, torch.Tensor))
        return func(*args, **kwargs)


def _trace_key(module: torch.nn.Module, args: tuple, options: dict) -> str:
    """A hash of what the trace depends on, found by running ``module`` once: the submodules
    that ran (name, type, settings), the parameters and buffers read, the sample inputs and
    the export options. A trace keeps only what the forward pass reads, so the encoder graphs
    of two VAEs that differ only in their decoders are one trace."""
    ran, read = [], _TensorsRead()
    hook = register_module_forward_hook(lambda submodule, inputs, output: ran.append(submodule))
    try:
        with torch.no_grad(), read:
            module(*args)
    finally:
        hook.remove()
    names = {id(submodule): name for name, submodule in module.named_modules()}
    digest = hashlib.sha256(f"{type(module).__qualname__}\n{sorted(options.items())!r}".encode())
    for submodule in dict.fromkeys(ran):
        digest.update(f"{names[id(submodule)]} {type(submodule).__qualname__} {submodule.extra_repr()}\n".encode())
    state = [(name, tensor) for name, tensor in [*module.named_parameters(), *module.named_buffers()]
             if id(tensor) in read.ids]
    for name, tensor in [*state, *enumerate(args)]:
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name} {tensor.dtype} {tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@pytest.fixture(scope="session", autouse=True)
def traced_once(tmp_path_factory):
    """Memoizes ``torch.onnx.export`` (called with the output path third) for the session."""
    base = tmp_path_factory.getbasetemp()
    store = (base.parent if base.name.startswith("popen-gw") else base) / "traced-graphs"
    store.mkdir(exist_ok=True)
    trace = torch.onnx.export

    def export(module, args, path, **options):
        key = _trace_key(module, args, options)
        kept = store / f"{key}.onnx"
        with FileLock(str(kept) + ".lock"):
            if kept.is_file():
                shutil.copyfile(kept, path)
            else:
                trace(module, args, path, **options)
                shutil.copyfile(path, kept)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.onnx, "export", export)
        yield


@pytest.fixture(scope="session")
def micro_checkpoint(tmp_path_factory) -> Path:
    return save_micro_checkpoint(tmp_path_factory.mktemp("micro") / "micro.safetensors", seed=1)


@pytest.fixture(scope="session")
def micro_export(micro_checkpoint, tmp_path_factory):
    """The micro checkpoint's fp32 model directory and its parity reports; tests only read it."""
    directory = tmp_path_factory.mktemp("micro-fp32") / "model"
    return directory, export_model(micro_checkpoint, directory)
