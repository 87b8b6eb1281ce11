"""Posed SMPL-X meshes and joints of fitted motions and of InterX parameters."""
from __future__ import annotations

import numpy as np
import torch

from dhvae_sdk.motion.interx import NUM_ROTATIONS, TRANSLATION_ROW

from .export import InteractionFit
from .smplx_model import SKELETON_JOINTS, SmplxModel, axis_angle_to_matrix

FRAMES_PER_CHUNK = 16  # skinning holds [chunk, V, 3, 3] in memory


def mesh_vertices(fit: InteractionFit) -> np.ndarray:
    """Skinned vertices [T, 2, V, 3] of both fitted persons."""
    return np.stack([posed_vertices(fit.model, person.rotations(), person.transl, person.betas)
                     for person in fit.persons], axis=1)


def posed_vertices(model: SmplxModel, rotations: torch.Tensor, transl, betas=None) -> np.ndarray:
    """Vertices [T, V, 3] of local rotations [T, 55, 3, 3], a few frames at a time."""
    transl = torch.as_tensor(np.asarray(transl, dtype=np.float64))
    betas = None if betas is None else torch.as_tensor(np.asarray(betas, dtype=np.float64))
    with torch.no_grad():
        return np.concatenate([
            model.vertices(rotations[start:start + FRAMES_PER_CHUNK], transl[start:start + FRAMES_PER_CHUNK],
                           betas).numpy()
            for start in range(0, len(rotations), FRAMES_PER_CHUNK)])


def fitted_joints(fit: InteractionFit) -> np.ndarray:
    """The fitted bodies' 22 skeleton joints [T, 2, 22, 3]."""
    with torch.no_grad():
        return np.stack([fit.model.joints(person.rotations()[:, :SKELETON_JOINTS], torch.as_tensor(person.transl),
                                          torch.as_tensor(person.betas)).numpy() for person in fit.persons], axis=1)


def params_vertices(params: np.ndarray, model: SmplxModel) -> np.ndarray:
    """Vertices [T, 2, V, 3] of InterX parameters [T, 2, 56, 3] (55 axis-angle rows, translation)."""
    params = np.asarray(params, dtype=np.float64)
    if params.ndim != 4 or params.shape[1:] != (2, NUM_ROTATIONS + 1, 3):
        raise ValueError(f"InterX parameters are [T, 2, {NUM_ROTATIONS + 1}, 3], got {params.shape}")
    return np.stack([posed_vertices(model, axis_angle_to_matrix(torch.as_tensor(params[:, person, :NUM_ROTATIONS])),
                                    params[:, person, TRANSLATION_ROW]) for person in (0, 1)], axis=1)


def params_joints(params: np.ndarray, model: SmplxModel) -> np.ndarray:
    """The 22 skeleton joints [..., 22, 3] of InterX parameters [..., 56, 3]."""
    params = np.asarray(params, dtype=np.float64)
    flat = torch.as_tensor(params.reshape(-1, NUM_ROTATIONS + 1, 3))
    with torch.no_grad():
        joints = model.joints(axis_angle_to_matrix(flat[:, :SKELETON_JOINTS]), flat[:, TRANSLATION_ROW])
    return joints.numpy().reshape(params.shape[:-2] + (SKELETON_JOINTS, 3))
