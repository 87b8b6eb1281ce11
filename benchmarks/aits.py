"""AITS: average inference time per sentence, per backend, and how far it is from the memory floor.

    python -m benchmarks.aits --preset paper --random-init --backend all --json aits.json

One sentence, batch 1, ``--steps`` DDIM steps (50) with guidance, ``--frames`` frames (210).
AITS = sampling loop (modulation table + steps) + VAE decoding; the text encoder (the CLIP
tower and its head, run once per request on the sentence; the empty string's encoding is a
constant of the model, cached by every backend) is timed on its own. Random weights time the
same as trained ones (no layer is skipped or sparse).
ONNX Runtime runs the ``--onnx-precision`` export (default int8, the CPU deployment format of
``python -m export.to_onnx --int8``; fp32 for the full-precision graphs); TensorRT runs fp32 engines.

Memory floor: each step reads the step's weights once (the conditional and unconditional
rows share one call; the modulation heads run before the loop), so the loop cannot be faster
than steps x step-weight bytes / memory read bandwidth, with the bytes of the weights that
backend reads (fp32 parameters for torch, the sampler-step graph's initializers for ONNX).
The bandwidth is measured here by summing a buffer far larger than the caches on the cores the
backends may use (``--threads``, else all).

The text encoder's floor is the larger of its memory floor (its weights read once, less the
token-embedding table, of which only the sentence's rows are gathered) and its compute floor
(its matrix multiply FLOPs on the whole context / the measured fp32 matmul throughput): with
77 tokens per weight it is compute-bound, unlike the three-token sampling steps.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script from a source tree
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import onnx
import torch
from onnx import numpy_helper

from dhvae_sdk.checkpoint import save_checkpoint
from dhvae_sdk.graph_contract import SAMPLER_STEP, TEXT_ENCODER
from dhvae_sdk.manifest import is_model_directory, read_manifest
from dhvae_sdk.models import PRESETS, build_model, count_parameters, get_preset, token_ids
from dhvae_sdk.runtime import BackendUnavailableError
from dhvae_sdk.runtime.base import Backend
from dhvae_sdk.sampling import NumpyOps
from export.to_onnx import export_model

BACKENDS = ("torch", "onnxruntime", "tensorrt")
SENTENCE = "one person reaches out and the other shakes their hand firmly"
# Denoiser modules run before the loop (the modulation table), not read per step.
OUTSIDE_LOOP = {"time_embedding", "ada_lin", "head"}
# The text encoder's token table: a lookup reads the sentence's rows, not the table.
TOKEN_TABLE = "tower.token_embedding.weight"


def random_checkpoint(preset: str, path: Path) -> Path:
    """A checkpoint of ``preset`` whose every weight is random (zero-initialized layers too)."""
    torch.manual_seed(0)
    model = build_model(get_preset(preset))
    with torch.no_grad():
        for parameter in model.parameters():
            if not parameter.any():
                parameter.normal_(0.0, 0.02)
    feature_dim = model.config.vae.feature_dim
    save_checkpoint(path, model, feature_mean=torch.zeros(feature_dim), feature_std=torch.ones(feature_dim),
                    stage="denoiser", latent_scales=torch.ones(3))
    return path


def step_weight_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for name, p in model.denoiser.named_parameters()
               if not OUTSIDE_LOOP & set(name.split(".")))


def text_weight_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for name, p in model.text.named_parameters() if name != TOKEN_TABLE)


def text_flops(model) -> int:
    """Multiply-adds x 2 of one sentence: every matrix weight on each of the context's tokens,
    plus the attention products (scores and weighted sum) of every layer."""
    config = model.config.text
    matrices = sum(p.numel() for name, p in model.text.named_parameters()
                   if p.dim() == 2 and name not in (TOKEN_TABLE, "tower.positional_embedding"))
    attention = 2 * config.context_length ** 2 * config.width * (config.layers + config.head_layers)
    return 2 * (config.context_length * matrices + attention)


def graph_weight_bytes(path: Path) -> int:
    """Bytes of a graph's initializers, less the tables a Gather looks rows up in."""
    graph = onnx.load(str(path)).graph
    gathered = {node.input[0] for node in graph.node if node.op_type == "Gather"}
    return sum(numpy_helper.to_array(tensor).nbytes for tensor in graph.initializer if tensor.name not in gathered)


