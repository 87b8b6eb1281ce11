"""InterHuman dataset and loaders on a tiny FK-built folder in InterHuman's layout."""
import shutil

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from dhvae_sdk.motion.interhuman import interaction_features
from dhvae_sdk.motion.mirror import mirror_features, mirror_text
from dhvae_sdk.motion.normalization import interhuman_normalizer
from tests.fk_motions import write_interhuman
from training.data import InterHumanDataset, collate_interactions, make_loader
from training.data.batching import LengthBucketSampler

LENGTHS = {"s0": 40, "s1": 21, "long": 95, "tiny": 10, "s4": 16, "skipped": 30}
SPLITS = {"train": ["s0", "s1", "long", "tiny", "s4", "skipped"], "val": ["s0", "s1"], "test": ["s4"]}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_interhuman(tmp_path_factory.mktemp("interhuman"), LENGTHS, SPLITS, ignore=("skipped",))


@pytest.fixture
def copy(root, tmp_path):
    """A private copy of the dataset to break."""
    return shutil.copytree(root, tmp_path / "copy")


def raw_pair(root, name):
    return [np.load(root / "motions_processed" / person / f"{name}.npy") for person in ("person1", "person2")]


def denormalized(item):
    return interhuman_normalizer().denormalize(item["motion"][: item["length"]].double().numpy())


def test_split_ignore_and_length_filter(root):
    train = InterHumanDataset(root, "train", max_len=32, seed=0)
    assert sorted(train[i]["name"] for i in range(len(train))) == ["long", "s0", "s1", "s4"]
    assert len(InterHumanDataset(root, "train", min_raw_frames=17, max_len=32)) == 3  # s4 has 16 raw frames
    assert len(InterHumanDataset(root, "val")) == 2


def test_val_item_is_the_normalized_pair_padded_with_a_mask(root):
    dataset = InterHumanDataset(root, "val", max_len=48, swap_persons=False)
    assert not dataset.mirror
    item = next(dataset[i] for i in range(len(dataset)) if dataset[i]["name"] == "s0")
    assert item["motion"].shape == (48, 2, 262) and item["motion"].dtype == torch.float32
    assert item["length"] == 39
    assert item["mask"].tolist() == [True] * 39 + [False] * 9
    assert torch.all(item["motion"][39:] == 0)
    np.testing.assert_allclose(denormalized(item), interaction_features(*raw_pair(root, "s0")), atol=2e-5)
    sentences = (root / "annots" / "s0.txt").read_text().splitlines()
    assert item["text"] in sentences[:2]


def test_long_motion_gets_a_random_window_of_max_len_raw_frames(root):
    dataset = InterHumanDataset(root, "train", max_len=32, mirror=False, swap_persons=False, seed=3)
    index = next(i for i in range(len(dataset)) if dataset[i]["name"] == "long")
    raw1, raw2 = raw_pair(root, "long")
    # InterGen: 32 raw frames (31 feature frames) from a start in 0 .. 95 - 32 - 1.
    windows = {start: interaction_features(raw1[start : start + 32], raw2[start : start + 32]) for start in range(63)}
    starts = set()
    for _ in range(8):
        item = dataset[index]
        assert item["length"] == 31 and item["mask"].sum() == 31
        features = denormalized(item)
        matches = [start for start, window in windows.items() if np.allclose(features, window, atol=2e-5)]
        assert len(matches) == 1
        starts.update(matches)
    assert len(starts) > 1


def test_mirror_augmentation_mirrors_motion_and_text_together(root):
    plain = InterHumanDataset(root, "val", mirror=False, swap_persons=False)
    mirrored = InterHumanDataset(root, "val", mirror=True, swap_persons=False, seed=5)
    reference = denormalized(plain[0])
    sentences = (root / "annots" / f"{plain[0]['name']}.txt").read_text().splitlines()[:2]
    seen = set()
    for _ in range(16):
        item = mirrored[0]
        features = denormalized(item)
        if item["text"] in sentences:
            np.testing.assert_allclose(features, reference, atol=2e-5)
            seen.add("plain")
        else:
            assert item["text"] in [mirror_text(s) for s in sentences]
            np.testing.assert_allclose(features, mirror_features(reference), atol=2e-5)
            seen.add("mirrored")
    assert seen == {"plain", "mirrored"}


