"""Three sentences per scene from varied templates.

Sentences name a hand, a side or a turning direction only when the scene has one, and then
the right one, so the mirror augmentation's left/right and clockwise swaps stay true.
Slots: {two} the pair, {one}/{other} the two people ({again} names the second one a second
time), {side} "left"/"right", {adv} a speed word (maybe empty), and per-scene words
({turn}, {thing}, {gesture}).
"""
from __future__ import annotations

import numpy as np

from .stage import Scene

_PAIRS = ("two people", "two persons", "a pair of people", "the two people")
_ROLES = (("one person", "the other", "the other"), ("a person", "another person", "the other person"),
          ("the first person", "the second person", "the second person"),
          ("someone", "another person", "the other person"))

# Per interaction: templates for any scene, templates that name the side ("left"/"right"
# handedness) and templates for scenes done with both hands.
_TEMPLATES = {
    "handshake": (
        ["{two} shake hands{adv}.", "{two} greet each other with a handshake.",
         "{two} meet and shake hands{adv}.", "{one} offers a hand and {other} shakes it."],
        ["{two} shake hands with their {side} hands.", "{one} shakes {other}'s {side} hand with the {side} hand.",
         "{two} greet each other by shaking {side} hands{adv}."], []),
    "high_five": (
        ["{two} give each other a high five{adv}.", "{two} slap their palms together above their heads.",
         "{two} celebrate with a high five."],
        ["{two} high five each other with their {side} hands.",
         "{one} raises the {side} hand and {other} high fives it."],
        ["{two} give each other a double high five with both hands.", "{two} high five with both hands raised."]),
    "hug": (
        ["{two} hug each other{adv}.", "{two} embrace warmly.", "{two} come together and hug."],
        ["{two} hug, each with the {side} arm over the other's shoulder.",
         "{one} hugs {other}, the {side} arm over the shoulder and the other arm around the back."], []),
    "push": (
        ["{one} pushes {other} away{adv}.", "{one} shoves {other}, who stumbles backward.",
         "{one} pushes {other} in the chest and {again} steps back."],
        ["{one} pushes {other} with the {side} hand.", "{one} shoves {other} away with the {side} hand{adv}."],
        ["{one} pushes {other} away with both hands.", "{one} shoves {other} backward with both hands{adv}."]),
    "lead_by_hand": (
        ["{one} takes {other} by the hand and leads the way.", "{one} holds {other}'s hand and walks ahead{adv}.",
         "{two} walk hand in hand, one of them leading the way."],
        ["{one} holds {other}'s hand with the {side} hand and leads them forward.",
         "{one} takes {other}'s hand in the {side} hand and pulls them along{adv}."], []),
    "pass_object": (
        ["{one} hands {thing} to {other}.", "{one} gives {thing} to {other}, who takes it{adv}.",
         "{one} passes {thing} over and {other} receives it."],
        ["{one} holds out {thing} in the {side} hand and {other} takes it.",
         "{one} hands {thing} to {other} with the {side} hand{adv}."], []),
    "dance": (
        ["{two} hold both hands and dance{adv}.", "{two} dance together holding hands.",
         "{two} join hands and dance."],
        [], []),
    "wave": (
        ["{two} wave at each other{adv}.", "{one} waves and {other} waves back.",
         "{two} greet each other from afar with a wave."],
        ["{two} wave at each other with their {side} hands.",
         "{one} waves the {side} hand at {other}, who waves back."], []),
    "bow": (
        ["{two} bow to each other{adv}.", "{two} face each other and bow.", "{two} greet each other with a bow."],
        [], []),
    "walk_past": (
        ["{two} walk past each other{adv}.", "{two} walk toward each other and pass by.",
         "{two} cross paths without stopping."],
        ["{two} walk past each other, keeping to the {side}.", "{one} passes {other} on the {side} side{adv}."], []),
    "circle": (
        ["{two} circle around each other{adv}.", "{two} walk in a circle, watching each other.",
         "{two} circle each other and end up face to face."],
        [], []),
    "mirror": (
        ["{one} moves the arms and {other} mirrors the movements.", "{two} copy each other like a mirror{adv}.",
         "{one} makes gestures and {other} imitates them like a mirror image."],
        ["{one} {gesture} and {other} mirrors it."],
        ["{one} {gesture} and {other} mirrors it."]),
    "follow": (
        ["{one} walks ahead and {other} follows behind{adv}.", "{one} follows {other}, a few steps behind.",
         "{one} leads the way on foot and {other} follows."],
        [], []),
    "beckon": (
        ["{one} beckons {other} to come closer, and {again} walks over.", "{one} waves {other} over{adv}.",
         "{one} calls {other} over with a hand gesture and {again} approaches."],
        ["{one} beckons {other} with the {side} hand and {again} walks over.",
         "{one} waves {other} over with the {side} hand{adv}."], []),
}

