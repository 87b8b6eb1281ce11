"""Interactions without touching: the hands stay well away from the other person."""
from __future__ import annotations

import numpy as np

from .body import HAND_SIDE, LEFT, RIGHT, Actor, Reach
from .gait import SIDES
from .stage import Cast, Path, Scene, body_points, face, facing, toward, turn_word, walk_path, walk_to
from .timeline import FPS, MAX_FRAMES, direction, heading, left_of, lifted, window


def _wave(cast: Cast, actor: Actor, partner: Actor, side: int, start: int, duration: int) -> int:
    """Raise a hand beside the head and swing it side to side; returns the frame the hand is down."""
    up = start + cast.frames(0.5)
    lower = up + duration
    down = lower + cast.frames(0.5)
    rate = cast.rng.uniform(1.6, 2.3)
    swing = np.zeros((MAX_FRAMES, 1))
    swing[start:, 0] = 0.09 * np.sin(2 * np.pi * rate * np.arange(MAX_FRAMES - start) / FPS)
    high = body_points(actor, (SIDES[side] * 0.3, 1.6, 0.12)) + swing * lifted(left_of(actor.yaw.values[:, 0]))
    actor.reach(side, Reach(window(start, up, lower, down), points=high, pole=(0.9, -0.4, -0.1),
                                facing=toward(actor, partner)))
    return down


def wave(cast: Cast) -> Scene:
    hand = cast.hand(0.8)
    side = HAND_SIDE[hand]
    a, b = cast.face_to_face(cast.rng.uniform(2.5, 5.0), lateral=cast.rng.uniform(-1.0, 1.0))
    b.yaw.values[:] = heading(b.root.at(0), a.root.at(0))
    start = cast.pause(0.3, 1.0)
    if cast.rng.random() < 0.4:  # A walks in first, then notices B
        a.root.values[:] = -1.5 * direction(0.3)
        start = walk_to(a, start, (0.0, 0.0), cast.walking_speed())
    face(a, start, b.root.at(0), cast.frames(0.5))
    first = _wave(cast, a, b, side, start, cast.pause(1.0, 2.2))
    reply = start + cast.pause(0.4, 1.2)
    second = _wave(cast, b, a, side, reply, cast.pause(1.0, 2.0))
    end = max(first, second) + cast.pause(0.4, 1.0)
    return cast.scene("wave", (a, b), end, hand)


def bow(cast: Cast) -> Scene:
    a, b = cast.face_to_face(cast.rng.uniform(1.5, 2.2))
    together = cast.rng.random() < 0.5
    start = cast.pause(0.3, 1.0)
    end = start
    for k, actor in enumerate((a, b)):
        begin = start if together or k == 0 else start + cast.pause(0.5, 1.2)
        down = begin + cast.frames(cast.rng.uniform(0.6, 0.9))
        hold = down + cast.pause(0.4, 1.0)
        up = hold + cast.frames(0.7)
        depth = cast.rng.uniform(0.45, 0.85)
        actor.pitch.move(begin, down, 0.6 * depth).move(hold, up, 0.0)
        actor.lean.move(begin, down, 0.4 * depth).move(hold, up, 0.0)
        actor.gaze.move(begin, down, 0.0).move(hold, up, 1.0)
        back = actor.root.at(begin) - 0.05 * depth * facing(actor, begin)
        actor.root.move(begin, down, back).move(hold, up, actor.root.at(begin))  # hips go back to keep balance
        for side in (LEFT, RIGHT):  # hands slide down the front of the thighs
            front = body_points(actor, (SIDES[side] * 0.1, 0.62 - 0.15 * depth, 0.1 + 0.25 * depth))
            actor.reach(side, Reach(window(begin, down, hold, up) * 0.6, points=front))
        end = max(end, up)
    end += cast.pause(0.4, 1.2)
    return cast.scene("bow", (a, b), end, "none", order="together" if together else "in turn")


