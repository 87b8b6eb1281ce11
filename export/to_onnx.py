"""Export a training checkpoint to an ONNX model directory and check it against PyTorch.

    python -m export.to_onnx CHECKPOINT --out MODEL_DIR [--fp16 | --int8]

Writes one graph per ``export.descriptors.DESCRIPTORS`` entry (dynamo exporter, opset 20,
dynamic batch, frames and steps) and ``manifest.json``. Every graph is run with ONNX Runtime
on inputs of other sizes than the export's and compared with the PyTorch wrapper: the largest
difference must stay within 1e-4 (fp32) or 5e-3 (fp16, converted with keep_io_types) times
max(1, the largest |PyTorch output|). Floating-point error is relative, so outputs larger than 1
(the released text encoder's, the modulation's) get a bound of their own size.

``--int8`` is the CPU deployment format: the sampler step, which runs 50 times per sentence,
the modulation table before the loop and the decoder get int8 matrix weights (one scale per
output channel) and activations quantized to int8 as they arrive (ONNX Runtime's dynamic
quantization: DynamicQuantizeLinear and MatMulInteger, int8 products on VNNI/AMX units). On
this project's 2-core CPU (paper preset, one thread) that took a step from 2.35 to 1.55 ms,
the modulation table of 50 steps from 25 to 6 ms and the decoding of 210 frames from 54 to
29 ms; block-wise int8 weights (MatMulNBits) had been no faster than fp32 once the weights sat
in the cache. The decoder's error is new in every frame, so its output head (the weight whose
columns are the motion features) stays fp32: on the demo model, six sentences, the int8
decoder moves joints by 4.3 mm on average from PyTorch's (3.4 mm with an fp32 decoder) and
adds 2.4 mm of frame-to-frame jitter (mean velocity difference; 0.8 mm with an fp32 decoder,
3.5 mm with the head quantized too). Export in fp32 where that matters. The text encoder and
the VAE encoder stay fp32.
Quantization error scales with the outputs, so the int8 graphs are held to a relative
bound instead: the RMS of the difference at most 3% of the RMS of PyTorch's output. TensorRT
cannot build them (it takes explicit Q/DQ quantization, not MatMulInteger).

The directory is built next to MODEL_DIR and renamed into place only when every check passed; on
any failure the command names the file and the error and exits with status 1.
"""
from __future__ import annotations

import argparse
import logging
import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script from a source tree
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import onnx
import onnxruntime as ort
import torch

from dhvae_sdk.atomic_file import remove_stale_temporaries, temporary_sibling
from dhvae_sdk.checkpoint import load_checkpoint
from dhvae_sdk.errors import DHVAEError
from dhvae_sdk.graph_contract import DECODER, MODULATION, SAMPLER_STEP
from dhvae_sdk.manifest import (
    FORMAT_VERSION, Manifest, describe_file, is_model_directory, toolchain_versions, write_manifest,
)
from export.descriptors import CHECK_SHAPES, DESCRIPTORS, EXPORT_SHAPE, OPSET, GraphDescriptor

PRECISIONS = ("fp32", "fp16", "int8")
TOLERANCE = {"fp32": 1e-4, "fp16": 5e-3}
INT8_RELATIVE_RMS = 0.03
INT8_GRAPHS = (MODULATION.role, SAMPLER_STEP.role, DECODER.role)
log = logging.getLogger("dhvae.export")
# The exporter's optimizer passes log every initializer they merge and every Split they leave
# unfolded, hundreds of lines per graph; none of it is the user's concern.
logging.getLogger("onnx_ir").setLevel(logging.ERROR)
logging.getLogger("onnxscript").setLevel(logging.ERROR)  # its optimizer and rewriter both


class ExportError(DHVAEError, RuntimeError):
    """An export step or a parity check failed; the message names the file."""


@dataclass(frozen=True)
class GraphReport:
    role: str
    path: Path
    max_error: float
    relative_rms: float  # RMS of the difference / RMS of PyTorch's output
    output_scale: float  # the largest |PyTorch output| of the checks (see ``tolerance``)


def tolerance(precision: str, output_scale: float) -> float:
    """The largest difference allowed for an fp32 or fp16 graph whose outputs reach ``output_scale``."""
    return TOLERANCE[precision] * max(1.0, output_scale)


