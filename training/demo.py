"""Rebuild the embedded demo model: ``python -m training.demo``.

Generates the procedural dataset (if RUN_DIR/data is missing), trains the ``tiny`` model on it
with the CPU recipe of the README's Train section, and writes the model to
RUN_DIR/demo.safetensors (atomically); nothing outside --out is touched, so an installed
package never changes under its users. Rerunning resumes each stage where it stopped, so the
rebuild (1 h 47 min on one thread, 2026-12-02) may span several sessions. To make the result the
embedded demo that ``Generator.from_pretrained()`` loads when no path is given, copy it over
``dhvae_sdk/assets/demo.safetensors`` in a source checkout (the command prints the exact
copy); any program can also load it by path.

The recipe, stage by stage (each a ``python -m training.main`` run in RUN_DIR/STAGE):
``vae``, the VAE on whole sequences (berHu reconstruction, the joint positions also in metres,
no triplet term, 4 tokens per latent group, Adam at 1e-3 on a cosine schedule); ``contact``, a
fine-tune of it with the hand-contact term on the hand ends, which brings the hands of
handshakes, high fives and passed objects together; ``denoiser``, an x0 denoiser on the fine-tuned VAE with latent scales
estimated from its posteriors. The weights are embedded in fp16 (loading widens them back
to fp32).
"""
from __future__ import annotations

import argparse
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from dhvae_sdk.checkpoint import load_checkpoint, save_checkpoint
from dhvae_sdk.runtime.selection import DEMO_CHECKPOINT
from training import main as training_main

EVERY_STAGE = ["--preset", "tiny", "--dataset", "synthetic", "--seed", "0"]
# Both VAE stages: the architecture (a fine-tune must keep it) and the optimizer settings.
VAE_OPTIONS = ("--recon-loss", "berhu", "--latent-tokens", "4", "--lr-schedule", "cosine", "--grad-clip", "1",
               "--w-tri", "0", "--w-joint-metres", "5", "--eval-samples", "64")


@dataclass(frozen=True)
class Stage:
    name: str  # the run folder under --out, and the step option --NAME-steps
    stage: str  # the training.main stage
    steps: int
    batch: int  # summed over the processes (training.main's --batch-size is per process)
    options: tuple[str, ...]
    starts_from: str | None = None  # the stage whose checkpoint this one takes as --vae


RECIPE = (
    Stage("vae", "vae", 6000, 16, (*VAE_OPTIONS, "--lr", "1e-3", "--eval-every", "500")),
    Stage("contact", "vae", 500, 16, (*VAE_OPTIONS, "--w-hand-contact", "3", "--hand-contact-points", "hand_ends",
                                      "--lr", "3e-4", "--eval-every", "125"), starts_from="vae"),
    Stage("denoiser", "denoiser", 8000, 64, ("--lr", "1e-3", "--latent-scales", "std", "--eval-every", "500"),
          starts_from="contact"),
)


def stage_argv(stage: Stage, args: argparse.Namespace) -> list[str]:
    start = ["--vae", str(args.out / stage.starts_from / "checkpoint.safetensors")] if stage.starts_from else []
    return [stage.stage, *EVERY_STAGE, "--data-root", str(args.out / "data"), "--out", str(args.out / stage.name),
            "--steps", str(getattr(args, f"{stage.name}_steps")), "--max-frames", str(args.max_frames),
            "--threads", str(args.threads), "--batch-size", str(stage.batch // args.processes), "--ckpt-every", "125",
            *stage.options, *start]


def run_stage(stage: Stage, args: argparse.Namespace) -> None:
    if args.processes == 1:
        training_main.main(stage_argv(stage, args))
        return
    # One torchrun process per core, each on a share of the batch: on the 2-core CI machine the
    # VAE stage steps 1.4x as fast as one process on one thread (2.1 against 2.9 s a step).
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                             f"--nproc_per_node={args.processes}", "-m", "training.main", *stage_argv(stage, args)])
    if result.returncode != 0:
        raise SystemExit(f"the {stage.name} stage failed (exit code {result.returncode}); its log is "
                         f"{args.out / stage.name / 'train.log'}; rerunning the same command resumes it")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="run directory")
    for stage in RECIPE:
        parser.add_argument(f"--{stage.name}-steps", type=int, default=stage.steps)
    # Whole sequences: a VAE trained on shorter crops reconstructs longer clips much worse.
    parser.add_argument("--max-frames", type=int, default=300, help="training crop length")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per process")
    parser.add_argument("--processes", type=int, default=1,
                        help="training processes (torchrun), each on a share of every stage's batch; "
                             "resume a run with the count it started with")
    args = parser.parse_args(argv)
    batches = sorted({stage.batch for stage in RECIPE})
    common = math.gcd(*batches)
    if args.processes < 1 or common % args.processes:
        divisors = [count for count in range(1, common + 1) if common % count == 0]
        parser.error(f"--processes must divide every stage's batch ({', '.join(map(str, batches))}), "
                     f"got {args.processes}; use one of {', '.join(map(str, divisors))}")
    for stage in RECIPE:
        run_stage(stage, args)
    target = args.out / DEMO_CHECKPOINT
    embed_half_precision(args.out / RECIPE[-1].name / "checkpoint.safetensors", target)
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
