"""Command line of the training program.

  python -m training.main {vae,denoiser,evaluator} --dataset {interhuman,interx,synthetic}
      --data-root DIR --preset NAME --out RUN_DIR [--steps N] [--seed S] [--batch-size B]
      [--ckpt-every N] [--eval-every N] [--lr LR] [--vae CKPT] [--clip-weights PATH] ...
  python -m training.main params --preset NAME        # parameter counts as JSON
  torchrun --nproc_per_node=K -m training.main ...    # DistributedDataParallel

The defaults are the released model's recipe (shared/reference/official-dhvae.md): Adam at
1e-4 with its per-epoch decay, no gradient clipping, batch 32 for the VAE and 64 for the
denoiser, the loss weights of the preset's LossConfig, the denoiser trained on posterior
samples scaled by (1, 1, 1/5) with 10% of the texts replaced by the empty string.

Running the same command again resumes from RUN_DIR/train_state.pt. RUN_DIR/run.json
records the options that define the run; a restart that changes one of them is refused.
``--dataset synthetic`` with a --data-root that does not exist generates the procedural
dataset there first (``--synthetic-samples`` pairs, seeded by --seed) and says so in the log.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path

import torch
from tqdm import tqdm

from dhvae_sdk.convert.official import release_parameter_count
from dhvae_sdk.errors import DHVAEError
from dhvae_sdk.models import PRESETS, VAE_BUILDERS, build_model, count_parameters, get_preset
from training.runtime import (
    ProcessContext, atomic_write_json, barrier, close_process, init_process, seed_everything,
)
from training.stages import STAGES
from training.stages.common import DATASETS, LATENT_SCALE_CHOICES, StageOptions, ensure_synthetic_dataset
from training.trainer import LR_SCHEDULES, TRAIN_STATE_FILE, LoopConfig, Trainer

RUN_FILE = "run.json"
# Options whose change would silently make a resumed run a different run.
RUN_IDENTITY = ("stage", "dataset", "data_root", "preset", "seed", "batch_size", "lr", "vae", "clip_weights",
                "latent_views", "no_augment", "max_frames", "vae_kind", "w_tri", "lr_schedule", "latent_scales")
# The release's batch size, schedule and (absent) clipping for its two models; the evaluator,
# which is not the release's, keeps the recipe it was tuned with.
STAGE_DEFAULTS = {
    "vae": {"batch_size": 32, "lr_schedule": "release", "grad_clip": 0.0},
    "denoiser": {"batch_size": 64, "lr_schedule": "release", "grad_clip": 0.0},
    "evaluator": {"batch_size": 32, "lr_schedule": "cosine", "grad_clip": 1.0},
}

log = logging.getLogger("training")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.main", description=__doc__.split("\n\n")[0])
    parser.add_argument("stage", choices=[*STAGES, "params"])
    parser.add_argument("--preset", required=True, choices=sorted(PRESETS))
    parser.add_argument("--dataset", choices=DATASETS, default="interhuman")
    parser.add_argument("--data-root", type=Path)
    parser.add_argument("--out", type=Path, help="run directory (created; reused to resume)")
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int,
                        help="per process (default per stage: vae 32, denoiser 64, evaluator 32)")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--lr-schedule", choices=LR_SCHEDULES,
                        help="release (vae, denoiser default): flat for 10 epochs, then halved every 1000 "
                             "epochs; cosine (evaluator default): linear warmup, then cosine decay to lr/10 at --steps")
    parser.add_argument("--warmup-steps", type=int, help="cosine schedule: default min(100, steps / 20)")
    parser.add_argument("--grad-clip", type=float,
                        help="max gradient norm; 0: no clipping (default: 0 for vae and denoiser, as the "
                             "release; 1 for the evaluator)")
    parser.add_argument("--ckpt-every", type=int, default=1000)
    parser.add_argument("--eval-every", type=int, default=0, help="0: evaluate at the end only")
    parser.add_argument("--eval-samples", type=int, default=256, help="held-out samples per evaluation")
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch CPU threads per process (default: torch's choice; "
                        "use 1 when the cores are shared with other jobs)")
    parser.add_argument("--max-frames", type=int, help="crop length of training pairs (default: the dataset's)")
    parser.add_argument("--no-augment", action="store_true", help="no mirroring or person swaps")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
                        help="auto: bf16 (else fp16) autocast on GPU, fp32 on CPU")
    parser.add_argument("--vae", type=Path, help="denoiser stage: the VAE checkpoint to encode with")
    parser.add_argument("--vae-kind", choices=sorted(VAE_BUILDERS),
                        help="vae stage ablation: the VAE architecture instead of the preset's")
    parser.add_argument("--w-tri", type=float, help="vae stage ablation: triplet-loss weight (0 turns it off)")
    parser.add_argument("--clip-weights", help="open_clip ViT-L-14 weights for presets with the CLIP tower")
    parser.add_argument("--latent-views", type=int, default=4,
                        help="denoiser stage: augmented encodings cached per training pair")
    parser.add_argument("--latent-scales", choices=LATENT_SCALE_CHOICES, default="release",
                        help="denoiser stage: release = fixed (1, 1, 1/5), z_g x 5 as released; "
                             "std = each group's posterior-sample std over the training set")
    parser.add_argument("--synthetic-samples", type=int, default=2000,
                        help="pairs to generate when --dataset synthetic and --data-root does not exist")
    args = parser.parse_args(argv)
    for name, value in STAGE_DEFAULTS.get(args.stage, {}).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.stage != "params":
        missing = [flag for flag, value in (("--data-root", args.data_root), ("--out", args.out)) if value is None]
        if missing:
            parser.error(f"the {args.stage} stage needs {' and '.join(missing)}")
    return args


def parameter_counts(preset: str, dataset: str) -> dict:
    """Parameters per module of the model bundle (the CLIP tower included) and their total, the
    trainable ones (a frozen tower trains its positional embedding only), a per-child breakdown,
    and the VAE + denoiser as the release counts them (56,425,996 for ``paper``)."""
    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")  # the CLIP tower's "random weights" warning is moot here
        model = build_model(get_preset(preset, dataset))
    trainable = {name: sum(p.numel() for p in child.parameters() if p.requires_grad)
                 for name, child in model.named_children()}
    return {
        "preset": preset,
        **count_parameters(model),
        "trainable": {**trainable, "total": sum(trainable.values())},
        "release_layout_vae_denoiser": release_parameter_count(model),
        "breakdown": {name: count_parameters(child) for name, child in model.named_children()},
    }


class TqdmHandler(logging.Handler):
    """Log lines printed above the progress bar instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(self.format(record), file=sys.stderr)


