"""Interactions where the two people touch: the touching palms meet within a few centimetres.

A touching palm is pinned by a ``Reach(contact=True)`` whose weight is 1 while it touches.
Palm targets of two hands that meet sit 3 cm apart (the thickness of two hands).
"""
from __future__ import annotations

import numpy as np

from .body import HAND_SIDE, LEFT, RIGHT, Actor, Reach
from .gait import SIDES
from .stage import (SHOULDER_HEIGHT, Cast, Path, Scene, body_points, facing, step_back, toward, turn, turn_word,
                    walk_path, walk_to)
from .timeline import FPS, MAX_FRAMES, direction, left_of, lifted, smoothstep, window

_HALF_GRIP = 0.015  # each palm's contact point sits this far from the point where the hands meet


def _approach(cast: Cast, a: Actor, b: Actor, gap: float, start: int) -> int:
    """One or both walk until their pelvises are ``gap`` apart; returns the frame both stand still."""
    distance = float(np.linalg.norm(b.root.at(start) - a.root.at(start)))
    if distance - gap < 0.15:
        return start
    share = {"both": cast.rng.uniform(0.35, 0.65), "first": 1.0, "second": 0.0}[
        cast.rng.choice(["both", "first", "second"])]
    a_start, b_start = a.root.at(start), b.root.at(start)
    axis = (b_start - a_start) / distance
    a_goal = a_start + axis * (distance - gap) * share
    b_goal = a_goal + axis * gap
    arrive = start
    for actor, goal, begin in ((a, a_goal, a_start), (b, b_goal, b_start)):
        if np.linalg.norm(goal - begin) > 0.05:
            delay = cast.pause(0.0, 0.4)
            arrive = max(arrive, walk_to(actor, start + delay, goal, cast.walking_speed()))
    return arrive


def _meeting_point(a: Actor, b: Actor, frame: int, height: float, lateral: float = 0.0) -> np.ndarray:
    """A point between the two pelvises at ``frame``, ``lateral`` to A's left, ``height`` up."""
    middle = (a.root.at(frame) + b.root.at(frame)) / 2.0
    return lifted(middle + lateral * left_of(float(a.yaw.at(frame)[0])), height)


def _palm_normal(actor: Actor, side: int, frame: int) -> np.ndarray:
    """Direction a thumb-up palm faces: toward the body's middle."""
    return lifted(-SIDES[side] * left_of(float(actor.yaw.at(frame)[0])))


def _constant(point) -> np.ndarray:
    return np.tile(np.asarray(point, dtype=np.float64), (MAX_FRAMES, 1))


def handshake(cast: Cast) -> Scene:
    hand = cast.hand(0.85)
    side = HAND_SIDE[hand]
    gap = cast.rng.uniform(0.72, 0.82) * cast.mean_scale
    a, b = cast.face_to_face(cast.rng.uniform(gap, 3.2))
    stand = _approach(cast, a, b, gap, cast.pause(0.2, 0.8))
    reach = max(stand - cast.frames(0.4), 1)
    grip = reach + cast.frames(0.7)
    release = grip + cast.pause(1.0, 2.0)
    free = release + cast.frames(0.6)
    height = SHOULDER_HEIGHT * min(cast.scales) - 0.35 * cast.mean_scale
    center = _meeting_point(a, b, stand, height)
    shaking = np.zeros((MAX_FRAMES, 3))
    pumps = np.arange(release - grip)
    envelope = np.sin(np.pi * pumps / len(pumps))
    shaking[grip:release, 1] = 0.035 * np.sin(np.pi * 2.2 * cast.tempo * pumps / FPS) * envelope
    hold = window(reach, grip, release, free)
    for actor in (a, b):
        palm = center + shaking - _HALF_GRIP * _palm_normal(actor, side, stand)
        actor.reach(side, Reach(hold, points=palm, contact=True))
        actor.lean.move(reach, grip, 0.08).move(release, free, 0.0)
    end = free + cast.pause(0.3, 1.0)
    if cast.rng.random() < 0.4:
        walker = (a, b)[int(cast.rng.integers(2))]
        end = max(end, step_back(walker, free, 0.35, 0.6) + cast.pause(0.2, 0.6))
    return cast.scene("handshake", (a, b), end, hand)


