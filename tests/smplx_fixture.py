"""A synthetic SMPL-X model file: the release's key names, dtypes and axis layout, tiny random
content (no real model files can be had here).

Four vertices sit around each of the 55 joints of the project's rest skeleton (fingers, jaw
and eyes placed near the wrists and head); the joint regressor averages them, so the rest
joints are known exactly. ``full_size=True`` pads the mesh to SMPL-X's 10,475 vertices,
which the ``smplx`` package needs (it picks extra joints by fixed vertex ids).
"""
from pathlib import Path

import numpy as np

from dhvae_sdk.motion.skeleton import rest_offsets

SMPLX_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15,
                 20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38,
                 21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53)
SMPLX_VERTICES = 10475
CORNERS = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=np.float64) * 0.02
TETRA_FACES = np.array([[0, 1, 2], [0, 3, 1], [0, 2, 3], [1, 3, 2]])


def rest_joints() -> np.ndarray:
    """[55, 3]: the project's rest skeleton (pelvis 0.9 m up), then jaw, eyes and three-joint fingers."""
    body = _rest_body()
    joints = np.zeros((55, 3))
    joints[:22] = body
    joints[22] = body[15] + [0.0, -0.05, 0.06]
    joints[23], joints[24] = body[15] + [0.03, 0.03, 0.08], body[15] + [-0.03, 0.03, 0.08]
    for first, wrist, side in ((25, 20, 1.0), (40, 21, -1.0)):
        for finger in range(5):
            for segment in range(3):
                joints[first + 3 * finger + segment] = body[wrist] + [side * 0.01 * finger, -0.04 - 0.025 * segment,
                                                                      0.01 * (finger - 2)]
    return joints


def _rest_body() -> np.ndarray:
    offsets = rest_offsets()
    parents = SMPLX_PARENTS[:22]
    body = np.zeros((22, 3))
    body[0] = [0.0, 0.9, 0.0]
    for joint in range(1, 22):
        body[joint] = body[parents[joint]] + offsets[joint]
    return body


def write_smplx_model(path: Path, seed: int = 0, full_size: bool = False, num_shape: int = 20) -> Path:
    rng = np.random.default_rng(seed)
    joints = rest_joints()
    vertices = (joints[:, None, :] + CORNERS[None]).reshape(-1, 3)
    owners = np.repeat(np.arange(55), 4)
    count = SMPLX_VERTICES if full_size else len(vertices)
    if full_size:  # padding vertices ride on the pelvis
        vertices = np.concatenate([vertices, np.tile(joints[:1], (count - len(vertices), 1))])
        owners = np.concatenate([owners, np.zeros(count - len(owners), dtype=np.int64)])
    regressor = np.zeros((55, count))
    regressor[owners[:220], np.arange(220)] = 0.25
    weights = np.zeros((count, 55))
    weights[np.arange(count), owners] = 0.8
    parents = np.array([max(p, 0) for p in SMPLX_PARENTS])
    weights[np.arange(count), parents[owners]] += 0.2  # blend with the parent, as real skinning does
    faces = (np.arange(55)[:, None, None] * 4 + TETRA_FACES[None]).reshape(-1, 3)
    kintree = np.stack([np.array(SMPLX_PARENTS, dtype=np.int64) % 2 ** 32, np.arange(55)]).astype(np.uint32)
    arrays = {
        "v_template": vertices, "f": faces.astype(np.uint32), "J_regressor": regressor, "weights": weights,
        "kintree_table": kintree,
        "shapedirs": rng.normal(0.0, 0.01, (count, 3, num_shape)),
        "posedirs": rng.normal(0.0, 1e-3, (count, 3, 486)) if not full_size else np.zeros((count, 3, 486)),
        "hands_componentsl": np.eye(45), "hands_componentsr": np.eye(45),
        "hands_meanl": rng.normal(0.0, 0.1, 45), "hands_meanr": rng.normal(0.0, 0.1, 45),
        "lmk_faces_idx": np.arange(51, dtype=np.int64), "lmk_bary_coords": np.full((51, 3), 1 / 3),
        "dynamic_lmk_faces_idx": np.zeros((79, 17), dtype=np.int64),
        "dynamic_lmk_bary_coords": np.full((79, 17, 3), 1 / 3),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path
