"""python -m export.to_onnx: graphs, manifest, parity with PyTorch, loud failures, atomic output."""
from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from dhvae_sdk.checkpoint import load_checkpoint
from dhvae_sdk.graph_contract import ROLES
from dhvae_sdk.manifest import FORMAT_VERSION, read_manifest
from dhvae_sdk.models import DHVAEConfig, empty_text_tokens
from dhvae_sdk.runtime.onnx_backend import OnnxRuntimeBackend
from dhvae_sdk.runtime.torch_backend import TorchBackend
from dhvae_sdk.sampling import NumpyOps
from export import to_onnx
from export.descriptors import DESCRIPTORS
from model_fixtures import TEXT_WIDTH

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def checkpoint(micro_checkpoint):
    return micro_checkpoint


@pytest.fixture(scope="module")
def exported(micro_export):
    return micro_export


@pytest.fixture(scope="module")
def exported_fp16(checkpoint, tmp_path_factory):
    directory = tmp_path_factory.mktemp("fp16") / "model"
    return directory, to_onnx.export_model(checkpoint, directory, precision="fp16")


@pytest.fixture(scope="module")
def exported_int8(checkpoint, tmp_path_factory):
    directory = tmp_path_factory.mktemp("int8") / "model"
    return directory, to_onnx.export_model(checkpoint, directory, precision="int8")


def test_every_graph_matches_pytorch_within_fp32_tolerance(exported):
    directory, reports = exported
    assert [r.role for r in reports] == list(ROLES)
    for report in reports:
        assert report.path.parent == directory and report.path.is_file()
        assert 0.0 < report.max_error <= to_onnx.tolerance("fp32", report.output_scale), report
        assert report.relative_rms < 1e-5, report
        assert report.output_scale > 0.1, report  # the check compared real outputs, not zeros


def test_graph_shapes_follow_the_text_and_latent_widths(checkpoint, exported):
    """Conditions have the text width (48), latents and modulation rows the latent width (64)."""
    directory, _ = exported
    graphs = OnnxRuntimeBackend.from_directory(directory)
    tokens = empty_text_tokens(2).numpy()
    assert graphs.encode_text(tokens).shape == (2, TEXT_WIDTH)
    conditions = np.zeros((4, TEXT_WIDTH), dtype=np.float32)
    table = graphs.sessions["modulation"].run(None, {"timesteps": np.array([981, 1]), "conditions": conditions})[0]
    layers = load_checkpoint(checkpoint).config.denoiser.layers
    assert table.shape == (2, 4, 6 * layers + 2, 64)


def test_fp16_graphs_store_fp16_weights_keep_fp32_io_and_stay_within_tolerance(exported_fp16):
    directory, reports = exported_fp16
    assert read_manifest(directory).precision == "fp16"
    for report in reports:
        assert 0.0 < report.max_error <= to_onnx.tolerance("fp16", report.output_scale), report
        assert report.relative_rms < 5e-3, report
        graph = onnx.load(str(report.path)).graph
        floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
        weights = [w for w in graph.initializer if np.prod(w.dims) >= 1024 and w.data_type in floats]
        assert weights and all(w.data_type == onnx.TensorProto.FLOAT16 for w in weights), report.path.name
        assert all(i.type.tensor_type.elem_type != onnx.TensorProto.FLOAT16 for i in graph.input)
        assert all(o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for o in graph.output)


def test_int8_quantizes_the_modulation_step_and_decoder_weights_and_keeps_the_other_graphs_fp32(
        checkpoint, exported, exported_int8):
    directory, reports = exported_int8
    fp32_sizes = {report.role: report.path.stat().st_size for report in exported[1]}
    assert read_manifest(directory).precision == "int8"
    assert set(to_onnx.INT8_GRAPHS) == {"modulation", "sampler_step", "decoder"}
    for report in reports:
        graph = onnx.load(str(report.path)).graph
        ops = {node.op_type for node in graph.node}
        if report.role == "decoder":
            # The output heads (one per person) keep fp32 weights: their error would be new in every frame.
            weights = {w.name: tuple(w.dims) for w in graph.initializer if w.data_type == onnx.TensorProto.FLOAT}
            feature_dim = load_checkpoint(checkpoint).config.feature_dim
            heads = [n for n in graph.node if n.op_type == "MatMul" and weights.get(n.input[1], (0, 0))[1] == feature_dim]
            assert len(heads) == 2, [n.name for n in heads]
        if report.role in to_onnx.INT8_GRAPHS:
            assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops, report.role
            # 7-bit weights, so that CPUs without VNNI cannot saturate their 16-bit u8 x s8 sums.
            quantized = [onnx.numpy_helper.to_array(w) for w in graph.initializer
                         if w.data_type == onnx.TensorProto.INT8]
            assert quantized and max(int(abs(w.astype(int)).max()) for w in quantized) == 64, report.role
            # Matmul weights take 8 bits plus a scale per output channel; tables and norms stay fp32.
            assert report.path.stat().st_size < 0.6 * fp32_sizes[report.role], report.role
            assert 1e-4 < report.max_error and 1e-4 < report.relative_rms <= to_onnx.INT8_RELATIVE_RMS, report
        else:
            assert "MatMulInteger" not in ops and report.max_error <= to_onnx.tolerance("fp32", report.output_scale), report