def export_model(checkpoint_path: Path, out_dir: Path, precision: str = "fp32") -> list[GraphReport]:
    """Writes the model directory ``out_dir`` atomically and returns each graph's parity error."""
    if precision not in PRECISIONS:
        raise ExportError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not is_model_directory(out_dir) and any(out_dir.iterdir()):
        raise ExportError(f"{out_dir} exists and is not a dhvae model directory; choose another --out or empty it")
    checkpoint = load_checkpoint(checkpoint_path, device="cpu")
    if checkpoint.stage != "denoiser":
        raise ExportError(
            f"{checkpoint_path} is a {checkpoint.stage!r}-stage checkpoint: its denoiser is untrained, so the "
            f"export could not generate; export the checkpoint the denoiser stage wrote "
            f"(python -m training.main denoiser --vae {checkpoint_path} ... writes RUN/checkpoint.safetensors)"
        )
    model = checkpoint.model.float().eval()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = temporary_sibling(out_dir, directory=True)
    try:
        reports = [_export_graph(descriptor, model, checkpoint.latent_scales, staging, precision)
                   for descriptor in DESCRIPTORS]
        write_manifest(Manifest(
            directory=staging,
            format_version=FORMAT_VERSION,
            precision=precision,
            config=checkpoint.config.to_dict(),
            stats={"mean": checkpoint.feature_mean.numpy(), "std": checkpoint.feature_std.numpy()},
            latent_scales=checkpoint.latent_scales.numpy(),
            null_text_embedding=_null_text_embedding(model),
            files={report.role: describe_file(staging, report.path.name) for report in reports},
            versions={**toolchain_versions(), "opset": str(OPSET), "checkpoint": Path(checkpoint_path).name},
        ))
        _move_into_place(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    remove_stale_temporaries(out_dir)  # staging folders of killed exports
    return [GraphReport(r.role, out_dir / r.path.name, r.max_error, r.relative_rms, r.output_scale) for r in reports]


def _null_text_embedding(model) -> np.ndarray:
    """The unconditional condition, the empty string's encoding [C]: a constant of the model,
    so the runtimes read it from the manifest instead of running the text encoder for it."""
    with torch.inference_mode():
        return model.null_text_embedding(1)[0].numpy()


def _export_graph(descriptor: GraphDescriptor, model, latent_scales, directory: Path, precision: str) -> GraphReport:
    if precision == "int8" and descriptor.role not in INT8_GRAPHS:
        precision = "fp32"
    path = directory / descriptor.file_name
    wrapper = descriptor.build(model, latent_scales).eval()
    sample = tuple(torch.from_numpy(array) for array in descriptor.sample(model.config, EXPORT_SHAPE))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper, sample, str(path), dynamo=True, opset_version=OPSET, external_data=False,
                input_names=list(descriptor.inputs), output_names=list(descriptor.outputs),
                dynamic_shapes=descriptor.dynamic_axes(model.config), verbose=False,
            )
        if precision == "fp16":
            from onnxruntime.transformers.float16 import convert_float_to_float16

            converted = convert_float_to_float16(onnx.load(str(path)), keep_io_types=True)
            _sort_topologically(converted.graph)
            onnx.save(converted, str(path))
        elif precision == "int8":
            heads = model.config.feature_dim if descriptor.role == DECODER.role else None
            _quantize_weights_int8(path, keep_fp32_width=heads)
        onnx.checker.check_model(str(path))
    except Exception as error:  # the exporter raises many types; all end the export the same way
        raise ExportError(f"exporting {path.name} failed: {type(error).__name__}: {error}") from error
    max_error, relative_rms, output_scale = _check_graph(descriptor, model, wrapper, path, precision)
    log.info("%s (%s): %.1f MB, max |onnxruntime - torch| = %.2e (largest |output| %.3g), relative RMS %.2e",
             path.name, precision, path.stat().st_size / 1e6, max_error, output_scale, relative_rms)
    return GraphReport(descriptor.role, path, max_error, relative_rms, output_scale)


def _quantize_weights_int8(path: Path, keep_fp32_width: int | None) -> None:
    # Importing the quantizer calls logging.basicConfig(level=INFO) on the root logger, which
    # would make every library print its INFO records (hundreds of lines, timestamped) for the
    # rest of the process, and quantizing warns on the root logger that the graph was not
    # pre-processed (the exporter's optimizer did that): the root logger stays quiet while
    # quantizing, and its state is put back as it was.
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root.handlers[:] = handlers
    root.setLevel(logging.ERROR)
    try:
        # MatMulConstBOnly: only products with a weight; attention's activation products stay fp32.
        # reduce_range (7-bit weights): x86 CPUs without VNNI (AVX2 only, e.g. AMD Zen 3) multiply
        # u8 x s8 pairs into saturating 16-bit sums, which put the micro model's modulation graph
        # 4% off (decoder 25%) on such a CPU; 7-bit weights cannot saturate there, cost ~2x the
        # rounding error on VNNI CPUs, and keep the fast u8 x s8 kernels (u8 weights do not).
        quantize_dynamic(str(path), str(path), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                         op_types_to_quantize=["MatMul", "Gemm"], extra_options={"MatMulConstBOnly": True},
                         nodes_to_exclude=_output_heads(path, keep_fp32_width) if keep_fp32_width else [])
    finally:  # a warning through logging.warning() gives a handler-less root one (basicConfig)
        root.handlers[:] = handlers
        root.setLevel(level)


