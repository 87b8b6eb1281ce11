"""The paper authors' compact parity fixture (``shared/reference/official-fixture``): where it
is, and its checkpoints read through the converter. CI lays ``shared/`` beside the clone;
``DHVAE_OFFICIAL_FIXTURE`` points elsewhere."""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np
import pytest

from dhvae_sdk.convert import read_official

ROOT = Path(os.environ.get("DHVAE_OFFICIAL_FIXTURE",
                           Path(__file__).resolve().parents[2] / "shared" / "reference" / "official-fixture"))
VARIANTS = ("cat", "hire", "hire_l2_skip")


def require_fixture() -> Path:
    if not (ROOT / "variants.json").is_file():
        pytest.skip(f"the official parity fixture is not at {ROOT} (set DHVAE_OFFICIAL_FIXTURE)")
    return ROOT


@functools.lru_cache(maxsize=None)
def variant_info(variant: str) -> dict:
    return json.loads((require_fixture() / "variants.json").read_text())["variants"][variant]


def clip_heads() -> int:
    return json.loads((require_fixture() / "variants.json").read_text())["stub_clip_text"]["heads"]


def model_checkpoint(variant: str) -> Path:
    return require_fixture() / variant_info(variant)["mld_folder"] / "last.ckpt"


def vae_folder(variant: str) -> Path:
    return require_fixture() / variant_info(variant)["vae_folder"]


@functools.lru_cache(maxsize=None)
def official(variant: str):
    return read_official(model_checkpoint(variant), clip_heads=clip_heads())


@functools.lru_cache(maxsize=None)
def recorded(variant: str) -> dict[str, np.ndarray]:
    with np.load(require_fixture() / variant_info(variant)["npz"], allow_pickle=False) as arrays:
        return {name: arrays[name] for name in arrays.files}


def assert_matches(name: str, ours, reference, tolerance: float = 1e-5) -> None:
    """The fixture's criterion: max |ours - ref| <= tolerance x max |ref|."""
    ours = np.asarray(ours, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    assert ours.shape == reference.shape, f"{name}: shape {ours.shape} != {reference.shape}"
    error = float(np.abs(ours - reference).max())
    bound = tolerance * float(np.abs(reference).max())
    assert error <= bound, f"{name}: max error {error:.3g} above {bound:.3g} ({tolerance} x max |ref|)"