def test_int8_sampling_and_decoding_stay_close_to_pytorch(checkpoint, exported_int8):
    reference = TorchBackend.from_checkpoint(checkpoint, "cpu")
    graphs = OnnxRuntimeBackend.from_directory(exported_int8[0])
    text = np.random.default_rng(1).standard_normal((4, reference.config.text.width)).astype(np.float32)
    expected = reference.decode(reference.sample(text, 20, 3.5, 1.0, NumpyOps.from_seed(2)), 60)
    actual = graphs.decode(graphs.sample(text, 20, 3.5, 1.0, NumpyOps.from_seed(2)), 60)
    # 20 int8 steps and an int8 decoder: the end-to-end error stays within the per-graph bound.
    relative_rms = np.sqrt(np.mean((actual - expected) ** 2) / np.mean(expected ** 2))
    largest = np.abs(actual - expected).max() / np.abs(expected).max()
    assert relative_rms <= to_onnx.INT8_RELATIVE_RMS and largest < 0.25, (relative_rms, largest)


def test_tensorrt_refuses_an_int8_directory_and_names_the_fix(exported_int8):
    from dhvae_sdk.manifest import ModelFormatError
    from export.to_trt import model_directory

    with pytest.raises(ModelFormatError, match=r"holds int8 graphs.*export a fp32 model"):
        model_directory(exported_int8[0], fp16=False)


def test_an_int8_directory_runs_on_onnxruntime_and_says_why_not_tensorrt(exported_int8):
    from dhvae_sdk.runtime import BackendUnavailableError, open_backend

    backend, reason = open_backend(exported_int8[0])
    assert backend.name == "onnxruntime"
    assert reason.startswith("TensorRT is not used: an int8 model runs on ONNX Runtime only"), reason
    with pytest.raises(BackendUnavailableError, match=r"int8 .* export fp32 or fp16 graphs"):
        open_backend(exported_int8[0], backend="tensorrt")


def test_graphs_use_opset_18_or_newer_with_dynamic_batch_and_length(exported):
    directory, _ = exported
    for descriptor in DESCRIPTORS:
        model = onnx.load(str(directory / descriptor.file_name), load_external_data=False)
        assert [i.name for i in model.graph.input] == list(descriptor.inputs)
        assert [o.name for o in model.graph.output] == list(descriptor.outputs)
        assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 18
        first_input = model.graph.input[0].type.tensor_type.shape.dim
        symbolic = [d.dim_param for d in first_input if d.dim_param]
        assert symbolic, f"{descriptor.file_name}: the first input has no dynamic axis"
    decoder_mask = onnx.load(str(directory / "decoder.onnx")).graph.input[1].type.tensor_type.shape.dim
    assert all(d.dim_param for d in decoder_mask)  # batch and frames


def test_manifest_records_config_statistics_versions_and_hashes(checkpoint, exported):
    directory, _ = exported
    manifest = read_manifest(directory)
    source = load_checkpoint(checkpoint)
    assert manifest.format_version == FORMAT_VERSION
    assert DHVAEConfig.from_dict(manifest.config) == source.config
    np.testing.assert_array_equal(manifest.stats["mean"], source.feature_mean.numpy())
    np.testing.assert_array_equal(manifest.stats["std"], source.feature_std.numpy())
    np.testing.assert_array_equal(manifest.latent_scales, source.latent_scales.numpy())
    with torch.inference_mode():
        empty = source.model.text(empty_text_tokens(1)).numpy()[0]
    assert manifest.null_text_embedding.shape == (TEXT_WIDTH,) and np.abs(empty).max() > 0.1
    np.testing.assert_allclose(manifest.null_text_embedding, empty, atol=1e-6)  # the empty string's encoding
    assert {"torch", "onnx", "onnxruntime", "opset"} <= set(manifest.versions)
    assert set(manifest.files) == set(ROLES)
    assert all(len(entry.sha256) == 64 for entry in manifest.files.values())
    assert sorted(p.name for p in directory.iterdir()) == sorted([*(d.file_name for d in DESCRIPTORS), "manifest.json"])


def test_exported_model_runs_at_shapes_never_seen_in_export_and_any_temperature(checkpoint, exported):
    directory, _ = exported
    reference, graphs = TorchBackend.from_checkpoint(checkpoint, "cpu"), OnnxRuntimeBackend.from_directory(directory)
    latents = np.random.default_rng(0).standard_normal((5, 3, reference.config.vae.width)).astype(np.float32)
    np.testing.assert_allclose(graphs.decode(latents, 77), reference.decode(latents, 77), atol=1e-4)
    text = np.random.default_rng(1).standard_normal((5, reference.config.text.width)).astype(np.float32)
    np.testing.assert_allclose(graphs.sample(text, 9, 3.0, 0.6, NumpyOps.from_seed(2)),
                               reference.sample(text, 9, 3.0, 0.6, NumpyOps.from_seed(2)), rtol=1e-4, atol=1e-4)


