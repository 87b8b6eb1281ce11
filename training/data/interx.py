"""InterX on disk -> normalized two-person 336-number features (same item contract as InterHuman).

Layout under ``root`` (InterX's release): ``motions/NAME/P1.npz`` and ``P2.npz`` (SMPL-X
parameters at 120 fps, read at 30 fps), ``texts_processed/NAME.txt`` (lines
"sentence#word/POS word/POS ...#0.0#0.0", what the InterX evaluator reads) or else
``texts/NAME.txt``, split lists ``train.txt`` / ``val.txt`` / ``test.txt`` in ``root/splits``
or ``root``.

Samples of ``min_len`` (24) to 999 frames are kept. Per item, the crop of InterMask's
``Text2MotionDatasetV2HHI`` (which its evaluation and training both use): the length is
rounded down to a multiple of 4, and one time in three one more multiple of 4 is dropped;
a window of that length starts uniformly anywhere in the sequence; its features are then cut
to the first ``max_len`` (150) frames. InterMask neither mirrors nor swaps InterX pairs;
``swap_persons`` is offered but off.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dhvae_sdk.motion.interx import interaction_features, read_pair
from dhvae_sdk.motion.normalization import interx_normalizer

from .base import InteractionDataset, read_names, read_sentences, read_text_file, require_dir, split_file

LIST_FOLDERS = ("splits",)
TEXT_FOLDERS = ("texts_processed", "texts")
MIN_FRAMES = 24  # InterMask's shortest kept sequence
MAX_SOURCE_FRAMES = 1000  # InterMask skips sequences this long or longer
UNIT_LENGTH = 4


class InterXDataset(InteractionDataset):
    def __init__(
        self,
        root,
        split: str = "train",
        min_len: int = MIN_FRAMES,
        max_len: int = 150,
        normalize: bool = True,
        swap_persons: bool = False,
        seed: int | None = None,
        model_dir=None,
    ):
        """``model_dir`` (SMPL-X files, optional) enables InterX's per-person floor step."""
        super().__init__(min_len, max_len, interx_normalizer() if normalize else None, seed)
        self.root = Path(root)
        self.split = split
        self.swap_persons = swap_persons
        require_dir(self.root, "pass the InterX folder that holds motions/, texts/ and splits/")
        motions = require_dir(self.root / "motions", "an InterX root needs motions/NAME/P1.npz and P2.npz")
        texts = next((self.root / folder for folder in TEXT_FOLDERS if (self.root / folder).is_dir()), None)
        if texts is None:
            raise FileNotFoundError(f"{self.root} has no texts_processed/ or texts/ folder with one NAME.txt per "
                                    f"motion")
        list_path = split_file(self.root, split, LIST_FOLDERS)
        names = read_names(list_path)

        self._names: list[str] = []
        self._params: list[np.ndarray] = []  # [T, 2, 56, 3] float32
        self._sentences: list[tuple[str, ...]] = []
        self.sentence_tokens: dict[str, list[str]] = {}  # sentence -> its word/POS tokens, where the file has them
        too_short = 0
        for name in names:
            sample_dir = motions / name
            if not sample_dir.is_dir():
                raise FileNotFoundError(f"{name} is listed in {list_path} but {sample_dir} does not exist")
            pair = read_pair(sample_dir, model_dir)
            sentences = read_sentences(texts / f"{name}.txt")
            self.sentence_tokens.update(read_tokens(texts / f"{name}.txt"))
            if not min_len <= len(pair) < MAX_SOURCE_FRAMES:
                too_short += 1
                continue
            self._names.append(name)
            self._params.append(pair.astype(np.float32))
            self._sentences.append(sentences)
        if not self._names:
            raise ValueError(
                f"no sample left for split {split!r} in {self.root}: {len(names)} listed in {list_path}, "
                f"{too_short} shorter than min_len={min_len} or longer than {MAX_SOURCE_FRAMES - 1} frames"
            )

    def __len__(self) -> int:
        return len(self._names)

    def item_lengths(self) -> list[int]:
        """Frames of each index's longest item (one item in three is a unit shorter)."""
        return [min(len(params) // UNIT_LENGTH * UNIT_LENGTH, self.max_len) for params in self._params]

    def __getitem__(self, index: int) -> dict:
        params = self._params[index]
        units = len(params) // UNIT_LENGTH - (1 if self._rng.random() < 1 / 3 else 0)
        window = units * UNIT_LENGTH
        start = self._crop_start(len(params), window)
        features = interaction_features(params[start : start + window])[: self.max_len]
        if self.swap_persons and self._coin():
            features = features[:, ::-1]
        return self._item(features, self._choose(self._sentences[index]), self._names[index])


def read_tokens(path: Path) -> dict[str, list[str]]:
    """{sentence: tokens} of the lines that carry "#word/POS ..." after the sentence."""
    tokens = {}
    for line in read_text_file(path, "annotation").splitlines():
        parts = line.split("#")
        if len(parts) > 1 and parts[0].strip() and parts[1].strip():
            tokens[parts[0].strip()] = parts[1].split()
    return tokens
