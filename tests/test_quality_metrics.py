"""InterGen-protocol quality metrics against hand-computed values."""
import math

import numpy as np
import pytest

from dhvae_sdk.evaluation.metrics import (diversity, drop_last_batches, euclidean_distances, fid,
                                          frechet_distance, gaussian_fit, matching_scores,
                                          mean_and_interval, multimodality, random_pairs)
from dhvae_sdk.evaluation.protocol import ProtocolConfig, replication_metrics, summarize


def rotation(dim, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, dim)))
    return q


def test_fid_of_identical_sets_is_zero():
    embeddings = np.random.default_rng(0).standard_normal((1000, 64))
    assert abs(fid(embeddings, embeddings.copy())) < 1e-6


def test_frechet_distance_of_diagonal_gaussians_is_the_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    closed = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert closed == pytest.approx(1 + 6.25 + (1 + 9 - 6) + (4 + 1 - 4) + 0)
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(closed, rel=1e-12)


def test_frechet_distance_of_commuting_full_covariances():
    # Same eigenvectors: the matrix square root of the product has eigenvalues sqrt(a b).
    basis = rotation(4, 1)
    a, b = np.array([0.5, 1.0, 2.0, 3.0]), np.array([2.0, 1.0, 0.5, 3.0])
    distance = frechet_distance(np.zeros(4), basis @ np.diag(a) @ basis.T,
                                np.ones(4), basis @ np.diag(b) @ basis.T)
    assert distance == pytest.approx(4.0 + np.sum(a + b - 2 * np.sqrt(a * b)), rel=1e-9)


def test_fid_of_sampled_gaussians_approaches_the_closed_form():
    rng = np.random.default_rng(2)
    mu1, mu2 = np.array([0.0, 0.5, 0.0]), np.array([0.3, 0.0, -0.2])
    s1, s2 = np.array([1.0, 0.5, 2.0]), np.array([0.5, 0.5, 1.0])
    first = mu1 + rng.standard_normal((200_000, 3)) * np.sqrt(s1)
    second = mu2 + rng.standard_normal((200_000, 3)) * np.sqrt(s2)
    closed = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert fid(first, second, scale=1.0) == pytest.approx(closed, abs=0.02)
    # InterGen scales embeddings by 6 first, which multiplies the distance by 36.
    assert fid(first, second) == pytest.approx(36 * fid(first, second, scale=1.0), rel=1e-9)


def test_fid_with_fewer_samples_than_dimensions_stays_finite():
    rng = np.random.default_rng(3)
    value = fid(rng.standard_normal((20, 64)), rng.standard_normal((20, 64)) + 0.5, scale=1.0)
    assert np.isfinite(value) and value > 0


def test_gaussian_fit_uses_the_sample_covariance():
    mu, sigma = gaussian_fit(np.array([[0.0, 1.0], [2.0, 3.0]]), scale=1.0)
    assert np.allclose(mu, [1.0, 2.0]) and np.allclose(sigma, [[2.0, 2.0], [2.0, 2.0]])


def test_perfect_evaluator_has_full_r_precision():
    embeddings = np.random.default_rng(4).standard_normal((200, 32))
    scores = matching_scores(embeddings, embeddings.copy(), np.random.default_rng(0))
    assert np.array_equal(scores.r_precision, [1.0, 1.0, 1.0])
    assert scores.mm_dist == 0.0
    assert len(scores.evaluated) == 192 and len(set(scores.evaluated.tolist())) == 192


def test_r_precision_and_mm_dist_on_a_hand_computed_case():
    # 1-D: text 0 -> own motion at 0.4 (rank 1), text 1 -> own at 3 (rank 3), text 2 -> own at 2 (rank 2).
    texts = np.array([[0.0], [1.0], [5.0]])
    motions = np.array([[0.4], [3.0], [2.0]])
    scores = matching_scores(texts, motions, np.random.default_rng(5), batch_size=3)
    assert np.allclose(scores.r_precision, [1 / 3, 2 / 3, 1.0])
    assert scores.mm_dist == pytest.approx((0.4 + 2.0 + 3.0) / 3)


def test_a_closer_motion_in_the_batch_costs_top1():
    # Texts 0..3 appear twice: once paired with a motion 1 away, once with a decoy 0.5 away.
    texts = np.array([[0.0], [10.0], [20.0], [30.0]])
    motions = texts + 1.0
    decoys = np.array([[0.5], [10.5], [20.5], [30.5]])
    all_texts, all_motions = np.concatenate([texts, texts]), np.concatenate([motions, decoys])
    scores = matching_scores(all_texts, all_motions, np.random.default_rng(6), batch_size=8)
    # In the one batch of 8, the decoy rows rank their own motion first and the true pairs second.
    assert np.allclose(scores.r_precision, [0.5, 1.0, 1.0])


