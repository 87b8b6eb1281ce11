"""SMPL-X body parameters of one person's 22 joints: global orientation, translation, body pose.

All frames are fitted together: the squared joint error plus a temporal smoothness term on
the frame-to-frame change of every rotation and of the translation. The paper's own tool
(SMPLify-3D per frame) fits each frame alone, and the rotations the joints do not pin down
(a bone's twist, the end joints' own rotation) then jump from frame to frame; here they
follow their neighbours and, through a weak pose prior, stay near the rest pose.

Rotations are optimized as 6D (two matrix columns, Gram-Schmidt), which has no
singularities; the global orientation starts from the torso's best rigid alignment
(Kabsch) and the body pose from rest. L-BFGS with a strong-Wolfe line search.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from dhvae_sdk.motion.rotation import matrix_to_axis_angle
from dhvae_sdk.motion.skeleton import NUM_JOINTS

from .smplx_model import NUM_BODY_JOINTS, SKELETON_JOINTS, SmplxModel, axis_angle_to_matrix

# Joints whose rest layout fixes the torso's orientation: pelvis, hips, spine, collars, shoulders.
TORSO_JOINTS = (0, 1, 2, 3, 6, 9, 13, 14, 16, 17)


@dataclass(frozen=True)
class FitSettings:
    smoothness: float = 1e-5   # weight of the squared frame-to-frame change of rotations (6D) and translation (m)
    pose_prior: float = 1e-6   # weight of the squared distance of the body rotations from rest (6D)
    iterations: int = 600      # L-BFGS iterations at most
    tolerance: float = 1e-6    # stop when the loss (mm^2) changes less than this
    round_iterations: int = 50  # stop after a round of this many iterations that gains less than
    round_gain: float = 1e-3    # this fraction of the loss: the fit has settled (on joints it cannot match exactly)


@dataclass(frozen=True)
class SmplxFit:
    """Parameters [T, ...] in axis-angle, the zero-padded full pose and the fit's quality."""

    global_orient: np.ndarray   # [T, 3]
    body_pose: np.ndarray       # [T, 21, 3]
    transl: np.ndarray          # [T, 3]
    betas: np.ndarray           # [num_betas]
    joint_error_mm: np.ndarray  # [T, 22] distance of each fitted joint from its target
    seconds: float

    @property
    def frames(self) -> int:
        return len(self.transl)

    @property
    def mean_error_mm(self) -> float:
        return float(self.joint_error_mm.mean())

    @property
    def max_error_mm(self) -> float:
        return float(self.joint_error_mm.max())

    def full_pose(self) -> np.ndarray:
        """[T, 55, 3]: root, body, then jaw, eyes and flat hands at rest (zero)."""
        pose = np.zeros((self.frames, 55, 3))
        pose[:, 0] = self.global_orient
        pose[:, 1:1 + NUM_BODY_JOINTS] = self.body_pose
        return pose

    def rotations(self) -> torch.Tensor:
        """Local rotation matrices [T, 55, 3, 3] (float64) for ``SmplxModel``."""
        return axis_angle_to_matrix(torch.as_tensor(self.full_pose()))


