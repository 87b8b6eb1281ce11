"""The ``dhvae`` command.

    dhvae generate "two people shake hands" --seconds 6 -o out.mp4
    dhvae generate "a hug" "a high five" --num-samples 2 -o clips/motion.gif --backend onnxruntime
    dhvae info MODEL_DIR

The output's suffix picks the format: .mp4 / .gif (video), .bvh (one file per person), .npz
(joints, features, text, fps), .smplx.npz (SMPL-X fits for the Blender add-on, one file per
person, and a mesh mp4; needs --body-model). With several motions, "_<index>" goes before the suffix.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

OUTPUT_SUFFIXES = (".mp4", ".gif", ".bvh", ".npz")
SMPLX_SUFFIX = ".smplx.npz"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    from dhvae_sdk.errors import DHVAEError

    try:
        return args.run(args)
    except (DHVAEError, ValueError, OSError) as error:  # the messages name the input and the fix
        print(f"dhvae: error: {error}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dhvae", description="Text to two-person 3D motion.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    generate = commands.add_parser("generate", help="generate motions from texts")
    generate.add_argument("texts", nargs="+", help="one or more descriptions of an interaction")
    generate.add_argument("-o", "--output", type=Path, required=True, help=f"output file ({', '.join(OUTPUT_SUFFIXES)})")
    generate.add_argument("--model", help="checkpoint or exported model directory (default: the embedded demo model)")
    generate.add_argument("--backend", default="auto", help="auto, torch, onnxruntime or tensorrt")
    generate.add_argument("--device", help="cpu or cuda (default: automatic)")
    generate.add_argument("--threads", type=int, help="CPU threads (default: the CPUs this process may use that "
                          "other jobs leave idle, at most 4; OMP_NUM_THREADS when set)")
    length = generate.add_mutually_exclusive_group()
    length.add_argument("--seconds", type=float, help="length in seconds (default 7)")
    length.add_argument("--frames", type=int, help="length in frames")
    generate.add_argument("--num-samples", type=int, default=1, help="motions per text")
    generate.add_argument("--seed", type=int, help="random seed (same seed, same motion)")
    generate.add_argument("--guidance", type=float, help="classifier-free guidance scale (default: the model's)")
    generate.add_argument("--temperature", type=float,
                          help="scale of the starting noise, 0 to 2: lower follows the text more closely and varies "
                               "less (default: the model's)")
    generate.add_argument("--steps", type=int, help="DDIM steps (default: the model's)")
    generate.add_argument("--body-model", type=Path, help="SMPL-X model file or folder (for .smplx.npz output)")
    generate.set_defaults(run=_generate)

    info = commands.add_parser("info", help="describe a model directory or checkpoint")
    info.add_argument("model", type=Path)
    info.set_defaults(run=_info)
    return parser


def _generate(args) -> int:
    suffix = SMPLX_SUFFIX if args.output.name.lower().endswith(SMPLX_SUFFIX) else args.output.suffix.lower()
    if suffix == SMPLX_SUFFIX and args.body_model is None:
        raise ValueError(f"{args.output}: SMPL-X output needs the model files: pass --body-model SMPLX_DIR_OR_FILE")
    if suffix not in OUTPUT_SUFFIXES + (SMPLX_SUFFIX,):
        raise ValueError(f"{args.output}: the output must end in one of {', '.join(OUTPUT_SUFFIXES)}")
    from tqdm import tqdm

    from dhvae_sdk import Generator
    from dhvae_sdk.atomic_file import require_writable

    require_writable(args.output)  # its folder takes every output: fail before generating, not after
    generator = Generator.from_pretrained(args.model, backend=args.backend, device=args.device, threads=args.threads)
    bars = []  # opened by the first step, so that input errors print without a bar

    def progress(step: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(desc="denoising", unit="step", total=total, file=sys.stderr))
        elif step == 0:
            bars[0].reset(total=total)
        bars[0].update(1)

    try:
        motions = generator.generate(
            args.texts, seconds=args.seconds, frames=args.frames, num_samples=args.num_samples,
            seed=args.seed, guidance=args.guidance, temperature=args.temperature, steps=args.steps,
            progress=progress,
        )
    finally:
        for bar in bars:
            bar.close()
    for index, motion in enumerate(motions):
        stem = args.output.name[: -len(suffix)]
        path = args.output if len(motions) == 1 else args.output.with_name(f"{stem}_{index}{suffix}")
        written = _save(motion, path, suffix, args.body_model)
        print(f"{' + '.join(str(p) for p in written)}: {motion.text!r}, {motion.seconds:.1f} s")
    return 0


def _save(motion, path: Path, suffix: str, body_model: Path | None) -> list[Path]:
    if suffix == SMPLX_SUFFIX:
        render = path.with_name(path.name[: -len(SMPLX_SUFFIX)] + ".smplx.mp4")
        fit = motion.to_smplx(body_model, render=render)
        print(f"SMPL-X fit: mean joint error {fit.mean_error_mm:.1f} mm in {fit.seconds:.1f} s", file=sys.stderr)
        return [*fit.save(path), render]
    if suffix == ".bvh":
        return list(motion.save_bvh(path))
    if suffix == ".npz":
        return [motion.save_npz(path)]
    return [motion.render_mp4(path) if suffix == ".mp4" else motion.render_gif(path)]


def _info(args) -> int:
    from dhvae_sdk.manifest import read_manifest
    from dhvae_sdk.models.config import DHVAEConfig

    if not args.model.exists():
        raise FileNotFoundError(f"{args.model} does not exist; pass a training checkpoint (.safetensors) "
                                "or an exported model directory")
    if args.model.is_dir():
        manifest = read_manifest(args.model)
        print(f"model directory {manifest.directory}")
        print(f"  format {'.'.join(map(str, manifest.format_version))}, precision {manifest.precision}")
        _print_config(DHVAEConfig.from_dict(manifest.config))
        print("  files (SHA-256 verified):")
        for role, entry in manifest.files.items():
            print(f"    {role:13s} {entry.path:22s} {entry.bytes / 1e6:9.2f} MB")
        print("  exported with " + ", ".join(f"{k} {v}" for k, v in manifest.versions.items()))
        _print_engines(manifest)
        return 0
    from dhvae_sdk.checkpoint import read_checkpoint_config

    config, metadata = read_checkpoint_config(args.model)
    print(f"training checkpoint {args.model} (stage {metadata['stage']}, {metadata.get('created_by', '?')})")
    _print_config(config)
    print(f"  export it for ONNX Runtime with: python -m export.to_onnx {args.model} --out MODEL_DIR")
    return 0


def _print_config(config: "DHVAEConfig") -> None:
    vae, denoiser, text = config.vae, config.denoiser, config.text
    print(f"  preset {config.preset}, dataset {config.dataset}, {config.fps} fps, "
          f"up to {vae.max_frames} frames ({vae.max_frames / config.fps:.1f} s)")
    print(f"  latents 3 x {vae.latent_tokens} x {vae.width}; denoiser {denoiser.layers} layers of that "
          f"width; {denoiser.sampling_steps} DDIM steps, guidance {denoiser.guidance}, temperature "
          f"{denoiser.temperature}")
    print(f"  text encoder: {text.layers}-layer CLIP tower and {text.head_layers} head layer(s) "
          f"of width {text.width}")


def _print_engines(manifest) -> None:
    from dhvae_sdk.runtime.engine import Engine
    from dhvae_sdk.runtime.tensorrt_backend import INT8_NOT_FOR_TENSORRT, engine_paths

    if manifest.precision == "int8":
        print(f"  TensorRT: {INT8_NOT_FOR_TENSORRT}")
        return
    paths = {role: path for role, path in engine_paths(manifest.directory).items() if path.is_file()}
    if not paths:
        print("  TensorRT engines: none (build them with `python -m export.to_trt MODEL_DIR`)")
        return
    for role, path in paths.items():
        target = Engine(path).built_for()
        print(f"  TensorRT {role}: built for {target.gpu_name} (sm {'.'.join(map(str, target.compute_capability))}), "
              f"TensorRT {target.tensorrt_version}")


if __name__ == "__main__":
    sys.exit(main())
