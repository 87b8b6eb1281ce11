"""One replication of the quality benchmark: the ground-truth row and each model's row.

Every random choice comes from its own stream, derived from (base seed, replication,
purpose): the test-set draw, the metric shuffles, the texts picked for MModality, the
generation noise, the MModality noise and a second, independent test-set draw. Models of one
run therefore see the same draws, shuffles and noise, and a guidance sweep differs from the
main run only in the guidance.

FID's reference is that second draw, as in InterGen's ``tools/eval.py``, whose FID iterates
the ground-truth loader once more (fresh crops, sentences and person swaps): the ground-truth
row's FID compares two independent draws, not one draw with itself (which would be 0).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from dhvae_sdk.evaluation.metrics import fid, matching_scores
from dhvae_sdk.evaluation.protocol import ProtocolConfig, replication_metrics
from dhvae_sdk.evaluation.reconstruction import ReconstructionErrors
from dhvae_sdk.physics import PhysicsConfig, PhysicsMetrics
from dhvae_sdk.sampling import NumpyOps
from training.data.base import InteractionDataset

from benchmarks.quality_data import (Draw, Embedder, Representation, batches, draw_test_set, pad, physics_of,
                                     should_touch)
from benchmarks.quality_models import ModelUnderTest

PURPOSES = ("data", "metrics", "mmodality_texts", "generation", "mmodality_generation", "fid_reference")
SWEEP_METRICS = ("fid", "r_precision_top1", "r_precision_top2", "r_precision_top3", "mm_dist", "diversity")


def stream(seed: int, replication: int, purpose: str) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed, spawn_key=(replication, PURPOSES.index(purpose)))


def derived_rng(seed: int, replication: int, purpose: str) -> np.random.Generator:
    return np.random.default_rng(stream(seed, replication, purpose))


@dataclass(frozen=True)
class RunSettings:
    dataset: str
    guidance: float
    temperature: float
    steps: int
    seed: int
    protocol: ProtocolConfig
    physics: PhysicsConfig
    sweep: tuple[float, ...]


@dataclass
class Reference:
    """One replication's ground truth, shared by every model."""

    replication: int
    draw: Draw
    text_embeddings: np.ndarray
    motion_embeddings: np.ndarray
    fid_reference_embeddings: np.ndarray  # motions of the second, independent draw
    should_touch: np.ndarray | None
    mmodality_rows: np.ndarray  # the samples whose sentence is generated mm_generations times


def physics_values(metrics: PhysicsMetrics | None) -> dict[str, float]:
    """PV, PFR, PDR and Contact (NaN when no sequence should touch); nothing without joints."""
    if metrics is None:
        return {}
    return {"pv": metrics.pv, "pv_ml": metrics.pv_ml, "pfr": metrics.pfr, "pdr": metrics.pdr,
            "contact": math.nan if metrics.contact is None else metrics.contact}


def prepare_reference(dataset: InteractionDataset, replication: int, settings: RunSettings, embedder: Embedder,
                      representation: Representation, synthetic_contacts: dict[str, bool] | None,
                      ) -> tuple[Reference, dict[str, float], PhysicsMetrics | None]:
    """The replication's draw, its embeddings, and the ground-truth row's metrics."""
    draw, fid_draw = (draw_test_set(dataset, int(stream(settings.seed, replication, purpose).generate_state(1)[0]),
                                    f"replication {replication + 1}: ground truth ({purpose})")
                      for purpose in ("data", "fid_reference"))
    touching = should_touch(draw, settings.dataset, representation, synthetic_contacts, settings.physics)
    picker = derived_rng(settings.seed, replication, "mmodality_texts")
    reference = Reference(
        replication=replication, draw=draw, text_embeddings=embedder.texts(draw.texts),
        motion_embeddings=embedder.motions(draw.motions), fid_reference_embeddings=embedder.motions(fid_draw.motions),
        should_touch=touching, mmodality_rows=picker.choice(len(draw), settings.protocol.mm_texts, replace=False))
    metrics = replication_metrics(reference.text_embeddings, reference.motion_embeddings,
                                  reference.fid_reference_embeddings,
                                  derived_rng(settings.seed, replication, "metrics"), settings.protocol)
    physics = physics_of(draw.motions, representation, touching, settings.physics)
    return reference, {**metrics, **physics_values(physics)}, physics


