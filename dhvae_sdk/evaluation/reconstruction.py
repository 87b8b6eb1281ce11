"""Reconstruction errors of a motion VAE: L1 on normalized features and MPJPE in metres.

MPJPE mixes two errors of different cause: where the body is (the root's path over the
floor, which grows with the clip's length) and how it is posed. ``path_error`` (the root
joint's distance) and ``pose_mpjpe`` (joints relative to each person's root) report them
apart. Low errors can still hide a body that slides along its path without moving its limbs
(a decoder that regresses to a rest pose): ``pose_motion_ratio`` compares how far the joints
move relative to their root from frame to frame, reconstruction over original (1 = as much
body motion as the original, near 0 = a sliding rest pose, above 1 = jitter).

The errors are means over the real frames of every sequence; within a frame both persons and
all their features (or joints) weigh equally. Sequences may be padded: ``mask`` [N, T] marks the
real frames. Sums are kept so that batches can be added up before the mean is taken.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _check(recon: np.ndarray, target: np.ndarray, mask: np.ndarray, what: str) -> None:
    if recon.shape != target.shape:
        raise ValueError(f"reconstructed and target {what} differ in shape: {recon.shape} vs {target.shape}")
    if mask.dtype != bool or mask.shape != recon.shape[:2]:
        raise ValueError(f"mask must be bool [N, T] = {recon.shape[:2]}, got {mask.dtype} {mask.shape}")


@dataclass
class ReconstructionErrors:
    """Running sums over real frames; ``add`` one batch at a time, read ``feature_l1`` / ``mpjpe``."""

    feature_l1_sum: float = 0.0
    joint_error_sum: float = 0.0
    pose_error_sum: float = 0.0
    path_error_sum: float = 0.0
    recon_pose_motion_sum: float = 0.0
    target_pose_motion_sum: float = 0.0
    frames: int = 0
    joint_frames: int = 0

    def add_features(self, recon: np.ndarray, target: np.ndarray, mask: np.ndarray) -> None:
        """Normalized features [N, T, persons, D] of the reconstruction and the original."""
        recon, target, mask = np.asarray(recon), np.asarray(target), np.asarray(mask)
        _check(recon, target, mask, "features")
        per_frame = np.abs(recon.astype(np.float64) - target).reshape(*mask.shape, -1).mean(axis=-1)
        self.feature_l1_sum += float(per_frame[mask].sum())
        self.frames += int(mask.sum())

    def add_joints(self, recon: np.ndarray, target: np.ndarray, mask: np.ndarray) -> None:
        """Joint positions [N, T, persons, J, 3] in metres (from de-normalized features); joint
        0 is the root."""
        recon, target, mask = np.asarray(recon).astype(np.float64), np.asarray(target), np.asarray(mask)
        _check(recon, target, mask, "joints")
        offsets = recon - target
        for total, distances in (
            ("joint_error_sum", np.linalg.norm(offsets, axis=-1)),
            ("pose_error_sum", np.linalg.norm(offsets - offsets[..., :1, :], axis=-1)),
            ("path_error_sum", np.linalg.norm(offsets[..., 0, :], axis=-1)),
        ):
            per_frame = distances.reshape(*mask.shape, -1).mean(axis=-1)
            setattr(self, total, getattr(self, total) + float(per_frame[mask].sum()))
        self.joint_frames += int(mask.sum())
        both_real = mask[:, 1:] & mask[:, :-1]
        for total, joints in (("recon_pose_motion_sum", recon), ("target_pose_motion_sum", target)):
            pose = joints - joints[..., :1, :]
            steps = np.linalg.norm(np.diff(pose, axis=1), axis=-1).reshape(*both_real.shape, -1).sum(axis=-1)
            setattr(self, total, getattr(self, total) + float(steps[both_real].sum()))

    @property
    def feature_l1(self) -> float:
        if not self.frames:
            raise ValueError("no real frame was added; call add_features first")
        return self.feature_l1_sum / self.frames

    def _require_joints(self) -> None:
        if not self.joint_frames:
            raise ValueError("no real frame of joints was added; call add_joints first")

    def _joint_mean(self, total: float) -> float:
        self._require_joints()
        return total / self.joint_frames

    @property
    def mpjpe(self) -> float:
        return self._joint_mean(self.joint_error_sum)

    @property
    def pose_mpjpe(self) -> float:
        """MPJPE of the joints relative to their person's root: the pose alone."""
        return self._joint_mean(self.pose_error_sum)

    @property
    def path_error(self) -> float:
        """Mean distance of the root joints: the path alone."""
        return self._joint_mean(self.path_error_sum)

    @property
    def pose_motion_ratio(self) -> float:
        """Frame-to-frame motion of the joints relative to their root, reconstruction over original."""
        self._require_joints()
        if self.target_pose_motion_sum == 0:
            raise ValueError("the original motions never move a joint relative to its root; the ratio is undefined")
        return self.recon_pose_motion_sum / self.target_pose_motion_sum
