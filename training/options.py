"""The training program's options: one frozen dataclass from which both the command line and
the run identity (the options a resumed run must repeat) are made, so an option is one field.

Each field's metadata (``option()``) carries its help text, its choices, whether it belongs to
the run identity and whether it is positional; the flag is the field's name with dashes, its
type the field's, and a bool field is a switch.
"""
from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from dhvae_sdk.models import PRESETS, VAE_BUILDERS
from dhvae_sdk.models.config import HAND_CONTACT_POINTS, PREDICTION_TYPES, RECON_LOSSES
from training.stages import STAGES
from training.stages.common import DATASETS, LATENT_SCALE_CHOICES
from training.trainer import LR_SCHEDULES

# The release's batch size, schedule and (absent) clipping for its two models; the evaluator,
# which is not the release's, keeps the recipe it was tuned with.
STAGE_DEFAULTS = {
    "vae": {"batch_size": 32, "lr_schedule": "release", "grad_clip": 0.0},
    "denoiser": {"batch_size": 64, "lr_schedule": "release", "grad_clip": 0.0},
    "evaluator": {"batch_size": 32, "lr_schedule": "cosine", "grad_clip": 1.0},
}


REQUIRED = dataclasses.MISSING


def option(default=None, help: str | None = None, choices=None, identity: bool = False, positional: bool = False):
    """A field of ``TrainOptions``; the default ``REQUIRED`` makes it required. ``identity``: a
    resumed run must repeat it, because changing it would silently make the run a different one."""
    return field(default=default, metadata={"help": help, "choices": choices, "identity": identity,
                                            "positional": positional})


@dataclass(frozen=True)
class TrainOptions:
    stage: str = option(REQUIRED, choices=[*STAGES, "params"], identity=True, positional=True)
    preset: str = option(REQUIRED, choices=sorted(PRESETS), identity=True)
    dataset: str = option("interhuman", choices=DATASETS, identity=True)
    data_root: Path | None = option(identity=True)
    out: Path | None = option(help="run directory (created; reused to resume)")
    steps: int = option(10000)
    seed: int = option(0, identity=True)
    batch_size: int | None = option(help="per process (default per stage: vae 32, denoiser 64, evaluator 32)",
                                    identity=True)
    lr: float = option(1e-4, identity=True)
    lr_schedule: str | None = option(
        help="release (vae, denoiser default): flat for 10 epochs, then halved every 1000 epochs; cosine "
             "(evaluator default): linear warmup, then cosine decay to lr/10 at --steps",
        choices=LR_SCHEDULES, identity=True)
    warmup_steps: int | None = option(help="cosine schedule: default min(100, steps / 20)")
    grad_clip: float | None = option(
        help="max gradient norm; 0: no clipping (default: 0 for vae and denoiser, as the release; 1 for the evaluator)")
    average_decay: float = option(
        0.0, help="decay of an exponential moving average of the weights, which the checkpoints and "
                  "evaluations then hold (0.999: about the last 1000 steps; the decay ramps up as (1 + n) / (10 + n) "
                  "until it reaches this, so step n < 9000 averages about the last n / 9); 0: the trained weights",
        identity=True)
    ckpt_every: int = option(1000)
    eval_every: int = option(0, help="0: evaluate at the end only")
    eval_samples: int = option(256, help="held-out samples per evaluation")
    log_every: int = option(50)
    num_workers: int = option(0)
    threads: int | None = option(
        help="torch CPU threads per process (default: the CPUs this process may use that other jobs leave idle, "
             "at most 4, shared among this machine's processes of the run; OMP_NUM_THREADS when set)")
    max_frames: int | None = option(help="crop length of training pairs (default: the dataset's)", identity=True)
    no_augment: bool = option(False, help="no mirroring or person swaps", identity=True)
    precision: str = option("auto", help="auto: bf16 (else fp16) autocast on GPU, fp32 on CPU",
                            choices=("auto", "fp32", "bf16", "fp16"))
    vae: Path | None = option(help="denoiser stage: the VAE checkpoint to encode with; vae stage: a VAE "
                                   "checkpoint to start from (fine-tuning; a fresh optimizer and schedule)",
                              identity=True)
    vae_kind: str | None = option(help="vae stage ablation: the VAE architecture instead of the preset's",
                                  choices=sorted(VAE_BUILDERS), identity=True)
    w_tri: float | None = option(help="vae stage ablation: triplet-loss weight (0 turns it off)", identity=True)
    w_joint: float | None = option(help="vae stage: joint-position L1 weight instead of the preset's 0.5",
                                   identity=True)
    w_distance_map: float | None = option(
        help="vae stage: weight of the L1 on the distances between A's and B's joints closer than 1 m "
             "(default: the preset's, 0)", identity=True)
    w_hand_contact: float | None = option(
        help="vae stage: weight of the L1 on the distances between A's and B's hands closer than 0.3 m "
             "(default: the preset's, 0)", identity=True)
    hand_contact_points: str | None = option(
        help="vae stage: the hand-contact term's hand points: the wrists (the preset's) or the hand ends, "
             "where gripping hands meet", choices=HAND_CONTACT_POINTS, identity=True)
    w_joint_metres: float | None = option(
        help="vae stage: weight of the L1 on the joint positions in metres (default: the preset's, 0)",
        identity=True)
    w_kl: float | None = option(help="vae stage: weight of the mean KL instead of the preset's 1e-4", identity=True)
    latent_tokens: int | None = option(help="vae stage: tokens per latent group (l) instead of the preset's",
                                       identity=True)
    recon_loss: str | None = option(help="vae stage: the reconstruction distance instead of the preset's",
                                    choices=RECON_LOSSES, identity=True)
    clip_weights: str | None = option(help="open_clip ViT-L-14 weights for presets with the CLIP tower",
                                      identity=True)
    latent_views: int = option(4, help="denoiser stage: augmented encodings cached per training pair",
                               identity=True)
    prediction: str | None = option(
        help="denoiser stage: what the denoiser predicts (default: the VAE checkpoint's config: x0 for the "
             "tiny and small presets, epsilon for paper)", choices=PREDICTION_TYPES, identity=True)
    latent_scales: str = option(
        "release", help="denoiser stage: release = fixed (1, 1, 1/5), z_g x 5 as released; std = each group's "
                        "posterior-sample std over the training set",
        choices=LATENT_SCALE_CHOICES, identity=True)
    denoiser_layers: int | None = option(
        help="denoiser stage: the denoiser's Transformer layers instead of the VAE checkpoint's config (the "
             "preset's: tiny 4, small 6, paper 9)", identity=True)
    temperature: float | None = option(
        help="denoiser stage: the sampling temperature (scale of the starting noise, 0 to 2) the checkpoint records "
             "as the model's default (default: the VAE checkpoint's config, 1 as the release samples)")
    guidance: float | None = option(
        help="denoiser stage: the classifier-free guidance scale the checkpoint records as the model's default "
             "(default: the VAE checkpoint's config, the dataset's protocol scale)")
    synthetic_samples: int = option(2000, help="pairs to generate when --dataset synthetic and --data-root does "
                                               "not exist")

    def identity(self) -> dict:
        """The run-identity options as JSON values (run.json)."""
        return {item.name: _json_value(getattr(self, item.name)) for item in IDENTITY_FIELDS}

    def identity_changes(self, recorded: dict) -> dict[str, tuple]:
        """{option: (recorded, now)} where this run's identity differs from a recorded run.json.
        An option the record lacks (it was added later) counts as recorded at its default. Paths
        are compared where they lead, so a folder reached through a symbolic link is the same."""
        changes = {}
        for item in IDENTITY_FIELDS:
            value = _json_value(getattr(self, item.name))
            old = recorded.get(item.name, _json_value(item.default))
            if old != value and not (item.name in PATH_FIELDS and _same_path(old, value)):
                changes[item.name] = (old, value)
        return changes


