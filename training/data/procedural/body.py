"""What a person intends frame by frame (``Actor``) and the posed skeleton that results.

Intent: pelvis path on the floor, facing, bends, gaze and palm targets. Posing: the gait
plans the feet, two-bone IK places knees and elbows, the skeleton's forward kinematics
gives the 22 joints, and the wrists carry the 40 hand joints. Everything is Y up, metres.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dhvae_sdk.motion.rotation import yaw_matrix
from dhvae_sdk.motion.skeleton import BONE_LENGTHS, NUM_JOINTS, forward_kinematics, rest_offsets

from .gait import SIDES, plan_gait
from .hands import PALM, hand_points
from .kinematics import bone_frame, rotation_about, two_bone_ik
from .timeline import FPS, MAX_FRAMES, Track, box_blur, direction, lifted

LEFT, RIGHT = 0, 1
HAND_SIDE = {"left": LEFT, "right": RIGHT}
# Joint indices of the limbs, left then right: (root, middle, end) of each chain.
_ARMS = ((16, 18, 20), (17, 19, 21))
_LEGS = ((1, 4, 7), (2, 5, 8))
_COLLARS = (13, 14)
# The collar turns its bone (rest: straight down) up and out, so shoulders sit beside the neck.
_COLLAR_TURN = np.deg2rad(145.0)
# The neck turns its bone (rest: straight ahead) up, so the head sits above the neck.
_HEAD_LIFT = 1.2
# Default elbow direction in the torso frame (x: the arm's own side, y up, z forward).
_ELBOW_POLE = np.array([0.45, -0.45, -0.77])


@dataclass
class Reach:
    """An arm task: bring the palm to a target, blended in with ``weight`` [MAX_FRAMES] (0..1).

    The target is either ``points`` (world, [MAX_FRAMES, 3]) or a joint of the partner plus
    ``offset`` in the partner's chest frame (x its left, y up, z its front). ``pole`` is the
    elbow direction in the own chest frame with x toward the arm's side; ``facing`` is the
    world direction the palm should face ([3] or [MAX_FRAMES, 3]); the wrist turns about the
    forearm as far as that goes. ``contact`` marks a reach whose palm touches the partner
    while the weight is 1.
    """
    weight: np.ndarray
    points: np.ndarray | None = None
    anchor: int | None = None
    offset: np.ndarray | None = None
    pole: tuple | None = None
    facing: np.ndarray | None = None
    contact: bool = False


class Actor:
    """One person's intent; tracks hold values between eased moves (see ``timeline``)."""

    def __init__(self, scale: float, xz, yaw: float):
        self.scale = float(scale)
        self.root = Track(xz)
        self.yaw = Track(yaw)
        self.lean = Track(0.0)  # forward bend of the spine (rad)
        self.pitch = Track(0.0)  # forward tilt of the pelvis (rad), a bow bends here
        self.gaze = Track(1.0)  # 1 looks at the partner's face, 0 straight ahead
        self.reaches: tuple[list[Reach], list[Reach]] = ([], [])

    def reach(self, side: int, reach: Reach) -> Reach:
        self.reaches[side].append(reach)
        return reach


@dataclass
class Pose:
    joints: np.ndarray  # [T, 22, 3]
    local_rotations: np.ndarray  # [T, 21, 3, 3] joints 1..21
    hands: np.ndarray  # [T, 40, 3] raw joints 22..61


@dataclass
class _Trunk:
    """A person without arm and head motion: enough to aim at and to hang arms from."""
    scale: float
    offsets: np.ndarray
    root_rotation: np.ndarray
    pelvis: np.ndarray
    local: np.ndarray
    chest: np.ndarray  # global rotation of spine3 [T, 3, 3]
    joints: np.ndarray
    yaw: np.ndarray
    walking: np.ndarray
    phase: np.ndarray
    speed: np.ndarray
    style: dict  # this person's relaxed arm pose: spread, drop and swing (m)


def _set(local, joint, rotation):
    local[:, joint - 1] = rotation


def _transpose(rotations):
    return np.swapaxes(rotations, -1, -2)