def read_bandwidth(megabytes: int = 1024) -> float:
    """Bytes per second for reading a buffer much larger than the last-level cache."""
    buffer = torch.ones(megabytes * 2 ** 20 // 4)
    buffer.sum()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        buffer.sum()
        times.append(time.perf_counter() - start)
    return buffer.numel() * 4 / min(times)


def matmul_throughput(size: int = 1536) -> float:
    """fp32 FLOP per second of a large square matrix product on torch's current threads."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    times = []
    for _ in range(5):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * size ** 3 / min(times)


def time_backend(backend: Backend, steps: int, frames: int, repeats: int) -> dict:
    tokens = token_ids([SENTENCE], backend.config.text.context_length)
    guidance, temperature = backend.config.denoiser.guidance, backend.config.denoiser.temperature

    def once() -> tuple[float, float, float]:
        start = time.perf_counter()
        embeddings = backend.encode_text(tokens)
        encoded = time.perf_counter()
        latents = backend.sample(embeddings, steps, guidance, temperature, NumpyOps.from_seed(0))
        sampled = time.perf_counter()
        backend.decode(latents, frames)
        return encoded - start, sampled - encoded, time.perf_counter() - sampled

    once()  # warm-up: lazy initialization, memory arenas
    text, loop, decode = zip(*(once() for _ in range(repeats)))
    aits = [lo + de for lo, de in zip(loop, decode)]
    return {"aits_s": statistics.median(aits), "aits_min_s": min(aits), "loop_s": statistics.median(loop),
            "decode_s": statistics.median(decode), "text_encoder_s": statistics.median(text),
            "per_step_ms": 1e3 * statistics.median(loop) / steps, "repeats": repeats, "device": backend.describe()}


def prepare_model_directory(name: str, checkpoint: Path, model_dir: Path, precision: str) -> None:
    """Exports ``model_dir`` (and for TensorRT builds its engines) unless they exist; first
    checks that TensorRT could run here at all."""
    if name == "tensorrt":
        from dhvae_sdk.runtime.engine import import_tensorrt, require_cuda

        import_tensorrt()
        require_cuda()
    if not is_model_directory(model_dir):
        print(f"exporting to {model_dir} ...", file=sys.stderr)
        export_model(checkpoint, model_dir, precision=precision)
    if name == "tensorrt":
        from dhvae_sdk.runtime.tensorrt_backend import engine_paths
        from export.to_trt import build_engines

        if not all(path.is_file() for path in engine_paths(model_dir).values()):
            print(f"building TensorRT engines in {model_dir} ...", file=sys.stderr)
            build_engines(model_dir)


def open_backend(name: str, checkpoint: Path, model_dir: Path, threads: int | None) -> Backend:
    if name == "torch":
        from dhvae_sdk.runtime.torch_backend import TorchBackend

        return TorchBackend.from_checkpoint(checkpoint, threads=threads)
    if name == "onnxruntime":
        from dhvae_sdk.runtime.onnx_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend.from_directory(model_dir, threads=threads)
    from dhvae_sdk.runtime.tensorrt_backend import TensorRTBackend, unavailable_reason

    manifest = read_manifest(model_dir)
    problem = unavailable_reason(manifest)
    if problem:
        raise BackendUnavailableError(problem)
    return TensorRTBackend(manifest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.aits", description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), help="the random model's (default: paper)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--random-init", action="store_true", help="time a randomly initialized model")
    source.add_argument("--checkpoint", type=Path, help="time this checkpoint")
    parser.add_argument("--backend", default="all", choices=("all", *BACKENDS))
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--frames", type=int, default=210)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--onnx-precision", choices=("fp32", "int8"), default="int8",
                        help="the export ONNX Runtime runs (TensorRT always builds from fp32)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch and ONNX Runtime "
                        "(default: dhvae_sdk.threads.default_threads)")
    parser.add_argument("--workdir", type=Path,
                        help="keep the checkpoint and ONNX export here (reused when present); "
                             "default: a temporary folder, removed at the end")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    if args.checkpoint and args.preset:
        parser.error("--preset applies to --random-init; a checkpoint's model is the one its config describes")
    args.preset = args.preset or "paper"
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return run(args, args.workdir)
    with tempfile.TemporaryDirectory(prefix="dhvae-aits-") as workdir:  # removed on errors too
        return run(args, Path(workdir))


def run(args: argparse.Namespace, workdir: Path) -> int:
    """Times the backends of ``args`` with the checkpoint and exports in ``workdir``."""
    checkpoint = args.checkpoint or workdir / f"{args.preset}-random.safetensors"
    if args.random_init and not checkpoint.is_file():
        random_checkpoint(args.preset, checkpoint)
    names = BACKENDS if args.backend == "all" else (args.backend,)
    precisions = {"onnxruntime": args.onnx_precision, "tensorrt": "fp32"}
    model_dirs = {name: workdir / f"{checkpoint.stem}-onnx-{precision}" for name, precision in precisions.items()}
    config = get_preset(args.preset) if args.random_init else _config_of(checkpoint)
    model = build_model(config)
    torch.set_num_threads(args.threads or os.cpu_count())  # floors: the cores the backends may use
    bandwidth, throughput = read_bandwidth(), matmul_throughput()
    results, skipped = {}, {}
    for name in names:
        try:
            if name != "torch":
                prepare_model_directory(name, checkpoint, model_dirs[name], precisions[name])
            backend = open_backend(name, checkpoint, model_dirs.get(name), args.threads)
        except BackendUnavailableError as error:
            skipped[name] = str(error).split(";")[0]
            continue
        results[name] = time_backend(backend, args.steps, args.frames, args.repeats)
        if name == "torch":
            weight_bytes, text_bytes = step_weight_bytes(model), text_weight_bytes(model)
        else:
            manifest = read_manifest(model_dirs[name])
            weight_bytes = graph_weight_bytes(manifest.file_path(SAMPLER_STEP.role))
            text_bytes = graph_weight_bytes(manifest.file_path(TEXT_ENCODER.role))
        floor = weight_bytes * args.steps / bandwidth
        text_floor = max(text_bytes / bandwidth, text_flops(model) / throughput)
        results[name].update(step_weight_bytes=weight_bytes, floor_s=floor, loop_vs_floor=results[name]["loop_s"] / floor,
                             text_weight_bytes=text_bytes, text_floor_s=text_floor,
                             text_vs_floor=results[name]["text_encoder_s"] / text_floor)
        del backend
    if "torch" in results:
        for entry in results.values():
            entry["speedup_vs_torch"] = results["torch"]["aits_s"] / entry["aits_s"]

    report = {
        "backends": results,
        "skipped": skipped,
        "params": count_parameters(model),
        "read_bandwidth_gb_s": bandwidth / 1e9,
        "matmul_gflop_s": throughput / 1e9,
        "text_gflop": text_flops(model) / 1e9,
        "setup": {"preset": config.preset, "checkpoint": None if args.random_init else str(checkpoint),
                  "steps": args.steps, "frames": args.frames, "batch": 1,
                  "threads": args.threads or "default", "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                  "machine": platform.processor() or platform.machine(), "load_average": os.getloadavg()},
    }
    _print_table(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


def _config_of(checkpoint: Path):
    from dhvae_sdk.checkpoint import read_checkpoint_config

    return read_checkpoint_config(checkpoint)[0]


def _print_table(report: dict) -> None:
    setup, params = report["setup"], report["params"]
    model = f"checkpoint {setup['checkpoint']}" if setup["checkpoint"] else "random weights"
    print(f"AITS, preset {setup['preset']} ({model}): {setup['steps']} DDIM steps, {setup['frames']} frames, batch 1, "
          f"{setup['cpus']} CPUs (torch on {setup['torch_threads']}, load average {setup['load_average'][0]:.2f}); "
          f"parameters {params['total'] / 1e6:.1f}M (denoiser {params['denoiser'] / 1e6:.1f}M, "
          f"text encoder {params['text'] / 1e6:.1f}M)")
    print(f"memory floor: MB read per step x {setup['steps']} steps / {report['read_bandwidth_gb_s']:.1f} GB/s; "
          f"text floor: max(its MB / bandwidth, {report['text_gflop']:.1f} GFLOP / {report['matmul_gflop_s']:.0f} GFLOP/s)")
    print(f"{'backend':12s} {'AITS s':>8s} {'loop s':>8s} {'decode s':>9s} {'ms/step':>8s} {'MB/step':>8s} "
          f"{'floor s':>8s} {'loop/floor':>10s} {'vs torch':>9s} {'text s':>7s} {'text floor':>10s} {'text/floor':>10s}  device")
    for name, entry in report["backends"].items():
        # Without a torch run there is nothing to compare against: a dash, not "nanx".
        speedup = f"{entry['speedup_vs_torch']:8.2f}x" if "speedup_vs_torch" in entry else f"{'-':>9s}"
        print(f"{name:12s} {entry['aits_s']:8.3f} {entry['loop_s']:8.3f} {entry['decode_s']:9.3f} "
              f"{entry['per_step_ms']:8.2f} {entry['step_weight_bytes'] / 1e6:8.1f} {entry['floor_s']:8.3f} "
              f"{entry['loop_vs_floor']:9.2f}x {speedup} "
              f"{entry['text_encoder_s']:7.3f} {entry['text_floor_s']:10.3f} {entry['text_vs_floor']:9.2f}x  {entry['device']}")
    for name, why in report["skipped"].items():
        print(f"{name:12s} skipped: {why}")


if __name__ == "__main__":
    sys.exit(main())
