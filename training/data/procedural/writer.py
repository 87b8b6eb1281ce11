"""A procedural dataset on disk in InterHuman's raw layout (see the protocol reference).

DIR/motions_processed/person{1,2}/NAME.npy: float32 [T, 492], Z up, 30 fps, one world frame
for both people; DIR/annots/NAME.txt: three sentences; DIR/{train,val,test}.txt; and
DIR/global_mean.npy, global_std.npy: the train split's feature statistics;
DIR/synthetic_meta.json: per NAME the interaction, whether and when the two touch
("contact_frames": inclusive [first, last] frame ranges), the hand(s) the text names, the
tempo, which person file holds the initiator and the turning direction the text may name.
Each sample has its own random stream (seed, index), so the bytes do not depend on the
number of worker processes.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dhvae_sdk.atomic_file import remove_stale_temporaries, temporary_sibling
from dhvae_sdk.motion.interhuman import RAW_JOINTS, Z_UP_TO_Y_UP, interaction_features, raw_from_body
from dhvae_sdk.motion.mirror import mirror_features
from dhvae_sdk.motion.normalization import Normalizer
from dhvae_sdk.motion.rotation import matrix_to_6d, yaw_matrix
from dhvae_sdk.motion.skeleton import NUM_JOINTS

from .body import Pose, pose_pair
from .catalog import CONTACT_SCENES, INTERACTIONS, SCENES
from .stage import Cast
from .texts import describe

SPLITS = (("val", 0.05), ("test", 0.15))  # the rest is train
# Every 2nd frame is plenty for the statistics and halves their memory.
STATS_FRAME_STRIDE = 2
MIN_SAMPLES = 3  # one per split
_HANDS = slice(NUM_JOINTS * 3, RAW_JOINTS * 3)


@dataclass(frozen=True)
class Sample:
    name: str
    motions: tuple[np.ndarray, np.ndarray]  # person1, person2: float32 [T, 492]
    sentences: list[str]
    meta: dict


def _frame_ranges(mask: np.ndarray) -> list[list[int]]:
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return [[int(first), int(last) - 1] for first, last in zip(np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0])]


def _raw(pose: Pose, turn: np.ndarray, shift: np.ndarray) -> np.ndarray:
    joints = pose.joints @ turn.T + shift
    hands = pose.hands @ turn.T + shift
    raw = raw_from_body(joints, matrix_to_6d(pose.local_rotations))
    raw[:, _HANDS] = (hands @ Z_UP_TO_Y_UP).reshape(len(hands), -1)
    return raw.astype(np.float32)


def make_sample(seed: int, index: int, interaction: str, name: str) -> Sample:
    """Sample ``index`` of the dataset made with ``seed``: a scene, posed, placed and described."""
    rng = np.random.default_rng([seed, index])
    scene = SCENES[interaction](Cast(rng))
    poses = pose_pair(scene.actors, scene.length, rng)
    turn = yaw_matrix(rng.uniform(0.0, 2.0 * np.pi))
    shift = np.array([rng.uniform(-1.5, 1.5), 0.0, rng.uniform(-1.5, 1.5)])
    order = (0, 1) if rng.random() < 0.5 else (1, 0)
    motions = tuple(_raw(poses[k], turn, shift) for k in order)
    sentences = describe(scene, rng)
    meta = {
        "interaction": interaction,
        "contact": interaction in CONTACT_SCENES,
        "contact_frames": _frame_ranges(scene.touching()),
        "handedness": scene.handedness,
        "speed": round(scene.tempo, 3),
        "frames": scene.length,
        "initiator": order.index(0) + 1,
        "turn": scene.words.get("turn"),
    }
    return Sample(name, motions, sentences, meta)


def _write_sample(job: tuple[Path, int, int, str, str]) -> tuple[str, dict]:
    folder, seed, index, interaction, name = job
    sample = make_sample(seed, index, interaction, name)
    for person, motion in zip(("person1", "person2"), sample.motions):
        np.save(folder / "motions_processed" / person / f"{name}.npy", motion)
    (folder / "annots" / f"{name}.txt").write_text("\n".join(sample.sentences) + "\n")
    return name, sample.meta


def plan(n: int, seed: int) -> tuple[list[str], list[str], dict[str, list[str]]]:
    """Names, interaction per name (the types in turn, in a seeded order) and the split lists."""
    if n < MIN_SAMPLES:
        raise ValueError(f"--n must be at least {MIN_SAMPLES} (one sample per split), got {n}")
    rng = np.random.default_rng(seed)
    width = max(5, len(str(n - 1)))
    names = [f"{i:0{width}d}" for i in range(n)]
    order = rng.permutation(len(INTERACTIONS))
    interactions = [INTERACTIONS[order[i % len(order)]] for i in range(n)]
    shuffled = [names[i] for i in rng.permutation(n)]
    splits, taken = {}, 0
    for split, share in SPLITS:
        count = max(1, int(round(share * n)))
        splits[split] = sorted(shuffled[taken:taken + count])
        taken += count
    splits["train"] = sorted(shuffled[taken:])
    return names, interactions, splits


def _write_statistics(folder: Path, train_names: list[str]) -> None:
    """The train split's own feature statistics, as global_mean.npy / global_std.npy.

    Our bodies are posed from the t2m rest skeleton (arms down, head forward), so their
    joint rotations sit far from real InterHuman's (SMPL's T-pose origin): normalized with
    the published statistics, rotation features reach |z| ~ 47 and would drown the loss.
    The mirrored features are included because training mirrors half of the pairs.
    """
    motions = folder / "motions_processed"
    features = np.concatenate([
        interaction_features(*(np.load(motions / person / f"{name}.npy") for person in ("person1", "person2")))
        [::STATS_FRAME_STRIDE].astype(np.float32)
        for name in train_names
    ])
    statistics = Normalizer.fit(np.concatenate([features, mirror_features(features)]))
    statistics.save(folder / "global_mean.npy", folder / "global_std.npy")


def generate_dataset(out, n: int, seed: int = 0, workers: int = 1) -> dict:
    """Write ``n`` samples into the new folder ``out``; returns the metadata written."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} already exists and is not an empty folder; pass a new --out path")
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    names, interactions, splits = plan(n, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    folder = temporary_sibling(out, directory=True)
    try:
        for sub in ("motions_processed/person1", "motions_processed/person2", "annots"):
            (folder / sub).mkdir(parents=True)
        jobs = [(folder, seed, i, interaction, name) for i, (interaction, name) in enumerate(zip(interactions, names))]
        if workers == 1:
            results = [_write_sample(job) for job in jobs]
        else:
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                results = pool.map(_write_sample, jobs, chunksize=8)
        meta = dict(results)
        _write_statistics(folder, splits["train"])
        for split, members in splits.items():
            (folder / f"{split}.txt").write_text("".join(f"{name}\n" for name in members))
        (folder / "synthetic_meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        os.replace(folder, out)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    remove_stale_temporaries(out)  # folders of killed generations
    return meta
