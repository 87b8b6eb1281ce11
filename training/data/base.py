"""What the InterHuman and InterX datasets share: file lists, sentences, cropping, padding."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from dhvae_sdk.errors import DHVAEError
from dhvae_sdk.motion.normalization import Normalizer

SPLITS = ("train", "val", "test")


class DatasetError(DHVAEError, ValueError):
    """A dataset file that cannot be used as it is; the message names the file."""


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist: {what}")
    return path


def find_list_file(root: Path, file_name: str, folders: tuple[str, ...]) -> Path | None:
    """``root/file_name`` or ``root/<folder>/file_name``, whichever exists first."""
    for candidate in [root / file_name] + [root / folder / file_name for folder in folders]:
        if candidate.is_file():
            return candidate
    return None


def split_file(root: Path, split: str, folders: tuple[str, ...]) -> Path:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    path = find_list_file(root, f"{split}.txt", folders)
    if path is None:
        places = [str(root / f"{split}.txt")] + [str(root / folder / f"{split}.txt") for folder in folders]
        raise FileNotFoundError(f"split file for split {split!r} not found: looked for {', '.join(places)}")
    return path


def read_text_file(path: Path, what: str) -> str:
    """The UTF-8 text of ``path``; a file in another encoding is named in the error."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DatasetError(
            f"{what} {path} is not UTF-8 text (byte {error.start}: {error.reason}); save it as UTF-8"
        ) from None


def read_names(path: Path) -> list[str]:
    """Sample names of a list file, one per line (blank lines skipped)."""
    return [line.strip() for line in read_text_file(path, "list file").splitlines() if line.strip()]


def read_sentences(path: Path) -> tuple[str, ...]:
    """The descriptions of a sample, one per line.

    Text after a '#' is dropped: InterMask's processed InterX texts append tokens and
    time tags that way.
    """
    if not path.is_file():
        raise FileNotFoundError(f"annotation {path} does not exist: every motion needs its text file")
    lines = read_text_file(path, "annotation").splitlines()
    sentences = tuple(s for s in (line.split("#", 1)[0].strip() for line in lines) if s)
    if not sentences:
        raise ValueError(f"annotation {path} is empty: write at least one sentence describing the motion")
    return sentences


class InteractionDataset(Dataset):
    """Items of two-person features: normalized, zero-padded to ``max_len`` frames, with a mask.

    An item is a dict: "motion" FloatTensor [max_len, 2, D], "mask" BoolTensor [max_len]
    (True on real frames), "length" int, "text" str, "name" str.
    """

    def __init__(self, min_len: int, max_len: int, normalizer: Normalizer | None, seed: int | None):
        if not 1 <= min_len <= max_len:
            raise ValueError(f"need 1 <= min_len <= max_len, got min_len={min_len}, max_len={max_len}")
        self.min_len = min_len
        self.max_len = max_len
        self.normalizer = normalizer
        self._rng = np.random.default_rng(seed)

    def reseed(self, seed: int) -> None:
        """Restart the augmentation randomness (used per data-loader worker)."""
        self._rng = np.random.default_rng(seed)

    def _crop_start(self, frames: int, window: int) -> int:
        return int(self._rng.integers(0, frames - window + 1))

    def _coin(self) -> bool:
        return bool(self._rng.random() < 0.5)

    def _choose(self, sentences: tuple[str, ...]) -> str:
        return sentences[int(self._rng.integers(len(sentences)))]

    def _item(self, features: np.ndarray, text: str, name: str) -> dict:
        length = len(features)
        if self.normalizer is not None:
            features = self.normalizer.normalize(features)
        # Padding is done in numpy: torch's multi-threaded fill and copy kernels are
        # orders of magnitude slower for these small host arrays when the cores are busy.
        motion = np.zeros((self.max_len,) + features.shape[1:], dtype=np.float32)
        motion[:length] = features
        mask = np.arange(self.max_len) < length
        return {"motion": torch.from_numpy(motion), "mask": torch.from_numpy(mask), "length": length,
                "text": text, "name": name}