def generated_quality(model: ModelUnderTest, reference: Reference, settings: RunSettings, embedder: Embedder,
                      guidance: float, mmodality: bool) -> tuple[dict[str, float], list[np.ndarray]]:
    """FID, R-Precision, MM-Dist, Diversity (and MModality) of fresh generations, and the motions."""
    draw, protocol = reference.draw, settings.protocol
    seed, replication = settings.seed, reference.replication
    motions = _generate(model, draw.texts, draw.lengths, guidance, settings,
                        derived_rng(seed, replication, "generation"),
                        f"{model.label}: generating (guidance {guidance:g})")
    mm_embeddings = None
    if mmodality:
        rows = np.repeat(reference.mmodality_rows, protocol.mm_generations)
        mm_motions = _generate(model, [draw.texts[i] for i in rows], draw.lengths[rows], guidance, settings,
                               derived_rng(seed, replication, "mmodality_generation"), f"{model.label}: MModality")
        mm_embeddings = embedder.motions(mm_motions).reshape(protocol.mm_texts, protocol.mm_generations, -1)
    metrics = replication_metrics(reference.text_embeddings, embedder.motions(motions),
                                  reference.fid_reference_embeddings, derived_rng(seed, replication, "metrics"),
                                  protocol, mm_embeddings)
    return metrics, motions


def reconstruction_quality(model: ModelUnderTest, reference: Reference, settings: RunSettings, embedder: Embedder,
                           representation: Representation) -> dict[str, float]:
    """rFID (reconstructions vs ground truth), the reconstructions' R-Precision top 3 (the most a
    generator on this VAE can reach), L1 on the model's normalized features, MPJPE (m) with its
    root-relative (pose) and root (path) parts, and the pose motion ratio (how much the
    reconstructed bodies move their limbs relative to the originals)."""
    draw = reference.draw
    with tqdm(total=len(draw), desc=f"{model.label}: reconstructing", leave=False, unit="motion") as bar:
        reconstructions = model.reconstruct(draw.motions, progress=bar.update)
    errors = ReconstructionErrors()
    for rows in batches(len(draw), embedder.batch_size):
        recon = [reconstructions[i] for i in rows]
        target = [draw.motions[i] for i in rows]
        recon_normalized, mask = pad(model.normalized(recon))
        errors.add_features(recon_normalized, pad(model.normalized(target))[0], mask)
        if representation.to_joints is not None:
            errors.add_joints(representation.to_joints(pad(recon)[0]), representation.to_joints(pad(target)[0]), mask)
    embeddings = embedder.motions(reconstructions)
    protocol = settings.protocol
    # The ground truth's batches (same stream), so that the two rows rank the same texts together.
    matching = matching_scores(reference.text_embeddings, embeddings,
                               derived_rng(settings.seed, reference.replication, "metrics"), protocol.batch_size,
                               protocol.top_k)
    metrics = {"rfid": fid(embeddings, reference.motion_embeddings, protocol.embedding_scale),
               "recon_r_precision_top3": float(matching.r_precision[2]),
               "feature_l1": errors.feature_l1}
    if representation.to_joints is not None:
        metrics.update(mpjpe=errors.mpjpe, pose_mpjpe=errors.pose_mpjpe, path_error=errors.path_error,
                       pose_motion_ratio=errors.pose_motion_ratio)
    return metrics


def measure_model(model: ModelUnderTest, reference: Reference, settings: RunSettings, embedder: Embedder,
                  representation: Representation) -> tuple[dict[str, float], dict[float, dict[str, float]]]:
    """The model's row for this replication, and its sweep points {guidance: quality metrics}."""
    quality, motions = generated_quality(model, reference, settings, embedder, settings.guidance, mmodality=True)
    physics = physics_of(motions, representation, reference.should_touch, settings.physics)
    reconstruction = reconstruction_quality(model, reference, settings, embedder, representation)
    row = {**quality, **reconstruction, **physics_values(physics)}
    sweep = {}
    for guidance in settings.sweep:
        if guidance == settings.guidance:
            # Same noise and shuffles as the main run: the numbers would be identical.
            points = quality
        else:
            points, _ = generated_quality(model, reference, settings, embedder, guidance, mmodality=False)
        sweep[guidance] = {name: points[name] for name in SWEEP_METRICS}
    return row, sweep


def _generate(model: ModelUnderTest, texts: list[str], lengths: np.ndarray, guidance: float,
              settings: RunSettings, rng: np.random.Generator, description: str) -> list[np.ndarray]:
    with tqdm(total=len(texts), desc=description, leave=False, unit="motion") as bar:
        return model.generate(texts, lengths, guidance, settings.temperature, settings.steps, NumpyOps(rng),
                              progress=bar.update)
