"""Batches of dataset items and the data loaders that make them."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, get_worker_info

# Batches are formed within pools of this many batches' worth of shuffled items: larger pools
# pad less, smaller ones vary each epoch's batches more.
BUCKET_POOL_BATCHES = 8


def collate_interactions(items: list[dict]) -> dict:
    """Items of ``InteractionDataset`` -> the training batch.

    "motion" FloatTensor [B, L, 2, D] (normalized), "mask" BoolTensor [B, L],
    "lengths" LongTensor [B], "texts" list[str], "names" list[str].
    """
    if not items:
        raise ValueError("cannot collate an empty list of items")
    # np.stack, not torch.stack: the latter is ~50x slower on a busy 2-core host.
    return {
        "motion": torch.from_numpy(np.stack([item["motion"].numpy() for item in items])),
        "mask": torch.from_numpy(np.stack([item["mask"].numpy() for item in items])),
        "lengths": torch.tensor([item["length"] for item in items], dtype=torch.long),
        "texts": [item["text"] for item in items],
        "names": [item["name"] for item in items],
    }


def _seed_worker(worker_id: int) -> None:
    # Each worker gets its own augmentation stream, derived from the loader's generator.
    info = get_worker_info()
    info.dataset.reseed(info.seed)


class LengthBucketSampler(Sampler[list[int]]):
    """Shuffled batches of items of similar length, the same for every process of a run.

    A batch is padded to its longest item and attention costs the square of that length, so
    batches of look-alike lengths train several times faster than random ones on sequences
    of 75 to 300 frames. Each epoch shuffles the items, sorts each pool of
    ``BUCKET_POOL_BATCHES`` batches' worth by length, cuts it into batches and shuffles the
    batches; process ``rank`` of ``world_size`` takes every world_size-th batch (the last
    batches that do not go round are dropped, so every process runs as many steps).
    Call ``set_epoch`` before each epoch, as with ``DistributedSampler``.
    """

    def __init__(self, lengths, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        self.lengths = np.asarray(lengths)
        self.batch_size, self.seed, self.rank, self.world_size = batch_size, seed, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).numpy()
        pool = self.batch_size * BUCKET_POOL_BATCHES
        batches = []
        for start in range(0, len(order), pool):
            chunk = order[start:start + pool]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [chunk[i:i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size)]
        shuffled = torch.randperm(len(batches), generator=generator).tolist()
        usable = len(batches) - len(batches) % self.world_size
        return [batches[i] for i in shuffled[:usable]][self.rank::self.world_size]

    def __iter__(self):
        return iter(self._batches())

    def __len__(self) -> int:
        # Pools hold whole batches, so only the last pool's last batch can be short.
        return math.ceil(len(self.lengths) / self.batch_size) // self.world_size


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    seed: int,
    num_workers: int = 0,
    distributed: bool = False,
    drop_last: bool = False,
    lengths=None,
) -> DataLoader:
    """A loader of training batches; ``distributed`` shards the data per process.

    With ``lengths`` (each item's longest length) a shuffled loader batches items of similar
    length (``LengthBucketSampler``). With ``distributed`` or ``lengths`` call
    ``set_epoch(epoch)`` on ``loader.sampler`` / ``loader.batch_sampler`` every epoch so the
    shuffle changes. Augmentations in workers are seeded from ``seed`` (and the rank).
    """
    if distributed and not (dist.is_available() and dist.is_initialized()):
        raise ValueError("distributed=True needs torch.distributed.init_process_group() to be called first")
    rank, world_size = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    generator = torch.Generator().manual_seed(seed + rank)
    common = dict(num_workers=num_workers, collate_fn=collate_interactions, generator=generator,
                  worker_init_fn=_seed_worker if num_workers > 0 else None)
    if shuffle and lengths is not None:
        return DataLoader(dataset, batch_sampler=LengthBucketSampler(lengths, batch_size, seed, rank, world_size),
                          **common)
    sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last) if distributed else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle if sampler is None else False, sampler=sampler,
                      drop_last=drop_last, **common)
