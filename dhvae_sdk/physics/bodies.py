"""The two body models the voxel-overlap count accepts: capsules around the 22 joints, and
triangle meshes (SMPL-X through ``smplx`` when the user has the model files).

Capsule table
-------------
A capsule is every point within ``radius`` of a segment. Its end points are taken on the line
through two joints, ``p = J[start_joint] + s * (J[end_joint] - J[start_joint])``, so a table
row can cover a bone (s from 0 to 1), run past a joint (hands, toes, the head above the head
joint) or span across the body (pelvis, shoulders). A limb gets the radius of the circle whose
circumference is the mean of the circumferences at the two ends of its segment; the torso,
whose cross-section is an ellipse, gets central capsules as thick as its depth plus thinner
side-to-side capsules that give the breadth. The measurements are approximate means of men
and women pooled from the ANSUR II survey (2012), rounded to 5 mm:

============  ===================================================  =========
segment       measurement (mean adult)                             radius m
============  ===================================================  =========
pelvis        hip breadth ~0.36 m across the two hip joints        0.100
lower torso   waist depth ~0.24 m                                  0.120
upper torso   chest depth ~0.25 m                                  0.125
shoulders     biacromial breadth ~0.39 m, chest breadth ~0.31 m    0.065
neck          neck circumference ~0.37 m                           0.060
head          head breadth 0.15, length 0.19, chin-crown 0.23 m    0.090
upper arm     biceps 0.31 m, elbow 0.26 m circumference            0.045
forearm       forearm 0.28 m, wrist 0.165 m circumference          0.035
hand          hand breadth 0.085 m (thickness ~0.03 m)             0.040
thigh         upper thigh 0.62 m, knee 0.38 m circumference        0.080
shin          calf 0.38 m, ankle 0.22 m circumference              0.050
foot          foot breadth 0.095 m, instep height ~0.07 m          0.045
============  ===================================================  =========

Lengths past the joints: the head joint sits at the skull base, so the head capsule runs from
it to half a neck length above it (chin 9 cm below, crown 14 cm above: 0.23 m); the hand runs
0.32 forearm lengths past the wrist (palm and bent fingers, ~12 cm with the radius); the foot
starts 0.2 foot lengths behind the ankle (heel) and ends a quarter past the toe joint. In the
project's rest skeleton (dhvae_sdk.motion.skeleton, whose arms hang 9 cm off the midline and
so overlap the torso) the union of the capsules holds 60 litres; an average adult displaces
65 to 75 litres.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from dhvae_sdk.motion.skeleton import JOINT_INDEX, NUM_JOINTS


@dataclass(frozen=True)
class CapsuleSpec:
    name: str
    start_joint: str
    end_joint: str
    start: float  # end points at start_joint + s * (end_joint - start_joint)
    end: float
    radius: float  # metres

    def axis_points(self, joints, fractions):
        """Points ``start_joint + s * (end_joint - start_joint)`` of joints [..., J, 3] (numpy or
        torch): [..., 1, 3] for a float ``s``, [..., S, 3] for fractions shaped [S, 1]."""
        start_index, end_index = JOINT_INDEX[self.start_joint], JOINT_INDEX[self.end_joint]
        start = joints[..., start_index:start_index + 1, :]
        return start + fractions * (joints[..., end_index:end_index + 1, :] - start)


def _limbs(name: str, chain: tuple[str, str], start: float, end: float, radius: float) -> tuple[CapsuleSpec, ...]:
    return tuple(
        CapsuleSpec(f"{side}_{name}", f"{side}_{chain[0]}", f"{side}_{chain[1]}", start, end, radius)
        for side in ("l", "r")
    )


CAPSULES: tuple[CapsuleSpec, ...] = (
    CapsuleSpec("pelvis", "l_hip", "r_hip", 0.0, 1.0, 0.100),
    CapsuleSpec("lower_torso", "pelvis", "spine2", 0.0, 1.0, 0.120),
    CapsuleSpec("upper_torso", "spine2", "neck", 0.0, 0.6, 0.125),
    CapsuleSpec("shoulders", "l_shoulder", "r_shoulder", 0.1, 0.9, 0.065),
    CapsuleSpec("neck", "neck", "head", 0.0, 1.0, 0.060),
    CapsuleSpec("head", "neck", "head", 1.0, 1.5, 0.090),
    *_limbs("upper_arm", ("shoulder", "elbow"), 0.0, 1.0, 0.045),
    *_limbs("forearm", ("elbow", "wrist"), 0.0, 1.0, 0.035),
    *_limbs("hand", ("elbow", "wrist"), 1.0, 1.32, 0.040),
    *_limbs("thigh", ("hip", "knee"), 0.0, 1.0, 0.080),
    *_limbs("shin", ("knee", "ankle"), 0.0, 1.0, 0.050),
    *_limbs("foot", ("ankle", "foot"), -0.2, 1.25, 0.045),
)
CAPSULE_NAMES = tuple(c.name for c in CAPSULES)
# The hands of the contact checks (benchmarks.geometry) and of the hand-contact loss.
HAND_CAPSULES = tuple(c for c in CAPSULES if c.name in ("l_hand", "r_hand"))
DEFAULT_RADII = np.array([c.radius for c in CAPSULES], dtype=np.float64)

_START_JOINTS = np.array([JOINT_INDEX[c.start_joint] for c in CAPSULES])
_END_JOINTS = np.array([JOINT_INDEX[c.end_joint] for c in CAPSULES])
_STARTS = np.array([c.start for c in CAPSULES])[:, None]
_ENDS = np.array([c.end for c in CAPSULES])[:, None]


def _as_float_array(values, what: str) -> np.ndarray:
    """C-contiguous float64 numpy array from an array, a list or a (CPU or GPU) torch tensor."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    try:
        return np.ascontiguousarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what} must be a numeric array, got {type(values).__name__}: {error}") from None