def test_a_parity_failure_fails_loudly_and_leaves_no_directory(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setitem(to_onnx.TOLERANCE, "fp32", 0.0)
    monkeypatch.setattr(to_onnx, "DESCRIPTORS", DESCRIPTORS[3:4])  # the decoder alone keeps this fast
    with pytest.raises(to_onnx.ExportError, match=r"decoder.onnx differs from PyTorch by .* tolerance"):
        to_onnx.export_model(checkpoint, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_an_int8_graph_beyond_its_relative_bound_fails_loudly(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(to_onnx, "INT8_RELATIVE_RMS", 1e-6)
    monkeypatch.setattr(to_onnx, "DESCRIPTORS", DESCRIPTORS[2:3])  # the sampler step alone
    with pytest.raises(to_onnx.ExportError, match=r"sampler_step.onnx differs from PyTorch by a relative RMS .* export it in fp32"):
        to_onnx.export_model(checkpoint, tmp_path / "out", precision="int8")
    assert list(tmp_path.iterdir()) == []


def test_command_line_reports_a_bad_checkpoint_and_exits_nonzero(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint at all")
    result = subprocess.run([sys.executable, str(REPO / "export" / "to_onnx.py"), str(bad), "--out", str(tmp_path / "m")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "bad.safetensors" in result.stderr and result.stderr.startswith("error:")
    assert not (tmp_path / "m").exists()


QUANTIZE_QUIETLY = """
import logging, sys
import numpy as np
import onnx
from onnx import helper, numpy_helper
from export.to_onnx import _quantize_weights_int8

rng = np.random.default_rng(0)
weight = numpy_helper.from_array(rng.standard_normal((64, 64)).astype(np.float32), "w")
head = numpy_helper.from_array(rng.standard_normal((64, 262)).astype(np.float32), "head")
graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], "hidden"),
                           helper.make_node("MatMul", ["y", "head"], ["z"], "out")],
                          "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 64])],
                          [helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, [1, 262])], [weight, head])
onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), sys.argv[1])
_quantize_weights_int8(sys.argv[1], keep_fp32_width=262)
nodes = onnx.load(sys.argv[1]).graph.node
assert "MatMulInteger" in {node.op_type for node in nodes}
assert [list(node.input) for node in nodes if node.op_type == "MatMul"] == [["y", "head"]], nodes
logging.getLogger("some.library").info("an INFO record nobody asked to see")
print(logging.getLogger().level, len(logging.getLogger().handlers))
"""


def test_int8_quantization_keeps_output_heads_fp32_and_leaves_the_callers_logging_alone(tmp_path):
    """A product with the motion features' width stays fp32. ONNX Runtime's quantizer configures the
    root logger at INFO when imported; a program that exports (the AITS benchmark) would then print
    every library's INFO records."""
    result = subprocess.run([sys.executable, "-c", QUANTIZE_QUIETLY, str(tmp_path / "m.onnx")], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(logging.WARNING), "0"] and "INFO" not in result.stderr, result.stderr


def test_the_module_form_is_the_documented_command():
    result = subprocess.run([sys.executable, "-m", "export.to_onnx", "--help"], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m export.to_onnx") and "--int8" in result.stdout


def test_refuses_to_overwrite_a_directory_that_is_not_a_model(checkpoint, tmp_path):
    (tmp_path / "keep.txt").write_text("user data")
    with pytest.raises(to_onnx.ExportError, match="not a dhvae model directory"):
        to_onnx.export_model(checkpoint, tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "user data"


def test_re_export_replaces_an_older_model_directory(checkpoint, exported, tmp_path, monkeypatch):
    directory, _ = exported
    target = tmp_path / "model"
    shutil.copytree(directory, target)
    (target / "stale.onnx").write_bytes(b"old")
    monkeypatch.setattr(to_onnx, "DESCRIPTORS", DESCRIPTORS[:1])
    to_onnx.export_model(checkpoint, target)
    assert not (target / "stale.onnx").exists()
    assert set(read_manifest(target).files) == {"text_encoder"}
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # nothing left behind


def test_text_encoder_matches_torch_on_real_tokens(checkpoint, exported):
    directory, _ = exported
    reference, graphs = TorchBackend.from_checkpoint(checkpoint, "cpu"), OnnxRuntimeBackend.from_directory(directory)
    tokens = torch.zeros(3, 77, dtype=torch.long)
    tokens[:, 0], tokens[:, 1:4], tokens[:, 4] = 49406, torch.tensor([320, 1125, 2368]), 49407
    np.testing.assert_allclose(graphs.encode_text(tokens.numpy()), reference.encode_text(tokens.numpy()), atol=1e-5)
