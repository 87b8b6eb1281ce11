"""Open an evaluator checkpoint of either kind, told apart by its content.

- InterGen's released ``interclip.ckpt``: a Lightning checkpoint whose ``state_dict`` fits
  the default ``InterCLIPConfig`` (InterHuman features).
- An evaluator trained here (``python -m training.main evaluator``, file
  ``RUN/evaluator.ckpt``): ``state_dict`` plus ``interclip_config``, the fields of the
  ``InterCLIPConfig`` it was trained with.
"""
from __future__ import annotations

import dataclasses
import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from dhvae_sdk.models.evaluator import InterCLIP, InterCLIPConfig, load_interclip

TRAINED_CONFIG_KEY = "interclip_config"
SAFETENSORS_HINT = (" (a .safetensors file is a DHVAE model checkpoint; the evaluator is RUN/evaluator.ckpt of "
                    "`python -m training.main evaluator` or InterGen's eval_model/interclip.ckpt)")


@dataclass(frozen=True)
class LoadedEvaluator:
    model: InterCLIP
    kind: str  # "intergen" (released interclip.ckpt) or "trained" (training.main evaluator)
    path: str

    def describe(self) -> dict:
        return {"path": self.path, "kind": self.kind, "config": dataclasses.asdict(self.model.config)}


def load_evaluator(path: str | os.PathLike) -> LoadedEvaluator:
    """The evaluator in eval mode; the file's kind decides the config."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"evaluator checkpoint {path} does not exist; pass RUN/evaluator.ckpt of "
                                f"`python -m training.main evaluator` or InterGen's eval_model/interclip.ckpt")
    trained_config = _trained_config(path)
    try:
        model = load_interclip(path, trained_config or InterCLIPConfig())
    except ValueError as error:
        hint = SAFETENSORS_HINT if path.suffix == ".safetensors" else ""
        raise ValueError(f"{error}{hint}") from None
    return LoadedEvaluator(model, "intergen" if trained_config is None else "trained", str(path))


def _trained_config(path: Path) -> InterCLIPConfig | None:
    """The config stored by the evaluator stage, or None for any other file (which
    ``load_interclip`` then accepts as InterGen's or rejects with its own message)."""
    if not zipfile.is_zipfile(path):
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError):
        return None
    if not isinstance(payload, dict) or TRAINED_CONFIG_KEY not in payload:
        return None
    fields = payload[TRAINED_CONFIG_KEY]
    try:
        return InterCLIPConfig(**fields)
    except TypeError as error:
        raise ValueError(f"{path}: its {TRAINED_CONFIG_KEY} does not describe an InterCLIPConfig ({error}); "
                         f"retrain the evaluator with this version of training.main") from None
