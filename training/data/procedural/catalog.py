"""The interaction types and whether the two people touch in them."""
from __future__ import annotations

from . import scenes_apart, scenes_contact

CONTACT_SCENES = {
    "handshake": scenes_contact.handshake,
    "high_five": scenes_contact.high_five,
    "hug": scenes_contact.hug,
    "push": scenes_contact.push,
    "lead_by_hand": scenes_contact.lead_by_hand,
    "pass_object": scenes_contact.pass_object,
    "dance": scenes_contact.dance,
}
APART_SCENES = {
    "wave": scenes_apart.wave,
    "bow": scenes_apart.bow,
    "walk_past": scenes_apart.walk_past,
    "circle": scenes_apart.circle,
    "mirror": scenes_apart.mirror,
    "follow": scenes_apart.follow,
    "beckon": scenes_apart.beckon,
}
SCENES = {**CONTACT_SCENES, **APART_SCENES}
INTERACTIONS = tuple(SCENES)