IDENTITY_FIELDS = [item for item in dataclasses.fields(TrainOptions) if item.metadata["identity"]]


def build_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    hints = typing.get_type_hints(TrainOptions)
    for item in dataclasses.fields(TrainOptions):
        meta, kind = item.metadata, _base_type(hints[item.name])
        settings = {"help": meta["help"]}
        if meta["choices"] is not None:
            settings["choices"] = meta["choices"]
        if kind is bool:
            settings["action"] = "store_true"
        else:
            settings["type"] = kind
            if item.default is not REQUIRED:
                settings["default"] = item.default
        if meta["positional"]:
            parser.add_argument(item.name, **settings)
        else:
            parser.add_argument("--" + item.name.replace("_", "-"), required=item.default is REQUIRED,
                                **settings)
    return parser


def parse_options(argv: list[str] | None, prog: str, description: str) -> TrainOptions:
    """The options of ``argv``, with the stage's defaults where the command line left them unset."""
    parser = build_parser(prog, description)
    options = TrainOptions(**vars(parser.parse_args(argv)))
    unset = {name: value for name, value in STAGE_DEFAULTS.get(options.stage, {}).items()
             if getattr(options, name) is None}
    options = dataclasses.replace(options, **unset)
    if options.stage != "params":
        missing = [flag for flag, value in (("--data-root", options.data_root), ("--out", options.out)) if value is None]
        if missing:
            parser.error(f"the {options.stage} stage needs {' and '.join(missing)}")
    return options


def _base_type(hint) -> type:
    """``int`` of ``int | None``."""
    if isinstance(hint, types.UnionType):
        (kind,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return kind
    return hint


def _json_value(value):
    return str(value) if isinstance(value, Path) else value


def _same_path(old, new) -> bool:
    return isinstance(old, str) and isinstance(new, str) and Path(old).resolve() == Path(new).resolve()


# The options compared where they lead (run.json records them as text).
PATH_FIELDS = {name for name, hint in typing.get_type_hints(TrainOptions).items() if _base_type(hint) is Path}
