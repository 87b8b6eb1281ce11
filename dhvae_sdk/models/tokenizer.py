"""CLIP's byte-level BPE tokenizer in plain Python: texts -> ids [B, context] int64 (numpy).

The runtimes tokenize without torch (open_clip's tokenizer imports it), so this is the one
tokenizer of the SDK; ``text_encoder.tokenize`` wraps its ids in a tensor for training.
The ids are CLIP's: the text is repaired (ftfy), HTML-unescaped, its whitespace collapsed and
lowercased, split into pieces (contractions, letter runs, single digits, runs of other
symbols), each piece's UTF-8 bytes mapped to printable characters and merged by CLIP's
merge list, which open_clip ships (read here as a data file, without importing open_clip).
"""
from __future__ import annotations

import functools
import gzip
import html
import importlib.util
import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import ftfy
import numpy as np
import regex

from dhvae_sdk.errors import DHVAEError

VOCAB_PACKAGE = "open_clip"
VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
MERGES = 49152 - 256 - 2  # CLIP uses the file's first 48,894 merges
START, END = "<start_of_text>", "<end_of_text>"
END_OF_WORD = "</w>"
# The special tokens themselves, contractions, letter runs, single digits, other symbol runs.
PIECES = regex.compile(rf"{START}|{END}|'s|'t|'re|'ve|'m|'ll|'d|[\p{{L}}]+|[\p{{N}}]|[^\s\p{{L}}\p{{N}}]+",
                       regex.IGNORECASE)


class TokenizerError(DHVAEError, RuntimeError):
    """CLIP's vocabulary file cannot be found."""


def _byte_characters() -> tuple[list[str], list[int]]:
    """The printable character standing for each byte, in vocabulary order: bytes that are
    printable Latin-1 characters stand for themselves, the others for chr(256 + n)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + n) for n in range(len(others))], printable + others


class ClipTokenizer:
    def __init__(self, merges_path: Path):
        with gzip.open(merges_path, "rt", encoding="utf-8") as handle:
            lines = handle.read().split("\n")[1 : MERGES + 1]  # the first line is a version header
        self.merges = [tuple(line.split()) for line in lines]
        self.ranks = {pair: rank for rank, pair in enumerate(self.merges)}
        characters, byte_order = _byte_characters()
        self.byte_character = dict(zip(byte_order, characters))
        vocabulary = [*characters, *(c + END_OF_WORD for c in characters), *("".join(m) for m in self.merges), START, END]
        self.ids = {token: index for index, token in enumerate(vocabulary)}
        self.start_id, self.end_id = self.ids[START], self.ids[END]

    def encode(self, text: str) -> list[int]:
        """The ids of ``text`` alone (no start or end token)."""
        text = " ".join(html.unescape(html.unescape(ftfy.fix_text(text))).split()).lower()
        ids = []
        for piece in PIECES.findall(text):
            if piece in (START, END):
                ids.append(self.ids[piece])
                continue
            mapped = "".join(self.byte_character[b] for b in piece.encode("utf-8"))
            ids.extend(self.ids[token] for token in self._merged(mapped))
        return ids

    @functools.lru_cache(maxsize=65536)
    def _merged(self, piece: str) -> tuple[str, ...]:
        """BPE: merges the adjacent pair of the lowest rank everywhere, until no pair is ranked."""
        parts = [*piece[:-1], piece[-1] + END_OF_WORD]
        while len(parts) > 1:
            rank = min(self.ranks.get(pair, math.inf) for pair in zip(parts, parts[1:]))
            if rank == math.inf:
                break
            first, second = self.merges[rank]
            merged, index = [], 0
            while index < len(parts):
                if index + 1 < len(parts) and parts[index] == first and parts[index + 1] == second:
                    merged.append(first + second)
                    index += 2
                else:
                    merged.append(parts[index])
                    index += 1
            parts = merged
        return tuple(parts)


@functools.lru_cache(maxsize=1)
def clip_tokenizer() -> ClipTokenizer:
    spec = importlib.util.find_spec(VOCAB_PACKAGE)  # locates the package without importing it (and torch)
    folders = [] if spec is None else list(spec.submodule_search_locations or [])
    path = Path(folders[0]) / VOCAB_FILE if folders else None
    if path is None or not path.is_file():
        raise TokenizerError(
            f"CLIP's BPE vocabulary {VOCAB_FILE} was not found (it ships with open_clip); "
            "install it with `pip install open_clip_torch`"
        )
    return ClipTokenizer(path)


def token_ids(texts: Sequence[str], context_length: int = 77, *, warn_truncation: bool = True) -> np.ndarray:
    """CLIP BPE ids [B, context_length] int64 (start, text, end, zero padding). Longer texts
    are truncated (keeping the end token), with a warning unless ``warn_truncation`` is False."""
    if isinstance(texts, str) or not isinstance(texts, Sequence) or len(texts) == 0:
        raise ValueError(f"texts must be a non-empty list of strings, got {texts!r}")
    for index, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"text {index} must be a non-empty string, got {text!r}")
    rows = []
    for index, text in enumerate(texts):  # a loop, not a comprehension: the warning's stacklevel counts frames
        rows.append(_padded(text, context_length, index, warn_truncation))
    return np.stack(rows)


def empty_token_ids(count: int, context_length: int = 77) -> np.ndarray:
    """The ids of the empty string (start, end, padding): the unconditional input."""
    return np.repeat(_padded("", context_length, 0, True)[None], count, axis=0)


def _padded(text: str, context_length: int, index: int, warn_truncation: bool) -> np.ndarray:
    tokenizer = clip_tokenizer()
    tokens = [tokenizer.start_id, *tokenizer.encode(text), tokenizer.end_id]
    if len(tokens) > context_length:
        if warn_truncation:
            warnings.warn(
                f"text {index} has {len(tokens)} tokens, more than the context of {context_length}; "
                f"it is truncated: {text[:60]!r}...",
                stacklevel=3,
            )
        tokens = tokens[: context_length - 1] + [tokenizer.end_id]
    ids = np.zeros(context_length, dtype=np.int64)
    ids[: len(tokens)] = tokens
    return ids