def high_five(cast: Cast) -> Scene:
    both = cast.rng.random() < 0.25
    hand = "both" if both else cast.hand(0.8)
    sides = (LEFT, RIGHT) if both else (HAND_SIDE[hand],)
    gap = cast.rng.uniform(0.72, 0.85) * cast.mean_scale
    a, b = cast.face_to_face(cast.rng.uniform(gap, 3.5))
    stand = _approach(cast, a, b, gap, cast.pause(0.2, 0.8))
    raise_start = max(stand - cast.frames(0.5), 1)
    touch = raise_start + cast.frames(0.8)
    part = touch + cast.frames(0.17)
    down = part + cast.frames(0.7)
    height = 1.62 * min(cast.scales)
    forward = lifted(facing(a, stand))
    for side in sides:
        lateral = 0.2 * SIDES[side] * cast.mean_scale if both else 0.0
        center = _meeting_point(a, b, stand, height, lateral)
        for actor, ahead in ((a, forward), (b, -forward)):
            own_side = side if actor is a or not both else 1 - side
            palm = _constant(center - _HALF_GRIP * ahead)
            actor.reach(own_side, Reach(window(raise_start, touch, part, down), points=palm,
                                        pole=(0.8, -0.5, -0.3), facing=ahead, contact=True))
    end = down + cast.pause(0.4, 1.2)
    return cast.scene("high_five", (a, b), end, hand)


def hug(cast: Cast) -> Scene:
    high = HAND_SIDE[cast.hand(0.7)]  # the arm that goes over the partner's shoulder
    gap = cast.rng.uniform(0.42, 0.48) * cast.mean_scale
    a, b = cast.face_to_face(cast.rng.uniform(gap + 0.3, 3.0))
    stand = _approach(cast, a, b, gap, cast.pause(0.2, 0.8))
    wrap = max(stand - cast.frames(0.3), 1)
    held = wrap + cast.frames(0.9)
    let_go = held + cast.pause(1.2, 2.6)
    apart = let_go + cast.frames(0.8)
    hold = window(wrap, held, let_go, apart)
    for actor in (a, b):
        # Over the partner's opposite-named shoulder (my right arm on their left shoulder).
        shoulder = 16 if high == RIGHT else 17
        actor.reach(high, Reach(hold, anchor=shoulder, offset=(0.0, 0.04, -0.02), pole=(1.0, 0.4, -0.2),
                                contact=True))
        around_side = -SIDES[1 - high]  # the partner's side under my low arm, in its own x
        actor.reach(1 - high, Reach(hold, anchor=6, offset=(0.1 * around_side, -0.02, -0.06), pole=(1.0, -0.3, -0.1)))
        actor.lean.move(wrap, held, cast.rng.uniform(0.12, 0.18)).move(let_go, apart, 0.0)
        actor.gaze.move(wrap, held, 0.0).move(let_go, apart, 1.0)
    end = apart + cast.pause(0.4, 1.2)
    if cast.rng.random() < 0.5:
        for actor in (a, b):
            end = max(end, step_back(actor, apart, 0.3, 0.5) + cast.pause(0.2, 0.5))
    return cast.scene("hug", (a, b), end, "right" if high == RIGHT else "left")


def push(cast: Cast) -> Scene:
    both = cast.rng.random() < 0.6
    hand = "both" if both else cast.hand(0.75)
    sides = (LEFT, RIGHT) if both else (HAND_SIDE[hand],)
    gap = cast.rng.uniform(0.48, 0.52) * cast.mean_scale
    a, b = cast.face_to_face(cast.rng.uniform(gap + 0.2, 3.0))
    stand = _approach(cast, a, b, gap, cast.pause(0.2, 0.6))
    reach = max(stand - cast.frames(0.3), 1)
    touch = reach + cast.frames(0.45)
    shove = touch + cast.frames(0.1)
    forward = facing(a, stand)
    stumble = shove + cast.frames(0.9)
    b.root.move(shove, stumble, b.root.at(shove) + forward * cast.rng.uniform(0.45, 0.75) * cast.mean_scale,
                ramp=cast.frames(0.15))
    b.lean.move(shove, shove + cast.frames(0.3), -0.15).move(stumble - cast.frames(0.3), stumble, 0.0)
    # The hands stay on while the arms straighten: until the partner is 5 cm away.
    moved = np.linalg.norm(b.root.values[shove:] - b.root.at(shove), axis=-1)
    let_go = shove + int(np.argmax(moved > 0.05 * cast.mean_scale))
    recovered = let_go + cast.frames(0.5)
    follow = shove + cast.frames(0.4)
    a.root.move(follow, follow + cast.frames(0.6), a.root.at(follow) + forward * 0.15 * cast.mean_scale)
    a.lean.move(reach, touch, 0.18).move(let_go, recovered, 0.0)
    hold = window(reach, touch, let_go, recovered)
    for side in sides:
        # My right hand lands on the partner's left shoulder, just in front of it.
        shoulder = 16 if side == RIGHT else 17
        offset = (0.0, -0.01, 0.035) if both else (0.02 * SIDES[1 - side], -0.01, 0.035)
        a.reach(side, Reach(hold, anchor=shoulder, offset=offset, pole=(0.6, -0.6, -0.5), facing=toward(a, b),
                            contact=True))
    flail = window(shove, shove + cast.frames(0.25), stumble - cast.frames(0.4), stumble)
    for side in (LEFT, RIGHT):
        b.reach(side, Reach(flail * 0.7, points=body_points(b, (SIDES[side] * 0.4, 1.05, 0.2))))
    end = max(stumble, recovered) + cast.pause(0.4, 1.2)
    return cast.scene("push", (a, b), end, hand)