def _output_heads(path: Path, width: int) -> list[str]:
    """The products whose weight has ``width`` (the motion features') columns: the decoder's output heads."""
    graph = onnx.load(str(path)).graph
    shapes = {weight.name: tuple(weight.dims) for weight in graph.initializer if len(weight.dims) == 2}
    heads = []
    for node in graph.node:
        shape = shapes.get(node.input[1]) if node.op_type in ("MatMul", "Gemm") else None
        transposed = any(a.name == "transB" and a.i for a in node.attribute)
        if shape and shape[0 if transposed else 1] == width:
            heads.append(node.name)
    return heads


def _sort_topologically(graph: onnx.GraphProto) -> None:
    """Reorders the nodes so that each comes after its inputs' producers (the fp16 converter
    appends its input casts at the end, which the ONNX checker rejects)."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [node for node in pending if all(name in available for name in node.input)]
        if not ready:
            raise ExportError(f"graph {graph.name} has a cycle or an undefined input")
        for node in ready:
            available.update(node.output)
        ordered.extend(ready)
        placed = {id(node) for node in ready}
        pending = [node for node in pending if id(node) not in placed]
    graph.ClearField("node")
    graph.node.extend(ordered)


def _check_graph(descriptor: GraphDescriptor, model, wrapper, path: Path, precision: str) -> tuple[float, float, float]:
    """(largest difference, largest relative RMS, largest |PyTorch output|) over the check shapes."""
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:
        raise ExportError(f"onnxruntime cannot load {path.name}: {error}") from error
    worst, worst_relative, largest = 0.0, 0.0, 0.0
    for shape in CHECK_SHAPES:
        inputs = descriptor.sample(model.config, shape)
        with torch.inference_mode():
            expected = wrapper(*(torch.from_numpy(array) for array in inputs))
        expected = (expected,) if isinstance(expected, torch.Tensor) else expected
        outputs = session.run(list(descriptor.outputs), dict(zip(descriptor.inputs, inputs)))
        for name, actual, reference in zip(descriptor.outputs, outputs, expected):
            error, relative, scale = _compare(path.name, f"output {name!r} at {shape}", actual, reference.numpy(), precision)
            worst, worst_relative, largest = max(worst, error), max(worst_relative, relative), max(largest, scale)
    return worst, worst_relative, largest


def _compare(file: str, where: str, actual: np.ndarray, expected: np.ndarray,
             precision: str) -> tuple[float, float, float]:
    """(largest difference, relative RMS, largest |expected|) of one output, or an ExportError."""
    if actual.shape != expected.shape:
        raise ExportError(f"{file} returns shape {actual.shape} for {where}, PyTorch {expected.shape}")
    if not actual.size:
        return 0.0, 0.0, 0.0
    difference = actual - expected
    error, scale = float(np.max(np.abs(difference))), float(np.max(np.abs(expected)))
    relative = float(np.sqrt(np.mean(difference ** 2) / max(np.mean(expected ** 2), 1e-30)))
    if precision == "int8":
        if not relative <= INT8_RELATIVE_RMS:
            raise ExportError(
                f"{file} differs from PyTorch by a relative RMS of {relative:.3e} in {where}, more than "
                f"the int8 bound {INT8_RELATIVE_RMS}; export it in fp32"
            )
    elif not error <= tolerance(precision, scale):
        raise ExportError(
            f"{file} differs from PyTorch by {error:.3e} in {where}, more than the {precision} "
            f"tolerance {TOLERANCE[precision]:.0e} x max(1, largest |output| {scale:.3g})"
        )
    return error, relative, scale


def _move_into_place(staging: Path, out_dir: Path) -> None:
    """Renames the finished directory to ``out_dir``, replacing an older export there."""
    if not out_dir.exists():
        staging.rename(out_dir)
        return
    retired = temporary_sibling(out_dir, directory=True)
    out_dir.rename(retired / out_dir.name)
    staging.rename(out_dir)
    shutil.rmtree(retired, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.to_onnx", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="training checkpoint (.safetensors)")
    parser.add_argument("--out", type=Path, required=True, help="model directory to write")
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--fp16", action="store_true", help="fp16 weights and compute, fp32 inputs and outputs")
    precision.add_argument("--int8", action="store_true",
                           help="int8 weights and products in the sampler step, the modulation table and the decoder "
                                "(fast on CPUs; not for TensorRT)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)  # our per-graph report; the exporter's own chatter stays below WARNING
    try:
        reports = export_model(args.checkpoint, args.out, precision="fp16" if args.fp16 else "int8" if args.int8 else "fp32")
    except DHVAEError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    worst = max(report.max_error for report in reports)
    print(f"wrote {args.out} ({len(reports)} graphs, largest difference from PyTorch {worst:.2e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
