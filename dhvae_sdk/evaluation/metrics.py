"""Quality metrics of the InterGen protocol on evaluator embeddings (numpy, explicit RNG).

Definitions follow tr3e/InterGen ``utils/metrics.py`` and ``tools/eval.py``. Details that
change the numbers and that the protocol page does not spell out:

- FID and Diversity first multiply the embeddings by 6 (InterGen's ``emb_scale``);
  R-Precision, MM-Dist and MModality use them as they are.
- Diversity halves every pair distance, so it is ``3 * ||a - b||`` on raw embeddings; its two
  index lists are each drawn without replacement, independently (a pair may repeat an item).
- MModality draws one set of index pairs and uses it for every text.
- The 95% interval uses the population standard deviation (ddof = 0).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import linalg

INTERGEN_EMBEDDING_SCALE = 6.0


@dataclass(frozen=True)
class MatchingScores:
    r_precision: np.ndarray  # [top_k]: fraction of texts whose own motion ranks within the first k
    mm_dist: float  # mean distance between a text and its own motion
    evaluated: np.ndarray  # indices of the pairs that fell into full batches


def euclidean_distances(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """[N1, D] x [N2, D] -> [N1, N2], from explicit differences (no round-off below zero)."""
    return np.linalg.norm(first[:, None, :] - second[None, :, :], axis=-1)


def drop_last_batches(num_items: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled index batches of exactly ``batch_size``; the incomplete remainder is dropped."""
    if num_items < batch_size:
        raise ValueError(f"{num_items} items make no full batch of {batch_size}; evaluate more samples "
                         f"or lower the batch size")
    order = rng.permutation(num_items)
    return [order[start:start + batch_size] for start in range(0, num_items - batch_size + 1, batch_size)]


def matching_scores(text_embeddings: np.ndarray, motion_embeddings: np.ndarray, rng: np.random.Generator,
                    batch_size: int = 96, top_k: int = 3) -> MatchingScores:
    """R-Precision top 1..k and MM-Dist: each text is ranked against the motions of its batch.

    A motion tied with the text's own motion counts as ranked behind it.
    """
    _check_pairs(text_embeddings, motion_embeddings)
    batches = drop_last_batches(len(text_embeddings), batch_size, rng)
    hits = np.zeros(top_k)
    own_distances = []
    for batch in batches:
        distances = euclidean_distances(text_embeddings[batch], motion_embeddings[batch])
        own = np.diagonal(distances)
        rank = (distances < own[:, None]).sum(axis=1)
        hits += (rank[:, None] < np.arange(1, top_k + 1)[None, :]).sum(axis=0)
        own_distances.append(own)
    evaluated = np.concatenate(batches)
    return MatchingScores(r_precision=hits / len(evaluated), mm_dist=float(np.concatenate(own_distances).mean()),
                          evaluated=evaluated)


def gaussian_fit(embeddings: np.ndarray, scale: float = INTERGEN_EMBEDDING_SCALE) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample covariance (ddof 1) of the scaled embeddings [N, D]."""
    if embeddings.ndim != 2 or len(embeddings) < 2:
        raise ValueError(f"a Gaussian fit needs embeddings [N >= 2, D], got shape {embeddings.shape}")
    scaled = np.asarray(embeddings, dtype=np.float64) * scale
    return scaled.mean(axis=0), np.cov(scaled, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"Gaussians of different sizes: means {mu1.shape} / {mu2.shape}, "
                         f"covariances {sigma1.shape} / {sigma2.shape}")
    covmean = _sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        # A singular product (fewer samples than dimensions): regularize both covariances.
        offset = np.eye(len(sigma1)) * eps
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0.0, atol=1e-3):
            raise ValueError(f"the covariance product has a matrix square root with imaginary part up to "
                             f"{np.abs(covmean.imag).max():.3g}; the embeddings are degenerate")
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def fid(embeddings: np.ndarray, reference: np.ndarray, scale: float = INTERGEN_EMBEDDING_SCALE) -> float:
    return frechet_distance(*gaussian_fit(embeddings, scale), *gaussian_fit(reference, scale))


def random_pairs(num_items: int, num_pairs: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two index lists, each drawn without replacement, independently of each other."""
    if num_items <= num_pairs:
        raise ValueError(f"{num_pairs} random pairs need more than {num_pairs} items, got {num_items}")
    return (rng.choice(num_items, num_pairs, replace=False), rng.choice(num_items, num_pairs, replace=False))


def diversity(embeddings: np.ndarray, rng: np.random.Generator, num_pairs: int = 300,
              scale: float = INTERGEN_EMBEDDING_SCALE, divisor: float = 2.0) -> float:
    """Mean of ``||scale * (a - b)|| / divisor`` over random pairs of motion embeddings [N, D]
    (InterGen: scale 6, divisor 2; InterMask on InterX: 1 and 1)."""
    if embeddings.ndim != 2:
        raise ValueError(f"diversity needs embeddings [N, D], got shape {embeddings.shape}")
    first, second = random_pairs(len(embeddings), num_pairs, rng)
    differences = (embeddings[first] - embeddings[second]) * scale / divisor
    return float(np.linalg.norm(differences, axis=1).mean())


def multimodality(embeddings: np.ndarray, rng: np.random.Generator, num_pairs: int = 10) -> float:
    """Mean distance between generations of the same text; embeddings [texts, generations, D]."""
    if embeddings.ndim != 3:
        raise ValueError(f"multimodality needs embeddings [texts, generations, D], got shape {embeddings.shape}")
    first, second = random_pairs(embeddings.shape[1], num_pairs, rng)
    return float(np.linalg.norm(embeddings[:, first] - embeddings[:, second], axis=2).mean())


def mean_and_interval(values) -> tuple[np.ndarray | float, np.ndarray | float]:
    """Mean over replications (axis 0) and the 95% half-width 1.96 * std / sqrt(n)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        raise ValueError("no replications to summarize")
    half_width = 1.96 * values.std(axis=0) / np.sqrt(len(values))
    return values.mean(axis=0), half_width


def _check_pairs(text_embeddings: np.ndarray, motion_embeddings: np.ndarray) -> None:
    if text_embeddings.ndim != 2 or text_embeddings.shape != motion_embeddings.shape:
        raise ValueError(f"text and motion embeddings must be matching [N, D] arrays, got "
                         f"{text_embeddings.shape} and {motion_embeddings.shape}")


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        # Singular inputs are detected from the result (non-finite values) and regularized.
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        return linalg.sqrtm(matrix)
