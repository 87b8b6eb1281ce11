"""InterCLIP, the contrastive text-motion evaluator of the InterGen protocol.

Parameter names and shapes follow InterGen (tr3e/InterGen: ``datasets/evaluator_models.py``
class ``InterCLIP``, ``models/nets.py`` class ``MotionEncoder``, ``models/utils.py`` class
``PositionalEncoding``, ``configs/eval_model.yaml``) so the released ``interclip.ckpt`` loads
unchanged. Facts taken from there:

- Motion input: per person the 262 InterHuman features minus the last 4 (foot contacts), the
  two persons concatenated per frame (258 + 258 = 516); in RAW units (InterGen de-normalizes
  generated motion before it reaches the evaluator and feeds ground truth un-normalized).
- A learned query token is prepended, sinusoidal positions (table of 2000 rows, stored in the
  state dict as a buffer) are added to all tokens with dropout, post-norm GELU Transformer,
  LayerNorm, the query token's output goes through Linear(1024 -> 512).
- Text: CLIP token + positional embeddings (frozen), a fresh 8-layer Transformer without any
  padding mask, LayerNorm, the feature at argmax(token id) (end of text), Linear(768 -> 512).
- Both embeddings are L2-normalized and multiplied by the learned scalar ``latent_scale``.
- Loss: symmetric cross-entropy over cosine logits scaled by ``latent_scale ** 2``.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dhvae_sdk.models.layers import sinusoidal_table
from dhvae_sdk.models.tokenizer import token_ids

LIGHTNING_PREFIX = "model."


@dataclass(frozen=True)
class InterCLIPConfig:
    """Defaults are InterGen's released evaluator; smaller values train one on other data."""
    person_features: int = 262
    ignored_tail_features: int = 4  # InterHuman's foot contacts; 0 for representations without them
    motion_width: int = 1024
    motion_layers: int = 8
    motion_heads: int = 8
    motion_ff: int = 2048
    position_table: int = 2000  # rows of the sinusoidal table: frames + 1 query token at most
    vocab_size: int = 49408
    context_length: int = 77
    text_width: int = 768
    text_layers: int = 8
    text_heads: int = 8
    text_ff: int = 2048
    embedding_dim: int = 512
    dropout: float = 0.1

    @property
    def kept_features(self) -> int:
        return self.person_features - self.ignored_tail_features


def _transformer(width: int, heads: int, ff: int, layers: int, dropout: float) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(d_model=width, nhead=heads, dim_feedforward=ff, dropout=dropout,
                                       activation="gelu", batch_first=True)
    return nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)


class SinusoidalPositions(nn.Module):
    """Fixed sin/cos table (sin on even, cos on odd channels), kept in the state dict as ``pe``."""

    def __init__(self, width: int, rows: int, dropout: float):
        super().__init__()
        self.register_buffer("pe", sinusoidal_table(rows, width))
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.dropout(tokens + self.pe[: tokens.shape[1]])


