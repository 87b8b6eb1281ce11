"""The text input of Inter-X's evaluator: GloVe word vectors and part-of-speech one-hots.

Inter-X (``evaluation/text2motion/utils/word_vectorizer.py``) and InterMask read the folder
``glove/`` of the InterX release with the prefix ``hhi_vab``: ``hhi_vab_data.npy`` [W, 300],
``hhi_vab_words.pkl`` (list of W words) and ``hhi_vab_idx.pkl`` (word -> row). The two
pickles hold only a list and a dict of strings and integers; they are read by an unpickler
that resolves no global name, so a file cannot make the loader call anything.

A sentence arrives as the tokens of ``texts_processed/NAME.txt`` ("word/POS"): it becomes
``sos/OTHER``, its first ``max_text_len`` tokens, ``eos/OTHER``, padded with ``unk/OTHER`` to
``max_text_len + 2``; its length counts sos and eos. A word of one of the protocol's special
lists takes that list's tag instead of its own (Loc_VIP, Body_VIP, ...); an unknown word is
``unk`` tagged OTHER.
"""
from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np

POS_TAGS = ("VERB", "NOUN", "DET", "ADP", "NUM", "AUX", "PRON", "ADJ", "ADV",
            "Loc_VIP", "Body_VIP", "Obj_VIP", "Act_VIP", "Desc_VIP", "OTHER")
SPECIAL_WORDS = {
    "Loc_VIP": ("left", "right", "clockwise", "counterclockwise", "anticlockwise", "forward", "back", "backward",
                "up", "down", "straight", "curve"),
    "Body_VIP": ("arm", "chin", "foot", "feet", "face", "hand", "mouth", "leg", "waist", "eye", "knee", "shoulder",
                 "thigh"),
    "Obj_VIP": ("stair", "dumbbell", "chair", "window", "floor", "car", "ball", "handrail", "baseball", "basketball"),
    "Act_VIP": ("walk", "run", "swing", "pick", "bring", "kick", "put", "squat", "throw", "hop", "dance", "jump",
                "turn", "stumble", "stop", "sit", "lift", "lower", "raise", "wash", "stand", "kneel", "stroll", "rub",
                "bend", "balance", "flap", "jog", "shuffle", "lean", "rotate", "spin", "spread", "climb"),
    "Desc_VIP": ("slowly", "carefully", "fast", "careful", "slow", "quickly", "happy", "angry", "sad", "happily",
                 "angrily", "sadly"),
}
INTERX_PREFIX = "hhi_vab"
INTERX_MAX_TEXT_LEN = 35
WORD_DIM = 300


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a word list holds only strings and integers")


def read_plain_pickle(path: Path):
    try:
        return _NoGlobals(io.BytesIO(path.read_bytes())).load()
    except (pickle.UnpicklingError, EOFError, ValueError) as error:
        raise ValueError(f"{path} is not a pickled list/dict of plain strings and integers ({error}); use the "
                         f"glove/ files of the InterX release") from None


class WordVectors:
    """word/POS tokens -> (word vectors [L, 300], POS one-hots [L, 15], length)."""

    def __init__(self, vectors: np.ndarray, words: list[str], index: dict[str, int]):
        self.word_vector = {word: vectors[index[word]] for word in words}
        if "unk" not in self.word_vector:
            raise ValueError("the word vectors have no 'unk' entry, which unknown words map to")
        self.dim = vectors.shape[1]

    @classmethod
    def load(cls, folder: str | os.PathLike, prefix: str = INTERX_PREFIX) -> "WordVectors":
        folder = Path(folder)
        paths = [folder / f"{prefix}_{part}" for part in ("data.npy", "words.pkl", "idx.pkl")]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"word-vector files {missing} do not exist; pass the glove/ folder of the InterX "
                                    f"release (files {prefix}_data.npy, {prefix}_words.pkl, {prefix}_idx.pkl)")
        vectors = np.load(paths[0], allow_pickle=False)
        words, index = read_plain_pickle(paths[1]), read_plain_pickle(paths[2])
        if vectors.ndim != 2 or not isinstance(words, list) or not isinstance(index, dict):
            raise ValueError(f"{folder}: expected vectors [W, D], a word list and a word->row dict, got "
                             f"{vectors.shape}, {type(words).__name__}, {type(index).__name__}")
        unindexed = [w for w in words if not 0 <= index.get(w, -1) < len(vectors)]
        if unindexed:
            raise ValueError(f"{folder}: {len(unindexed)} words have no row in {paths[0].name}, e.g. {unindexed[:3]}")
        return cls(np.asarray(vectors, dtype=np.float32), words, index)

    def encode(self, tokens: list[str], max_text_len: int = INTERX_MAX_TEXT_LEN) -> tuple[np.ndarray, np.ndarray, int]:
        tokens = ["sos/OTHER", *tokens[:max_text_len], "eos/OTHER"]
        length = len(tokens)
        tokens += ["unk/OTHER"] * (max_text_len + 2 - length)
        vectors = np.zeros((len(tokens), self.dim), dtype=np.float32)
        tags = np.zeros((len(tokens), len(POS_TAGS)), dtype=np.float32)
        for row, token in enumerate(tokens):
            word, _, tag = token.partition("/")
            if word in self.word_vector:
                vectors[row] = self.word_vector[word]
                tag = next((special for special, words in SPECIAL_WORDS.items() if word in words), tag)
            else:
                vectors[row], tag = self.word_vector["unk"], "OTHER"
            tags[row, POS_TAGS.index(tag) if tag in POS_TAGS else POS_TAGS.index("OTHER")] = 1.0
        return vectors, tags, length
