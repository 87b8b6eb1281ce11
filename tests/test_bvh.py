"""BVH export/import: round trips of rigid FK motions, the file layout Blender reads, bad input."""
import re

import numpy as np
import pytest

from dhvae_sdk.motion import skeleton
from dhvae_sdk.motion.bvh import global_rotations, load_bvh, save_bvh
from dhvae_sdk.motion.rotation import axis_angle_to_matrix, yaw_matrix
from fk_motions import fk_person

KNEE = skeleton.JOINT_INDEX["l_knee"]


def random_rigid_motion(frames: int, seed: int, max_angle_deg: float = 90.0):
    """FK of random local rotations (random axes, up to ``max_angle_deg``), random rigid bone
    lengths (+-15 %), a wandering root with any yaw and some tilt: [T, 22, 3] and the lengths."""
    rng = np.random.default_rng(seed)
    axes = rng.normal(size=(frames, 21, 3))
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    angles = rng.uniform(0.0, np.radians(max_angle_deg), size=(frames, 21, 1))
    lengths = skeleton.BONE_LENGTHS * rng.uniform(0.85, 1.15, size=skeleton.NUM_JOINTS)
    tilt = axis_angle_to_matrix(rng.normal(scale=0.3, size=(frames, 3)))
    root = yaw_matrix(rng.uniform(-np.pi, np.pi, size=frames)) @ tilt
    position = np.column_stack([rng.uniform(-3, 3, frames), rng.uniform(0.7, 1.1, frames), rng.uniform(-3, 3, frames)])
    joints = skeleton.forward_kinematics(root, axis_angle_to_matrix(axes * angles), position, skeleton.rest_offsets(lengths))
    return joints, lengths


def in_skeleton_order(motion):
    return motion.joints[:, [motion.names.index(name) for name in skeleton.JOINT_NAMES]]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_rigid_motions_survive_a_round_trip_within_a_millimetre(tmp_path, seed):
    joints, _ = random_rigid_motion(60, seed)
    motion = load_bvh(save_bvh(joints, tmp_path / "person.bvh", fps=20))
    assert motion.joints.shape == (60, 22, 3)
    assert np.abs(in_skeleton_order(motion) - joints).max() < 1e-3
    assert motion.fps == pytest.approx(20.0)
    assert set(motion.names) == set(skeleton.JOINT_NAMES)
    for index, name in enumerate(motion.names):
        parent = skeleton.PARENTS[skeleton.JOINT_INDEX[name]]
        assert motion.parents[index] == (-1 if parent < 0 else motion.names.index(skeleton.JOINT_NAMES[parent]))


def test_smooth_walking_motion_survives_a_round_trip(tmp_path):
    joints = fk_person(90, first_yaw=2.5, start_xz=(1.0, -0.5), seed=7)[0]
    motion = load_bvh(save_bvh(joints, tmp_path / "walk.bvh"))
    assert np.abs(in_skeleton_order(motion) - joints).max() < 1e-3


def test_a_fully_folded_knee_survives_a_round_trip(tmp_path):
    local = np.tile(np.eye(3), (3, 21, 1, 1))
    local[:, KNEE - 1] = axis_angle_to_matrix(np.array([np.pi, 0.0, 0.0]))  # shin along the thigh
    local[1, KNEE - 1] = axis_angle_to_matrix(np.array([np.pi - 1e-3, 0.0, 0.0]))
    joints = skeleton.forward_kinematics(yaw_matrix(np.array([0.0, 1.0, 2.0])), local, np.array([[0.0, 1.0, 0.0]] * 3))
    motion = load_bvh(save_bvh(joints, tmp_path / "fold.bvh"))
    assert np.abs(in_skeleton_order(motion) - joints).max() < 1e-3


def test_ik_rotations_turn_rest_bones_onto_the_posed_bones():
    joints, lengths = random_rigid_motion(20, seed=3)
    world = global_rotations(joints)
    for child in range(1, skeleton.NUM_JOINTS):
        parent = skeleton.PARENTS[child]
        predicted = world[:, parent] @ (skeleton.REST_DIRECTIONS[child] * lengths[child])
        np.testing.assert_allclose(predicted, joints[:, child] - joints[:, parent], atol=1e-9)
    np.testing.assert_allclose(world @ np.swapaxes(world, -1, -2), np.broadcast_to(np.eye(3), world.shape), atol=1e-9)


