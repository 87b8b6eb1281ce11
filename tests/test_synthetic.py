"""The procedural interaction dataset: layout, determinism, contact, no interpenetration, rigid bodies."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from dhvae_sdk.motion.interhuman import RAW_DIM, RAW_JOINTS
from dhvae_sdk.motion.rotation import sixd_to_matrix
from dhvae_sdk.motion.skeleton import BONE_LENGTHS, NUM_JOINTS, PARENTS, REST_DIRECTIONS
from training.data.synthetic import CONTACT_SCENES, INTERACTIONS, generate_dataset, main

SAMPLES = 36
SEED = 3
LEFT_HAND = [20] + list(range(22, 37)) + list(range(52, 57))
RIGHT_HAND = [21] + list(range(37, 52)) + list(range(57, 62))
HAND_POINTS = LEFT_HAND + RIGHT_HAND
PALMS = {"left": 25, "right": 40}  # middle-finger knuckles
# Body-part spheres (joint: radius in m) that must never overlap between the two people.
BODY_SPHERES = {0: 0.12, 3: 0.12, 6: 0.12, 9: 0.12, 12: 0.12, 15: 0.1, 1: 0.09, 2: 0.09,
                4: 0.06, 5: 0.06, 7: 0.05, 8: 0.05, 10: 0.04, 11: 0.04}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic") / "data"
    generate_dataset(root, SAMPLES, seed=SEED, workers=1)
    return root


@pytest.fixture(scope="module")
def meta(dataset) -> dict:
    return json.loads((dataset / "synthetic_meta.json").read_text())


@pytest.fixture(scope="module")
def motions(dataset, meta) -> dict:
    """NAME -> (joints [T, 2, 62, 3] Z up, local rotations [T, 2, 21, 3, 3])."""
    result = {}
    for name in meta:
        raws = [np.load(dataset / "motions_processed" / person / f"{name}.npy") for person in ("person1", "person2")]
        raw = np.stack(raws, axis=1).astype(np.float64)
        joints = raw[..., : RAW_JOINTS * 3].reshape(len(raw), 2, RAW_JOINTS, 3)
        sixd = raw[..., RAW_JOINTS * 3 : RAW_JOINTS * 3 + (NUM_JOINTS - 1) * 6]
        rotations = sixd_to_matrix(sixd.reshape(len(raw), 2, NUM_JOINTS - 1, 6))
        result[name] = (joints, rotations)
    return result


def _closest(points_a: np.ndarray, points_b: np.ndarray) -> np.ndarray:
    """Per frame, the smallest distance between point sets [T, n, 3] and [T, m, 3]."""
    return np.linalg.norm(points_a[:, :, None] - points_b[:, None], axis=-1).min(axis=(1, 2))


def _hand_gap(joints: np.ndarray) -> np.ndarray:
    """Per frame, how close a hand of either person comes to any joint of the other."""
    first_reaching = _closest(joints[:, 0, HAND_POINTS], joints[:, 1])
    return np.minimum(first_reaching, _closest(joints[:, 1, HAND_POINTS], joints[:, 0]))


def _contact_mask(entry: dict) -> np.ndarray:
    mask = np.zeros(entry["frames"], dtype=bool)
    for first, last in entry["contact_frames"]:
        mask[first : last + 1] = True
    return mask


def _file_digests(root: Path) -> dict:
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*")) if path.is_file()}


def test_layout_shapes_and_annotations(dataset, meta):
    names = sorted(meta)
    assert len(names) == SAMPLES
    for name in names:
        lengths = []
        for person in ("person1", "person2"):
            motion = np.load(dataset / "motions_processed" / person / f"{name}.npy", allow_pickle=False)
            assert motion.dtype == np.float32 and motion.ndim == 2 and motion.shape[1] == RAW_DIM
            assert np.all(np.isfinite(motion))
            lengths.append(len(motion))
        assert lengths[0] == lengths[1] == meta[name]["frames"]
        assert 60 <= lengths[0] <= 300
        lines = (dataset / "annots" / f"{name}.txt").read_text().splitlines()
        assert len(lines) == 3 and len(set(lines)) == 3 and all(line.strip() for line in lines)
        assert set(meta[name]) >= {"interaction", "contact", "contact_frames", "handedness", "speed"}
        assert meta[name]["contact"] == (meta[name]["interaction"] in CONTACT_SCENES)


def test_split_lists_partition_the_names(dataset, meta):
    splits = {split: (dataset / f"{split}.txt").read_text().split() for split in ("train", "val", "test")}
    assert all(splits.values())
    members = [name for names in splits.values() for name in names]
    assert len(members) == len(set(members)) == SAMPLES
    assert set(members) == set(meta)
    assert len(splits["train"]) > len(splits["test"]) > len(splits["val"]) - 1


def test_same_seed_same_bytes_for_any_worker_count(tmp_path):
    generate_dataset(tmp_path / "one", 16, seed=11, workers=1)
    generate_dataset(tmp_path / "two", 16, seed=11, workers=2)
    generate_dataset(tmp_path / "other", 16, seed=12, workers=1)
    first, second, other = (_file_digests(tmp_path / name) for name in ("one", "two", "other"))
    assert first == second
    motion_files = [key for key in first if key.startswith("motions_processed")]
    assert len(motion_files) == 32
    assert {"global_mean.npy", "global_std.npy"} <= set(first)
    assert sum(first[key] != other.get(key) for key in motion_files) == len(motion_files)


def test_every_interaction_type_appears_and_half_touch(meta):
    assert len(INTERACTIONS) >= 12
    assert len(CONTACT_SCENES) * 2 == len(INTERACTIONS)
    assert {entry["interaction"] for entry in meta.values()} == set(INTERACTIONS)


def test_contact_types_touch_within_five_centimetres(meta, motions):
    touching = [name for name, entry in meta.items() if entry["contact"]]
    assert len(touching) >= 14
    for name in touching:
        mask = _contact_mask(meta[name])
        assert mask.sum() >= 3, name
        gaps = _hand_gap(motions[name][0])
        assert gaps[mask].max() <= 0.05, (name, meta[name]["interaction"], gaps[mask].max())


def test_apart_types_keep_hands_away_from_the_other_person(meta, motions):
    apart = [name for name, entry in meta.items() if not entry["contact"]]
    assert len(apart) >= 14
    for name in apart:
        assert meta[name]["contact_frames"] == []
        assert _hand_gap(motions[name][0]).min() > 0.15, (name, meta[name]["interaction"])


def test_bodies_never_interpenetrate(meta, motions):
    joints_used = list(BODY_SPHERES)
    radii = np.array([BODY_SPHERES[j] for j in joints_used])
    for name, (joints, _) in motions.items():
        pelvis_gap = np.linalg.norm(joints[:, 0, 0] - joints[:, 1, 0], axis=-1)
        assert pelvis_gap.min() >= 0.35, (name, meta[name]["interaction"])
        distances = np.linalg.norm(joints[:, 0, joints_used][:, :, None] - joints[:, 1, joints_used][:, None], axis=-1)
        clearance = distances - radii[:, None] - radii[None, :]
        assert clearance.min() > 0.0, (name, meta[name]["interaction"], clearance.min())


def test_bones_are_rigid_with_real_proportions(motions):
    children = np.arange(1, NUM_JOINTS)
    parents = np.array(PARENTS[1:])
    for name, (joints, _) in motions.items():
        for person in (0, 1):
            body = joints[:, person, :NUM_JOINTS]
            lengths = np.linalg.norm(body[:, children] - body[:, parents], axis=-1)
            assert np.ptp(lengths, axis=0).max() < 1e-4, name
            scale = lengths[0] / BONE_LENGTHS[1:]
            assert np.ptp(scale) < 1e-4 and 0.9 <= scale.mean() <= 1.1, name


def test_feet_stand_on_the_floor(motions):
    for name, (joints, _) in motions.items():
        heights = joints[..., 2]  # Z up
        assert heights.min() > -1e-4, name
        feet = heights[:, :, [10, 11]].min(axis=-1)  # lower foot joint of each person, per frame
        assert feet.max() < 0.01, name  # always a foot on the ground: nobody jumps or floats
        assert abs(feet.min()) < 1e-3, name
        own_feet = np.linalg.norm(joints[:, :, 10] - joints[:, :, 11], axis=-1)
        assert own_feet.min() > 0.08, name  # a person's feet never cross or overlap


def test_rotations_agree_with_joint_positions(motions):
    """For a joint with one child, its local rotation turns the rest child bone into the posed
    child bone relative to the incoming bone: the angle between the two bones matches."""
    chains = [(1, 4, 7), (2, 5, 8), (4, 7, 10), (5, 8, 11), (9, 12, 15), (13, 16, 18), (14, 17, 19),
              (16, 18, 20), (17, 19, 21)]
    for name, (joints, rotations) in motions.items():
        for parent, joint, child in chains:
            incoming = joints[:, :, joint] - joints[:, :, parent]
            outgoing = joints[:, :, child] - joints[:, :, joint]
            lengths = np.linalg.norm(incoming, axis=-1) * np.linalg.norm(outgoing, axis=-1)
            cos_posed = np.sum(incoming * outgoing, -1) / lengths
            rest_out = np.einsum("tpij,j->tpi", rotations[:, :, joint - 1], REST_DIRECTIONS[child])
            cos_rotations = rest_out @ REST_DIRECTIONS[joint]
            assert np.abs(cos_posed - cos_rotations).max() < 1e-3, (name, joint)


def test_sentences_name_the_hand_that_moves(dataset, meta, motions):
    side_words = re.compile(r"\b(left|right)\b")
    for name, entry in meta.items():
        allowed = {entry["handedness"], entry.get("turn")}
        for line in (dataset / "annots" / f"{name}.txt").read_text().splitlines():
            assert set(side_words.findall(line.lower())) <= allowed, (line, entry)
        if entry["handedness"] not in PALMS:
            continue
        joints = motions[name][0]
        me = entry["initiator"] - 1
        named, other = PALMS[entry["handedness"]], PALMS["left" if entry["handedness"] == "right" else "right"]
        if entry["interaction"] in ("handshake", "high_five", "push", "pass_object", "lead_by_hand"):
            frame = int(np.mean(entry["contact_frames"][0]))
            gap = [np.linalg.norm(joints[frame, 1 - me] - joints[frame, me, palm], axis=-1).min()
                   for palm in (named, other)]
            assert gap[0] <= 0.05 < gap[1], (name, entry)
        if entry["interaction"] in ("wave", "beckon"):
            raised = joints[:, me, named, 2].argmax()
            assert joints[raised, me, named, 2] > joints[raised, me, other, 2] + 0.2, (name, entry)


def test_the_interhuman_loader_reads_it(dataset, meta):
    from training.data.interhuman import InterHumanDataset

    train = InterHumanDataset(dataset, split="train", mirror=False, swap_persons=False)
    names = (dataset / "train.txt").read_text().split()
    assert len(train) == len(names)
    item = train[0]
    assert tuple(item["motion"].shape[1:]) == (2, 262)
    assert item["length"] == meta[item["name"]]["frames"] - 1
    assert bool(item["mask"][: item["length"]].all()) and not bool(item["mask"][item["length"]:].any())
    assert item["text"] in (dataset / "annots" / f"{item['name']}.txt").read_text().splitlines()


def test_bad_arguments_give_clear_errors(tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "file.txt").write_text("x")
    for argv, message in (
        (["--out", str(taken), "--n", "5"], "already exists"),
        (["--out", str(tmp_path / "new"), "--n", "2"], "at least 3"),
        (["--out", str(tmp_path / "new"), "--n", "5", "--workers", "0"], "--workers"),
    ):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]


def test_statistics_fit_the_train_split(dataset):
    from training.data import InterHumanDataset

    train = InterHumanDataset(dataset, split="train", mirror=True, swap_persons=True, seed=0)
    normalized = np.concatenate([item["motion"][: int(item["length"])].reshape(-1, 262)
                                 for item in (train[i] for i in range(len(train)))])
    assert np.allclose(train.normalizer.mean, np.load(dataset / "global_mean.npy"))
    assert abs(float(normalized.mean())) < 0.2
    assert 0.5 < float(normalized.std()) < 2.0
