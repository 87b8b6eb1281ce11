"""InterX: parameter files, the 336-number features, SMPL-X joints (synthetic body model) and the dataset."""
import shutil

import numpy as np
import pytest
import torch

from dhvae_sdk.motion import interx
from dhvae_sdk.motion.normalization import interx_normalizer
from dhvae_sdk.motion.rotation import axis_angle_to_matrix
from dhvae_sdk.motion.skeleton import NUM_JOINTS, PARENTS, forward_kinematics
from training.data import InterXDataset, collate_interactions

NUM_VERTICES = 10475  # smplx indexes fixed vertex ids up to 9929
HAND_PARENTS = {20: 25, 21: 40}  # wrist -> first joint of that hand (5 fingers x 3 joints)


def smplx_parents() -> list[int]:
    parents = list(PARENTS) + [15, 15, 15]  # jaw and eyes hang from the head
    for wrist, first in HAND_PARENTS.items():
        for finger in range(5):
            base = first + 3 * finger
            parents += [wrist, base, base + 1]
    return parents


def rest_joints(rng) -> np.ndarray:
    """55 rest joints: the first 22 are the InterHuman skeleton at rest, pelvis at the origin."""
    body = forward_kinematics(np.eye(3), np.broadcast_to(np.eye(3), (21, 3, 3)), np.zeros(3))
    joints = np.zeros((55, 3))
    joints[:NUM_JOINTS] = body
    parents = smplx_parents()
    for joint in range(NUM_JOINTS, 55):
        joints[joint] = joints[parents[joint]] + rng.uniform(-0.04, 0.04, size=3)
    return joints


@pytest.fixture(scope="session")
def body_model_dir(tmp_path_factory):
    """A neutral SMPL-X file with real sizes whose joint regressor picks the first 55 vertices."""
    rng = np.random.default_rng(0)
    vertices = rng.normal(scale=0.2, size=(NUM_VERTICES, 3))
    joints = rest_joints(rng)
    vertices[:55] = joints
    regressor = np.zeros((55, NUM_VERTICES), dtype=np.float32)
    regressor[np.arange(55), np.arange(55)] = 1.0
    weights = np.zeros((NUM_VERTICES, 55), dtype=np.float32)
    weights[np.arange(NUM_VERTICES), np.arange(NUM_VERTICES) % 55] = 1.0
    faces = rng.integers(0, NUM_VERTICES, size=(60, 3))
    folder = tmp_path_factory.mktemp("body_models")
    (folder / "smplx").mkdir()
    np.savez_compressed(
        folder / "smplx" / "SMPLX_NEUTRAL.npz",
        v_template=vertices.astype(np.float32),
        f=faces,
        shapedirs=rng.normal(scale=0.01, size=(NUM_VERTICES, 3, 20)).astype(np.float32),
        posedirs=np.zeros((NUM_VERTICES, 3, 486), dtype=np.float32),
        J_regressor=regressor,
        weights=weights,
        kintree_table=np.stack([np.array(smplx_parents()), np.arange(55)]),
        hands_componentsl=np.eye(45), hands_componentsr=np.eye(45),
        hands_meanl=np.full(45, 0.3), hands_meanr=np.full(45, 0.3),
        lmk_faces_idx=rng.integers(0, 60, size=51),
        lmk_bary_coords=np.full((51, 3), 1.0 / 3.0),
    )
    return folder, joints


def random_params(frames, seed, scale=0.4):
    rng = np.random.default_rng(seed)
    params = rng.normal(scale=scale, size=(frames, interx.PARAM_ROWS, 3))
    params[:, 22:25] = 0.0
    params[:, interx.TRANSLATION_ROW] = rng.normal(size=3) + np.cumsum(rng.normal(scale=0.01, size=(frames, 3)), 0)
    return params


def test_body_joints_match_forward_kinematics(body_model_dir):
    folder, rest = body_model_dir
    params = random_params(9, seed=1)
    joints = interx.joints_from_smplx(params, folder)
    offsets = rest[:NUM_JOINTS] - rest[[max(p, 0) for p in PARENTS]]
    expected = forward_kinematics(
        axis_angle_to_matrix(params[:, 0]),
        axis_angle_to_matrix(params[:, 1:22]),
        rest[0] + params[:, interx.TRANSLATION_ROW],
        offsets,
    )
    assert joints.shape == (9, 22, 3)
    np.testing.assert_allclose(joints, expected, atol=2e-5)
    # The file itself works as well; hand poses are used as given (no mean hand added).
    all_joints = interx.joints_from_smplx(params, folder / "smplx" / "SMPLX_NEUTRAL.npz", num_joints=55)
    np.testing.assert_allclose(all_joints[:, :22], joints, atol=1e-6)
    # With zero finger poses the index finger moves rigidly with the left wrist (the file's
    # mean hand pose is not added).
    open_hand = params.copy()
    open_hand[:, 25:55] = 0.0
    hand_joints = interx.joints_from_smplx(open_hand, folder, num_joints=55)
    wrist_rotation = axis_angle_to_matrix(open_hand[:, 0])
    for joint in (3, 6, 9, 13, 16, 18, 20):  # the chain from the pelvis to the left wrist
        wrist_rotation = wrist_rotation @ axis_angle_to_matrix(open_hand[:, joint])
    expected_finger = hand_joints[:, 20] + (wrist_rotation @ (rest[26] - rest[20]))
    np.testing.assert_allclose(hand_joints[:, 26], expected_finger, atol=2e-5)


