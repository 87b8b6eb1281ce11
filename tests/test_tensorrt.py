"""TensorRT: engine building and the refusal of foreign engines with a fake ``tensorrt`` module
(runs everywhere), and the real backend against ONNX Runtime (GPU + TensorRT only)."""
from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from dhvae_sdk.manifest import ModelFormatError
from dhvae_sdk.runtime import engine as engine_module
from dhvae_sdk.runtime.engine import Engine, EngineTarget, metadata_path
from export.descriptors import DESCRIPTORS, MAX_BATCH, MAX_TRT_STEPS
from model_fixtures import MAX_FRAMES, TEXT_WIDTH, micro_config

REPO = Path(__file__).resolve().parent.parent


class FakeTimingCache:
    def __init__(self, data: bytes):
        self.data = data

    def serialize(self) -> bytes:
        return self.data + b"+timed"


class FakeBuilder:
    def __init__(self, log):
        self.log = log

    def create_network(self, flags):
        self.log["network_flags"] = flags
        return "network"

    def create_builder_config(self):
        log = self.log

        class Config:
            def set_memory_pool_limit(self, pool, size):
                log["workspace"] = size

            def add_optimization_profile(self, profile):
                log["profile_added"] = profile

            def create_timing_cache(self, data):
                log["cache_in"] = data
                return FakeTimingCache(data)

            def set_timing_cache(self, cache, ignore_mismatch):
                self.cache = cache

            def get_timing_cache(self):
                return self.cache

        return Config()

    def create_optimization_profile(self):
        log = self.log

        class Profile:
            def set_shape(self, name, minimum, optimum, maximum):
                log.setdefault("shapes", {})[name] = (minimum, optimum, maximum)

        return Profile()

    def build_serialized_network(self, network, config):
        return b"serialized-engine" if self.log.get("parse_ok", True) else None


def fake_tensorrt(version: str, log: dict, parse_ok: bool = True):
    log["parse_ok"] = parse_ok

    class Parser:
        num_errors = 0 if parse_ok else 1

        def __init__(self, network, logger):
            pass

        def parse_from_file(self, path):
            log["parsed"] = path
            return parse_ok

        def get_error(self, index):
            return "Unsupported operator Foo"

    class Logger:
        WARNING = 2

        def __init__(self, level):
            pass

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            log["deserialized"] = data
            return types.SimpleNamespace(create_execution_context=lambda: "context")

    return types.SimpleNamespace(
        __version__=version, Logger=Logger, Builder=lambda logger: FakeBuilder(log), OnnxParser=Parser, Runtime=Runtime,
        NetworkDefinitionCreationFlag=types.SimpleNamespace(STRONGLY_TYPED=1),
        MemoryPoolType=types.SimpleNamespace(WORKSPACE="workspace"),
    )


def fake_gpu(name: str = "NVIDIA H100 80GB HBM3", capability=(9, 0)):
    properties = types.SimpleNamespace(name=name, major=capability[0], minor=capability[1])
    cuda = types.SimpleNamespace(current_device=lambda: 0, get_device_properties=lambda index: properties)
    return types.SimpleNamespace(cuda=cuda)


@pytest.fixture
def machine(monkeypatch):
    """Installs a fake TensorRT and GPU; returns a function to change them."""
    log: dict = {}

    def install(version="10.13.0", gpu=("NVIDIA H100 80GB HBM3", (9, 0)), parse_ok=True):
        monkeypatch.setattr(engine_module, "import_tensorrt", lambda: fake_tensorrt(version, log, parse_ok))
        monkeypatch.setattr(engine_module, "require_cuda", lambda: fake_gpu(*gpu))
        return log

    return install


@pytest.mark.parametrize("descriptor", DESCRIPTORS, ids=lambda d: d.role)
def test_shape_profiles_cover_batch_1_to_32_all_frames_and_steps(descriptor):
    config = micro_config()
    profile = descriptor.trt_profile(config)
    assert set(profile) == set(descriptor.inputs)
    for name, (low, opt, high) in profile.items():
        assert len(low) == len(opt) == len(high)
        assert all(a <= b <= c for a, b, c in zip(low, opt, high)), name
    sample = dict(zip(descriptor.inputs, descriptor.sample(config, _shape(2, 17, 5))))
    for name, (low, _, high) in profile.items():
        assert all(a <= s <= c for a, s, c in zip(low, sample[name].shape, high)), (name, sample[name].shape)
    first = profile[descriptor.inputs[0]]
    if descriptor.role != "modulation":
        assert first[0][0] == 1 and first[2][0] == MAX_BATCH
    if "mask" in profile:
        assert profile["mask"][0][1] == 1 and profile["mask"][2][1] == MAX_FRAMES
    if "coefficient_table" in profile:
        assert profile["coefficient_table"][2][0] == MAX_TRT_STEPS
        assert profile["modulation_table"][2][1] == 2 * MAX_BATCH  # guidance doubles the batch


def test_profiles_give_conditions_the_text_width_and_modulations_the_latent_width():
    config = micro_config()
    profiles = {descriptor.role: descriptor.trt_profile(config) for descriptor in DESCRIPTORS}
    rows = 6 * config.denoiser.layers + 2  # six per layer, two for the head
    assert all(shape[1] == TEXT_WIDTH for shape in profiles["modulation"]["conditions"])
    assert all(shape[2:] == (rows, 64) for shape in profiles["sampler_step"]["modulation_table"])
    assert all(shape[1:] == (3, 64) for shape in profiles["decoder"]["latents"])