def _check_finite(array: np.ndarray, what: str) -> None:
    bad = ~np.isfinite(array)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{what} contain NaN or infinite values (first at index {where}); clean the input first")


class CapsuleBody:
    """Capsules around the 22-joint skeleton of each frame: joints [N, T, 22, 3] in metres.

    ``radii`` [len(CAPSULES)] replaces the default table (``DEFAULT_RADII``), in the order of
    ``CAPSULE_NAMES``.
    """

    kind = "capsule"

    def __init__(self, joints, radii=None):
        joints = _as_float_array(joints, "joints")
        if joints.ndim != 4 or joints.shape[2:] != (NUM_JOINTS, 3):
            raise ValueError(
                f"joints must have shape [N, T, {NUM_JOINTS}, 3] (sequences, frames, joints, xyz), got "
                f"{joints.shape}; add the missing leading axes with joints[None] or joints[:, None]"
            )
        _check_finite(joints, "joints")
        radii = DEFAULT_RADII if radii is None else _as_float_array(radii, "radii")
        if radii.shape != DEFAULT_RADII.shape:
            raise ValueError(
                f"radii must have shape {DEFAULT_RADII.shape} (one per capsule of CAPSULE_NAMES), got {radii.shape}"
            )
        if not (np.isfinite(radii).all() and (radii >= 0).all()):
            raise ValueError(f"radii must be finite and >= 0, got {radii}")
        self.joints = joints
        self.radii = radii

    @property
    def batch_shape(self) -> tuple[int, int]:
        return self.joints.shape[:2]

    def segments(self) -> np.ndarray:
        """Capsule end points [N, T, C, 2, 3]."""
        start = self.joints[..., _START_JOINTS, :]
        along = self.joints[..., _END_JOINTS, :] - start
        return np.stack([start + _STARTS * along, start + _ENDS * along], axis=-2)


