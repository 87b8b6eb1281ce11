"""python -m dhvae_sdk.convert OFFICIAL.ckpt --out model.safetensors

Converts a released DHVAE checkpoint (the full model ``ckpt/chmld_best/epoch=...ckpt``, or a
VAE folder ``ckpt/chvae_.../``) into one dhvae-sdk checkpoint, which the Generator, the
exporters and training read like any other.
"""
from __future__ import annotations

import argparse
import sys

from dhvae_sdk.convert import OfficialCheckpointError, convert_official, release_parameter_count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dhvae_sdk.convert", description=__doc__.split("\n\n")[1])
    parser.add_argument("source", help="a released .ckpt file, or the folder holding it")
    parser.add_argument("--out", required=True, help="the dhvae-sdk checkpoint to write (.safetensors)")
    parser.add_argument("--clip-heads", type=int, default=None,
                        help="attention heads of the CLIP text tower (not recorded in the file; default width / 64)")
    args = parser.parse_args(argv)
    if not args.out.endswith(".safetensors"):
        parser.error(f"--out {args.out}: the output is a safetensors file; give a name ending in .safetensors")
    try:
        official = convert_official(args.source, args.out, clip_heads=args.clip_heads)
    except (OfficialCheckpointError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    config = official.config
    print(f"{official.metadata['converted_from']} -> {args.out}: {config.vae.decoder!r} decoder, {len(official.model.denoiser.layers)} "
          f"denoiser layers{' (skip)' if config.denoiser.skip else ''}, latent {3 * config.vae.latent_tokens} x "
          f"{config.vae.width}, stage {official.stage}, {release_parameter_count(official.model):,} parameters "
          f"without the text encoder (release layout)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
