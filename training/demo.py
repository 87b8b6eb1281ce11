"""Rebuild the embedded demo model: ``python -m training.demo``.

Generates the procedural dataset (if RUN_DIR/data is missing), trains the ``tiny`` VAE and
denoiser on it with the settings below, and writes the model to RUN_DIR/demo.safetensors
(atomically); nothing outside --out is touched, so an installed package never changes under
its users. Rerunning resumes each stage where it stopped. To make the result the embedded
demo that ``Generator.from_pretrained()`` loads when no path is given, copy it over
``dhvae_sdk/assets/demo.safetensors`` in a source checkout (the command prints the exact
copy); any program can also load it by path.

The weights are embedded in fp16 (10 MB). The recipe is the release's (losses, Adam and its
schedule, batch 32 / 64, posterior samples, empty-string CFG dropout) with three changes for a ~35-minute CPU rebuild: crops of
120 frames, a 10x learning rate, and latent scales estimated from the tiny VAE's posteriors
(the release's fixed 1, 1, 1/5 were chosen for its own VAE's latents).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from dhvae_sdk.checkpoint import load_checkpoint, save_checkpoint
from dhvae_sdk.runtime.selection import DEMO_CHECKPOINT
from training import main as training_main

# Crops of 120 frames keep the tiny VAE near 4 s a step on one shared core; the decoder
# still takes any length up to the preset's 300 frames.
DEMO_SETTINGS = dict(preset="tiny", max_frames=120, seed=0)
# Few steps: the tiny model learns several times faster at 1e-3 than at the release's 1e-4.
STAGE_OPTIONS = {
    "vae": ["--lr", "1e-3"],
    "denoiser": ["--lr", "1e-3", "--latent-scales", "std"],
}


def stage_argv(stage: str, run_dir: Path, data_root: Path, steps: int, threads: int, extra: list[str]) -> list[str]:
    return [
        stage, "--preset", DEMO_SETTINGS["preset"], "--dataset", "synthetic", "--data-root", str(data_root),
        "--out", str(run_dir / stage), "--steps", str(steps), "--max-frames", str(DEMO_SETTINGS["max_frames"]),
        "--seed", str(DEMO_SETTINGS["seed"]), "--threads", str(threads), "--ckpt-every", "50",
        *STAGE_OPTIONS[stage], *extra,
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="run directory")
    parser.add_argument("--vae-steps", type=int, default=300)
    parser.add_argument("--denoiser-steps", type=int, default=1200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    data_root = args.out / "data"
    training_main.main(stage_argv("vae", args.out, data_root, args.vae_steps, args.threads, []))
    vae_checkpoint = args.out / "vae" / "checkpoint.safetensors"
    training_main.main(stage_argv("denoiser", args.out, data_root, args.denoiser_steps, args.threads,
                                  ["--vae", str(vae_checkpoint)]))
    target = args.out / DEMO_CHECKPOINT
    embed_half_precision(args.out / "denoiser" / "checkpoint.safetensors", target)
    print(f"demo model written to {target}\n"
          f"try it: Generator.from_pretrained({str(target)!r})\n"
          f"embed it (source checkout): cp {target} dhvae_sdk/assets/{DEMO_CHECKPOINT}")


def embed_half_precision(checkpoint_path: Path, target: Path) -> None:
    """The trained checkpoint with fp16 weights (half the repository's bytes; loading widens
    them back to fp32), statistics and latent scales kept in fp32."""
    checkpoint = load_checkpoint(checkpoint_path)
    save_checkpoint(target, checkpoint.model.half(), feature_mean=checkpoint.feature_mean,
                    feature_std=checkpoint.feature_std, stage=checkpoint.stage,
                    latent_scales=checkpoint.latent_scales)


if __name__ == "__main__":
    main()
