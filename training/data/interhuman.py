"""InterHuman on disk -> normalized two-person features, the way InterGen's loader prepares them.

Layout under ``root``: ``motions_processed/person1/NAME.npy`` and ``person2/NAME.npy``
([T, 492] each), ``annots/NAME.txt``, split lists ``train.txt`` / ``val.txt`` /
``test.txt`` (in ``root`` or ``root/split``), optional ``ignore_list.txt``.

Per item, exactly as InterGen's ``InterHumanDataset.__getitem__`` in every mode (train, val
and test): a sequence of more than ``max_len`` raw frames gets a window of ``max_len`` raw
frames starting uniformly in ``0 .. frames - max_len - 1`` (InterGen never starts at the last
possible frame), a shorter one is taken whole; features lose one frame, so a window yields at
most ``max_len - 1`` feature frames. Then, with ``swap_persons`` (on in every split, as
InterGen flips these coins in test mode too), a random choice of whose first pose defines the
shared frame and, independently, a random order of the two; with ``mirror`` (train only), a
left/right mirror of motion and sentence half of the time. Sequences of at least
``min_raw_frames`` raw frames are kept (InterGen: 15).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dhvae_sdk.motion.interhuman import FEATURE_DIM, RAW_DIM, raw_body, two_person_features
from dhvae_sdk.motion.mirror import mirror_features, mirror_text
from dhvae_sdk.motion.normalization import Normalizer, StatisticsError, interhuman_normalizer

from .base import InteractionDataset, find_list_file, read_names, read_sentences, require_dir, split_file

LIST_FOLDERS = ("split",)
# A dataset folder may carry statistics of its own (the procedural generator writes them);
# otherwise the published InterHuman statistics apply.
STATS_FILES = ("global_mean.npy", "global_std.npy")
INTERGEN_MIN_RAW_FRAMES = 15


def dataset_normalizer(root) -> Normalizer:
    """The statistics that normalize the dataset at ``root``."""
    mean_path, std_path = (Path(root) / name for name in STATS_FILES)
    present = [path.is_file() for path in (mean_path, std_path)]
    if not any(present):
        return interhuman_normalizer()
    if not all(present):
        # Half a pair would silently fall back to the published statistics of other data.
        missing = std_path if present[0] else mean_path
        raise StatisticsError(f"{missing} is missing but its twin is present: a dataset's own statistics "
                              f"need both {' and '.join(STATS_FILES)} (or neither, for the published ones)")
    normalizer = Normalizer.from_files(mean_path, std_path)
    if normalizer.dim != FEATURE_DIM:
        raise StatisticsError(f"{mean_path} and {std_path} hold {normalizer.dim} numbers each; InterHuman "
                              f"features have {FEATURE_DIM}")
    return normalizer


@dataclass(frozen=True)
class _Pair:
    name: str
    positions: np.ndarray  # [T, 2, 22, 3] float32, Y up
    rotations: np.ndarray  # [T, 2, 21, 6] float32
    sentences: tuple[str, ...]


def load_raw_motion(path: Path) -> np.ndarray:
    """One person's [T, 492] raw motion, checked."""
    if not path.is_file():
        raise FileNotFoundError(f"motion file {path} does not exist")
    try:
        motion = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is not a readable .npy array: {error}") from error
    if motion.ndim != 2 or motion.shape[1] != RAW_DIM:
        raise ValueError(f"{path} has shape {motion.shape}; InterHuman motions are [frames, {RAW_DIM}] arrays")
    if not np.all(np.isfinite(motion)):
        raise ValueError(f"{path} contains NaN or infinite values")
    return motion


class InterHumanDataset(InteractionDataset):
    def __init__(
        self,
        root,
        split: str = "train",
        min_raw_frames: int = INTERGEN_MIN_RAW_FRAMES,
        max_len: int = 300,
        normalize: bool = True,
        mirror: bool | None = None,
        swap_persons: bool = True,
        seed: int | None = None,
    ):
        """``mirror`` defaults to True on the train split only; ``max_len`` counts raw frames
        of a window (and the padded item length)."""
        # A sequence of n raw frames has n - 1 feature frames.
        super().__init__(min_raw_frames - 1, max_len, dataset_normalizer(root) if normalize else None, seed)
        self.root = Path(root)
        self.split = split
        self.mirror = split == "train" if mirror is None else mirror
        self.swap_persons = swap_persons
        require_dir(self.root, "pass the InterHuman folder that holds motions_processed/ and annots/")
        motions = self.root / "motions_processed"
        folders = [require_dir(motions / person, "an InterHuman root needs motions_processed/person1 and person2")
                   for person in ("person1", "person2")]
        annots = require_dir(self.root / "annots", "an InterHuman root needs annots/ with one NAME.txt per motion")
        list_path = split_file(self.root, split, LIST_FOLDERS)
        ignore_path = find_list_file(self.root, "ignore_list.txt", LIST_FOLDERS)
        ignored = set(read_names(ignore_path)) if ignore_path else set()
        names = [name for name in read_names(list_path) if name not in ignored]

        self._pairs: list[_Pair] = []
        too_short = 0
        for name in names:
            person1, person2 = (folder / f"{name}.npy" for folder in folders)
            if not person1.is_file():
                raise FileNotFoundError(f"{name} is listed in {list_path} but {person1} does not exist")
            if not person2.is_file():
                raise FileNotFoundError(f"{person1} has no twin {person2}: every motion needs both persons")
            raw1, raw2 = load_raw_motion(person1), load_raw_motion(person2)
            if len(raw1) != len(raw2):
                raise ValueError(f"{person1} has {len(raw1)} frames but {person2} has {len(raw2)}; both persons "
                                 "must have the same frame count")
            sentences = read_sentences(annots / f"{name}.txt")
            if len(raw1) < min_raw_frames:
                too_short += 1
                continue
            bodies = [raw_body(raw) for raw in (raw1, raw2)]
            self._pairs.append(_Pair(
                name=name,
                positions=np.stack([body[0] for body in bodies], axis=1).astype(np.float32),
                rotations=np.stack([body[1] for body in bodies], axis=1).astype(np.float32),
                sentences=sentences,
            ))
        if not self._pairs:
            raise ValueError(
                f"no sample left for split {split!r} in {self.root}: {len(names)} listed in {list_path} "
                f"({len(ignored)} names ignored), {too_short} shorter than min_raw_frames={min_raw_frames} raw frames"
            )

    def __len__(self) -> int:
        return len(self._pairs)

    def item_lengths(self) -> list[int]:
        """Feature frames of each index's items (a window of at most max_len raw frames)."""
        return [min(len(pair.positions), self.max_len) - 1 for pair in self._pairs]

    def __getitem__(self, index: int) -> dict:
        pair = self._pairs[index]
        frames = len(pair.positions)
        window = min(frames, self.max_len)
        start = int(self._rng.integers(0, frames - window)) if frames > window else 0
        positions = pair.positions[start : start + window]
        rotations = pair.rotations[start : start + window]
        if self.swap_persons and self._coin():
            positions, rotations = positions[:, ::-1], rotations[:, ::-1]
        features = two_person_features(positions, rotations)
        if self.swap_persons and self._coin():
            features = features[:, ::-1]
        text = self._choose(pair.sentences)
        if self.mirror and self._coin():
            features, text = mirror_features(features), mirror_text(text)
        return self._item(features, text, pair.name)
