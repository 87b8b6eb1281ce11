"""The test set as the quality benchmark sees it: random draws per replication, embedded.

Each draw of the test set is made the way InterGen's evaluation makes one: a fresh random
crop (sequences longer than the dataset's maximum), a fresh random sentence and, for
InterHuman, fresh person-swap coins per sample, from a seed that depends only on the base
seed, the replication and the draw's purpose, so every model of a run is scored on the same
draws. Motions stay in raw (de-normalized) units, the evaluator's input.

"Should touch" (the sequences Contact is scored over): for the procedural dataset the
generator's own label in ``synthetic_meta.json``; for InterHuman and InterX the ground
truth's own contact test (its capsule bodies, dilated by one voxel, meet in some frame).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from dhvae_sdk.models import DATASETS
from dhvae_sdk.models.evaluator import InterCLIP, tokenize
from dhvae_sdk.motion import features_to_joints
from dhvae_sdk.body.export import fit_interaction
from dhvae_sdk.body.meshes import mesh_vertices, params_joints, params_vertices
from dhvae_sdk.body.smplx_model import SmplxModel
from dhvae_sdk.motion.interx import params_from_features
from dhvae_sdk.physics import PhysicsConfig, PhysicsMetrics, contact_test, mesh_sequence_metrics, physics_metrics
from training.data import InterHumanDataset, InterXDataset

SYNTHETIC_META = "synthetic_meta.json"
CONTACT_SOURCES = {
    "synthetic": f"{SYNTHETIC_META} (the procedural generator's contact label)",
    "interhuman": "the ground truth's own contact test (capsule bodies dilated by one voxel meet in some frame)",
    "interx": "with --body-model the ground truth's own contact test on its SMPL-X joints (as for InterHuman); "
              "otherwise not available (InterX joints need the SMPL-X body model)",
}


@dataclass(frozen=True)
class Representation:
    feature_dim: int
    to_joints: Callable[[np.ndarray], np.ndarray] | None  # raw features [..., D] -> joints [..., 22, 3]
    # With SMPL-X model files: one motion's raw features [T, 2, D] -> mesh vertices [T, 2, V, 3].
    to_meshes: Callable[[np.ndarray], np.ndarray] | None = None
    faces: np.ndarray | None = None


def representation_of(dataset: str, body_model: SmplxModel | None = None) -> Representation:
    """Without ``body_model``: InterX features are SMPL-X rotations whose joints (MPJPE,
    physics) need the body model, so they have none; the others have capsule bodies. With it:
    SMPL-X meshes for physics, fitted to the joints (InterHuman, procedural) or posed by the
    parameters themselves (InterX)."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    feature_dim = DATASETS[dataset].feature_dim
    if body_model is None:
        return Representation(feature_dim, None if dataset == "interx" else features_to_joints)
    if dataset == "interx":
        return Representation(feature_dim, lambda features: params_joints(padded_params(features), body_model),
                              lambda motion: params_vertices(params_from_features(motion), body_model),
                              body_model.faces)
    fps = DATASETS[dataset].fps
    return Representation(feature_dim, features_to_joints,
                          lambda motion: mesh_vertices(fit_interaction(features_to_joints(motion), fps, body_model)),
                          body_model.faces)


def padded_params(features: np.ndarray) -> np.ndarray:
    """InterX parameters of features that may hold zero-padded frames: those have no rotation
    (NaN from a zero 6D); they are masked out later, so the rest pose keeps them finite."""
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(params_from_features(features))


def open_test_set(dataset: str, root: Path, split: str):
    """The split as InterGen's test loader gives it (random person swap, no mirror), in raw units."""
    representation_of(dataset)
    if not root.is_dir():
        raise FileNotFoundError(f"data root {root} does not exist; pass --data-root DIR (for the procedural data, "
                                f"generate it first: python -m training.data.synthetic --out {root} --n 2000 --seed 0)")
    if dataset == "interx":
        return InterXDataset(root, split=split, normalize=False)
    return InterHumanDataset(root, split=split, normalize=False, mirror=False, swap_persons=True)


def read_synthetic_contacts(root: Path) -> dict[str, bool]:
    path = root / SYNTHETIC_META
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: the procedural dataset labels which pairs touch there; "
                                f"regenerate the data with python -m training.data.synthetic")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        return {str(name): bool(entry["contact"]) for name, entry in meta.items()}
    except (json.JSONDecodeError, AttributeError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a procedural-dataset label file ({{name: {{'contact': bool, ...}}}}): "
                         f"{error}") from None


