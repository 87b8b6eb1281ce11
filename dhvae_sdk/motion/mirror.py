"""Left/right mirror of InterHuman features and of their descriptions (InterGen's augmentation).

The mirror is the reflection x -> -x (X points to the body's left). On features it is a
column permutation with sign flips: joints trade places with their twin on the other
side, x of positions and velocities changes sign, a local rotation R becomes
diag(-1,1,1) R diag(-1,1,1) (6D components 1, 2 and 4 change sign), and the left and
right foot contacts swap. Mirroring the raw motion and then computing features gives
the same numbers, since floor, origin and facing all commute with the reflection.
"""
from __future__ import annotations

import re

import numpy as np

from .arraylike import check_last_dim, constant_like, index_like
from .interhuman import FEATURE_DIM, FOOT_CONTACTS, POSITIONS, ROTATIONS, VELOCITIES
from .skeleton import MIRROR_PERMUTATION, NUM_JOINTS


def _mirror_columns() -> tuple[np.ndarray, np.ndarray]:
    columns = np.arange(FEATURE_DIM)
    signs = np.ones(FEATURE_DIM)
    for part in (POSITIONS, VELOCITIES):
        for joint in range(NUM_JOINTS):
            target = part.start + 3 * joint
            columns[target : target + 3] = part.start + 3 * MIRROR_PERMUTATION[joint] + np.arange(3)
            signs[target] = -1.0
    for slot in range(NUM_JOINTS - 1):
        target = ROTATIONS.start + 6 * slot
        source_slot = MIRROR_PERMUTATION[slot + 1] - 1
        columns[target : target + 6] = ROTATIONS.start + 6 * source_slot + np.arange(6)
        signs[target + np.array([1, 2, 4])] = -1.0
    left, right = FOOT_CONTACTS.start, FOOT_CONTACTS.start + 2
    columns[FOOT_CONTACTS] = [right, right + 1, left, left + 1]
    return columns, signs


_COLUMNS, _SIGNS = _mirror_columns()


def mirror_features(features):
    """Mirrored features [..., 262] (raw units; numpy or torch)."""
    check_last_dim(features, FEATURE_DIM, "InterHuman features")
    return features[..., index_like(_COLUMNS, features)] * constant_like(_SIGNS, features)


_SWAPS = {
    "left": "right",
    "right": "left",
    "clockwise": "counterclockwise",
    "counterclockwise": "clockwise",
    "counter-clockwise": "clockwise",
    "anticlockwise": "clockwise",
    "anti-clockwise": "clockwise",
}
# Longest first so "counter-clockwise" is not read as "clockwise"; "left"/"right" also
# match as the stem of leftward(s), rightmost and the like.
_WORD = re.compile(
    r"\b(?:counter-clockwise|anti-clockwise|counterclockwise|anticlockwise|clockwise"
    r"|(?:left|right)(?=(?:wards?|most)?\b))",
    re.IGNORECASE,
)


def _same_case(word: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return word.upper()
    if like[0].isupper():
        return word[0].upper() + word[1:]
    return word


def mirror_text(text: str) -> str:
    """The description of the mirrored motion: left <-> right, clockwise <-> counterclockwise."""
    return _WORD.sub(lambda match: _same_case(_SWAPS[match.group(0).lower()], match.group(0)), text)
