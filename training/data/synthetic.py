"""Procedural two-person interactions in InterHuman's raw on-disk layout.

    python -m training.data.synthetic --out DIR --n 2000 --seed 0 [--workers 2]

writes DIR/motions_processed/person{1,2}/NAME.npy, DIR/annots/NAME.txt, the split lists and
DIR/synthetic_meta.json (see ``training.data.procedural.writer``). The same seed gives the
same bytes. The folder appears only when complete.
"""
from __future__ import annotations

import argparse
import os
import time

from .procedural.catalog import CONTACT_SCENES, INTERACTIONS
from .procedural.writer import generate_dataset, make_sample

__all__ = ["INTERACTIONS", "CONTACT_SCENES", "generate_dataset", "make_sample", "main"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.data.synthetic", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="new folder to create (must not exist or be empty)")
    parser.add_argument("--n", type=int, default=2000, help="number of samples (at least 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        meta = generate_dataset(args.out, args.n, args.seed, args.workers)
    except (ValueError, FileExistsError) as error:
        parser.error(str(error))
    touching = sum(entry["contact"] for entry in meta.values())
    print(f"wrote {len(meta)} samples ({touching} with contact, {len(INTERACTIONS)} interaction types) "
          f"to {args.out} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
