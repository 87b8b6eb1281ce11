"""Inter-X's text-motion evaluator (the one InterMask and the DHVAE paper report InterX with).

Architecture and parameter names as in Inter-X's ``evaluation/text2motion`` (option set
``hhi``), so the released ``text_mot_match/model/finest.tar`` loads unchanged: its entries
``movement_encoder``, ``text_encoder`` and ``motion_encoder`` are the state dicts of

- movement encoder: two Conv1d (kernel 4, stride 2, padding 1; 672 -> 512 -> 512) with
  LeakyReLU(0.2) (dropout 0.2 during training), then Linear ``out_net``: a frame per 4;
- text encoder: Linear ``pos_emb`` (15 -> 300) added to the word vectors, Linear
  ``input_emb`` (300 -> 512), a bidirectional GRU from the learned initial state ``hidden``,
  the two final states -> ``output_net`` (Linear 1024 -> 512, LayerNorm, LeakyReLU, Linear
  -> 512);
- motion encoder: the same recurrent head on the movement codes (``input_emb`` 512 -> 1024,
  GRU 1024, ``output_net`` 2048 -> 1024 -> 512), over ``length // 4`` steps.

Motion input per frame: 56 rows x 12 numbers = 672, the two persons interleaved per row
(row r = person 1's 6 numbers, then person 2's): rows 0..54 the joint rotations in 6D (first
two matrix rows), row 55 translation and velocity, with both velocities zeroed as InterMask's
evaluator wrapper does. Lengths are multiples of 4, at most 150 frames.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from dhvae_sdk.motion.interx import FEATURE_DIM, PARAM_ROWS

from .word_vectors import POS_TAGS, WORD_DIM, WordVectors

UNIT_LENGTH = 4
MAX_FRAMES = 150
ROW_WIDTH = 6
INPUT_DIM = PARAM_ROWS * 2 * ROW_WIDTH  # 672
CHECKPOINT_PARTS = ("movement_encoder", "text_encoder", "motion_encoder")


@dataclass(frozen=True)
class InterXEvaluatorConfig:
    movement_hidden: int = 512
    movement_latent: int = 512
    text_hidden: int = 512
    motion_hidden: int = 1024
    embedding_dim: int = 512


class MovementEncoder(nn.Module):
    def __init__(self, input_dim: int, hidden: int, latent: int):
        super().__init__()
        # Index-named layers (main.0, main.3) are what the released state dict holds.
        self.main = nn.Sequential(nn.Conv1d(input_dim, hidden, 4, 2, 1), nn.Dropout(0.2), nn.LeakyReLU(0.2),
                                  nn.Conv1d(hidden, latent, 4, 2, 1), nn.Dropout(0.2), nn.LeakyReLU(0.2))
        self.out_net = nn.Linear(latent, latent)

    def forward(self, motion: torch.Tensor) -> torch.Tensor:
        return self.out_net(self.main(motion.transpose(1, 2)).transpose(1, 2))


class RecurrentEncoder(nn.Module):
    """Input Linear, bidirectional GRU from a learned state, and the output head."""

    def __init__(self, input_dim: int, hidden: int, output_dim: int):
        super().__init__()
        self.input_emb = nn.Linear(input_dim, hidden)
        self.gru = nn.GRU(hidden, hidden, batch_first=True, bidirectional=True)
        self.output_net = nn.Sequential(nn.Linear(hidden * 2, hidden), nn.LayerNorm(hidden), nn.LeakyReLU(0.2),
                                        nn.Linear(hidden, output_dim))
        self.hidden = nn.Parameter(torch.zeros(2, 1, hidden))

    def encode(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(self.input_emb(inputs), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, last = self.gru(packed, self.hidden.expand(-1, len(inputs), -1).contiguous())
        return self.output_net(torch.cat([last[0], last[1]], dim=-1))


class TextEncoder(RecurrentEncoder):
    def __init__(self, hidden: int, output_dim: int):
        super().__init__(WORD_DIM, hidden, output_dim)
        self.pos_emb = nn.Linear(len(POS_TAGS), WORD_DIM)

    def forward(self, word_vectors, pos_onehots, lengths):
        return self.encode(word_vectors + self.pos_emb(pos_onehots), lengths)


class MotionEncoder(RecurrentEncoder):
    def forward(self, movements, lengths):
        return self.encode(movements, lengths)


class InterXEvaluator(nn.Module):
    def __init__(self, config: InterXEvaluatorConfig = InterXEvaluatorConfig()):
        super().__init__()
        self.config = config
        self.movement_encoder = MovementEncoder(INPUT_DIM, config.movement_hidden, config.movement_latent)
        self.text_encoder = TextEncoder(config.text_hidden, config.embedding_dim)
        self.motion_encoder = MotionEncoder(config.movement_latent, config.motion_hidden, config.embedding_dim)

    @torch.no_grad()
    def encode_text(self, word_vectors: torch.Tensor, pos_onehots: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.text_encoder(word_vectors, pos_onehots, lengths)

    @torch.no_grad()
    def encode_motion(self, motion: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``motion`` [B, T, 672] from ``evaluator_input``, ``lengths`` [B] multiples of 4."""
        if (lengths % UNIT_LENGTH != 0).any() or (lengths < UNIT_LENGTH).any():
            raise ValueError(f"InterX evaluator lengths must be positive multiples of {UNIT_LENGTH}, got "
                             f"{lengths.tolist()}; crop motions with evaluator_lengths first")
        return self.motion_encoder(self.movement_encoder(motion), lengths // UNIT_LENGTH)


def evaluator_input(features: np.ndarray) -> np.ndarray:
    """Two-person InterX features [..., T, 2, 336] (raw units) -> evaluator input [..., T, 672]."""
    features = np.asarray(features, dtype=np.float32)
    if features.shape[-2:] != (2, FEATURE_DIM):
        raise ValueError(f"the InterX evaluator reads features [..., T, 2, {FEATURE_DIM}], got {features.shape}")
    rows = features.reshape(features.shape[:-2] + (2, PARAM_ROWS, ROW_WIDTH))
    interleaved = np.concatenate([rows[..., 0, :, :], rows[..., 1, :, :]], axis=-1)  # [..., T, 56, 12]
    interleaved[..., -1, 3:6] = 0.0  # the evaluator was trained without the root velocities
    interleaved[..., -1, 9:12] = 0.0
    return interleaved.reshape(features.shape[:-2] + (INPUT_DIM,))


def evaluator_lengths(lengths) -> np.ndarray:
    """Frame counts the evaluator reads: whole multiples of 4, at most 150."""
    lengths = np.minimum(np.asarray(lengths, dtype=np.int64), MAX_FRAMES)
    return lengths // UNIT_LENGTH * UNIT_LENGTH


def load_interx_evaluator(path: str | os.PathLike, config: InterXEvaluatorConfig = InterXEvaluatorConfig()
                          ) -> InterXEvaluator:
    """Inter-X's ``finest.tar`` (or any file with its three state dicts), in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"InterX evaluator checkpoint {path} does not exist; pass Inter-X's "
                                f"checkpoints/hhi/text_mot_match/model/finest.tar")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a torch zip checkpoint; pass Inter-X's text_mot_match/model/finest.tar")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError) as error:
        raise ValueError(f"{path} holds objects other than tensors and plain values, which are not loaded "
                         f"(they could run code): {str(error).splitlines()[0]}") from None
    missing = [part for part in CHECKPOINT_PARTS if not isinstance(payload, dict) or part not in payload]
    if missing:
        raise ValueError(f"{path} lacks {missing}; an Inter-X evaluator checkpoint holds "
                         f"{', '.join(CHECKPOINT_PARTS)}")
    model = InterXEvaluator(config)
    for part in CHECKPOINT_PARTS:
        try:
            getattr(model, part).load_state_dict(payload[part])
        except RuntimeError as error:
            raise ValueError(f"{path}: '{part}' does not fit Inter-X's evaluator ({str(error).splitlines()[0]}...)"
                             ) from None
    return model.eval()


class InterXEmbedder:
    """Inter-X evaluator embeddings as numpy [N, 512]; texts are looked up as their tokens."""

    def __init__(self, evaluator: InterXEvaluator, word_vectors: WordVectors, tokens: dict[str, list[str]],
                 batch_size: int, device: torch.device):
        self.evaluator = evaluator.to(device).eval()
        self.word_vectors = word_vectors
        self.tokens = tokens
        self.batch_size = batch_size
        self.device = device

    def texts(self, texts: list[str]) -> np.ndarray:
        unknown = [text for text in texts if text not in self.tokens]
        if unknown:
            raise ValueError(f"{len(unknown)} sentences have no word/POS tokens (texts_processed/), e.g. {unknown[:2]}")
        out = []
        for start in range(0, len(texts), self.batch_size):
            encoded = [self.word_vectors.encode(self.tokens[text]) for text in texts[start:start + self.batch_size]]
            vectors, tags, lengths = (np.stack(part) for part in zip(*encoded))
            out.append(self.evaluator.encode_text(*(torch.as_tensor(a).to(self.device) for a in (vectors, tags)),
                                                  torch.as_tensor(lengths)).cpu().numpy())
        return np.concatenate(out)

    def motions(self, motions: list[np.ndarray]) -> np.ndarray:
        """Raw two-person features [L_i, 2, 336] each; read up to the length the evaluator takes."""
        out = []
        for start in range(0, len(motions), self.batch_size):
            chunk = motions[start:start + self.batch_size]
            lengths = evaluator_lengths([len(m) for m in chunk])
            # Always zero-padded to 150 frames as InterMask's loaders do: the convolutions at the end of a
            # motion read the padding, so a shorter pad would change the embedding.
            padded = np.zeros((len(chunk), MAX_FRAMES, INPUT_DIM), dtype=np.float32)
            for row, (motion, length) in enumerate(zip(chunk, lengths)):
                padded[row, :length] = evaluator_input(motion[:length])
            out.append(self.evaluator.encode_motion(torch.as_tensor(padded).to(self.device),
                                                    torch.as_tensor(lengths)).cpu().numpy())
        return np.concatenate(out)
