"""Build TensorRT engines for an exported model (or export a checkpoint first).

    python -m export.to_trt MODEL_DIR|CHECKPOINT [--fp16] [--timing-cache PATH]

Engines go to MODEL_DIR/tensorrt/<graph>.plan, each with a JSON record of the GPU and the
TensorRT version it was built for (the runtime refuses to load it elsewhere). Shape profiles:
batch 1 to 32, 1 to the model's maximum frames, up to 100 steps (export/descriptors.py).
Precision is the ONNX graphs' own: --fp16 needs (or, from a checkpoint, makes) an fp16 export.
Where TensorRT or a GPU is missing the command prints one line saying so and exits with 1.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script from a source tree
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dhvae_sdk.manifest import ModelFormatError, read_manifest
from dhvae_sdk.runtime.base import BackendUnavailableError, config_of
from dhvae_sdk.runtime.engine import Engine, import_tensorrt, require_cuda
from dhvae_sdk.runtime.tensorrt_backend import ENGINE_DIR, engine_paths
from export.descriptors import DESCRIPTORS

TIMING_CACHE = "timing.cache"


def build_engines(model_dir: Path, timing_cache: Path | None = None) -> dict[str, Path]:
    """Builds one engine per graph of ``model_dir``; returns their paths."""
    manifest = read_manifest(model_dir)
    config = config_of(manifest)
    paths = engine_paths(model_dir)
    (model_dir / ENGINE_DIR).mkdir(exist_ok=True)
    cache = timing_cache or model_dir / ENGINE_DIR / TIMING_CACHE
    for descriptor in DESCRIPTORS:
        print(f"building {paths[descriptor.role]} ...", file=sys.stderr)
        Engine(paths[descriptor.role]).build(manifest.file_path(descriptor.role), descriptor.trt_profile(config), cache)
    return paths


def model_directory(source: Path, fp16: bool) -> Path:
    """``source`` itself when it is a model directory, else the export of the checkpoint next to it."""
    precision = "fp16" if fp16 else "fp32"
    if source.is_dir():
        manifest = read_manifest(source)
        if manifest.precision != precision:
            raise ModelFormatError(
                f"{source} holds {manifest.precision} graphs and engines take the graphs' precision; export a "
                f"{precision} model with `python -m export.to_onnx CHECKPOINT --out DIR{' --fp16' if fp16 else ''}`"
            )
        return source
    from export.to_onnx import export_model

    target = source.with_name(f"{source.stem}-onnx-{precision}")
    export_model(source, target, precision=precision)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.to_trt", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="exported model directory or training checkpoint")
    parser.add_argument("--fp16", action="store_true", help="build from fp16 graphs")
    parser.add_argument("--timing-cache", type=Path, help=f"default: MODEL_DIR/{ENGINE_DIR}/{TIMING_CACHE}")
    args = parser.parse_args(argv)
    try:
        import_tensorrt()
        require_cuda()
        paths = build_engines(model_directory(args.source, args.fp16), args.timing_cache)
    except (BackendUnavailableError, ValueError) as error:
        print(f"to_trt: {error}", file=sys.stderr)
        return 1
    print(f"built {len(paths)} engines in {next(iter(paths.values())).parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