def test_rest_pose_exports_zero_rotations_and_yaw_lands_in_the_y_channel(tmp_path):
    yaw = np.radians([0.0, 30.0])
    joints = skeleton.forward_kinematics(yaw_matrix(yaw), np.tile(np.eye(3), (2, 21, 1, 1)), np.array([[0.5, 0.9, -1.0]] * 2))
    text = save_bvh(joints, tmp_path / "rest.bvh").read_text()
    values = np.loadtxt(text.splitlines()[-2:])
    np.testing.assert_allclose(values[:, :3], [[0.5, 0.9, -1.0]] * 2, atol=1e-6)
    np.testing.assert_allclose(values[:, 3:5], 0.0, atol=1e-6)  # root Z and X rotation
    np.testing.assert_allclose(values[:, 5], [0.0, 30.0], atol=1e-6)  # root Y rotation
    np.testing.assert_allclose(values[:, 6:], 0.0, atol=1e-6)


def test_file_layout_is_what_blender_reads(tmp_path):
    joints, lengths = random_rigid_motion(12, seed=4)
    lines = save_bvh(joints, tmp_path / "layout.bvh", fps=30).read_text().splitlines()
    words = [line.split() for line in lines]
    motion_at = lines.index("MOTION")
    hierarchy = words[:motion_at]
    assert hierarchy[0] == ["HIERARCHY"] and hierarchy[1] == ["ROOT", "pelvis"]
    depth = 0
    for line in hierarchy:
        depth += line.count("{") - line.count("}")
        assert depth >= 0
    assert depth == 0
    assert sum(line[:1] == ["JOINT"] for line in hierarchy) == 21
    assert sum(line == ["End", "Site"] for line in hierarchy) == 5
    declared = [int(line[1]) for line in hierarchy if line[:1] == ["CHANNELS"]]
    assert declared == [6] + [3] * 21
    assert all(line[2:] == ["Zrotation", "Xrotation", "Yrotation"] for line in hierarchy if line[:2] == ["CHANNELS", "3"])
    assert lines[motion_at + 1] == "Frames: 12"
    assert re.fullmatch(r"Frame Time: 0\.0333333\d*", lines[motion_at + 2])
    frames = words[motion_at + 3:]
    assert len(frames) == 12 and all(len(frame) == sum(declared) for frame in frames)
    # OFFSETs are the motion's own bone lengths along the rest directions, in metres.
    knee_offset = hierarchy[hierarchy.index(["JOINT", "l_knee"]) + 2]
    assert knee_offset[0] == "OFFSET"
    np.testing.assert_allclose(np.array(knee_offset[1:], float), [0.0, -lengths[KNEE], 0.0], atol=1e-6)


@pytest.mark.parametrize("joints, message", [
    (np.zeros((5, 2, 22, 3)), "shape"),
    (np.zeros((0, 22, 3)), "no frames"),
    (np.where(np.arange(22)[None, :, None] == 4, np.nan, random_rigid_motion(3, seed=5)[0]), "NaN"),
    (np.zeros((3, 22, 3)), "coincides with its parent"),
])
def test_bad_motions_are_refused(tmp_path, joints, message):
    with pytest.raises(ValueError, match=message):
        save_bvh(joints, tmp_path / "bad.bvh")
    assert list(tmp_path.iterdir()) == []


def test_bad_names_and_fps_are_refused(tmp_path):
    joints, _ = random_rigid_motion(3, seed=6)
    with pytest.raises(ValueError, match="names"):
        save_bvh(joints, tmp_path / "x.bvh", names=["left hip"] * 22)
    with pytest.raises(ValueError, match="fps"):
        save_bvh(joints, tmp_path / "x.bvh", fps=-30)


def test_broken_files_give_errors_naming_the_file(tmp_path):
    joints, _ = random_rigid_motion(4, seed=8)
    text = save_bvh(joints, tmp_path / "good.bvh").read_text()
    cases = {
        "no_motion.bvh": (text[: text.index("MOTION")], "no MOTION"),
        "short.bvh": (text.rsplit("\n", 2)[0] + "\n", "expected 4 frames"),
        "truncated.bvh": (text[:200] + "\nMOTION\nFrames: 0\nFrame Time: 0.1\n", "ends early"),
        "channel.bvh": (text.replace("Zrotation", "Wrotation", 1), "unknown channel"),
        "words.bvh": (text.replace("Frames: 4", "Frames: four"), "non-numeric"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_text(content)
        with pytest.raises(ValueError, match=message) as error:
            load_bvh(tmp_path / name)
        assert name in str(error.value)
    with pytest.raises(FileNotFoundError, match="absent.bvh"):
        load_bvh(tmp_path / "absent.bvh")