def lead_by_hand(cast: Cast) -> Scene:
    hand = cast.hand(0.7)
    side = HAND_SIDE[hand]
    # The follower stands on the leader's hand side, a little behind, and keeps that place.
    place = np.array([SIDES[side] * cast.rng.uniform(0.55, 0.62) * cast.mean_scale, -cast.rng.uniform(0.05, 0.2)])
    a = Actor(cast.scales[0], (0.0, 0.0), 0.0)
    b = Actor(cast.scales[1], place, cast.rng.uniform(-0.6, 0.6))
    take = cast.pause(0.3, 0.8)
    held = take + cast.frames(0.7)
    turn(b, take, 0.0, cast.frames(0.6))
    bend = cast.rng.uniform(-1.2, 1.2)
    length = cast.rng.uniform(2.2, 4.0)
    corner = np.array([0.0, length * 0.5])
    start = held + cast.pause(0.1, 0.4)
    arrive = walk_path(a, Path([(0.0, 0.0), corner, corner + length * 0.5 * direction(bend)]), start,
                       cast.walking_speed() * 0.85)
    lag = cast.frames(0.1)
    frames = np.arange(start, MAX_FRAMES)
    source = np.clip(frames - lag, 0, None)
    yaw = a.yaw.values[source, 0]
    b.root.values[start:] = a.root.values[source] + place[0] * left_of(yaw) + place[1] * direction(yaw)
    b.yaw.values[start:, 0] = yaw
    let_go = arrive + lag + cast.pause(0.3, 0.8)
    free = let_go + cast.frames(0.6)
    hold = window(take, held, let_go, free)
    joined = lifted((a.root.values + b.root.values) / 2.0, 0.92 * min(cast.scales))
    across = toward(a, b)
    a.reach(side, Reach(hold, points=joined - _HALF_GRIP * across, pole=(0.3, -0.8, -0.3), contact=True))
    b.reach(1 - side, Reach(hold, points=joined + _HALF_GRIP * across, pole=(0.3, -0.8, -0.3), contact=True))
    a.gaze.move(start, start + cast.frames(0.5), 0.0)
    b.gaze.move(start, start + cast.frames(0.5), 0.3)
    end = free + cast.pause(0.3, 0.8)
    return cast.scene("lead_by_hand", (a, b), end, hand, turn=turn_word(bend))


def pass_object(cast: Cast) -> Scene:
    hand = cast.hand(0.8)
    side = HAND_SIDE[hand]
    taker_side = HAND_SIDE[cast.hand(0.8)]
    gap = cast.rng.uniform(0.78, 0.88) * cast.mean_scale
    a, b = cast.face_to_face(cast.rng.uniform(gap, 3.0))
    stand = _approach(cast, a, b, gap, cast.pause(0.3, 0.8))
    offer = max(stand - cast.frames(0.2), 1)
    meet = offer + cast.frames(0.8)
    let_go = meet + cast.pause(0.4, 0.8)
    lowered = let_go + cast.frames(0.7)
    center = _meeting_point(a, b, stand, 1.0 * min(cast.scales))
    ahead = lifted(facing(a, stand))
    object_half = 0.02
    # The giver carries the object in front of the chest, holds it out, and lets go.
    a.reach(side, Reach(window(0, 0, let_go, lowered), points=body_points(a, (SIDES[side] * 0.12, 1.02, 0.3))))
    a.reach(side, Reach(window(offer, meet, let_go, lowered), points=_constant(center - object_half * ahead),
                        contact=True))
    # The taker grips it and keeps it in front of the chest.
    b.reach(taker_side, Reach(window(offer + cast.frames(0.2), meet, MAX_FRAMES, MAX_FRAMES),
                              points=_constant(center + object_half * ahead), contact=True))
    keep = body_points(b, (SIDES[taker_side] * 0.1, 1.05, 0.28))
    b.reach(taker_side, Reach(window(let_go, lowered, MAX_FRAMES, MAX_FRAMES), points=keep))
    b.gaze.move(let_go, lowered, 0.0)
    end = lowered + cast.pause(0.4, 1.2)
    return cast.scene("pass_object", (a, b), end, hand,
                      thing=str(cast.rng.choice(["object", "cup", "book", "box", "ball"])))


