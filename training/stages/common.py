"""What every stage needs from the command line: its options, the datasets and their representation."""
from __future__ import annotations

import logging
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from torch.utils.data import Subset

from dhvae_sdk.motion import features_to_joints, interhuman_normalizer, interx_normalizer
from dhvae_sdk.motion.interhuman import POSITIONS
from training.data import InterHumanDataset, InterXDataset, make_loader
from training.data.interhuman import INTERGEN_MIN_RAW_FRAMES, dataset_normalizer
from training.data.interx import MIN_FRAMES as INTERX_MIN_FRAMES
from training.losses import MotionRepresentation
from training.runtime import ProcessContext, barrier

DATASETS = ("interhuman", "interx", "synthetic")
HELD_OUT_SPLITS = ("val", "test")
LATENT_SCALE_CHOICES = ("release", "std")
# Fixed so every evaluation of a run (and of runs with other seeds) sees the same crops.
EVALUATION_SEED = 1234

log = logging.getLogger("training")


@dataclass(frozen=True)
class StageOptions:
    """The command-line choices a stage is built from."""

    run_dir: Path
    dataset: str
    data_root: Path
    preset: str
    seed: int = 0
    batch_size: int = 32
    num_workers: int = 0
    clip_weights: str | None = None
    vae_checkpoint: Path | None = None
    eval_samples: int = 256
    synthetic_samples: int = 2000
    latent_views: int = 4
    augment: bool = True  # mirror and person swaps of the training pairs (InterHuman layout)
    max_frames: int | None = None  # crop length; None: the dataset's own (300 InterHuman, 150 InterX)
    vae_kind: str | None = None  # ablation: "dhvae" or "flat" instead of the preset's
    w_tri: float | None = None  # ablation: triplet-loss weight instead of the preset's (0 turns it off)
    w_joint: float | None = None  # joint-position L1 weight instead of the preset's
    recon_loss: str | None = None  # reconstruction distance instead of the preset's
    w_distance_map: float | None = None  # weight of the A-to-B joint-distance L1 instead of the preset's
    w_hand_contact: float | None = None  # weight of the A-to-B hand-distance L1 instead of the preset's
    hand_contact_points: str | None = None  # its hand points ("wrists", "hand_ends") instead of the preset's
    w_joint_metres: float | None = None  # weight of the joint-position L1 in metres instead of the preset's
    w_kl: float | None = None  # weight of the mean KL instead of the preset's
    latent_tokens: int | None = None  # tokens per latent group instead of the preset's
    latent_scales: str = "release"  # denoiser stage: "release" (fixed 1, 1, 1/5) or "std" (estimated)
    prediction: str | None = None  # denoiser stage: the denoiser's target instead of the VAE config's
    denoiser_layers: int | None = None  # denoiser stage: the denoiser's layers instead of the VAE config's
    temperature: float | None = None  # denoiser stage: the sampling default instead of the VAE config's
    guidance: float | None = None  # denoiser stage: the guidance default instead of the VAE config's

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ValueError(f"--dataset must be one of {DATASETS}, got {self.dataset!r}")
        counts = {"--batch-size": self.batch_size, "--eval-samples": self.eval_samples,
                  "--latent-views": self.latent_views, "--synthetic-samples": self.synthetic_samples,
                  "--latent-tokens": 1 if self.latent_tokens is None else self.latent_tokens,
                  "--denoiser-layers": 1 if self.denoiser_layers is None else self.denoiser_layers}
        bad = {flag: value for flag, value in counts.items() if value < 1}
        if bad:
            raise ValueError(f"these options must be >= 1: {bad}")
        if self.latent_scales not in LATENT_SCALE_CHOICES:
            raise ValueError(f"--latent-scales must be one of {LATENT_SCALE_CHOICES}, got {self.latent_scales!r}")


