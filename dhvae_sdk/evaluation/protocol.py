"""One replication of the InterGen evaluation and the summary over replications.

InterGen (``tools/eval.py``, ``datasets/evaluator.py``) runs each replication on fresh
generations: the generated (text, motion) pairs go through shuffled drop-last batches for
R-Precision and MM-Dist, and the motions of those full batches are the ones FID and Diversity
see; the ground-truth motions for FID likewise come from a shuffled drop-last loader.

InterX is scored as InterMask scores it (``eval.py`` with ``dataset_name interx``): batches of
32, embeddings used unscaled (``emb_scale`` 1) and Diversity not halved (``divide_by`` 1).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dhvae_sdk.evaluation.metrics import (INTERGEN_EMBEDDING_SCALE, diversity, drop_last_batches, fid,
                                          matching_scores, mean_and_interval, multimodality)


@dataclass(frozen=True)
class ProtocolConfig:
    batch_size: int = 96
    top_k: int = 3
    diversity_pairs: int = 300
    mm_texts: int = 100
    mm_generations: int = 30
    mm_pairs: int = 10
    replications: int = 20
    embedding_scale: float = INTERGEN_EMBEDDING_SCALE
    diversity_divisor: float = 2.0


INTERX_PROTOCOL = ProtocolConfig(batch_size=32, embedding_scale=1.0, diversity_divisor=1.0)


def protocol_for(dataset: str) -> ProtocolConfig:
    """InterMask's protocol for InterX, InterGen's for InterHuman and the procedural data."""
    return INTERX_PROTOCOL if dataset == "interx" else ProtocolConfig()


def replication_metrics(text_embeddings: np.ndarray, motion_embeddings: np.ndarray,
                        reference_motion_embeddings: np.ndarray, rng: np.random.Generator,
                        config: ProtocolConfig = ProtocolConfig(),
                        mm_embeddings: np.ndarray | None = None) -> dict[str, float]:
    """Metrics of one replication.

    text/motion embeddings: [N, D] pairs of the evaluated set (generated, or ground truth for
    the ground-truth row); reference: [M, D] ground-truth motions for FID; mm_embeddings:
    [mm_texts, mm_generations, D] or None (MModality is then left out).
    """
    matching = matching_scores(text_embeddings, motion_embeddings, rng, config.batch_size, config.top_k)
    evaluated = motion_embeddings[matching.evaluated]
    reference = reference_motion_embeddings[
        np.concatenate(drop_last_batches(len(reference_motion_embeddings), config.batch_size, rng))]
    metrics = {f"r_precision_top{k + 1}": float(value) for k, value in enumerate(matching.r_precision)}
    metrics["mm_dist"] = matching.mm_dist
    metrics["fid"] = fid(evaluated, reference, config.embedding_scale)
    metrics["diversity"] = diversity(evaluated, rng, config.diversity_pairs, config.embedding_scale,
                                     config.diversity_divisor)
    if mm_embeddings is not None:
        expected = (config.mm_texts, config.mm_generations)
        if tuple(mm_embeddings.shape[:2]) != expected:
            raise ValueError(f"MModality embeddings have shape {mm_embeddings.shape}; the protocol wants "
                             f"{expected[0]} texts x {expected[1]} generations (see ProtocolConfig)")
        metrics["mmodality"] = multimodality(mm_embeddings, rng, config.mm_pairs)
    return metrics


def summarize(replications: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """{metric: {"mean": m, "ci95": half_width}} over replications that report the same metrics."""
    if not replications:
        raise ValueError("no replications to summarize")
    names = list(replications[0])
    if any(list(r) != names for r in replications):
        raise ValueError("replications report different metrics; summarize one model at a time")
    summary = {}
    for name in names:
        mean, half_width = mean_and_interval([r[name] for r in replications])
        summary[name] = {"mean": float(mean), "ci95": float(half_width)}
    return summary