def test_missing_body_model_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"smplx/SMPLX_NEUTRAL\.npz and .*SMPLX_NEUTRAL\.npz"):
        interx.joints_from_smplx(random_params(3, seed=0), tmp_path)


def test_features_round_trip_and_layout():
    params = random_params(12, seed=2)
    features = interx.person_features(params)
    assert features.shape == (12, 336)
    back = interx.params_from_features(features)
    np.testing.assert_allclose(axis_angle_to_matrix(back[:, :55]), axis_angle_to_matrix(params[:, :55]), atol=1e-10)
    np.testing.assert_allclose(back[:, 55], params[:, 55])
    velocity = features[:, interx.VELOCITY]
    np.testing.assert_allclose(velocity[:-1], np.diff(params[:, 55], axis=0))
    np.testing.assert_array_equal(velocity[-1], 0.0)
    # Row 6D layout: the rotation's first two rows.
    matrix = axis_angle_to_matrix(params[3, 7])
    np.testing.assert_allclose(features[3, 42:48], matrix[:2].reshape(6))


def test_statistics_fit_the_row_layout():
    normalizer = interx_normalizer()
    assert normalizer.dim == 336
    rest = interx.person_features(np.zeros((2, 56, 3)))
    np.testing.assert_allclose(rest[0, :6], [1, 0, 0, 0, 1, 0])
    # The rest pose is typical; in the column layout one entry would be 4 std off.
    assert np.abs(normalizer.normalize(rest)[:, interx.ROTATIONS]).max() < 1.5


def write_person(path, params_30fps, seed):
    """A 120 fps file whose every 4th frame is ``params_30fps`` (others are noise)."""
    rng = np.random.default_rng(seed)
    frames = len(params_30fps) * 4 - 3
    full = rng.normal(scale=0.3, size=(frames, 56, 3))
    full[::4] = params_30fps
    np.savez(
        path,
        root_orient=full[:, 0], pose_body=full[:, 1:22].reshape(frames, 63),
        pose_lhand=full[:, 25:40].reshape(frames, 45), pose_rhand=full[:, 40:55].reshape(frames, 45),
        trans=full[:, 55], betas=np.zeros((1, 10)), gender=np.array("neutral"),
    )


LENGTHS = {"G001T000A000R000": 30, "G001T000A001R001": 60, "G002T001A002R000": 10}


@pytest.fixture(scope="module")
def interx_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("interx")
    (root / "texts").mkdir()
    (root / "splits").mkdir()
    for index, (name, frames) in enumerate(LENGTHS.items()):
        (root / "motions" / name).mkdir(parents=True)
        for person, file_name in enumerate(interx.PERSON_FILES):
            params = random_params(frames, seed=10 * index + person)
            write_person(root / "motions" / name / file_name, params, seed=index)
        (root / "texts" / f"{name}.txt").write_text(f"two people shake hands {index}.#two/NUM people/NOUN#0.0#0.0\n"
                                                    "they hug\n")
    (root / "splits" / "train.txt").write_text("\n".join(LENGTHS) + "\n")
    (root / "splits" / "test.txt").write_text("G001T000A000R000\n")
    return root


def test_read_person_downsamples_to_30_fps(interx_root):
    folder = interx_root / "motions" / "G001T000A000R000"
    np.testing.assert_allclose(interx.read_person(folder / "P1.npz"), random_params(30, seed=0))


def test_read_pair_shares_person1_origin(interx_root, body_model_dir):
    folder = interx_root / "motions" / "G001T000A000R000"
    pair = interx.read_pair(folder)
    first, second = random_params(30, seed=0), random_params(30, seed=1)
    assert pair.shape == (30, 2, 56, 3)
    np.testing.assert_allclose(pair[:, 0, 55], first[:, 55] - first[0, 55])
    np.testing.assert_allclose(pair[:, 1, 55], second[:, 55] - first[0, 55])
    # With the body model each person is first put on the floor: afterwards both lowest
    # joints are at the same height.
    grounded = interx.read_pair(folder, model_dir=body_model_dir[0])
    lowest = [interx.joints_from_smplx(grounded[:, p], body_model_dir[0], num_joints=55)[..., 1].min() for p in (0, 1)]
    assert lowest[0] == pytest.approx(lowest[1], abs=1e-5)
    ungrounded = [interx.joints_from_smplx(pair[:, p], body_model_dir[0], num_joints=55)[..., 1].min() for p in (0, 1)]
    assert abs(ungrounded[0] - ungrounded[1]) > 0.05