def walk_past(cast: Cast) -> Scene:
    side = cast.hand(0.5)  # the side on which each keeps the other
    offset = SIDES[HAND_SIDE[side]] * cast.rng.uniform(0.8, 1.1)
    distance = cast.rng.uniform(4.0, 5.5)
    a = Actor(cast.scales[0], (0.0, 0.0), 0.0)
    b = Actor(cast.scales[1], (offset, distance), np.pi)
    overshoot = cast.rng.uniform(1.0, 1.6)
    arrivals = []
    for actor, goal in ((a, (0.0, distance + overshoot)), (b, (offset, -overshoot))):
        arrivals.append(walk_to(actor, cast.pause(0.2, 0.8), goal, cast.walking_speed()))
    # Look at each other while approaching, then ahead once level.
    meet = _closest_frame(a, b)
    for actor in (a, b):
        actor.gaze.move(0, 1, 0.6).move(meet - cast.frames(0.8), meet - cast.frames(0.2), 0.0)
    end = max(arrivals) + cast.pause(0.3, 0.8)
    return cast.scene("walk_past", (a, b), end, side)


def _closest_frame(a: Actor, b: Actor) -> int:
    return int(np.argmin(np.linalg.norm(a.root.values - b.root.values, axis=-1)))


def circle(cast: Cast) -> Scene:
    radius = cast.rng.uniform(0.9, 1.3) * cast.mean_scale
    a, b = cast.face_to_face(2 * radius)
    direction = cast.rng.choice([-1.0, 1.0])
    turns = cast.rng.uniform(0.4, 0.65)
    speed = cast.rng.uniform(0.75, 1.0) * np.sqrt(cast.tempo)
    center = np.array([0.0, radius])
    start = cast.pause(0.4, 1.0)
    arrival = start
    for actor, angle0 in ((a, np.pi), (b, 0.0)):
        # Angles about +Y: a growing angle runs counterclockwise seen from above.
        angles = angle0 + direction * np.linspace(0.0, 2 * np.pi * turns, 64)
        path = Path(center + radius * np.stack([np.sin(angles), np.cos(angles)], axis=-1))
        inward = direction * 0.25  # face a little toward the middle (on the left when counterclockwise)
        arrival = max(arrival, walk_path(actor, path, start, speed, yaw_offset=inward))
    end_face = arrival + cast.frames(0.6)
    for actor, partner in ((a, b), (b, a)):
        face(actor, arrival, partner.root.at(arrival), cast.frames(0.6))
    end = end_face + cast.pause(0.4, 1.0)
    return cast.scene("circle", (a, b), end, "none",
                      turn="counterclockwise" if direction > 0 else "clockwise")


# Palm targets of mirror gestures: (x toward the arm's own side, y up, z forward) at scale 1,
# and whether both arms do it.
_GESTURES = {
    "arm out to the side": ((0.72, 1.35, 0.05), False),
    "arm up": ((0.24, 1.86, 0.05), False),
    "arm forward": ((0.2, 1.3, 0.52), False),
    "hand on the head": ((0.1, 1.62, 0.1), False),
    "arms up": ((0.24, 1.86, 0.05), True),
    "arms out to the sides": ((0.72, 1.35, 0.05), True),
}