def _spin_together(cast: Cast, a: Actor, b: Actor, start: int, gap: float) -> tuple[int, dict]:
    """Both turn around their common centre, facing each other; returns the end frame and text slots."""
    turns = cast.rng.uniform(0.3, 0.6) * cast.rng.choice([-1.0, 1.0])
    duration = cast.frames(abs(turns) * np.pi * gap / 0.35)
    center = (a.root.at(start) + b.root.at(start)) / 2.0
    yaw0 = float(a.yaw.at(start)[0])
    angle = yaw0 + 2 * np.pi * turns * smoothstep((np.arange(start, MAX_FRAMES) - start) / duration)
    ahead = np.stack([np.sin(angle), np.cos(angle)], axis=-1)
    b_turn = float(b.yaw.at(start)[0]) - yaw0
    a.root.values[start:] = center - ahead * gap / 2
    b.root.values[start:] = center + ahead * gap / 2
    a.yaw.values[start:, 0] = angle
    b.yaw.values[start:, 0] = angle + b_turn
    # Seen from above with Y up, a growing yaw turns counterclockwise.
    return start + duration, {"variant": "spin", "turn": "counterclockwise" if turns > 0 else "clockwise"}


def _sway_together(cast: Cast, a: Actor, b: Actor, start: int) -> tuple[int, dict]:
    """Both step to one side and back a few times; returns the end frame and text slots."""
    sway = cast.rng.uniform(0.2, 0.3) * cast.mean_scale * left_of(float(a.yaw.at(start)[0]))
    beat = cast.frames(cast.rng.uniform(0.8, 1.1))
    homes = [actor.root.at(start) for actor in (a, b)]
    count = int(cast.rng.integers(2, 4))
    for k in range(count + 1):
        shift = 0.0 if k == count else (1.0 if k % 2 == 0 else -1.0)
        for actor, home in zip((a, b), homes):
            actor.root.move(start + k * beat, start + (k + 1) * beat, home + shift * sway)
    return start + (count + 1) * beat, {"variant": "sway"}


def dance(cast: Cast) -> Scene:
    gap = cast.rng.uniform(0.72, 0.82) * cast.mean_scale
    a, b = cast.face_to_face(cast.rng.uniform(gap, 1.8))
    stand = _approach(cast, a, b, gap, cast.pause(0.2, 0.6))
    take = max(stand - cast.frames(0.3), 1)
    held = take + cast.frames(0.7)
    moves = held + cast.pause(0.1, 0.3)
    if cast.rng.random() < 0.6:
        done, words = _spin_together(cast, a, b, moves, gap)
    else:
        done, words = _sway_together(cast, a, b, moves)
    let_go = done + cast.pause(0.2, 0.6)
    free = let_go + cast.frames(0.6)
    hold = window(take, held, let_go, free)
    middle = (a.root.values + b.root.values) / 2.0
    across = toward(a, b)
    a_left = np.stack([across[:, 2], -across[:, 0]], axis=-1)  # A's left, facing B
    for side in (LEFT, RIGHT):  # A's left hand holds B's right hand, and the other way round
        joined = lifted(middle + SIDES[side] * 0.22 * cast.mean_scale * a_left, 1.02 * min(cast.scales))
        a.reach(side, Reach(hold, points=joined - _HALF_GRIP * across, pole=(0.8, -0.6, -0.2), contact=True))
        b.reach(1 - side, Reach(hold, points=joined + _HALF_GRIP * across, pole=(0.8, -0.6, -0.2), contact=True))
    end = free + cast.pause(0.3, 1.0)
    return cast.scene("dance", (a, b), end, "both", **words)
