"""Motion representation: skeleton, rotations, InterHuman/InterX features, normalization."""
from . import interhuman, interx, rotation, skeleton
from .interhuman import (
    FEATURE_DIM,
    features_to_joints,
    interaction_features,
    person_features,
    raw_body,
    raw_from_body,
    translate_features,
    two_person_features,
)
from .mirror import mirror_features, mirror_text
from .normalization import Normalizer, interhuman_normalizer, interx_normalizer

__all__ = [
    "FEATURE_DIM",
    "Normalizer",
    "features_to_joints",
    "interaction_features",
    "interhuman",
    "interhuman_normalizer",
    "interx",
    "interx_normalizer",
    "mirror_features",
    "mirror_text",
    "person_features",
    "raw_body",
    "raw_from_body",
    "rotation",
    "skeleton",
    "translate_features",
    "two_person_features",
]
