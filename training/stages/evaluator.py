"""The contrastive text-motion evaluator (InterGen's InterCLIP) trained on a dataset.

Sizes follow --preset: "paper" is InterGen's released architecture, "small" and "tiny" are
narrower copies for CPU work. The checkpoint RUN_DIR/evaluator.ckpt is a torch file with
"state_dict" (InterGen's key names; ``dhvae_sdk.models.evaluator.load_interclip`` reads it
given the config) and "interclip_config" (the InterCLIPConfig fields).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dhvae_sdk.evaluation.metrics import matching_scores
from dhvae_sdk.models import get_preset
from dhvae_sdk.models.evaluator import InterCLIP, InterCLIPConfig, tokenize
from dhvae_sdk.motion import Normalizer
from training.runtime import ProcessContext, atomic_torch_save
from training.stages.common import (
    EVALUATION_SEED, StageOptions, evaluation_loader, pair_data, representation_of, trim_padding,
)

_NARROW = dict(position_table=512, dropout=0.1)
EVALUATOR_SIZES = {
    "paper": {},
    "small": dict(motion_width=256, motion_layers=4, motion_heads=4, motion_ff=512, text_width=256,
                  text_layers=4, text_heads=4, text_ff=512, embedding_dim=256, **_NARROW),
    "tiny": dict(motion_width=128, motion_layers=2, motion_heads=4, motion_ff=256, text_width=128,
                 text_layers=2, text_heads=4, text_ff=256, embedding_dim=128, **_NARROW),
}
# Texts of a held-out batch each ranked against this many motions (InterGen uses 96).
RANKING_BATCH = 32


def evaluator_config(preset: str, dataset: str) -> InterCLIPConfig:
    if preset not in EVALUATOR_SIZES:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(EVALUATOR_SIZES)}")
    feature_dim = get_preset(preset, dataset).vae.feature_dim
    # Only the InterHuman layout ends in foot contacts, which InterGen's evaluator ignores.
    tail = 0 if dataset == "interx" else InterCLIPConfig.ignored_tail_features
    return InterCLIPConfig(person_features=feature_dim, ignored_tail_features=tail, **EVALUATOR_SIZES[preset])


def raw_motion(batch: dict, normalizer: Normalizer, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The evaluator's input: de-normalized features (padding zeroed) and the mask."""
    motion, mask = trim_padding(batch, device)
    motion = normalizer.denormalize(motion)
    return torch.where(mask[:, :, None, None], motion, 0.0), mask


class EvaluatorObjective(nn.Module):
    def __init__(self, evaluator: InterCLIP, normalizer: Normalizer):
        super().__init__()
        self.evaluator = evaluator
        self.normalizer = normalizer

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        device = self.evaluator.latent_scale.device
        motion, mask = raw_motion(batch, self.normalizer, device)
        return {"loss": self.evaluator(tokenize(batch["texts"]).to(device), motion, mask)}


class EvaluatorStage:
    name = "evaluator"
    checkpoint_name = "evaluator.ckpt"

    def __init__(self, options: StageOptions, context: ProcessContext):
        self.options = options
        self.config = evaluator_config(options.preset, options.dataset)
        self.normalizer = representation_of(options.dataset, options.data_root).normalizer
        self.evaluator = InterCLIP(self.config)
        self.module = EvaluatorObjective(self.evaluator, self.normalizer)
        self.loader, self.held_out = pair_data(options, context)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """R-Precision (top 1, top 3) and MM-Dist on held-out pairs, ranked in batches."""
        device = self.evaluator.latent_scale.device
        texts, motions = [], []
        for batch in evaluation_loader(self.held_out, self.options):
            motion, mask = raw_motion(batch, self.normalizer, device)
            texts.append(self.evaluator.encode_text(tokenize(batch["texts"]).to(device)).cpu())
            motions.append(self.evaluator.encode_motion(motion, mask).cpu())
        text_embeddings, motion_embeddings = torch.cat(texts).numpy(), torch.cat(motions).numpy()
        ranking_batch = min(RANKING_BATCH, len(text_embeddings))
        scores = matching_scores(text_embeddings, motion_embeddings, np.random.default_rng(EVALUATION_SEED),
                                 batch_size=ranking_batch, top_k=3)
        return {"r_precision_top1": float(scores.r_precision[0]), "r_precision_top3": float(scores.r_precision[2]),
                "chance_top1": 1.0 / ranking_batch, "mm_dist": scores.mm_dist}

    def save_checkpoint(self, path: Path) -> None:
        state = {key: value.detach().cpu() for key, value in self.evaluator.state_dict().items()}
        atomic_torch_save({"state_dict": state, "interclip_config": dataclasses.asdict(self.config)}, path)