def representation_of(dataset: str, data_root: Path | None = None) -> MotionRepresentation:
    """The features' normalizer and maps; InterHuman-layout folders may bring their own statistics."""
    if dataset == "interx":
        # InterX features hold SMPL-X rotations only; joints would need the body model.
        return MotionRepresentation(interx_normalizer(), to_joints=None, positions=None)
    normalizer = interhuman_normalizer() if data_root is None else dataset_normalizer(data_root)
    return MotionRepresentation(normalizer, to_joints=features_to_joints, positions=POSITIONS)


def ensure_synthetic_dataset(options: StageOptions, context: ProcessContext) -> None:
    """``--dataset synthetic`` with a missing --data-root: rank 0 generates it there first."""
    if options.dataset != "synthetic" or options.data_root.exists():
        return
    if context.is_main:
        log.info("%s does not exist: generating %d procedural samples there (seed %d)",
                 options.data_root, options.synthetic_samples, options.seed)
        subprocess.run([sys.executable, "-m", "training.data.synthetic", "--out", str(options.data_root),
                        "--n", str(options.synthetic_samples), "--seed", str(options.seed)], check=True)
    barrier(context)


def open_dataset(options: StageOptions, split: str, seed: int, augment: bool | None = None):
    """The dataset of ``split``; augmentation (mirror, person swaps) follows ``options.augment``
    on the train split unless ``augment`` says otherwise. Crops are always random."""
    lengths = {} if options.max_frames is None else {"max_len": options.max_frames}
    # The shortest crop the dataset's own filter keeps (InterHuman counts raw frames, features lose one).
    shortest = INTERX_MIN_FRAMES if options.dataset == "interx" else INTERGEN_MIN_RAW_FRAMES - 1
    if options.max_frames is not None and options.max_frames < shortest:
        raise ValueError(f"--max-frames must be at least {shortest} for the {options.dataset} dataset, "
                         f"got {options.max_frames}")
    if options.dataset == "interx":
        return InterXDataset(options.data_root, split=split, seed=seed, **lengths)
    augment = options.augment and split == "train" if augment is None else augment
    return InterHumanDataset(options.data_root, split=split, seed=seed, mirror=augment, swap_persons=augment,
                             **lengths)


def open_held_out(options: StageOptions):
    """The first held-out split present (val, else test), without augmentation, at the
    dataset's full length whatever --max-frames crops training to: generation runs at full
    length, so that is where a model is judged."""
    full_length = replace(options, max_frames=None)
    missing = []
    for split in HELD_OUT_SPLITS:
        try:
            return open_dataset(full_length, split, EVALUATION_SEED, augment=False)
        except FileNotFoundError as error:
            missing.append(str(error))
    raise FileNotFoundError(f"no held-out split in {options.data_root}: {'; '.join(missing)}")


def trim_padding(batch: dict, device) -> tuple:
    """(motion, mask) on ``device``, cut after the batch's longest sequence: the loaders pad
    to the dataset's max_len, and attention over frames that are masked anyway costs time."""
    longest = int(batch["lengths"].max())
    return batch["motion"][:, :longest].to(device), batch["mask"][:, :longest].to(device)


def pair_data(options: StageOptions, context: ProcessContext) -> tuple:
    """(training loader, held-out dataset) of a stage that trains on motion pairs; only rank 0
    evaluates, so the other ranks get None for the held-out part."""
    train_set = open_dataset(options, "train", seed=options.seed + context.rank)
    loader = make_loader(train_set, options.batch_size, shuffle=True, seed=options.seed,
                         num_workers=options.num_workers, distributed=context.distributed,
                         lengths=train_set.item_lengths())
    return loader, open_held_out(options) if context.is_main else None


def evaluation_loader(dataset, options: StageOptions):
    """The first ``eval_samples`` held-out items in order (same crops at every evaluation)."""
    dataset.reseed(EVALUATION_SEED)
    count = min(len(dataset), options.eval_samples)
    subset = dataset if count == len(dataset) else Subset(dataset, range(count))
    return make_loader(subset, options.batch_size, shuffle=False, seed=EVALUATION_SEED)
