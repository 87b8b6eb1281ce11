"""One TensorRT engine: built from ONNX with a shape profile and a timing cache, loaded with a
check of the GPU and TensorRT version it was built for, run on preallocated device buffers,
and optionally replayed as a CUDA graph.

TensorRT is imported only when an engine is built or loaded, so the rest of the SDK works
where it is not installed. Buffers are torch CUDA tensors and graphs are
``torch.cuda.CUDAGraph`` objects, so no other CUDA binding is needed.

Precision is the ONNX graph's own (networks are strongly typed: TensorRT 11 has no FP16
builder flag), so an fp16 engine is built from the fp16 ONNX export.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from dhvae_sdk.atomic_file import atomic_output
from dhvae_sdk.manifest import ModelFormatError
from dhvae_sdk.runtime.base import BackendUnavailableError

WORKSPACE_BYTES = 4 << 30


def import_tensorrt():
    try:
        import tensorrt
    except ImportError as error:
        raise BackendUnavailableError(
            f"TensorRT is not installed ({error}); install it with `pip install dhvae-sdk[trt]` on a "
            "machine with an NVIDIA GPU, or use backend='onnxruntime' or 'torch'"
        ) from None
    return tensorrt


def require_cuda():
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailableError(
            "no CUDA GPU is visible (TensorRT needs one); use backend='onnxruntime' or 'torch'"
        )
    return torch


@dataclass(frozen=True)
class EngineTarget:
    """The GPU model and TensorRT version an engine only works on."""

    gpu_name: str
    compute_capability: tuple[int, int]
    tensorrt_version: str

    @classmethod
    def current(cls, trt) -> "EngineTarget":
        torch = require_cuda()
        properties = torch.cuda.get_device_properties(torch.cuda.current_device())
        return cls(properties.name, (properties.major, properties.minor), trt.__version__)

    @classmethod
    def from_json(cls, raw: dict) -> "EngineTarget":
        return cls(str(raw["gpu_name"]), tuple(int(v) for v in raw["compute_capability"]), str(raw["tensorrt_version"]))

    def mismatch(self, other: "EngineTarget") -> str | None:
        """Why an engine built for ``self`` cannot run on ``other``, or None when it can."""
        if self.compute_capability != other.compute_capability or self.gpu_name != other.gpu_name:
            return (f"it was built for {self.gpu_name} (compute capability "
                    f"{'.'.join(map(str, self.compute_capability))}) and this GPU is {other.gpu_name} "
                    f"({'.'.join(map(str, other.compute_capability))})")
        if self.tensorrt_version != other.tensorrt_version:
            return (f"it was built with TensorRT {self.tensorrt_version} and this is "
                    f"TensorRT {other.tensorrt_version}")
        return None


def metadata_path(engine_path: Path) -> Path:
    return Path(engine_path).with_suffix(".json")


class Engine:
    """A serialized TensorRT engine file plus the JSON record of what it was built for."""

    def __init__(self, engine_path: Path):
        self.engine_path = Path(engine_path)
        self.engine = None
        self.context = None
        self.tensors: dict = {}
        self._graph = None

    def build(self, onnx_path: Path, profile: dict[str, tuple[tuple[int, ...], ...]],
              timing_cache: Path | None = None, workspace_bytes: int = WORKSPACE_BYTES) -> None:
        """Builds the engine for input shapes between ``profile[name] = (min, opt, max)``.

        The timing cache is read when present and written back, so rebuilding (another
        precision, another model of the same architecture) skips the kernel timing.
        """
        trt = import_tensorrt()
        target = EngineTarget.current(trt)
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(_strongly_typed_flag(trt))
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ModelFormatError(f"TensorRT cannot parse {onnx_path}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
        optimization_profile = builder.create_optimization_profile()
        for name, (minimum, optimum, maximum) in profile.items():
            optimization_profile.set_shape(name, minimum, optimum, maximum)
        config.add_optimization_profile(optimization_profile)
        cache_bytes = Path(timing_cache).read_bytes() if timing_cache and Path(timing_cache).is_file() else b""
        cache = config.create_timing_cache(cache_bytes)
        config.set_timing_cache(cache, ignore_mismatch=False)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path} (see its log above)")
        with atomic_output(self.engine_path) as temp_path:
            temp_path.write_bytes(bytes(serialized))
        record = {"target": asdict(target), "onnx": Path(onnx_path).name,
                  "profile": {name: [list(s) for s in shapes] for name, shapes in profile.items()}}
        with atomic_output(metadata_path(self.engine_path)) as temp_path:
            temp_path.write_text(json.dumps(record, indent=1))
        if timing_cache:
            with atomic_output(Path(timing_cache)) as temp_path:
                temp_path.write_bytes(bytes(config.get_timing_cache().serialize()))

    def load(self) -> None:
        """Deserializes the engine after checking it was built for this GPU and TensorRT."""
        trt = import_tensorrt()
        built_for = self.built_for()
        mismatch = built_for.mismatch(EngineTarget.current(trt))
        if mismatch:
            raise ModelFormatError(
                f"{self.engine_path} cannot run here: {mismatch}; rebuild it on this machine with "
                "`python -m export.to_trt MODEL_DIR`"
            )
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self.engine is None:
            raise ModelFormatError(f"{self.engine_path} is not a valid TensorRT engine; rebuild it with `python -m export.to_trt MODEL_DIR`")
        self.context = self.engine.create_execution_context()

    def built_for(self) -> EngineTarget:
        record_path = metadata_path(self.engine_path)
        if not self.engine_path.is_file() or not record_path.is_file():
            raise ModelFormatError(
                f"{self.engine_path} or its record {record_path.name} is missing; build the engines with "
                "`python -m export.to_trt MODEL_DIR`"
            )
        try:
            return EngineTarget.from_json(json.loads(record_path.read_text())["target"])
        except (KeyError, TypeError, ValueError) as error:
            raise ModelFormatError(f"{record_path} is malformed ({error}); rebuild the engine with `python -m export.to_trt MODEL_DIR`") from error

    def allocate(self, input_shapes: dict[str, tuple[int, ...]]) -> dict:
        """Fixes the input shapes and allocates one device tensor per input and output."""
        trt = import_tensorrt()
        torch = require_cuda()
        self._graph = None
        for name, shape in input_shapes.items():
            self.context.set_input_shape(name, tuple(shape))
        self.tensors = {}
        for index in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(index)
            is_input = self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            shape = tuple(input_shapes[name]) if is_input else tuple(self.context.get_tensor_shape(name))
            dtype = _torch_dtype(trt, torch, self.engine.get_tensor_dtype(name))
            self.tensors[name] = torch.empty(shape, dtype=dtype, device="cuda")
            self.context.set_tensor_address(name, self.tensors[name].data_ptr())
        return self.tensors

    def run(self, stream) -> None:
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError(f"TensorRT inference of {self.engine_path} failed")

    def replay(self, stream) -> None:
        """Runs the engine as a CUDA graph, captured on first use after an ordinary warm-up run."""
        torch = require_cuda()
        if self._graph is None:
            self.run(stream)
            stream.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=stream):
                self.run(stream)
            self._graph = graph
        self._graph.replay()


def _strongly_typed_flag(trt) -> int:
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    return 0 if flag is None else 1 << int(flag)


def _torch_dtype(trt, torch, trt_dtype):
    table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16,
             trt.DataType.INT32: torch.int32, trt.DataType.INT64: torch.int64, trt.DataType.BOOL: torch.bool}
    if trt_dtype not in table:
        raise ModelFormatError(f"engine tensor type {trt_dtype} is not supported; re-export the model")
    return table[trt_dtype]
