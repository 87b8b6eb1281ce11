"""Text conditioning: CLIP BPE tokens -> a CLIP-shaped tower -> trainable layers -> one vector.

``TextEncoder.forward(tokens [B, 77]) -> [B, output_width]``: token features of the tower,
``config.layers`` trainable causal Transformer layers, the feature at the end-of-text token
(the largest id, as in CLIP), LayerNorm, Linear to the denoiser width.

The "clip" tower (open_clip ViT-L-14 text tower) is frozen and comes from the user's weights
file, never from our checkpoints: checkpoints and parameter counts skip ``FrozenClipTower``.
open_clip is imported on first use (it takes seconds).
"""
from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Sequence

import torch
from torch import nn

from .config import TextEncoderConfig
from .layers import TransformerStack

CLIP_MODEL_NAME = "ViT-L-14"
CLIP_VOCAB_SIZE = 49408  # CLIP's BPE vocabulary, special tokens included


@functools.lru_cache(maxsize=1)
def _clip_tokenizer():
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()


def tokenize(texts: Sequence[str], context_length: int = 77) -> torch.Tensor:
    """CLIP BPE ids [B, context_length] (start, text, end, zero padding). Longer texts are
    truncated (keeping the end token) with a warning."""
    if isinstance(texts, str) or not isinstance(texts, Sequence) or len(texts) == 0:
        raise ValueError(f"texts must be a non-empty list of strings, got {texts!r}")
    tokenizer = _clip_tokenizer()
    ids = torch.zeros(len(texts), context_length, dtype=torch.long)
    for index, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"text {index} must be a non-empty string, got {text!r}")
        tokens = [tokenizer.sot_token_id, *tokenizer.encode(text), tokenizer.eot_token_id]
        if len(tokens) > context_length:
            warnings.warn(
                f"text {index} has {len(tokens)} tokens, more than the context of {context_length}; "
                f"it is truncated: {text[:60]!r}...",
                stacklevel=2,
            )
            tokens = tokens[: context_length - 1] + [tokenizer.eot_token_id]
        ids[index, : len(tokens)] = torch.tensor(tokens)
    return ids


def _read_tensors(path: str, wanted: set[str]) -> dict[str, torch.Tensor]:
    """The ``wanted`` tensors of a safetensors or torch state-dict file (an optional "module."
    prefix and a {"state_dict": ...} wrapper are accepted). Never executes code from the file."""
    if path.endswith(".safetensors"):
        from safetensors import safe_open

        with safe_open(path, framework="pt") as file:
            return {
                key.removeprefix("module."): file.get_tensor(key)
                for key in file.keys() if key.removeprefix("module.") in wanted
            }
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as error:
        raise ValueError(
            f"{path}: cannot be read as a state dict with torch.load(weights_only=True) ({error}). "
            f"OpenAI's TorchScript .pt archives are not supported; give an open_clip state-dict "
            f"or .safetensors file"
        ) from error
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a dict of tensors, found {type(state).__name__}")
    return {key.removeprefix("module."): value for key, value in state.items() if key.removeprefix("module.") in wanted}


class FrozenClipTower(nn.Module):
    """open_clip's ViT-L-14 text tower (token embedding, positions, transformer, ln_final,
    causal mask), frozen. tokens [B, 77] -> token features [B, 77, 768]."""

    def __init__(self, weights_path: str | None, quick_gelu: bool):
        super().__init__()
        import open_clip
        from open_clip.transformer import QuickGELU, TextTransformer

        text = open_clip.get_model_config(CLIP_MODEL_NAME)["text_cfg"]
        self.clip = TextTransformer(
            context_length=text["context_length"], vocab_size=text["vocab_size"], width=text["width"],
            heads=text["heads"], layers=text["layers"], output_dim=None, output_tokens=True,
            act_layer=QuickGELU if quick_gelu else nn.GELU,
        )
        self.width = text["width"]
        if weights_path is None:
            warnings.warn(
                "No CLIP weights file given (config text.clip_weights): the frozen ViT-L-14 text "
                "tower has RANDOM weights, so text conditioning is meaningless. Pass the path of an "
                "open_clip ViT-L-14 state dict (.pt/.bin/.safetensors).",
                stacklevel=2,
            )
        else:
            self._load(weights_path)
        self.requires_grad_(False)

    def _load(self, path: str) -> None:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"CLIP weights file {path} does not exist (config text.clip_weights)")
        wanted = set(self.clip.state_dict())
        state = _read_tensors(path, wanted)
        missing = sorted(wanted - set(state))
        if missing:
            raise ValueError(
                f"{path} is not an open_clip {CLIP_MODEL_NAME} text tower: {len(missing)} key(s) "
                f"missing, e.g. {missing[:3]}"
            )
        try:
            self.clip.load_state_dict(state)
        except RuntimeError as error:
            raise ValueError(f"{path}: tensor shapes do not match {CLIP_MODEL_NAME}'s text tower: {error}") from error

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.clip(tokens)[1]


class SmallClipTower(nn.Module):
    """A small CLIP-shaped tower trained with the model. Its token embedding is factorized
    (vocab x token_embedding_dim, then Linear to the width) because CLIP's 49408-entry
    vocabulary at full width would dwarf the rest of a tiny model."""

    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        self.width = config.tower_width
        self.token_embedding = nn.Embedding(CLIP_VOCAB_SIZE, config.token_embedding_dim)
        self.token_projection = nn.Linear(config.token_embedding_dim, config.tower_width)
        self.positional_embedding = nn.Parameter(torch.randn(config.context_length, config.tower_width) * 0.01)
        self.transformer = TransformerStack(
            config.tower_layers, config.tower_width, config.tower_heads, config.tower_ff, config.dropout,
        )

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.token_projection(self.token_embedding(tokens)) + self.positional_embedding[: tokens.shape[1]]
        return self.transformer(x, causal=True)


class TextEncoder(nn.Module):
    def __init__(self, config: TextEncoderConfig, output_width: int):
        super().__init__()
        self.config = config
        if config.kind == "clip":
            self.tower = FrozenClipTower(config.clip_weights, config.clip_quick_gelu)
        else:
            self.tower = SmallClipTower(config)
        self.input = nn.Linear(self.tower.width, config.width)
        self.transformer = TransformerStack(config.layers, config.width, config.heads, config.ff, config.dropout)
        self.output = nn.Linear(config.width, output_width)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 2 or tokens.dtype != torch.long or tokens.shape[1] != self.config.context_length:
            raise ValueError(
                f"tokens must be a long tensor [B, {self.config.context_length}] from tokenize(), "
                f"got {tuple(tokens.shape)} {tokens.dtype}"
            )
        features = self.transformer(self.input(self.tower(tokens)), causal=True)
        end_of_text = tokens.argmax(dim=-1)
        return self.output(features[torch.arange(tokens.shape[0], device=tokens.device), end_of_text])