class MeshBody:
    """A triangle mesh per frame: vertices [N, T, V, 3] in metres, faces [F, 3] vertex indices."""

    kind = "mesh"

    def __init__(self, vertices, faces):
        vertices = _as_float_array(vertices, "vertices")
        if vertices.ndim != 4 or vertices.shape[3] != 3:
            raise ValueError(
                f"vertices must have shape [N, T, V, 3] (sequences, frames, vertices, xyz), got {vertices.shape}"
            )
        _check_finite(vertices, "vertices")
        faces = np.asarray(faces)
        if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
            raise ValueError(f"faces must be an integer array [F, 3], got {faces.dtype} {faces.shape}")
        if len(faces) < 4:
            raise ValueError(f"faces must hold at least 4 triangles to enclose a volume, got {len(faces)}")
        if faces.min() < 0 or faces.max() >= vertices.shape[2]:
            raise ValueError(
                f"faces index vertices 0..{vertices.shape[2] - 1}, but hold values {faces.min()}..{faces.max()}"
            )
        self.vertices = vertices
        self.faces = np.ascontiguousarray(faces, dtype=np.int32)

    @property
    def batch_shape(self) -> tuple[int, int]:
        return self.vertices.shape[:2]

    @classmethod
    def from_smplx(cls, params: Mapping[str, object], model_dir: str | os.PathLike, gender: str = "neutral",
                   chunk: int = 256) -> "MeshBody":
        """SMPL-X meshes posed by ``params`` (arrays [N, T, k] named as smplx's SMPLX.forward
        arguments: global_orient 3, body_pose 63, transl 3, optional betas (or [N, k]),
        left_hand_pose / right_hand_pose 45 (no PCA), jaw_pose / leye_pose / reye_pose 3,
        expression). ``model_dir`` is the SMPLX_<GENDER>.npz file or a folder holding it
        (directly or in smplx/). Only .npz files of plain arrays are read: pickles can run code.
        """
        from dhvae_sdk.body.smplx_model import find_model_file  # torch loads only on this path

        return _smplx_mesh(cls, params, find_model_file(model_dir, gender), chunk)


_SMPLX_WIDTHS = {"global_orient": 3, "body_pose": 63, "transl": 3, "betas": None, "left_hand_pose": 45,
                 "right_hand_pose": 45, "jaw_pose": 3, "leye_pose": 3, "reye_pose": 3, "expression": None}


def _check_plain_npz(path: Path) -> None:
    try:
        with np.load(path, allow_pickle=False) as data:
            for key in data.files:
                data[key]
    except ValueError as error:
        raise ValueError(
            f"{path} holds pickled objects, which can run code when loaded; use an .npz of plain arrays ({error})"
        ) from None


def _smplx_mesh(cls, params: Mapping[str, object], model_file: Path, chunk: int) -> MeshBody:
    import smplx  # with torch, only needed on this path
    import torch

    unknown = sorted(set(params) - set(_SMPLX_WIDTHS))
    if unknown:
        raise ValueError(f"unknown SMPL-X parameters {unknown}; expected some of {sorted(_SMPLX_WIDTHS)}")
    missing = [k for k in ("global_orient", "body_pose", "transl") if k not in params]
    if missing:
        raise ValueError(f"SMPL-X parameters {missing} are required")
    batch = _as_float_array(params["transl"], "transl").shape[:2]
    flat = {}
    for key, value in params.items():
        array = _as_float_array(value, key)
        if key == "betas" and array.ndim == 2:
            array = np.broadcast_to(array[:, None], (*array.shape[:1], batch[1], array.shape[1]))
        array = array.reshape(*array.shape[:2], -1) if array.ndim > 3 else array
        width = _SMPLX_WIDTHS[key]
        if array.ndim != 3 or array.shape[:2] != batch or (width is not None and array.shape[2] != width):
            expected = f"[{batch[0]}, {batch[1]}, {width or 'k'}]"
            raise ValueError(f"SMPL-X parameter {key} must have shape {expected}, got {array.shape}")
        _check_finite(array, key)
        flat[key] = array.reshape(-1, array.shape[2])
    frames = batch[0] * batch[1]
    # smplx fills absent inputs with batch-size-1 defaults that do not concatenate with ours.
    for key, width in _SMPLX_WIDTHS.items():
        flat.setdefault(key, np.zeros((frames, width or 10)))
    _check_plain_npz(model_file)
    model = smplx.SMPLX(str(model_file), ext="npz", use_pca=False, num_betas=flat["betas"].shape[1],
                        num_expression_coeffs=flat["expression"].shape[1])
    vertices = np.empty((frames, model.get_num_verts(), 3))
    with torch.no_grad():
        for start in range(0, frames, chunk):
            part = {k: torch.as_tensor(v[start:start + chunk], dtype=torch.float32) for k, v in flat.items()}
            vertices[start:start + chunk] = model(**part).vertices.numpy()
    return cls(vertices.reshape(*batch, -1, 3), model.faces.astype(np.int32))