def test_dataset_items(interx_root):
    dataset = InterXDataset(interx_root, "train", max_len=40, seed=0)
    assert len(dataset) == 2  # the 10-frame sample is shorter than min_len=24
    items = [dataset[i] for i in range(len(dataset))]
    batch = collate_interactions(items)
    assert batch["motion"].shape == (2, 40, 2, 336) and batch["motion"].dtype == torch.float32
    assert batch["lengths"][0] in (24, 28) and batch["lengths"][1] == 40  # 60 frames: cut to max_len
    assert batch["texts"][0] in ("two people shake hands 0.", "they hug")
    assert dataset.sentence_tokens["two people shake hands 0."] == ["two/NUM", "people/NOUN"]
    assert "they hug" not in dataset.sentence_tokens  # a line without tokens


def test_crop_is_intermasks(interx_root):
    """Length rounded down to a multiple of 4 (one more unit dropped one time in three), a
    window anywhere, features of that window (velocity zero at its last frame), then max_len."""
    dataset = InterXDataset(interx_root, "train", max_len=40, seed=1)
    pair = interx.read_pair(interx_root / "motions" / "G001T000A000R000")  # 30 frames
    index = next(i for i in range(len(dataset)) if dataset[i]["name"] == "G001T000A000R000")
    seen = set()
    for _ in range(150):
        item = dataset[index]
        length = item["length"]
        restored = interx_normalizer().denormalize(item["motion"][:length].double().numpy())
        starts = [start for start in range(30 - length + 1)
                  if np.allclose(restored, interx.interaction_features(pair[start:start + length]), atol=2e-5)]
        assert len(starts) == 1 and torch.all(item["motion"][length:] == 0)
        seen.add((length, starts[0]))
    assert {length for length, _ in seen} == {24, 28}
    assert {start for length, start in seen if length == 24} == set(range(7))  # every start, the last included


@pytest.fixture
def broken(interx_root, tmp_path):
    return shutil.copytree(interx_root, tmp_path / "copy")


def test_bad_inputs_name_the_file(broken, tmp_path):
    sample = broken / "motions" / "G001T000A000R000"
    with pytest.raises(FileNotFoundError, match="nothing"):
        InterXDataset(tmp_path / "nothing", "test")
    (sample / "P2.npz").rename(sample / "other.npz")
    with pytest.raises(FileNotFoundError, match=r"G001T000A000R000/P2\.npz does not exist"):
        InterXDataset(broken, "test")
    data = dict(np.load(sample / "other.npz"))
    data["trans"][5, 1] = np.nan
    np.savez(sample / "P2.npz", **data)
    with pytest.raises(ValueError, match=r"P2\.npz contains NaN"):
        InterXDataset(broken, "test")
    data["trans"][5, 1] = 0.0
    data["pose_rhand"] = data["pose_rhand"][:, :44]
    np.savez(sample / "P2.npz", **data)
    with pytest.raises(ValueError, match=r"P2\.npz: 'pose_rhand' has shape \(117, 44\), expected \(frames, 45\)"):
        InterXDataset(broken, "test")
    del data["pose_rhand"]
    np.savez(sample / "P2.npz", **data)
    with pytest.raises(ValueError, match=r"P2\.npz lacks the SMPL-X keys \['pose_rhand'\]"):
        InterXDataset(broken, "test")
    shorter = dict(np.load(sample / "other.npz"))
    for key in ("root_orient", "pose_body", "pose_lhand", "pose_rhand", "trans"):
        shorter[key] = shorter[key][:-8]
    np.savez(sample / "P2.npz", **shorter)
    with pytest.raises(ValueError, match="P1.npz has 30 frames but P2.npz has 28"):
        InterXDataset(broken, "test")
    (sample / "other.npz").rename(sample / "P2.npz")
    (broken / "texts" / "G001T000A000R000.txt").write_text("#tokens#0.0#0.0\n")
    with pytest.raises(ValueError, match=r"G001T000A000R000\.txt is empty"):
        InterXDataset(broken, "test")
    (broken / "splits" / "test.txt").unlink()
    with pytest.raises(FileNotFoundError, match="split file for split 'test'"):
        InterXDataset(broken, "test")