class InterCLIPMotionEncoder(nn.Module):
    def __init__(self, config: InterCLIPConfig):
        super().__init__()
        self.config = config
        self.query_token = nn.Parameter(torch.randn(1, config.motion_width))
        self.embed_motion = nn.Linear(2 * config.kept_features, config.motion_width)
        self.sequence_pos_encoder = SinusoidalPositions(config.motion_width, config.position_table, config.dropout)
        self.transformer = _transformer(config.motion_width, config.motion_heads, config.motion_ff,
                                        config.motion_layers, config.dropout)
        self.out_ln = nn.LayerNorm(config.motion_width)
        self.out = nn.Linear(config.motion_width, config.embedding_dim)

    def forward(self, motion: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, frames = motion.shape[:2]
        persons = motion[..., : self.config.kept_features].reshape(batch, frames, -1)
        tokens = torch.cat([self.query_token.expand(batch, 1, -1), self.embed_motion(persons)], dim=1)
        valid = torch.cat([torch.ones(batch, 1, dtype=torch.bool, device=mask.device), mask], dim=1)
        hidden = self.transformer(self.sequence_pos_encoder(tokens), src_key_padding_mask=~valid)
        return self.out(self.out_ln(hidden[:, 0]))


class InterCLIP(nn.Module):
    def __init__(self, config: InterCLIPConfig = InterCLIPConfig()):
        super().__init__()
        self.config = config
        self.motion_encoder = InterCLIPMotionEncoder(config)
        # CLIP's own initialization scales; the released checkpoint overwrites both with CLIP's tables.
        self.token_embedding = nn.Embedding(config.vocab_size, config.text_width)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        self.positional_embedding = nn.Parameter(torch.randn(config.context_length, config.text_width) * 0.01)
        self.token_embedding.weight.requires_grad_(False)
        self.positional_embedding.requires_grad_(False)
        self.latent_scale = nn.Parameter(torch.ones(1))
        self.textTransEncoder = _transformer(config.text_width, config.text_heads, config.text_ff,
                                             config.text_layers, config.dropout)
        self.text_ln = nn.LayerNorm(config.text_width)
        self.out = nn.Linear(config.text_width, config.embedding_dim)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """CLIP token ids [B, L<=77] (see ``tokenize``) -> [B, 512] with norm ``latent_scale``."""
        self._check_tokens(tokens)
        hidden = self.token_embedding(tokens) + self.positional_embedding[: tokens.shape[1]]
        hidden = self.text_ln(self.textTransEncoder(hidden))
        end_of_text = hidden[torch.arange(tokens.shape[0], device=tokens.device), tokens.argmax(dim=-1)]
        return self._scaled_unit(self.out(end_of_text))

    def encode_motion(self, motion: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Two-person features [B, T, 2, 262] in RAW units (de-normalize first; InterGen's
        evaluator never sees normalized features), mask [B, T] True on real frames -> [B, 512]
        with norm ``latent_scale``."""
        self._check_motion(motion, mask)
        motion = motion.to(self.latent_scale.dtype)
        return self._scaled_unit(self.motion_encoder(motion, mask.bool()))

    def contrastive_loss(self, text_embedding: torch.Tensor, motion_embedding: torch.Tensor) -> torch.Tensor:
        """Row i of each is a matching pair; cross-entropy both ways over scaled cosine logits."""
        logit_scale = self.latent_scale ** 2
        logits_per_motion = logit_scale * F.normalize(motion_embedding, dim=-1) @ F.normalize(text_embedding, dim=-1).T
        targets = torch.arange(logits_per_motion.shape[0], device=logits_per_motion.device)
        return (F.cross_entropy(logits_per_motion, targets) + F.cross_entropy(logits_per_motion.T, targets)) / 2

    def forward(self, tokens: torch.Tensor, motion: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The training loss of one batch of matching (text, motion) pairs."""
        return self.contrastive_loss(self.encode_text(tokens), self.encode_motion(motion, mask))

    def _scaled_unit(self, embedding: torch.Tensor) -> torch.Tensor:
        return embedding / embedding.norm(dim=-1, keepdim=True) * self.latent_scale

    def _check_tokens(self, tokens: torch.Tensor) -> None:
        if tokens.dim() != 2 or tokens.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"tokens must be an integer tensor [B, L], got {tuple(tokens.shape)} {tokens.dtype}; "
                             f"use dhvae_sdk.models.evaluator.tokenize(texts)")
        if tokens.shape[1] > self.config.context_length:
            raise ValueError(f"tokens have {tokens.shape[1]} positions, the evaluator at most "
                             f"{self.config.context_length}")

    def _check_motion(self, motion: torch.Tensor, mask: torch.Tensor) -> None:
        expected = (2, self.config.person_features)
        if motion.dim() != 4 or tuple(motion.shape[2:]) != expected:
            raise ValueError(f"motion must be [B, T, 2, {self.config.person_features}], got {tuple(motion.shape)}")
        if tuple(mask.shape) != tuple(motion.shape[:2]):
            raise ValueError(f"mask must be [B, T] = {tuple(motion.shape[:2])}, got {tuple(mask.shape)}")
        if motion.shape[1] + 1 > self.config.position_table:
            raise ValueError(f"{motion.shape[1]} frames exceed the evaluator's limit of "
                             f"{self.config.position_table - 1}; crop the motion")


def tokenize(texts: list[str]) -> torch.Tensor:
    """CLIP BPE ids [B, 77], truncated silently with the end-of-text token kept last, as
    InterGen does (open_clip's ids, from the SDK's tokenizer: importing open_clip costs seconds)."""
    return torch.from_numpy(token_ids(list(texts), warn_truncation=False))


def load_interclip(path: str | os.PathLike, config: InterCLIPConfig = InterCLIPConfig()) -> InterCLIP:
    """An InterCLIP in eval mode from InterGen's ``interclip.ckpt`` (Lightning) or a plain state dict."""
    state = _read_state_dict(path)
    model = InterCLIP(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{path}: not an InterCLIP state dict for this config "
                         f"({len(missing)} missing keys, e.g. {missing[:4]}; {len(unexpected)} unexpected, "
                         f"e.g. {unexpected[:4]}). Pass the InterCLIPConfig the file was trained with.")
    wrong_shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
                    for k, v in expected.items() if tuple(state[k].shape) != tuple(v.shape)]
    if wrong_shapes:
        raise ValueError(f"{path}: tensor shapes differ from the config: {wrong_shapes[:4]}. "
                         f"Pass the InterCLIPConfig the file was trained with.")
    model.load_state_dict(state, strict=True)
    return model.eval()


def _read_state_dict(path) -> dict[str, torch.Tensor]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"evaluator checkpoint {path} does not exist (InterGen's file is "
                                f"eval_model/interclip.ckpt)")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a torch checkpoint (torch.save writes a zip archive); "
                         f"check the path, or re-save the weights with a current torch.save")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(f"{path} holds Python objects besides tensors, which are never unpickled here. "
                         f"Where you trust the file, re-save its weights alone: torch.save("
                         f"{{'state_dict': torch.load(p, weights_only=False)['state_dict']}}, out)") from error
    except (RuntimeError, EOFError) as error:
        raise ValueError(f"{path} is a damaged torch checkpoint ({error})") from error
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} holds no state dict of tensors (expected a Lightning checkpoint with "
                         f"'state_dict' or a plain name -> tensor mapping)")
    return {k.removeprefix(LIGHTNING_PREFIX): v for k, v in state.items()}