def mirror(cast: Cast) -> Scene:
    a, b = cast.face_to_face(cast.rng.uniform(1.6, 2.2))
    names = list(cast.rng.choice(list(_GESTURES), size=int(cast.rng.integers(2, 4)), replace=False))
    first_side = HAND_SIDE[cast.hand(0.7)]
    delay = cast.pause(0.1, 0.3)
    t = cast.pause(0.3, 0.8)
    for k, name in enumerate(names):
        local, both = _GESTURES[name]
        rise, hold = cast.frames(cast.rng.uniform(0.4, 0.6)), cast.pause(0.3, 0.7)
        side = first_side if k == 0 else int(cast.rng.integers(2))
        for actor, lag, own in ((a, 0, side), (b, delay, 1 - side)):  # a mirror image uses the other arm
            start = t + lag
            weight = window(start, start + rise, start + rise + hold, start + 2 * rise + hold)
            for arm in ((LEFT, RIGHT) if both else (own,)):
                point = body_points(actor, (SIDES[arm] * local[0], local[1], local[2]))
                actor.reach(arm, Reach(weight, points=point, pole=(0.9, -0.3, -0.3)))
        t += 2 * rise + hold + cast.pause(0.1, 0.4)
    if cast.rng.random() < 0.4:  # a side step, mirrored: the same way in the world
        step = 0.3 * left_of(float(a.yaw.at(t)[0])) * cast.rng.choice([-1.0, 1.0])
        for actor in (a, b):
            actor.root.move(t, t + cast.frames(0.8), actor.root.at(t) + step)
        t += cast.frames(0.8)
    end = t + delay + cast.pause(0.3, 0.8)
    first, both = names[0], _GESTURES[names[0]][1]
    return cast.scene("mirror", (a, b), end, "both" if both else ("left" if first_side == LEFT else "right"),
                      gesture=first)


def follow(cast: Cast) -> Scene:
    gap = cast.rng.uniform(1.2, 1.8) * cast.mean_scale
    first_leg, second_leg = cast.rng.uniform(1.2, 2.2), cast.rng.uniform(1.0, 2.2)
    bend = cast.rng.uniform(-1.3, 1.3)
    corner = np.array([0.0, first_leg])
    path = Path([(0.0, -gap), corner, corner + second_leg * direction(bend)])
    a = Actor(cast.scales[0], path.at(gap), 0.0)
    b = Actor(cast.scales[1], path.at(0.0), 0.0)
    speed = cast.walking_speed() * 0.9
    start = cast.pause(0.3, 0.8)
    arrive = walk_path(a, path, start, speed, begin=gap)
    arrive = max(arrive, walk_path(b, path, start + cast.pause(0.2, 0.6), speed,
                                   end=path.length - gap * cast.rng.uniform(0.8, 1.0)))
    a.gaze.values[:] = 0.0
    end = arrive + cast.pause(0.3, 1.0)
    return cast.scene("follow", (a, b), end, "none", turn=turn_word(bend))


def beckon(cast: Cast) -> Scene:
    hand = cast.hand(0.8)
    side = HAND_SIDE[hand]
    distance = cast.rng.uniform(2.5, 4.0)
    lateral = cast.rng.uniform(-1.0, 1.0)
    a = Actor(cast.scales[0], (0.0, 0.0), heading((0.0, 0.0), (lateral, distance)))
    b = Actor(cast.scales[1], (lateral, distance), np.pi + cast.rng.uniform(-1.5, 1.5))
    start = cast.pause(0.3, 0.8)
    up = start + cast.frames(0.4)
    notice = up + cast.pause(0.6, 1.2)
    goal = np.array([lateral, distance]) * (1.0 - cast.rng.uniform(1.0, 1.3) / np.hypot(lateral, distance))
    walk_start = face(b, notice, a.root.at(0), cast.frames(0.5))
    arrive = walk_to(b, walk_start, goal, cast.walking_speed() * 0.9)
    lower = walk_start + cast.frames(0.6)
    waves = np.zeros((MAX_FRAMES, 1))
    waves[start:, 0] = 0.08 * np.sin(2 * np.pi * cast.rng.uniform(1.2, 1.7) * np.arange(MAX_FRAMES - start) / FPS)
    toward_me = -lifted(facing(a, 0))
    palm = body_points(a, (SIDES[side] * 0.18, 1.12, 0.36)) + waves * toward_me
    # Palm up, the hand swings toward the chest and back.
    a.reach(side, Reach(window(start, up, lower, lower + cast.frames(0.5)), points=palm,
                        facing=np.array([0.0, 1.0, 0.0])))
    end = arrive + cast.pause(0.4, 1.0)
    return cast.scene("beckon", (a, b), end, hand)
