"""Footsteps from a pelvis path: feet plant on the floor, swing in arcs, and the pelvis bobs.

A gait cycle has phase 0..1; the left foot is on the ground for phase in [0, STANCE) and the
right foot half a cycle later, so both feet are down around phases 0 and 0.5. The phase
advances with how fast the body moves, sidesteps and turns, and stops only with both feet
down and under the body. Each foot lands where its hip will be at mid-stance, and the
pelvis height is the highest one that every foot can reach with a slightly bent knee.
Positions here are Y up, metres, on a floor at y = 0; "ball" is the foot joint (10/11).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dhvae_sdk.motion.rotation import yaw_matrix
from dhvae_sdk.motion.skeleton import BONE_LENGTHS

from .kinematics import rotation_about
from .timeline import FPS, box_blur, direction, left_of, lifted, smoothstep

STANCE = 0.62
SIDES = (1.0, -1.0)  # left, right: the body's +X axis points to its left
_PHASE_OFFSETS = (0.0, 0.5)
_REST_PHASE = 0.06
_TOE_OUT = 0.1
_FOOT_WIDTH = 0.12  # lateral distance of each ball from the pelvis line at scale 1 (m)
_ANKLE_HEIGHT = 0.075  # ankle above the floor when the foot is flat (m)
_FOOT = BONE_LENGTHS[10]
BASE_PITCH = float(np.arcsin(_ANKLE_HEIGHT / _FOOT))  # ankle -> ball points down this much
_HEEL_RISE = 0.55  # extra pitch at toe-off when walking (rad)
_LEG_EXTENSION = 0.998  # hip-ankle distance over leg length, at most
_CADENCE = 0.85  # slowest stepping (cycles/s)
_START = 0.2  # demanded cycles/s that starts stepping
_STEP_ERROR = 0.09  # a standing foot this far (m) from its place under the hip takes a step
_YAW_ERROR = 0.35  # ... or turned this far (rad) from the body
_TURN_PER_CYCLE = 1.4  # rad
_LATERAL_STRIDE = 0.26  # sidestep distance per cycle at scale 1 (m)
_LOOKAHEAD = 0.6  # seconds at most between landing and mid-stance
_SWAY = 0.02  # pelvis shift toward the standing foot (m)
_FOOT_GAP = 0.14  # a foot lands at least this far (m, sideways) from the other one


@dataclass
class Gait:
    pelvis: np.ndarray  # [T, 3]
    balls: np.ndarray  # [T, 2, 3] foot joints, left and right
    foot_rotations: np.ndarray  # [T, 2, 3, 3] global rotations of the ankles
    phase: np.ndarray  # [T]
    walking: np.ndarray  # [T] 0 standing .. 1 stepping
    speed: np.ndarray  # [T] ground speed of the pelvis path (m/s)


def _stride(forward_speed: np.ndarray, scale: float) -> np.ndarray:
    """Distance covered per gait cycle: longer strides at higher speed, shorter walking backward."""
    speed = np.abs(forward_speed)
    return scale * np.where(forward_speed >= 0, 0.55 + 0.4 * speed, 0.45 + 0.3 * speed)


def _demanded_cadence(root_xz, yaw, scale):
    """Gait cycles per second needed to follow the path (forward, sideways and turning)."""
    velocity = np.gradient(root_xz, axis=0) * FPS
    forward = velocity[:, 0] * np.sin(yaw) + velocity[:, 1] * np.cos(yaw)
    lateral = velocity[:, 0] * np.cos(yaw) - velocity[:, 1] * np.sin(yaw)
    turning = np.gradient(yaw) * FPS
    cadence = np.sqrt((forward / _stride(forward, scale)) ** 2 + (lateral / (_LATERAL_STRIDE * scale)) ** 2
                      + (turning / _TURN_PER_CYCLE) ** 2)
    return cadence, np.linalg.norm(velocity, axis=-1)


def _foot_places(root_xz, yaw, scale):
    """Where each ball belongs under a standing body: positions [T, 2, 2] and yaws [T, 2]."""
    toe_yaw = yaw[:, None] + _TOE_OUT * np.array(SIDES)
    ahead = _FOOT * np.cos(BASE_PITCH) * direction(toe_yaw)
    places = root_xz[:, None] + scale * (_FOOT_WIDTH * np.array(SIDES)[None, :, None] * left_of(yaw)[:, None] + ahead)
    return places, toe_yaw


def _sample(values: np.ndarray, time: float) -> np.ndarray:
    """Linear interpolation of per-frame ``values`` at a fractional frame (clamped)."""
    time = min(max(time, 0.0), len(values) - 1.0)
    low = int(time)
    high = min(low + 1, len(values) - 1)
    weight = time - low
    return values[low] * (1.0 - weight) + values[high] * weight


def _lower_envelope(values: np.ndarray, radius: int) -> np.ndarray:
    """A smooth curve that never exceeds ``values``: a running minimum, then two box blurs."""
    padded = np.pad(values, 2 * radius, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 4 * radius + 1)
    return box_blur(box_blur(windows.min(axis=-1), radius), radius)


def _step_feet(root_xz, yaw, scale, demand):
    """Run the phase and the feet frame by frame. Returns phase, stepping flags, balls, foot yaws, gait progress."""
    frames = len(root_xz)
    places, place_yaw = _foot_places(root_xz, yaw, scale)
    phase = np.empty(frames)
    stepping = np.zeros(frames, dtype=bool)
    balls = np.zeros((frames, 2, 3))
    foot_yaw = np.empty((frames, 2))
    progress = np.empty((frames, 2))  # stance: -1 + s (s in [0, 1)); swing: u in [0, 1)
    plant = [places[0, f].copy() for f in range(2)]
    plant_yaw = [place_yaw[0, f] for f in range(2)]
    lift, lift_yaw = list(plant), list(plant_yaw)
    was_standing = [True, True]
    phi, rate = _REST_PHASE, _CADENCE

    def landing(frame, cycles_ahead, f):
        """Where foot ``f`` should land: under its hip at mid-stance, never across the other foot."""
        time = frame + min(cycles_ahead / rate, _LOOKAHEAD) * FPS
        target = _sample(places[:, f], time)
        outward = SIDES[f] * left_of(_sample(yaw, time))
        crossing = _FOOT_GAP * scale - float(np.dot(target - plant[1 - f], outward))
        return target + max(crossing, 0.0) * outward, _sample(place_yaw[:, f], time)

    for t in range(frames):
        standing = []
        for f in range(2):
            psi = (phi + _PHASE_OFFSETS[f]) % 1.0
            on_floor = psi < STANCE
            if on_floor and not was_standing[f]:
                plant[f], plant_yaw[f] = landing(t, STANCE / 2 - psi, f)
            if not on_floor and was_standing[f]:
                lift[f], lift_yaw[f] = plant[f], plant_yaw[f]
            if on_floor:
                balls[t, f, [0, 2]] = plant[f]
                foot_yaw[t, f] = plant_yaw[f]
                progress[t, f] = psi / STANCE - 1.0
            else:
                u = (psi - STANCE) / (1.0 - STANCE)
                target, target_yaw = landing(t, 1.0 - psi + STANCE / 2, f)
                target_yaw = lift_yaw[f] + (target_yaw - lift_yaw[f] + np.pi) % (2 * np.pi) - np.pi
                ease = smoothstep(u)
                balls[t, f, [0, 2]] = lift[f] + (target - lift[f]) * ease
                step = float(np.linalg.norm(target - lift[f]))
                balls[t, f, 1] = scale * min(0.07, 0.02 + 0.25 * step) * np.sin(np.pi * u)
                foot_yaw[t, f] = lift_yaw[f] + (target_yaw - lift_yaw[f]) * ease
                progress[t, f] = u
            was_standing[f] = on_floor
            standing.append(on_floor)

        misplaced = any(
            standing[f] and (np.linalg.norm(plant[f] - places[t, f]) > _STEP_ERROR * scale
                             or abs(plant_yaw[f] - place_yaw[t, f]) > _YAW_ERROR)
            for f in range(2)
        )
        if demand[t] > _START or misplaced:
            rate = max(demand[t], _CADENCE)
        elif all(standing):
            rate = 0.0
        else:
            rate = max(rate, _CADENCE)  # finish the step in the air
        phase[t] = phi
        stepping[t] = rate > 0
        phi += rate / FPS
    return phase, stepping, balls, foot_yaw, progress


def plan_gait(root_xz: np.ndarray, yaw: np.ndarray, scale: float) -> Gait:
    """Gait of a body of size ``scale`` whose pelvis follows ``root_xz`` [T, 2] facing ``yaw`` [T]."""
    demand, speed = _demanded_cadence(root_xz, yaw, scale)
    phase, stepping, balls, foot_yaw, progress = _step_feet(root_xz, yaw, scale, demand)
    walking = np.clip(box_blur(box_blur(stepping.astype(float), 6), 6), 0.0, 1.0)
    in_stance = progress < 0
    stance_rise = smoothstep((progress + 1.0 - 0.55) / 0.45)
    swing_fall = 1.0 - smoothstep(progress / 0.45)
    pitch = BASE_PITCH + _HEEL_RISE * walking[:, None] * np.where(in_stance, stance_rise, swing_fall)
    foot_rotations = yaw_matrix(foot_yaw) @ rotation_about(0, pitch)
    ankles = balls - scale * _FOOT * foot_rotations[..., :, 2]

    lateral = lifted(left_of(yaw))
    sway = _SWAY * scale * walking * np.cos(2.0 * np.pi * (phase - STANCE / 2))
    pelvis = lifted(root_xz) + sway[:, None] * lateral
    hips = pelvis[:, None] + scale * BONE_LENGTHS[1] * np.array(SIDES)[None, :, None] * lateral[:, None]
    reach = _LEG_EXTENSION * scale * (BONE_LENGTHS[4] + BONE_LENGTHS[7])
    ground_gap = np.linalg.norm((hips - ankles)[..., [0, 2]], axis=-1)
    highest = ankles[..., 1] + np.sqrt(np.clip(reach**2 - ground_gap**2, 0.0, None))
    standing_height = scale * _ANKLE_HEIGHT + reach * np.cos(0.02)
    height = np.minimum(highest.min(axis=1), standing_height)
    pelvis[:, 1] = _lower_envelope(height, 1)
    return Gait(pelvis, balls, foot_rotations, phase, walking, speed)