# Extra templates that use a scene word, added when the word is set.
_WORD_TEMPLATES = {
    "turn": {
        "dance": ["{two} hold hands and spin around together {turn}.",
                  "{two} turn {turn} together, holding both hands."],
        "circle": ["{two} circle each other {turn}.", "{two} walk around each other {turn}."],
        "lead_by_hand": ["{one} leads {other} by the hand and turns {turn}."],
        "follow": ["{one} walks and turns {turn}, and {other} follows."],
    },
    "variant": {"dance": {"sway": ["{two} hold hands and sway from side to side."], "spin": []}},
    "order": {"bow": {"together": ["{two} bow at the same time."], "in turn": ["{one} bows and {other} bows back."]}},
}

_GESTURE_PHRASES = {
    "arm out to the side": "stretches the {side} arm out to the side",
    "arm up": "raises the {side} arm overhead",
    "arm forward": "reaches the {side} arm forward",
    "hand on the head": "puts the {side} hand on the head",
    "arms up": "raises both arms overhead",
    "arms out to the sides": "spreads both arms out to the sides",
}


def _candidates(scene: Scene) -> list[str]:
    plain, one_side, both_sides = _TEMPLATES[scene.interaction]
    templates = list(plain)
    if scene.handedness in ("left", "right"):
        templates += one_side
    elif scene.handedness == "both":
        templates += both_sides
    for word, per_scene in _WORD_TEMPLATES.items():
        value = scene.words.get(word)
        extra = per_scene.get(scene.interaction)
        if value is None or extra is None:
            continue
        templates += extra[value] if isinstance(extra, dict) else extra
    return templates


def _speed_word(tempo: float, rng: np.random.Generator) -> str:
    if tempo > 1.15:
        return " " + str(rng.choice(["quickly", "briskly"]))
    if tempo < 0.88:
        return " " + str(rng.choice(["slowly", "calmly"]))
    return ""


def _with_article(thing: str) -> str:
    return ("an " if thing[0] in "aeiou" else "a ") + thing


def describe(scene: Scene, rng: np.random.Generator) -> list[str]:
    """Three different sentences describing ``scene``."""
    templates = sorted(set(_candidates(scene)))
    chosen = rng.choice(len(templates), size=3, replace=False)
    sentences = []
    for index in chosen:
        one, other, again = _ROLES[rng.integers(len(_ROLES))]
        slots = {
            "two": str(rng.choice(_PAIRS)), "one": one, "other": other, "again": again, "side": scene.handedness,
            "adv": _speed_word(scene.tempo, rng), "turn": scene.words.get("turn"),
            "thing": _with_article(scene.words.get("thing", "object")),
        }
        if "gesture" in scene.words:
            slots["gesture"] = _GESTURE_PHRASES[scene.words["gesture"]].format(side=scene.handedness)
        text = templates[index].format(**slots)
        sentences.append(text[0].upper() + text[1:])
    return sentences
