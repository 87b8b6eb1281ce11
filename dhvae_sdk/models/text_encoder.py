"""Text conditioning: CLIP BPE tokens -> a CLIP text tower -> unmasked layers -> one vector.

``TextEncoder.forward(tokens [B, 77]) -> [B, width]``: the tower (token and positional
embeddings, pre-norm causal residual blocks, final LayerNorm; CLIP's own layout and names),
``head_layers`` post-norm encoder layers WITHOUT a mask (exact GELU), a LayerNorm, and the
row at the end-of-text token (the largest id, as in CLIP). No projection: the condition has
the tower's width. The unconditional input of classifier-free guidance is the encoding of
the empty string.

CLIP's own weights (for training the ``paper`` preset from scratch) come from a local
open_clip / OpenAI state-dict file; checkpoints then carry them like every other weight.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .config import TextEncoderConfig
from .layers import EncoderLayer, MultiheadAttention
from .tokenizer import empty_token_ids, token_ids

TOWER_KEYS = ("token_embedding.", "positional_embedding", "transformer.resblocks.", "ln_final.")


def tokenize(texts: Sequence[str], context_length: int = 77) -> torch.Tensor:
    """``tokenizer.token_ids`` as a long tensor (longer texts are truncated with a warning)."""
    return torch.from_numpy(token_ids(texts, context_length))


def empty_text_tokens(count: int, context_length: int = 77) -> torch.Tensor:
    """The tokens of the empty string (start, end, padding): the unconditional input."""
    return torch.from_numpy(empty_token_ids(count, context_length))


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualBlock(nn.Module):
    """CLIP's pre-norm block: causal self-attention and an MLP, each a residual."""

    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.width)
        self.attn = MultiheadAttention(config.width, config.heads)
        self.ln_2 = nn.LayerNorm(config.width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(config.width, config.mlp))
        self.mlp.add_module("gelu", QuickGELU() if config.quick_gelu else nn.GELU())
        self.mlp.add_module("c_proj", nn.Linear(config.mlp, config.width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), causal=True)
        return x + self.mlp(self.ln_2(x))


class ClipTextTower(nn.Module):
    """tokens [B, context] -> token features [B, context, width] after ``ln_final``."""

    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        self.token_embedding = nn.Embedding(config.vocab_size, config.width)
        self.positional_embedding = nn.Parameter(torch.empty(config.context_length, config.width))
        self.resblocks = nn.ModuleList(ResidualBlock(config) for _ in range(config.layers))
        self.ln_final = nn.LayerNorm(config.width)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.token_embedding(tokens) + self.positional_embedding
        for block in self.resblocks:
            x = block(x)
        return self.ln_final(x)

    def load_clip_weights(self, path: str) -> None:
        """Load a CLIP text tower from an open_clip or OpenAI state-dict file (.pt/.bin or
        .safetensors; read without executing code). Its ``transformer.resblocks.*`` keys are
        this tower's ``resblocks.*``."""
        if not os.path.isfile(path):
            raise FileNotFoundError(f"CLIP weights file {path} does not exist (config text.clip_weights)")
        state = {
            key.removeprefix("transformer."): value
            for key, value in _read_tensors(path).items() if key.startswith(TOWER_KEYS)
        }
        wanted = set(self.state_dict())
        missing = sorted(wanted - set(state))
        if missing:
            raise ValueError(f"{path} is not a CLIP text tower of this shape: {len(missing)} key(s) missing, e.g. {missing[:3]}")
        try:
            self.load_state_dict({key: state[key] for key in wanted})
        except RuntimeError as error:
            raise ValueError(f"{path}: tensor shapes do not match the configured CLIP text tower: {error}") from error


def _read_tensors(path: str) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors or torch state-dict file (an optional "module." prefix and a
    {"state_dict": ...} wrapper are accepted). Never executes code from the file."""
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(path)
    else:
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
    return {key.removeprefix("module."): value for key, value in state.items()}


class TextEncoder(nn.Module):
    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        self.config = config
        self.tower = ClipTextTower(config)
        self.head = nn.ModuleList(
            EncoderLayer(config.width, config.head_heads, config.head_ff, config.dropout, activation=F.gelu)
            for _ in range(config.head_layers)
        )
        self.head_norm = nn.LayerNorm(config.width)
        if config.clip_weights is not None:
            self.tower.load_clip_weights(config.clip_weights)
        elif not config.train_tower:
            warnings.warn(
                "No CLIP weights file given (config text.clip_weights) for a frozen CLIP text tower: "
                "it has RANDOM weights, so text conditioning is meaningless. Pass the path of a CLIP "
                "ViT-L/14 text tower state dict (.pt/.bin/.safetensors).",
                stacklevel=2,
            )
        self.set_tower_trainable()

    def set_tower_trainable(self) -> None:
        """A frozen tower keeps its positional embedding trainable, as the release trains it."""
        self.tower.requires_grad_(self.config.train_tower)
        self.tower.positional_embedding.requires_grad_(True)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 2 or tokens.dtype != torch.long or tokens.shape[1] != self.config.context_length:
            raise ValueError(
                f"tokens must be a long tensor [B, {self.config.context_length}] from tokenize(), "
                f"got {tuple(tokens.shape)} {tokens.dtype}"
            )
        x = self.tower(tokens)
        for layer in self.head:
            x = layer(x)
        x = self.head_norm(x)
        return x[torch.arange(tokens.shape[0], device=tokens.device), tokens.argmax(dim=-1)]