def _trunk(actor: Actor, frames: int, rng: np.random.Generator) -> _Trunk:
    scale = actor.scale
    seconds = np.arange(frames) / FPS
    phases = rng.uniform(0.0, 2.0 * np.pi, size=3)
    # Weight shifts and breathing, too slow to start a step.
    shift = 0.01 * scale * np.stack([np.sin(2 * np.pi * seconds / 5.0 + phases[0]),
                                     np.sin(2 * np.pi * seconds / 6.3 + phases[1])], axis=-1)
    root_xz = actor.root.values[:frames] + shift
    yaw = actor.yaw.values[:frames, 0]
    lean = actor.lean.values[:frames, 0] + 0.015 * np.sin(2 * np.pi * seconds / 3.7 + phases[2])
    gait = plan_gait(root_xz, yaw, scale)

    offsets = rest_offsets(BONE_LENGTHS * scale)
    root_rotation = yaw_matrix(yaw) @ rotation_about(0, actor.pitch.values[:frames, 0])
    local = np.tile(np.eye(3), (frames, NUM_JOINTS - 1, 1, 1))
    spine = rotation_about(0, lean / 3.0)
    for joint in (3, 6, 9):
        _set(local, joint, spine)
    _set(local, 12, rotation_about(0, np.full(frames, -_HEAD_LIFT)))
    for side, collar in enumerate(_COLLARS):
        _set(local, collar, rotation_about(2, np.full(frames, SIDES[side] * _COLLAR_TURN)))
    chest = root_rotation @ spine @ spine @ spine
    joints = forward_kinematics(root_rotation, local, gait.pelvis, offsets)

    for side, (hip, knee, ankle) in enumerate(_LEGS):
        foot = gait.foot_rotations[:, side]
        ankle_target = gait.balls[:, side] - scale * BONE_LENGTHS[ankle + 3] * foot[..., :, 2]
        knee_at, ankle_at, hinge = two_bone_ik(joints[:, hip], ankle_target, scale * BONE_LENGTHS[knee],
                                               scale * BONE_LENGTHS[ankle], foot[..., :, 2])
        thigh = bone_frame(knee_at - joints[:, hip], -hinge)
        shin = bone_frame(ankle_at - knee_at, -hinge)
        _set(local, hip, _transpose(root_rotation) @ thigh)
        _set(local, knee, _transpose(thigh) @ shin)
        _set(local, ankle, _transpose(shin) @ foot)
    style = {"spread": rng.uniform(0.04, 0.09), "drop": rng.uniform(0.57, 0.6), "swing": rng.uniform(0.11, 0.16)}
    return _Trunk(scale, offsets, root_rotation, gait.pelvis, local, chest, joints, yaw, gait.walking,
                  gait.phase, gait.speed, style)


def _aim_head(trunk: _Trunk, actor: Actor, partner: _Trunk, frames: int) -> None:
    """Turn the neck toward the partner's face (gaze 1) or straight ahead (gaze 0)."""
    neck = trunk.joints[:, 12]
    face = partner.joints[:, 12] + np.array([0.0, 0.12 * partner.scale, 0.0])
    ahead = neck + 3.0 * lifted(direction(trunk.yaw))
    gaze = actor.gaze.values[:frames]
    view = np.einsum("tji,tj->ti", trunk.chest, ahead + (face - ahead) * gaze - neck)
    turn = np.clip(np.arctan2(view[:, 0], view[:, 2]), -1.2, 1.2)
    nod = np.clip(np.arctan2(-view[:, 1], np.hypot(view[:, 0], view[:, 2])), -0.4, 0.5)
    turn, nod = box_blur(turn, 4), box_blur(nod, 4)
    _set(trunk.local, 12, yaw_matrix(turn) @ rotation_about(0, 0.6 * nod - _HEAD_LIFT))


def _resting_palm(trunk: _Trunk, side: int, frames: int) -> np.ndarray:
    """Where a relaxed palm hangs, swinging against the same-side leg while walking."""
    sign = SIDES[side]
    swing_phase = trunk.phase - (0.5 if side == LEFT else 0.0)
    amplitude = trunk.style["swing"] * trunk.walking * np.clip(trunk.speed / 1.2, 0.3, 1.2)
    local = np.stack([
        np.full(frames, sign * trunk.style["spread"]),
        -trunk.style["drop"] + 0.03 * trunk.walking,
        0.05 + amplitude * np.cos(2.0 * np.pi * swing_phase),
    ], axis=-1)
    return trunk.joints[:, _ARMS[side][0]] + trunk.scale * np.einsum("tij,tj->ti", yaw_matrix(trunk.yaw), local)