def test_person_swap_changes_order_and_reference_person(root):
    dataset = InterHumanDataset(root, "val", swap_persons=True, seed=2)
    raw1, raw2 = raw_pair(root, dataset[0]["name"])
    as_stored, other_frame = interaction_features(raw1, raw2), interaction_features(raw2, raw1)
    variants = {
        "1-2": as_stored, "2-1": as_stored[:, ::-1], "frame 2, 2-1": other_frame, "frame 2, 1-2": other_frame[:, ::-1]
    }
    seen = set()
    for _ in range(24):
        features = denormalized(dataset[0])
        seen.update(name for name, variant in variants.items() if np.allclose(features, variant, atol=2e-5))
    assert seen == set(variants)


def test_crop_never_starts_at_the_last_frame_as_in_intergen(tmp_path):
    root = write_interhuman(tmp_path, {"a": 34, "b": 32}, {"test": ["a", "b"]})
    dataset = InterHumanDataset(root, "test", max_len=32, swap_persons=False, seed=0)
    index = {dataset[i]["name"]: i for i in range(len(dataset))}
    raw1, raw2 = raw_pair(root, "a")
    windows = [interaction_features(raw1[start : start + 32], raw2[start : start + 32]) for start in range(3)]
    starts = set()
    for _ in range(40):
        features = denormalized(dataset[index["a"]])
        starts.update(s for s, window in enumerate(windows) if np.allclose(features, window, atol=2e-5))
    assert starts == {0, 1}  # range(0, 34 - 32): start 2 would also fit but InterGen never draws it
    assert dataset[index["b"]]["length"] == 31  # not longer than max_len: taken whole


def test_fifteen_raw_frames_are_kept_fourteen_are_not(tmp_path):
    root = write_interhuman(tmp_path, {"a": 15, "b": 14}, {"test": ["a", "b"]})
    dataset = InterHumanDataset(root, "test")
    assert len(dataset) == 1 and dataset[0]["name"] == "a" and dataset[0]["length"] == 14


def test_test_split_swaps_persons_at_random_but_never_mirrors(root):
    dataset = InterHumanDataset(root, "test", seed=1)
    assert dataset.swap_persons and not dataset.mirror
    raw1, raw2 = raw_pair(root, dataset[0]["name"])
    as_stored = interaction_features(raw1, raw2)
    orders = set()
    for _ in range(24):
        features = denormalized(dataset[0])
        orders.add("stored" if np.allclose(features, as_stored, atol=2e-5) else "swapped")
    assert orders == {"stored", "swapped"}


def test_split_folder_layout(tmp_path):
    root = write_interhuman(tmp_path, {"a": 20, "b": 25}, {"test": ["a", "b"]}, split_folder="split", ignore=("b",))
    dataset = InterHumanDataset(root, "test")
    assert len(dataset) == 1 and dataset[0]["name"] == "a"


def test_collate_and_loader(root):
    dataset = InterHumanDataset(root, "train", max_len=32, seed=0)
    batch = collate_interactions([dataset[0], dataset[1], dataset[2]])
    assert batch["motion"].shape == (3, 32, 2, 262) and batch["mask"].shape == (3, 32)
    assert batch["lengths"].dtype == torch.long and batch["mask"].sum(1).tolist() == batch["lengths"].tolist()
    assert len(batch["texts"]) == len(batch["names"]) == 3

    def names_of(seed):
        loader = make_loader(InterHumanDataset(root, "train", max_len=32, seed=0), 2, shuffle=True, seed=seed)
        return [name for batch in loader for name in batch["names"]]

    assert names_of(7) == names_of(7) and sorted(names_of(7)) == ["long", "s0", "s1", "s4"]
    assert any(names_of(seed) != names_of(7) for seed in range(8, 12))


def test_loader_workers_are_reproducible(root):
    def motions(seed):
        loader = make_loader(InterHumanDataset(root, "train", max_len=32), 4, shuffle=True, seed=seed, num_workers=2)
        return torch.cat([batch["motion"] for batch in loader])

    assert torch.equal(motions(1), motions(1))


def test_distributed_loader(root, tmp_path):
    dataset = InterHumanDataset(root, "val")
    with pytest.raises(ValueError, match="init_process_group"):
        make_loader(dataset, 2, shuffle=False, seed=0, distributed=True)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        loader = make_loader(dataset, 2, shuffle=True, seed=0, distributed=True)
        assert isinstance(loader.sampler, DistributedSampler)
        assert sorted(next(iter(loader))["names"]) == ["s0", "s1"]
    finally:
        dist.destroy_process_group()