def fit_smplx(joints, model: SmplxModel, betas=None, settings: FitSettings = FitSettings()) -> SmplxFit:
    """Fit one person's joints [T, 22, 3] (metres, Y up, SMPL joint order)."""
    started = time.perf_counter()
    target = _check_joints(joints)
    betas = _check_betas(betas, model)
    frames = len(target)
    _, rest_joints = model.shaped(betas)
    rest_joints = rest_joints[:SKELETON_JOINTS].detach()

    global_turn = _kabsch(rest_joints.numpy()[list(TORSO_JOINTS)] - rest_joints.numpy()[0],
                          target.numpy()[:, list(TORSO_JOINTS)] - target.numpy()[:, :1])
    orient = torch.as_tensor(global_turn[..., :, :2], dtype=torch.float64).reshape(frames, 6).clone()
    rest_6d = torch.eye(3, dtype=torch.float64)[:, :2].reshape(6)
    pose = rest_6d.expand(frames, NUM_BODY_JOINTS, 6).clone()
    transl = (target[:, 0] - rest_joints[0]).clone()
    parameters = [p.requires_grad_() for p in (orient, pose, transl)]

    def loss_of(orient, pose, transl):
        rotations = sixd_to_matrix(torch.cat([orient[:, None], pose], dim=1))
        fitted = model.joints(rotations, transl, betas)
        data = ((fitted - target) ** 2).sum(-1).mean()
        change = sum(((x[1:] - x[:-1]) ** 2).sum() for x in (orient, pose, transl)) / max(frames - 1, 1)
        prior = ((pose - rest_6d) ** 2).sum() / frames
        # In mm^2, so that the tolerance reads in a unit that means something.
        return 1e6 * (data + settings.smoothness * change + settings.pose_prior * prior), fitted

    optimizer = torch.optim.LBFGS(parameters, lr=1.0, max_iter=settings.round_iterations, history_size=50,
                                  tolerance_change=settings.tolerance, tolerance_grad=1e-10,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss, _ = loss_of(*parameters)
        loss.backward()
        return loss

    previous = float("inf")
    for _ in range(-(-settings.iterations // settings.round_iterations)):
        loss = float(optimizer.step(closure).detach())  # the loss at the start of the round; L-BFGS keeps its history
        if previous - loss <= settings.round_gain * loss:
            break
        previous = loss
    with torch.no_grad():
        _, fitted = loss_of(*parameters)
        rotations = sixd_to_matrix(torch.cat([orient[:, None], pose], dim=1)).numpy()
    axis_angle = matrix_to_axis_angle(rotations)
    return SmplxFit(
        global_orient=axis_angle[:, 0], body_pose=axis_angle[:, 1:], transl=transl.detach().numpy().copy(),
        betas=np.zeros(model.num_betas) if betas is None else betas.numpy().copy(),
        joint_error_mm=1000.0 * torch.linalg.norm(fitted - target, dim=-1).numpy(),
        seconds=time.perf_counter() - started)


def sixd_to_matrix(sixd: torch.Tensor) -> torch.Tensor:
    """[..., 6] (two columns) -> [..., 3, 3] by Gram-Schmidt, differentiable."""
    first, second = sixd[..., 0::2], sixd[..., 1::2]
    x = torch.nn.functional.normalize(first, dim=-1)
    y = torch.nn.functional.normalize(second - (x * second).sum(-1, keepdim=True) * x, dim=-1)
    return torch.stack([x, y, torch.cross(x, y, dim=-1)], dim=-1)


def _kabsch(source: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Rotations [T, 3, 3] that best turn ``source`` [K, 3] onto each ``targets[t]`` [K, 3]."""
    covariance = np.einsum("ki,tkj->tij", source, targets)
    u, _, vt = np.linalg.svd(covariance)
    sign = np.sign(np.linalg.det(np.swapaxes(vt, -1, -2) @ np.swapaxes(u, -1, -2)))
    correction = np.ones((len(targets), 3))
    correction[:, 2] = sign
    return np.swapaxes(vt, -1, -2) @ (correction[:, :, None] * np.swapaxes(u, -1, -2))


def _check_joints(joints) -> torch.Tensor:
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3) or len(joints) == 0:
        raise ValueError(f"SMPL-X fitting takes one person's joints [T, {NUM_JOINTS}, 3], got shape {joints.shape}; "
                         f"for a two-person motion [T, 2, {NUM_JOINTS}, 3] fit joints[:, 0] and joints[:, 1]")
    if not np.isfinite(joints).all():
        raise ValueError("the joints to fit contain NaN or infinite values")
    return torch.as_tensor(joints)


def _check_betas(betas, model: SmplxModel) -> torch.Tensor | None:
    if betas is None:
        return None
    betas = np.asarray(betas, dtype=np.float64).reshape(-1)
    if len(betas) != model.num_betas or not np.isfinite(betas).all():
        raise ValueError(f"betas must be {model.num_betas} finite numbers (the model was loaded with num_betas="
                         f"{model.num_betas}), got shape {betas.shape}")
    return torch.as_tensor(betas)
