"""The SMPL-X body model read from its .npz release file, as torch functions of the pose.

Only the arrays the kinematics and skinning need are read, each with ``allow_pickle=False``
(the release .npz also carries pickled dictionaries, which could run code and are skipped):
``v_template`` [V, 3], ``f`` [F, 3], ``shapedirs`` [V, 3, S], ``posedirs`` [V, 3, 486],
``J_regressor`` [55, V], ``weights`` [V, 55], ``kintree_table`` [2, 55].

The 55 joints in SMPL-X order: pelvis, 21 body joints (the InterHuman skeleton's 1..21),
jaw, left eye, right eye, 15 left-hand and 15 right-hand joints. Poses are axis-angle per
joint relative to the parent; the rest pose is flat-handed (no mean hand pose is added).
The first ``num_betas`` shape directions are the body shape; expressions stay neutral.
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

NUM_JOINTS = 55
NUM_BODY_JOINTS = 21  # after the pelvis: the joints body_pose rotates
SKELETON_JOINTS = 22  # pelvis + body joints: the joints a generated motion has
POSE_BASIS = (NUM_JOINTS - 1) * 9
DEFAULT_NUM_BETAS = 10
_HOMOGENEOUS_ROW = torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
MODEL_KEYS = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table")
DOWNLOAD_HINT = ("download SMPL-X (https://smpl-x.is.tue.mpg.de, 'SMPL-X v1.1 NPZ+PKL') and pass the "
                 "SMPLX_NEUTRAL.npz file or the folder holding it (directly or in smplx/)")


def find_model_file(model_dir: str | os.PathLike, gender: str = "neutral") -> Path:
    """``model_dir`` itself when it is a file, else SMPLX_<GENDER>.npz in it or in its smplx/."""
    path = Path(model_dir)
    name = f"SMPLX_{gender.upper()}.npz"
    candidates = [path] if path.is_file() else [path / name, path / "smplx" / name]
    for candidate in candidates:
        if candidate.is_file():
            if candidate.suffix == ".pkl":
                raise ValueError(f"{candidate} is the pickle release, which can run code when loaded; {DOWNLOAD_HINT}")
            return candidate
    raise FileNotFoundError(f"SMPL-X model file not found: looked for {', '.join(map(str, candidates))}; "
                            f"{DOWNLOAD_HINT}")


@dataclass(frozen=True)
class SmplxModel:
    """The model's arrays as float64 tensors; ``parents[j]`` is joint j's parent (-1 for the root)."""

    v_template: torch.Tensor   # [V, 3]
    faces: np.ndarray          # [F, 3] int32
    shapedirs: torch.Tensor    # [V, 3, num_betas]
    posedirs: torch.Tensor     # [486, V * 3]
    j_regressor: torch.Tensor  # [55, V]
    weights: torch.Tensor      # [V, 55]
    parents: tuple[int, ...]
    path: str

    @classmethod
    def load(cls, model_dir: str | os.PathLike, gender: str = "neutral",
             num_betas: int = DEFAULT_NUM_BETAS) -> "SmplxModel":
        path = find_model_file(model_dir, gender)
        arrays = _read_arrays(path)
        vertices = arrays["v_template"].shape[0]
        expected = {"v_template": (vertices, 3), "weights": (vertices, NUM_JOINTS),
                    "J_regressor": (NUM_JOINTS, vertices), "kintree_table": (2, NUM_JOINTS),
                    "posedirs": (vertices, 3, POSE_BASIS)}
        for key, shape in expected.items():
            if arrays[key].shape != shape:
                raise ValueError(f"{path}: '{key}' has shape {arrays[key].shape}, SMPL-X has {shape}; {DOWNLOAD_HINT}")
        shapedirs = arrays["shapedirs"]
        if shapedirs.ndim != 3 or shapedirs.shape[:2] != (vertices, 3) or shapedirs.shape[2] < num_betas:
            raise ValueError(f"{path}: 'shapedirs' has shape {shapedirs.shape}, expected ({vertices}, 3, >= "
                             f"{num_betas}) for {num_betas} betas")
        parents = arrays["kintree_table"][0].astype(np.int64)
        parents[0] = -1  # the release stores 2**32 - 1 for the root
        if any(not 0 <= parents[j] < j for j in range(1, NUM_JOINTS)):
            raise ValueError(f"{path}: 'kintree_table' does not list every joint after its parent")
        as_tensor = lambda array: torch.as_tensor(np.asarray(array, dtype=np.float64))  # noqa: E731
        return cls(
            v_template=as_tensor(arrays["v_template"]),
            faces=np.ascontiguousarray(arrays["f"], dtype=np.int32),
            shapedirs=as_tensor(shapedirs[:, :, :num_betas]),
            posedirs=as_tensor(arrays["posedirs"].reshape(-1, POSE_BASIS).T),
            j_regressor=as_tensor(arrays["J_regressor"]),
            weights=as_tensor(arrays["weights"]),
            parents=tuple(int(p) for p in parents),
            path=str(path),
        )

    @property
    def num_betas(self) -> int:
        return self.shapedirs.shape[-1]

    def shaped(self, betas: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Rest vertices [V, 3] and rest joints [55, 3] of one body shape ``betas`` [num_betas]."""
        vertices = self.v_template
        if betas is not None:
            vertices = vertices + self.shapedirs @ betas.to(self.shapedirs)
        return vertices, self.j_regressor @ vertices

    def transforms(self, rotations: torch.Tensor, rest_joints: torch.Tensor) -> torch.Tensor:
        """World transforms [N, J, 4, 4] of the first J joints' local rotations [N, J, 3, 3]
        (no translation). Parents come before children, so any first J joints are complete."""
        count = rotations.shape[1]
        rest_joints = rest_joints[:count].to(rotations)
        offsets = rest_joints.clone()
        offsets[1:] = rest_joints[1:] - rest_joints[list(self.parents[1:count])]
        local = torch.cat([torch.cat([rotations, offsets[None, :, :, None].expand(len(rotations), -1, -1, -1)], -1),
                           _HOMOGENEOUS_ROW.to(rotations).expand(len(rotations), count, 1, 4)], dim=-2)
        world = [local[:, 0]]
        for joint in range(1, count):
            world.append(world[self.parents[joint]] @ local[:, joint])
        return torch.stack(world, dim=1)

    def joints(self, rotations: torch.Tensor, transl: torch.Tensor, betas: torch.Tensor | None = None) -> torch.Tensor:
        """Posed joints [N, J, 3] of the first J joints' local rotations [N, J, 3, 3] and
        translations [N, 3]."""
        _, rest_joints = self.shaped(betas)
        return self.transforms(rotations, rest_joints)[..., :3, 3] + transl[:, None]

    def vertices(self, rotations: torch.Tensor, transl: torch.Tensor, betas: torch.Tensor | None = None) -> torch.Tensor:
        """Posed, skinned vertices [N, V, 3] (pose-corrective blend shapes included)."""
        rest_vertices, rest_joints = self.shaped(betas)
        world = self.transforms(rotations, rest_joints)
        identity = torch.eye(3, dtype=rotations.dtype)
        pose_feature = (rotations[:, 1:] - identity).reshape(len(rotations), -1)
        posed = rest_vertices + (pose_feature @ self.posedirs.to(rotations)).reshape(len(rotations), -1, 3)
        # Skinning moves each vertex by its joints' transforms relative to the rest pose.
        turns = world[..., :3, :3]
        shifts = world[..., :3, 3] - (turns @ rest_joints.to(rotations)[..., None])[..., 0]
        weights = self.weights.to(rotations)
        blended_turns = torch.einsum("vj,njab->nvab", weights, turns)
        blended_shifts = torch.einsum("vj,nja->nva", weights, shifts)
        return (blended_turns @ posed[..., None])[..., 0] + blended_shifts + transl[:, None]


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not an .npz archive; {DOWNLOAD_HINT}")
    with np.load(path, allow_pickle=False) as archive:
        missing = [key for key in MODEL_KEYS if key not in archive.files]
        if missing:
            raise ValueError(f"{path} lacks the SMPL-X arrays {missing}; {DOWNLOAD_HINT}")
        try:
            return {key: archive[key] for key in MODEL_KEYS}
        except ValueError as error:  # an object array: it would need pickle
            raise ValueError(f"{path}: a model array is stored as pickled objects ({error}); {DOWNLOAD_HINT}") from None


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues [..., 3] -> [..., 3, 3], differentiable (also at zero)."""
    angle_sq = (axis_angle ** 2).sum(-1, keepdim=True)
    angle = torch.sqrt(angle_sq.clamp_min(1e-24))
    small = angle_sq < 1e-8
    # Taylor terms near zero keep the gradient finite.
    sin_term = torch.where(small, 1 - angle_sq / 6, torch.sin(angle) / angle)
    cos_term = torch.where(small, 0.5 - angle_sq / 24, (1 - torch.cos(angle)) / angle_sq.clamp_min(1e-24))
    x, y, z = axis_angle.unbind(-1)
    zero = torch.zeros_like(x)
    cross = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(axis_angle.shape + (3,))
    eye = torch.eye(3, dtype=axis_angle.dtype).expand_as(cross)
    return eye + sin_term[..., None] * cross + cos_term[..., None] * (cross @ cross)