def test_drop_last_batches_are_shuffled_and_complete():
    batches = drop_last_batches(10, 3, np.random.default_rng(7))
    assert [len(b) for b in batches] == [3, 3, 3]
    assert len(set(np.concatenate(batches).tolist())) == 9
    with pytest.raises(ValueError, match="no full batch"):
        drop_last_batches(5, 96, np.random.default_rng(0))


def test_euclidean_distances_are_exact_for_identical_rows():
    points = np.random.default_rng(8).standard_normal((5, 512)) * 100
    distances = euclidean_distances(points, points)
    assert np.all(np.diagonal(distances) == 0.0)
    assert distances[0, 1] == pytest.approx(np.linalg.norm(points[0] - points[1]))


def test_diversity_is_the_halved_scaled_pair_distance():
    # Scaled unit vectors: distinct items are 2 * sqrt(2) apart, an item and itself 0 apart.
    embeddings = 2.0 * np.eye(400)
    first, second = random_pairs(400, 300, np.random.default_rng(9))
    distinct = np.mean(first != second)
    expected = 6.0 / 2.0 * 2.0 * math.sqrt(2.0) * distinct
    assert diversity(embeddings, np.random.default_rng(9)) == pytest.approx(expected, rel=1e-12)
    assert diversity(np.ones((301, 4)), np.random.default_rng(0)) == 0.0
    with pytest.raises(ValueError, match="more than 300 items"):
        diversity(embeddings[:300], np.random.default_rng(0))


def test_random_pairs_draw_each_side_without_replacement():
    first, second = random_pairs(12, 11, np.random.default_rng(10))
    assert len(set(first.tolist())) == 11 and len(set(second.tolist())) == 11


def test_multimodality_of_identical_generations_is_zero():
    one_each = np.random.default_rng(11).standard_normal((5, 1, 16))
    assert multimodality(np.repeat(one_each, 30, axis=1), np.random.default_rng(0)) == 0.0


def test_multimodality_uses_one_set_of_pairs_for_all_texts():
    # Generation j of text i sits at (j * (i + 1), 0): pair distance |j1 - j2| * (i + 1).
    steps = np.arange(30)[None, :, None] * np.arange(1, 4)[:, None, None]
    embeddings = np.concatenate([steps, np.zeros_like(steps)], axis=2).astype(np.float64)
    first, second = random_pairs(30, 10, np.random.default_rng(12))
    expected = np.mean(np.abs(first - second)) * np.mean([1, 2, 3])
    assert multimodality(embeddings, np.random.default_rng(12)) == pytest.approx(expected, rel=1e-12)


def test_confidence_interval_formula():
    mean, half_width = mean_and_interval([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5
    assert half_width == pytest.approx(1.96 * math.sqrt(1.25) / 2.0)
    means, widths = mean_and_interval([[0.5, 0.7, 0.9], [0.5, 0.9, 0.9]])
    assert np.allclose(means, [0.5, 0.8, 0.9]) and np.allclose(widths, [0.0, 1.96 * 0.1 / math.sqrt(2), 0.0])


def test_replication_of_ground_truth_against_itself():
    rng = np.random.default_rng(13)
    texts = rng.standard_normal((400, 16))
    motions = texts + 0.01 * rng.standard_normal((400, 16))
    mm = np.repeat(motions[:100, None], 30, axis=1)
    metrics = replication_metrics(texts, motions, motions, np.random.default_rng(0), ProtocolConfig(), mm)
    assert set(metrics) == {"r_precision_top1", "r_precision_top2", "r_precision_top3", "mm_dist", "fid",
                            "diversity", "mmodality"}
    assert metrics["r_precision_top1"] == 1.0 and metrics["mm_dist"] < 0.1
    assert metrics["mmodality"] == 0.0
    # 384 of 400 motions on each side; the dropped 16 differ, so FID is small but not zero.
    assert 0.0 < metrics["fid"] < 5.0
    # Unit-variance embeddings in 16-D: 3 * E||a - b|| is about 3 * sqrt(2 * 16).
    assert metrics["diversity"] == pytest.approx(3 * math.sqrt(32), rel=0.1)
    with pytest.raises(ValueError, match="100 texts x 30 generations"):
        replication_metrics(texts, motions, motions, np.random.default_rng(0), ProtocolConfig(), mm[:50])


def test_summary_over_replications():
    summary = summarize([{"fid": 1.0, "mm_dist": 3.0}, {"fid": 3.0, "mm_dist": 3.0}])
    assert summary["fid"] == {"mean": 2.0, "ci95": pytest.approx(1.96 * 1.0 / math.sqrt(2))}
    assert summary["mm_dist"] == {"mean": 3.0, "ci95": 0.0}
    with pytest.raises(ValueError, match="different metrics"):
        summarize([{"fid": 1.0}, {"mm_dist": 1.0}])