def _reach_target(reach: Reach, partner: _Trunk, frames: int) -> np.ndarray:
    if reach.points is not None:
        return reach.points[:frames]
    offset = np.broadcast_to(reach.offset, (frames, 3)) if reach.offset is not None else np.zeros((frames, 3))
    return partner.joints[:, reach.anchor] + np.einsum("tij,tj->ti", partner.chest, offset)


def _pose_arm(trunk: _Trunk, actor: Actor, partner: _Trunk, side: int, frames: int) -> np.ndarray:
    """Solve one arm for its palm targets; returns the wrist's global rotation [T, 3, 3]."""
    sign = SIDES[side]
    mirror = np.array([sign, 1.0, 1.0])
    palm = _resting_palm(trunk, side, frames)
    pole = np.tile(_ELBOW_POLE * mirror, (frames, 1))
    for reach in actor.reaches[side]:
        weight = reach.weight[:frames, None]
        palm = palm + (_reach_target(reach, partner, frames) - palm) * weight
        if reach.pole is not None:
            pole = pole + (np.asarray(reach.pole) * mirror - pole) * weight
    pole = np.einsum("tij,tj->ti", trunk.chest, pole)

    shoulder_joint, elbow_joint, wrist_joint = _ARMS[side]
    shoulder = trunk.joints[:, shoulder_joint]
    upper, lower = trunk.scale * BONE_LENGTHS[elbow_joint], trunk.scale * BONE_LENGTHS[wrist_joint]
    # The palm point lies on the forearm's axis, so the hand is a rigid extension of the forearm.
    palm_length = trunk.scale * float(np.linalg.norm(PALM))
    elbow, palm_at, hinge = two_bone_ik(shoulder, palm, upper, lower + palm_length, pole)
    wrist = elbow + (palm_at - elbow) * (lower / (lower + palm_length))
    upper_arm = bone_frame(elbow - shoulder, hinge)
    forearm = bone_frame(wrist - elbow, hinge)
    turn = np.zeros(frames)
    for reach in actor.reaches[side]:
        if reach.facing is not None:
            facing = np.einsum("tji,tj->ti", forearm, np.broadcast_to(reach.facing, (MAX_FRAMES, 3))[:frames])
            # The palm faces -x (left hand) or +x (right hand) of the forearm frame at zero turn.
            wanted = np.arctan2(sign * facing[:, 2], -sign * facing[:, 0])
            turn = turn + (wanted - turn) * reach.weight[:frames]
    wrist_turn = rotation_about(1, turn)
    hand = forearm @ wrist_turn
    collar = trunk.chest @ trunk.local[:, _COLLARS[side] - 1]
    _set(trunk.local, shoulder_joint, _transpose(collar) @ upper_arm)
    _set(trunk.local, elbow_joint, _transpose(upper_arm) @ forearm)
    _set(trunk.local, wrist_joint, wrist_turn)
    return hand


def pose_pair(actors: tuple[Actor, Actor], frames: int, rng: np.random.Generator) -> list[Pose]:
    """Pose both people for ``frames`` frames; each aims its head and arms at the other."""
    trunks = [_trunk(actor, frames, rng) for actor in actors]
    poses = []
    for me in (0, 1):
        trunk, actor, partner = trunks[me], actors[me], trunks[1 - me]
        _aim_head(trunk, actor, partner, frames)
        wrists = np.stack([_pose_arm(trunk, actor, partner, side, frames) for side in (LEFT, RIGHT)], axis=1)
        poses.append((trunk, wrists))
    result = []
    for trunk, wrist_rotations in poses:
        joints = forward_kinematics(trunk.root_rotation, trunk.local, trunk.pelvis, trunk.offsets)
        hands = hand_points(joints[:, [20, 21]], wrist_rotations, trunk.scale)
        result.append(Pose(joints, trunk.local, hands))
    return result