def _shape(batch, frames, steps):
    from export.descriptors import SampleShape

    return SampleShape(batch=batch, frames=frames, steps=steps)


def test_build_sets_the_profile_uses_the_timing_cache_and_records_the_target(machine, tmp_path):
    log = machine()
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"earlier")
    profile = DESCRIPTORS[3].trt_profile(micro_config())
    Engine(tmp_path / "decoder.plan").build(tmp_path / "decoder.onnx", profile, cache)
    assert log["parsed"] == str(tmp_path / "decoder.onnx")
    assert log["shapes"] == profile and log["network_flags"] == 2  # strongly typed
    assert log["cache_in"] == b"earlier" and cache.read_bytes() == b"earlier+timed"
    assert (tmp_path / "decoder.plan").read_bytes() == b"serialized-engine"
    record = json.loads(metadata_path(tmp_path / "decoder.plan").read_text())
    assert record["target"] == {"gpu_name": "NVIDIA H100 80GB HBM3", "compute_capability": [9, 0],
                                "tensorrt_version": "10.13.0"}
    assert record["profile"]["mask"] == [list(s) for s in profile["mask"]]


def test_a_parse_error_names_the_file_and_writes_nothing(machine, tmp_path):
    machine(parse_ok=False)
    with pytest.raises(ModelFormatError, match=r"cannot parse .*decoder.onnx: Unsupported operator Foo"):
        Engine(tmp_path / "decoder.plan").build(tmp_path / "decoder.onnx", {}, None)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("here, message", [
    (dict(gpu=("NVIDIA A100-SXM4-80GB", (8, 0))), r"built for NVIDIA H100 80GB HBM3 \(compute capability 9.0\).*A100"),
    (dict(version="10.14.1"), "built with TensorRT 10.13.0 and this is TensorRT 10.14.1"),
])
def test_engines_refuse_to_load_on_another_gpu_or_tensorrt(machine, tmp_path, here, message):
    machine()
    path = tmp_path / "sampler_step.plan"
    Engine(path).build(tmp_path / "sampler_step.onnx", {}, None)
    machine(**here)
    with pytest.raises(ModelFormatError, match=message + ".*python -m export.to_trt"):
        Engine(path).load()


def test_an_engine_for_this_machine_loads(machine, tmp_path):
    log = machine()
    path = tmp_path / "decoder.plan"
    Engine(path).build(tmp_path / "decoder.onnx", {}, None)
    engine = Engine(path)
    engine.load()
    assert log["deserialized"] == b"serialized-engine" and engine.context == "context"


def test_an_engine_without_its_record_is_refused(machine, tmp_path):
    machine()
    (tmp_path / "decoder.plan").write_bytes(b"engine")
    with pytest.raises(ModelFormatError, match="decoder.json is missing"):
        Engine(tmp_path / "decoder.plan").load()


def test_target_mismatch_is_none_for_the_same_machine():
    target = EngineTarget("NVIDIA L4", (8, 9), "10.13.0")
    assert target.mismatch(EngineTarget("NVIDIA L4", (8, 9), "10.13.0")) is None


def _tensorrt_and_gpu() -> bool:
    try:
        import tensorrt  # noqa: F401
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.skipif(_tensorrt_and_gpu(), reason="TensorRT and a GPU are present")
def test_to_trt_says_in_one_line_that_tensorrt_or_a_gpu_is_missing(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "export" / "to_trt.py"), str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("to_trt: ") and ("TensorRT" in lines[0] or "GPU" in lines[0])


@pytest.mark.gpu
@pytest.mark.tensorrt
@pytest.mark.skipif(not _tensorrt_and_gpu(), reason="needs TensorRT and a CUDA GPU")
def test_tensorrt_backend_matches_onnxruntime(tmp_path):
    from dhvae_sdk.runtime.onnx_backend import OnnxRuntimeBackend
    from dhvae_sdk.runtime.tensorrt_backend import TensorRTBackend
    from dhvae_sdk.manifest import read_manifest
    from dhvae_sdk.sampling import NumpyOps
    from export.to_onnx import export_model
    from export.to_trt import build_engines
    from model_fixtures import save_micro_checkpoint

    model_dir = tmp_path / "model"
    export_model(save_micro_checkpoint(tmp_path / "micro.safetensors"), model_dir)
    build_engines(model_dir)
    reference = OnnxRuntimeBackend.from_directory(model_dir, device="cpu")
    engines = TensorRTBackend(read_manifest(model_dir))
    text = np.random.default_rng(0).standard_normal((3, reference.config.text.width)).astype(np.float32)
    for _ in range(2):  # the second call replays the captured CUDA graph
        latents = engines.sample(text, 12, 3.0, 1.0, NumpyOps.from_seed(1))
        np.testing.assert_allclose(latents, reference.sample(text, 12, 3.0, 1.0, NumpyOps.from_seed(1)), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(engines.decode(latents, 40), reference.decode(latents, 40), atol=1e-3)
