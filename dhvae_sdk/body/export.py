"""SMPL-X fits of a two-person motion, written for the SMPL-X Blender add-on.

The add-on's "Add Animation" reads one body per .npz with the keys ``trans`` [T, 3],
``gender``, ``mocap_frame_rate``, ``betas`` and ``poses`` [T, 165] (55 joints x axis-angle:
root, 21 body joints, jaw, eyes, 15 + 15 hand joints). Our joints are Y up like SMPL-X's own
frame, so import with the add-on's format "SMPL-X" (not "AMASS", which is Z up). The AMASS
SMPL-X names (``root_orient``, ``pose_body``, ``pose_hand``, ``pose_jaw``, ``pose_eye``) are
written too, with the fit's error, so other tools read the file without converting it.
Everything is a plain array: ``np.load(path)`` needs no pickle.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dhvae_sdk.atomic_file import atomic_output

from .fit import FitSettings, SmplxFit, fit_smplx
from .smplx_model import SmplxModel

PERSONS = "ab"
SUFFIX = ".smplx.npz"


@dataclass(frozen=True)
class InteractionFit:
    """Both persons' fits and the model they were made with."""

    persons: tuple[SmplxFit, SmplxFit]
    model: SmplxModel
    fps: float

    @property
    def mean_error_mm(self) -> float:
        return float(np.mean([fit.mean_error_mm for fit in self.persons]))

    @property
    def seconds(self) -> float:
        return sum(fit.seconds for fit in self.persons)

    def save(self, path: str | os.PathLike, gender: str = "neutral") -> tuple[Path, Path]:
        """One add-on .npz per person: ``path`` may contain ``{person}`` (a / b); otherwise
        "_a" / "_b" go before ``.smplx.npz``."""
        return tuple(save_blender_npz(person_path(path, person), fit, self.fps, gender)
                     for person, fit in zip(PERSONS, self.persons))


def fit_interaction(joints, fps: float, model: SmplxModel | str | os.PathLike, betas=None, gender: str = "neutral",
                    settings: FitSettings = FitSettings()) -> InteractionFit:
    """Fit SMPL-X to both persons of joints [T, 2, 22, 3]; ``model`` is a loaded model or its
    file / folder (then ``gender`` picks the file); ``betas`` is shared, or one row per person."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 4 or joints.shape[1] != 2:
        raise ValueError(f"a two-person motion has joints [T, 2, 22, 3], got shape {joints.shape}")
    if not isinstance(model, SmplxModel):
        model = SmplxModel.load(model, gender)
    per_person = [None, None] if betas is None else np.broadcast_to(np.asarray(betas, dtype=np.float64),
                                                                    (2, model.num_betas))
    fits = tuple(fit_smplx(joints[:, index], model, per_person[index], settings) for index in range(2))
    return InteractionFit(fits, model, float(fps))


def person_path(path: str | os.PathLike, person: str) -> Path:
    template = str(path)
    if "{person}" not in template:
        if not template.endswith(SUFFIX):
            raise ValueError(f"{path}: SMPL-X output files end in {SUFFIX} (e.g. out{SUFFIX})")
        template = f"{template[: -len(SUFFIX)]}_{{person}}{SUFFIX}"
    return Path(template.format(person=person))


def save_blender_npz(path: str | os.PathLike, fit: SmplxFit, fps: float, gender: str = "neutral") -> Path:
    path = Path(path)
    pose = fit.full_pose()
    arrays = {
        "trans": fit.transl, "gender": np.array(gender), "mocap_frame_rate": np.array(float(fps)),
        "betas": fit.betas, "poses": pose.reshape(fit.frames, -1), "surface_model_type": np.array("smplx"),
        "root_orient": pose[:, 0], "pose_body": pose[:, 1:22].reshape(fit.frames, -1),
        "pose_jaw": pose[:, 22], "pose_eye": pose[:, 23:25].reshape(fit.frames, -1),
        "pose_hand": pose[:, 25:].reshape(fit.frames, -1),
        "fit_joint_error_mm": fit.joint_error_mm,
    }
    with atomic_output(path) as temp, open(temp, "wb") as handle:
        np.savez(handle, **arrays)
    return path
