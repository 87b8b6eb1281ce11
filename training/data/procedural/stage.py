"""Shared tools of the scene scripts: the random cast, walking along paths, body-relative points.

Scripts work in a canonical layout (person A near the origin facing +Z, person B in front)
on a Y-up floor; the writer later turns and moves the whole scene to a random place.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .body import Actor
from .timeline import (FPS, MAX_FRAMES, MIN_FRAMES, box_blur, direction, eased_progress, heading, left_of, lifted,
                       nearest_angle, seconds)

# Shoulder height of a standing body at scale 1 (m).
SHOULDER_HEIGHT = 1.32


@dataclass
class Scene:
    interaction: str
    actors: tuple[Actor, Actor]
    length: int
    handedness: str  # "right", "left", "both" or "none": the hand(s) the text talks about
    tempo: float
    words: dict = field(default_factory=dict)  # template slots for the text

    def touching(self) -> np.ndarray:
        """Frames [length] (bool) where every contact reach of the scene holds its palm on target."""
        weights = [reach.weight[: self.length] for actor in self.actors for reaches in actor.reaches
                   for reach in reaches if reach.contact]
        if not weights:
            return np.zeros(self.length, dtype=bool)
        return np.all(np.stack(weights) >= 1.0, axis=0)


class Cast:
    """The random choices every script shares: tempo, body sizes, hand, timing."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.tempo = float(rng.uniform(0.8, 1.25))
        self.scales = rng.uniform(0.9, 1.1, size=2)

    @property
    def mean_scale(self) -> float:
        return float(self.scales.mean())

    def frames(self, t: float) -> int:
        return seconds(t, self.tempo)

    def pause(self, low: float, high: float) -> int:
        return self.frames(self.rng.uniform(low, high))

    def hand(self, right_share: float = 0.8) -> str:
        return "right" if self.rng.random() < right_share else "left"

    def walking_speed(self) -> float:
        return float(self.rng.uniform(0.95, 1.3) * np.sqrt(self.tempo))

    def face_to_face(self, distance: float, lateral: float = 0.0) -> tuple[Actor, Actor]:
        """A at the origin facing +Z, B ``distance`` ahead (and ``lateral`` to A's left) facing A."""
        return (Actor(self.scales[0], (0.0, 0.0), 0.0),
                Actor(self.scales[1], (lateral, distance), np.pi))

    def scene(self, name, actors, length, handedness, **words) -> Scene:
        return Scene(name, actors, int(np.clip(length, MIN_FRAMES, MAX_FRAMES)), handedness, self.tempo, words)


def turn(actor: Actor, start: int, yaw: float, frames: int) -> int:
    """Turn to ``yaw`` the short way; returns the frame the turn ends."""
    target = nearest_angle(yaw, float(actor.yaw.at(start)[0]))
    actor.yaw.move(start, start + frames, target)
    return start + frames


def face(actor: Actor, start: int, xz, frames: int) -> int:
    return turn(actor, start, heading(actor.root.at(start), xz), frames)


def turn_word(angle: float) -> str | None:
    """"left" or "right" for a clear change of heading by ``angle`` rad (positive turns left)."""
    if abs(angle) < 0.5:
        return None
    return "left" if angle > 0 else "right"


def facing(actor: Actor, frame: int) -> np.ndarray:
    """Unit ground vector (x, z) the actor faces at ``frame``."""
    return direction(float(actor.yaw.at(frame)[0]))


def step_back(actor: Actor, start: int, distance: float, speed: float) -> int:
    """Walk backward ``distance`` still facing the same way; returns the arrival frame."""
    goal = actor.root.at(start) - distance * facing(actor, start)
    return walk_to(actor, start, goal, speed, keep_facing=True)


