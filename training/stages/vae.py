"""Stage 1: train the motion VAE (reconstruction + joints + KL + interaction triplet).

The checkpoint holds the whole model bundle (denoiser and text encoder still at their
initialization, the CLIP tower loaded from --clip-weights if given) with stage "vae" and unit
latent scales; the denoiser stage trains the rest and sets the scales. ``--vae CKPT`` starts
from another run's VAE weights (fine-tuning, e.g. with another loss) with a fresh optimizer.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from dhvae_sdk.checkpoint import load_checkpoint, save_checkpoint
from dhvae_sdk.evaluation.reconstruction import ReconstructionErrors
from dhvae_sdk.models import GROUPS, MotionVAE, build_model, get_preset
from training.losses import MotionRepresentation, joints_of, vae_losses
from training.runtime import ProcessContext
from training.stages.common import (
    StageOptions, evaluation_loader, pair_data, representation_of, trim_padding,
)

log = logging.getLogger("training")


class VAEObjective(nn.Module):
    """batch -> the stage-1 losses; one module so DistributedDataParallel sees one forward."""

    def __init__(self, vae: MotionVAE, representation: MotionRepresentation, loss_config):
        super().__init__()
        self.vae = vae
        self.representation = representation
        self.loss_config = loss_config

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        motion, mask = trim_padding(batch, next(self.vae.parameters()).device)
        return vae_losses(self.vae, motion, mask, self.representation, self.loss_config)


@torch.no_grad()
def reconstruction_metrics(vae: MotionVAE, loader, representation: MotionRepresentation) -> dict[str, float]:
    """Held-out reconstruction through the posterior means: L1 on normalized features and, when
    the representation has joints, MPJPE in metres (both persons, real frames only), with its
    root-relative (pose) and root (path) parts, and how much the body moves (pose_motion_ratio)."""
    device = next(vae.parameters()).device
    vae.eval()
    errors = ReconstructionErrors()
    for batch in loader:
        motion, mask = trim_padding(batch, device)
        posterior = vae.encode(motion[:, :, 0], motion[:, :, 1], mask)
        recon = torch.stack(vae.decode(posterior.mean, mask), dim=2)
        errors.add_features(recon.cpu().numpy(), motion.cpu().numpy(), mask.cpu().numpy())
        if representation.to_joints is not None:
            errors.add_joints(joints_of(recon, representation).cpu().numpy(),
                              joints_of(motion, representation).cpu().numpy(), mask.cpu().numpy())
    metrics = {"feature_l1": errors.feature_l1}
    if representation.to_joints is not None:
        metrics.update(mpjpe_m=errors.mpjpe, pose_mpjpe_m=errors.pose_mpjpe, path_error_m=errors.path_error,
                       pose_motion_ratio=errors.pose_motion_ratio)
    return metrics


def _given(**options) -> dict:
    """The options the command line set (not None): they replace the preset's values."""
    return {name: value for name, value in options.items() if value is not None}


class VAEStage:
    name = "vae"
    checkpoint_name = "checkpoint.safetensors"

    def __init__(self, options: StageOptions, context: ProcessContext):
        preset = get_preset(options.preset, options.dataset)
        config = replace(
            preset,
            text=replace(preset.text, clip_weights=options.clip_weights),
            vae=replace(preset.vae, **_given(kind=options.vae_kind, latent_tokens=options.latent_tokens)),
            loss=replace(preset.loss, **_given(w_tri=options.w_tri, w_joint=options.w_joint,
                                               recon_loss=options.recon_loss,
                                               w_distance_map=options.w_distance_map,
                                               w_hand_contact=options.w_hand_contact,
                                               hand_contact_points=options.hand_contact_points,
                                               w_joint_metres=options.w_joint_metres,
                                               w_kl=options.w_kl)),
        )
        if options.max_frames is not None and options.max_frames > config.vae.max_frames:
            raise ValueError(f"--max-frames {options.max_frames} exceeds the {options.preset} VAE's "
                             f"{config.vae.max_frames} frames; pass at most {config.vae.max_frames}")
        self.options = options
        with warnings.catch_warnings():
            # This stage never reads text; the denoiser stage is where a random tower matters.
            warnings.filterwarnings("ignore", message="No CLIP weights file given")
            self.model = build_model(config)
        if config.text.clip_weights is None and not config.text.train_tower:
            log.info("no --clip-weights: the checkpoint's frozen CLIP tower is random; give the CLIP "
                     "file to the denoiser stage (--clip-weights) before it trains on text")
        self.representation = representation_of(options.dataset, options.data_root)
        if self.representation.to_joints is None:
            needs_joints = [flag for flag, weight in (("--w-distance-map", options.w_distance_map),
                                                      ("--w-hand-contact", options.w_hand_contact),
                                                      ("--w-joint-metres", options.w_joint_metres)) if weight]
            if needs_joints:
                raise ValueError(f"{' and '.join(needs_joints)} need joint positions, which the {options.dataset} "
                                 "features do not carry; leave them out for this dataset")
        if options.vae_checkpoint is not None:
            self._start_from(Path(options.vae_checkpoint), config)
        self.module = VAEObjective(self.model.vae, self.representation, config.loss)
        self.loader, self.held_out = pair_data(options, context)

    def _start_from(self, path: Path, config) -> None:
        """Copies the VAE weights of ``path``, which must share this run's VAE and statistics."""
        start = load_checkpoint(path)
        if start.config.vae != config.vae:
            differ = {name: (getattr(start.config.vae, name), getattr(config.vae, name))
                      for name in config.vae.to_dict() if getattr(start.config.vae, name) != getattr(config.vae, name)}
            raise ValueError(f"--vae {path} holds another VAE architecture ({differ}, as (file, this run)); "
                             "pass the --preset, --latent-tokens and --vae-kind it was trained with")
        normalizer = self.representation.normalizer
        if not (torch.allclose(start.feature_mean, torch.as_tensor(normalizer.mean, dtype=torch.float32))
                and torch.allclose(start.feature_std, torch.as_tensor(normalizer.std, dtype=torch.float32))):
            raise ValueError(f"--vae {path} was trained on other feature statistics than {self.options.data_root}'s; "
                             "fine-tune it on data normalized as it was, or train a VAE from scratch")
        self.model.vae.load_state_dict(start.model.vae.state_dict())
        log.info("VAE weights from %s (step 0 of this run)", path)

    def evaluate(self) -> dict[str, float]:
        return reconstruction_metrics(self.model.vae, evaluation_loader(self.held_out, self.options),
                                      self.representation)

    def save_checkpoint(self, path: Path) -> None:
        normalizer = self.representation.normalizer
        save_checkpoint(path, self.model, feature_mean=normalizer.mean, feature_std=normalizer.std,
                        latent_scales=torch.ones(len(GROUPS)), stage="vae")