def test_missing_places(root, copy, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        InterHumanDataset(tmp_path / "nowhere")
    (copy / "val.txt").unlink()
    with pytest.raises(FileNotFoundError, match="split file for split 'val'"):
        InterHumanDataset(copy, "val")
    with pytest.raises(ValueError, match="split must be one of"):
        InterHumanDataset(root, "training")
    shutil.rmtree(copy / "motions_processed" / "person2")
    with pytest.raises(FileNotFoundError, match="person2"):
        InterHumanDataset(copy, "test")


def test_person1_without_twin(copy):
    (copy / "motions_processed" / "person2" / "s4.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"person1/s4\.npy has no twin .*person2/s4\.npy"):
        InterHumanDataset(copy, "test")


def test_listed_name_without_files(copy):
    (copy / "test.txt").write_text("s4\nghost\n")
    with pytest.raises(FileNotFoundError, match=r"ghost is listed in .*test\.txt but .*ghost\.npy does not exist"):
        InterHumanDataset(copy, "test")


def test_wrong_width_and_nan(copy):
    path = copy / "motions_processed" / "person2" / "s4.npy"
    good = np.load(path)
    np.save(path, good[:, :300])
    with pytest.raises(ValueError, match=r"person2/s4\.npy has shape \(16, 300\).*492"):
        InterHumanDataset(copy, "test")
    bad = good.copy()
    bad[3, 7] = np.nan
    np.save(path, bad)
    with pytest.raises(ValueError, match=r"person2/s4\.npy contains NaN"):
        InterHumanDataset(copy, "test")
    np.save(path, good[:-2])
    with pytest.raises(ValueError, match=r"person1/s4\.npy has 16 frames but .*person2/s4\.npy has 14"):
        InterHumanDataset(copy, "test")
    path.write_bytes(b"not a numpy file")
    with pytest.raises(ValueError, match=r"person2/s4\.npy is not a readable \.npy"):
        InterHumanDataset(copy, "test")


def test_empty_or_missing_annotation(copy):
    (copy / "annots" / "s4.txt").write_text("\n  \n")
    with pytest.raises(ValueError, match=r"annots/s4\.txt is empty"):
        InterHumanDataset(copy, "test")
    (copy / "annots" / "s4.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"annots/s4\.txt does not exist"):
        InterHumanDataset(copy, "test")


def test_nothing_left_after_filtering(root):
    with pytest.raises(ValueError, match=r"no sample left for split 'test'.*min_raw_frames=40"):
        InterHumanDataset(root, "test", min_raw_frames=40)
    with pytest.raises(ValueError, match="min_len <= max_len"):
        InterHumanDataset(root, "test", min_raw_frames=40, max_len=20)


def test_length_buckets_cover_every_item_once_and_pad_far_less_than_random_batches():
    lengths = np.random.default_rng(0).integers(75, 300, size=400)
    sampler = LengthBucketSampler(lengths, batch_size=16, seed=3)
    sampler.set_epoch(0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 25
    assert sorted(i for batch in batches for i in batch) == list(range(400))
    bucketed_padding = np.mean([lengths[b].max() - lengths[b].mean() for b in batches])
    random_padding = np.mean([lengths[b].max() - lengths[b].mean() for b in np.arange(400).reshape(25, 16)])
    assert bucketed_padding < random_padding / 4
    sampler.set_epoch(1)
    assert list(sampler) != batches  # another epoch, another order
    sampler.set_epoch(0)
    assert list(sampler) == batches  # the epoch alone fixes it (resuming replays it)


def test_length_buckets_shard_whole_batches_across_processes():
    lengths = np.arange(100) % 37 + 10
    shards = [list(LengthBucketSampler(lengths, 8, seed=0, rank=rank, world_size=3)) for rank in range(3)]
    assert [len(shard) for shard in shards] == [len(LengthBucketSampler(lengths, 8, 0, 0, 3))] * 3 == [4, 4, 4]
    seen = [i for shard in shards for batch in shard for i in batch]
    assert len(seen) == len(set(seen))  # no item on two processes


def test_shuffled_loader_with_lengths_batches_similar_lengths(root):
    dataset = InterHumanDataset(root, split="train", seed=0)
    loader = make_loader(dataset, 2, shuffle=True, seed=0, lengths=dataset.item_lengths())
    assert isinstance(loader.batch_sampler, LengthBucketSampler)
    assert [dataset[i]["length"] for i in range(len(dataset))] == dataset.item_lengths()
    batch = next(iter(loader))
    assert batch["motion"].shape[0] <= 2 and int(batch["lengths"].max()) <= max(dataset.item_lengths())
