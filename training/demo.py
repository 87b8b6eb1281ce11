"""Rebuild the embedded demo model: ``python -m training.demo``.

Generates the procedural dataset (if RUN_DIR/data is missing), trains the ``tiny`` model on it
with the CPU recipe of ``training.recipe`` (the README's Train section), and writes the model
to RUN_DIR/demo.safetensors (atomically); nothing outside --out is touched, so an installed
package never changes under its users. Rerunning resumes each stage where it stopped. To make
the result the embedded demo that ``Generator.from_pretrained()`` loads when no path is given,
copy it over ``dhvae_sdk/assets/demo.safetensors`` in a source checkout (the command prints
the exact copy); any program can also load it by path. The weights are embedded in fp16
(loading widens them back to fp32).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from dhvae_sdk.checkpoint import load_checkpoint, save_checkpoint
from dhvae_sdk.runtime.selection import DEMO_CHECKPOINT
from training.recipe import add_recipe_arguments, recipe_run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="run directory")
    add_recipe_arguments(parser)
    args = parser.parse_args(argv)
    trained = recipe_run(parser, args, out=args.out, data_root=args.out / "data").train()
    target = args.out / DEMO_CHECKPOINT
    embed_half_precision(trained, target)
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