def setup_logging(run_dir: Path, context: ProcessContext) -> None:
    log.setLevel(logging.INFO if context.is_main else logging.WARNING)
    log.propagate = False
    formatter = logging.Formatter(f"%(asctime)s [rank {context.rank}] %(levelname)s %(message)s")
    handlers: list[logging.Handler] = [TqdmHandler()]
    if context.is_main:
        handlers.append(logging.FileHandler(run_dir / "train.log"))
    for handler in log.handlers:  # a previous run in this process (tests) leaves its handlers
        handler.close()
    log.handlers.clear()
    for handler in handlers:
        handler.setFormatter(formatter)
        log.addHandler(handler)


def check_run_identity(run_dir: Path, args: argparse.Namespace) -> None:
    """Record the run's defining options, or refuse a restart that changes them once a
    training state exists (before that, e.g. after a typo in --data-root, they may change)."""
    identity = {key: (str(value) if isinstance(value, Path) else value)
                for key, value in vars(args).items() if key in RUN_IDENTITY}
    path = run_dir / RUN_FILE
    if path.exists() and (run_dir / TRAIN_STATE_FILE).exists():
        recorded = json.loads(path.read_text())
        changed = {key: (recorded.get(key), identity[key])
                   for key in RUN_IDENTITY if recorded.get(key) != identity[key]}
        if changed:
            details = ", ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in changed.items())
            raise SystemExit(f"error: {run_dir} holds a run with other options ({details}); "
                             "repeat the original options to resume, or pass a fresh --out")
    else:
        atomic_write_json(path, identity)


def stage_options(args: argparse.Namespace) -> StageOptions:
    return StageOptions(
        run_dir=args.out, dataset=args.dataset, data_root=args.data_root, preset=args.preset, seed=args.seed,
        batch_size=args.batch_size, num_workers=args.num_workers, clip_weights=args.clip_weights,
        vae_checkpoint=args.vae, eval_samples=args.eval_samples, synthetic_samples=args.synthetic_samples,
        latent_views=args.latent_views, augment=not args.no_augment, max_frames=args.max_frames,
        vae_kind=args.vae_kind, w_tri=args.w_tri, latent_scales=args.latent_scales,
    )


def loop_config(args: argparse.Namespace) -> LoopConfig:
    warmup = args.warmup_steps if args.warmup_steps is not None else min(100, max(1, args.steps // 20))
    return LoopConfig(steps=args.steps, ckpt_every=args.ckpt_every, eval_every=args.eval_every,
                      log_every=args.log_every, lr=args.lr, lr_schedule=args.lr_schedule, warmup_steps=warmup,
                      grad_clip=args.grad_clip, precision=args.precision)


def train(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    context = init_process()
    try:
        if context.is_main:
            args.out.mkdir(parents=True, exist_ok=True)
            check_run_identity(args.out, args)
        barrier(context)
        setup_logging(args.out, context)
        options, config = stage_options(args), loop_config(args)
        log.info("stage %s, preset %s, dataset %s at %s, %d process(es) on %s", args.stage, args.preset,
                 args.dataset, args.data_root, context.world_size, context.device)
        ensure_synthetic_dataset(options, context)
        seed_everything(args.seed)  # identical initialization in every process
        stage = STAGES[args.stage](options, context)
        seed_everything(args.seed + context.rank)  # each process its own dropout and sampling noise
        Trainer(stage, config, context, args.out).run()
    finally:
        close_process(context)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.stage == "params":
        print(json.dumps(parameter_counts(args.preset, args.dataset), indent=2))
        return
    try:
        train(args)
    except (DHVAEError, ValueError, FileNotFoundError) as error:  # bad options, data or files: the message says it all
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main()