def walk_to(actor: Actor, start: int, xz, speed: float, keep_facing: bool = False) -> int:
    """Walk in a straight line to ``xz`` facing the way (or as before); returns the arrival frame."""
    begin = actor.root.at(start)
    distance = float(np.linalg.norm(np.asarray(xz) - begin))
    ramp = seconds(0.8)
    duration = int(round(distance / speed * FPS)) + ramp
    if not keep_facing:
        turn(actor, start, heading(begin, xz), min(seconds(0.6), duration))
    actor.root.move(start, start + duration, xz, ramp=ramp)
    return start + duration


class Path:
    """A smooth ground path through waypoints, walked by arc length."""

    def __init__(self, waypoints):
        points = np.asarray(waypoints, dtype=np.float64)
        for _ in range(3):  # corner cutting: round the corners, keep the ends
            inner = np.repeat(points, 2, axis=0)[1:-1].reshape(-1, 2, 2)
            cut = np.stack([0.75 * inner[:, 0] + 0.25 * inner[:, 1], 0.25 * inner[:, 0] + 0.75 * inner[:, 1]], 1)
            points = np.concatenate([points[:1], cut.reshape(-1, 2)[1:-1], points[-1:]])
        dense = [points[0]]
        for a, b in zip(points[:-1], points[1:]):
            count = max(2, int(np.linalg.norm(b - a) / 0.02))
            dense.extend(a + (b - a) * (k / count) for k in range(1, count + 1))
        self.points = np.array(dense)
        steps = np.linalg.norm(np.diff(self.points, axis=0), axis=1)
        self.arc = np.concatenate([[0.0], np.cumsum(steps)])
        self.length = float(self.arc[-1])

    def at(self, distance) -> np.ndarray:
        distance = np.clip(distance, 0.0, self.length)
        return np.stack([np.interp(distance, self.arc, self.points[:, k]) for k in (0, 1)], axis=-1)

    def heading(self, distance) -> np.ndarray:
        """Yaw along the path, measured over 40 cm so the corners of the polyline do not show."""
        ahead = self.at(np.asarray(distance) + 0.2)
        behind = self.at(np.asarray(distance) - 0.2)
        delta = ahead - behind
        return np.arctan2(delta[..., 0], delta[..., 1])


def walk_path(actor: Actor, path: Path, start: int, speed: float, begin: float = 0.0, end: float | None = None,
              yaw_offset: float = 0.0) -> int:
    """Walk ``path`` from arc length ``begin`` to ``end`` facing along it; returns the arrival frame."""
    end = path.length if end is None else end
    ramp = seconds(0.8)
    duration = int(round((end - begin) / speed * FPS)) + ramp
    distance = begin + (end - begin) * eased_progress(duration, ramp)
    yaw = box_blur(np.unwrap(path.heading(distance)), 4) + yaw_offset
    yaw += nearest_angle(yaw[0], float(actor.yaw.at(start)[0])) - yaw[0]
    turn(actor, max(start - seconds(0.4), 0), yaw[0], seconds(0.4))
    stop = min(start + duration + 1, MAX_FRAMES)
    actor.root.values[start:stop] = path.at(distance)[: stop - start]
    actor.root.values[stop:] = actor.root.values[stop - 1]
    actor.yaw.values[start:stop, 0] = yaw[: stop - start]
    actor.yaw.values[stop:] = actor.yaw.values[stop - 1]
    return start + duration


def body_points(actor: Actor, local) -> np.ndarray:
    """World points [MAX_FRAMES, 3] fixed to a standing actor's feet frame (x left, y up, z front, in m/scale)."""
    local = np.broadcast_to(np.asarray(local, dtype=np.float64), (MAX_FRAMES, 3)) * actor.scale
    yaw = actor.yaw.values[:, 0]
    ground = actor.root.values + left_of(yaw) * local[:, :1] + direction(yaw) * local[:, 2:]
    return lifted(ground, local[:, 1])


def toward(actor: Actor, partner: Actor) -> np.ndarray:
    """Unit ground directions [MAX_FRAMES, 3] from ``actor`` to ``partner``."""
    delta = partner.root.values - actor.root.values
    return lifted(delta / np.maximum(np.linalg.norm(delta, axis=-1, keepdims=True), 1e-9))
