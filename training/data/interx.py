"""InterX on disk -> normalized two-person 336-number features (same item contract as InterHuman).

Layout under ``root`` (InterX's release): ``motions/NAME/P1.npz`` and ``P2.npz`` (SMPL-X
parameters at 120 fps, read at 30 fps), ``texts/NAME.txt``, split lists ``train.txt`` /
``val.txt`` / ``test.txt`` in ``root/splits`` or ``root``.

Per item: a random window of at most ``max_len`` frames (InterMask: 24..150 frames at 30
fps). InterMask neither mirrors nor swaps InterX pairs; ``swap_persons`` is offered but off.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dhvae_sdk.motion.interx import interaction_features, read_pair
from dhvae_sdk.motion.normalization import interx_normalizer

from .base import InteractionDataset, read_names, read_sentences, require_dir, split_file

LIST_FOLDERS = ("splits",)


class InterXDataset(InteractionDataset):
    def __init__(
        self,
        root,
        split: str = "train",
        min_len: int = 24,
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
        texts = require_dir(self.root / "texts", "an InterX root needs texts/ with one NAME.txt per motion")
        list_path = split_file(self.root, split, LIST_FOLDERS)
        names = read_names(list_path)

        self._names: list[str] = []
        self._params: list[np.ndarray] = []  # [T, 2, 56, 3] float32
        self._sentences: list[tuple[str, ...]] = []
        too_short = 0
        for name in names:
            sample_dir = motions / name
            if not sample_dir.is_dir():
                raise FileNotFoundError(f"{name} is listed in {list_path} but {sample_dir} does not exist")
            pair = read_pair(sample_dir, model_dir)
            sentences = read_sentences(texts / f"{name}.txt")
            if len(pair) < min_len:
                too_short += 1
                continue
            self._names.append(name)
            self._params.append(pair.astype(np.float32))
            self._sentences.append(sentences)
        if not self._names:
            raise ValueError(
                f"no sample left for split {split!r} in {self.root}: {len(names)} listed in {list_path}, "
                f"{too_short} shorter than min_len={min_len} frames"
            )

    def __len__(self) -> int:
        return len(self._names)

    def __getitem__(self, index: int) -> dict:
        params = self._params[index]
        window = min(len(params), self.max_len)
        start = self._crop_start(len(params), window)
        features = interaction_features(params[start : start + window])
        if self.swap_persons and self._coin():
            features = features[:, ::-1]
        return self._item(features, self._choose(self._sentences[index]), self._names[index])