@dataclass
class Draw:
    """One replication's samples: names, sentences and raw motions [L_i, 2, D]."""

    names: list[str]
    texts: list[str]
    motions: list[np.ndarray]

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(motion) for motion in self.motions], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.motions)


def draw_test_set(dataset, seed: int, description: str) -> Draw:
    dataset.reseed(seed)
    names, texts, motions = [], [], []
    for index in tqdm(range(len(dataset)), desc=description, leave=False, unit="sample"):
        item = dataset[index]
        names.append(item["name"])
        texts.append(item["text"])
        motions.append(item["motion"][: item["length"]].numpy())
    return Draw(names, texts, motions)


def pad(motions: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Zero-padded [N, T_max, ...] and the real-frame mask [N, T_max]."""
    lengths = np.array([len(motion) for motion in motions])
    padded = np.zeros((len(motions), lengths.max(), *motions[0].shape[1:]), dtype=np.float32)
    for index, motion in enumerate(motions):
        padded[index, : len(motion)] = motion
    return padded, np.arange(lengths.max())[None, :] < lengths[:, None]


def batches(count: int, size: int) -> list[np.ndarray]:
    return [np.arange(start, min(start + size, count)) for start in range(0, count, size)]


class Embedder:
    """The evaluator's text and motion embeddings as numpy [N, E], in batches."""

    def __init__(self, evaluator: InterCLIP, batch_size: int, device: torch.device):
        self.evaluator = evaluator.to(device).eval()
        self.batch_size = batch_size
        self.device = device

    @torch.inference_mode()
    def texts(self, texts: list[str]) -> np.ndarray:
        return np.concatenate([
            self.evaluator.encode_text(tokenize([texts[i] for i in rows]).to(self.device)).float().cpu().numpy()
            for rows in batches(len(texts), self.batch_size)])

    @torch.inference_mode()
    def motions(self, motions: list[np.ndarray]) -> np.ndarray:
        embeddings = []
        for rows in tqdm(batches(len(motions), self.batch_size), desc="embedding motions", leave=False, unit="batch"):
            padded, mask = pad([motions[i] for i in rows])
            embedding = self.evaluator.encode_motion(torch.from_numpy(padded).to(self.device),
                                                     torch.from_numpy(mask).to(self.device))
            embeddings.append(embedding.float().cpu().numpy())
        return np.concatenate(embeddings)


def joints_of(motions: list[np.ndarray], representation: Representation) -> tuple[np.ndarray, np.ndarray]:
    """Padded joints [N, T_max, 2, 22, 3] and lengths [N] of raw two-person motions."""
    padded, mask = pad(motions)
    return representation.to_joints(padded), mask.sum(axis=1)


def physics_of(motions: list[np.ndarray], representation: Representation, should_touch: np.ndarray | None,
               config: PhysicsConfig) -> PhysicsMetrics | None:
    if representation.to_meshes is not None:
        return mesh_sequence_metrics((representation.to_meshes(motion) for motion in motions), representation.faces,
                                     should_touch, config)
    if representation.to_joints is None:
        return None
    joints, lengths = joints_of(motions, representation)
    return physics_metrics(joints[:, :, 0], joints[:, :, 1], should_touch=should_touch, lengths=lengths,
                           config=config)


def should_touch(draw: Draw, dataset: str, representation: Representation, synthetic_contacts: dict[str, bool] | None,
                 config: PhysicsConfig) -> np.ndarray | None:
    """Which samples of the draw should touch (see the module docstring), or None without joints."""
    if synthetic_contacts is not None:
        unlabeled = [name for name in draw.names if name not in synthetic_contacts]
        if unlabeled:
            raise ValueError(f"{len(unlabeled)} test samples have no label in {SYNTHETIC_META}, e.g. "
                             f"{unlabeled[:3]}; regenerate the data with python -m training.data.synthetic")
        return np.array([synthetic_contacts[name] for name in draw.names])
    if representation.to_joints is None:
        return None
    joints, lengths = joints_of(draw.motions, representation)
    return contact_test(joints[:, :, 0], joints[:, :, 1], voxel=config.voxel, dilation=config.contact_dilation,
                        lengths=lengths)
