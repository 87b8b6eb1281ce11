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
records the options that define the run (``training/options.py`` marks them); a restart that
changes one of them is refused.
``--dataset synthetic`` with a --data-root that does not exist generates the procedural
dataset there first (``--synthetic-samples`` pairs, seeded by --seed) and says so in the log.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from pathlib import Path

import torch
from tqdm import tqdm

from dhvae_sdk.convert.official import release_parameter_count
from dhvae_sdk.errors import DHVAEError
from dhvae_sdk.models import build_model, count_parameters, get_preset
from dhvae_sdk.threads import resolve_threads
from training.options import TrainOptions, parse_options
from training.runtime import (
    ProcessContext, atomic_write_json, barrier, close_process, init_process, seed_everything,
)
from training.stages import STAGES
from training.stages.common import StageOptions, ensure_synthetic_dataset
from training.trainer import TRAIN_STATE_FILE, LoopConfig, Trainer, TrainingInterrupted

RUN_FILE = "run.json"

log = logging.getLogger("training")


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


def holds_a_run(run_dir: Path) -> bool:
    """Has a run recorded its options here and saved a training state (before that, e.g. after
    a typo in --data-root, the options may still change)?"""
    return (run_dir / RUN_FILE).exists() and (run_dir / TRAIN_STATE_FILE).exists()


def refuse_other_options(run_dir: Path, options: TrainOptions) -> None:
    """Refuse options that differ from those of the run in ``run_dir``."""
    changed = options.identity_changes(json.loads((run_dir / RUN_FILE).read_text()))
    if changed:
        details = ", ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in changed.items())
        raise SystemExit(f"error: {run_dir} holds a run with other options ({details}); "
                         "repeat the original options to resume, or pass a fresh --out")


def check_run_identity(run_dir: Path, options: TrainOptions) -> None:
    """Record the run's defining options, or refuse a restart that changes them."""
    if holds_a_run(run_dir):
        refuse_other_options(run_dir, options)
    else:
        atomic_write_json(run_dir / RUN_FILE, options.identity())


def stage_options(options: TrainOptions) -> StageOptions:
    return StageOptions(
        run_dir=options.out, dataset=options.dataset, data_root=options.data_root, preset=options.preset,
        seed=options.seed, batch_size=options.batch_size, num_workers=options.num_workers,
        clip_weights=options.clip_weights, vae_checkpoint=options.vae, eval_samples=options.eval_samples,
        synthetic_samples=options.synthetic_samples, latent_views=options.latent_views,
        augment=not options.no_augment, max_frames=options.max_frames, vae_kind=options.vae_kind,
        w_tri=options.w_tri, w_joint=options.w_joint, recon_loss=options.recon_loss,
        w_distance_map=options.w_distance_map, w_hand_contact=options.w_hand_contact,
        hand_contact_points=options.hand_contact_points,
        w_joint_metres=options.w_joint_metres, w_kl=options.w_kl,
        latent_tokens=options.latent_tokens, latent_scales=options.latent_scales, prediction=options.prediction,
        denoiser_layers=options.denoiser_layers, temperature=options.temperature, guidance=options.guidance,
    )


def loop_config(options: TrainOptions) -> LoopConfig:
    steps = options.steps
    warmup = options.warmup_steps if options.warmup_steps is not None else min(100, max(1, steps // 20))
    return LoopConfig(steps=steps, ckpt_every=options.ckpt_every, eval_every=options.eval_every,
                      log_every=options.log_every, lr=options.lr, lr_schedule=options.lr_schedule,
                      warmup_steps=warmup, grad_clip=options.grad_clip, precision=options.precision,
                      average_decay=options.average_decay)


def train(options: TrainOptions) -> None:
    # torchrun says how many processes of this run share the machine's CPUs.
    torch.set_num_threads(resolve_threads(options.threads, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    context = init_process()
    try:
        if context.is_main:
            options.out.mkdir(parents=True, exist_ok=True)
            check_run_identity(options.out, options)
        barrier(context)
        setup_logging(options.out, context)
        log.info("stage %s, preset %s, dataset %s at %s, %d process(es) on %s, %d CPU thread(s) each",
                 options.stage, options.preset, options.dataset, options.data_root, context.world_size,
                 context.device, torch.get_num_threads())
        stage_settings = stage_options(options)
        ensure_synthetic_dataset(stage_settings, context)
        seed_everything(options.seed)  # identical initialization in every process
        stage = STAGES[options.stage](stage_settings, context)
        seed_everything(options.seed + context.rank)  # each process its own dropout and sampling noise
        Trainer(stage, loop_config(options), context, options.out).run()
    finally:
        close_process(context)


def parse(argv: list[str] | None) -> TrainOptions:
    return parse_options(argv, prog="python -m training.main", description=__doc__.split("\n\n")[0])


def main(argv: list[str] | None = None) -> None:
    options = parse(argv)
    if options.stage == "params":
        print(json.dumps(parameter_counts(options.preset, options.dataset), indent=2))
        return
    try:
        train(options)
    except TrainingInterrupted as interrupted:
        raise SystemExit(str(interrupted)) from None
    except (DHVAEError, ValueError, FileNotFoundError) as error:  # bad options, data or files: the message says it all
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main()
